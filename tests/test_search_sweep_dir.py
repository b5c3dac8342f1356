"""Hydra's habit kept: a `hydra.sweep.dir` given on the command line is the
study's folder; with `hydra.sweeper.dir` naming another one, the sweep is refused in one line."""

from __future__ import annotations

from budgetsweep.contract.layouts import read_study

from helpers import OPTUNA, run_foreign_app

XY = ["x=interval(-2,2)", "y=interval(-2,2)", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1"]


def test_a_users_sweep_dir_is_the_study_folder(tmp_path):
    r = run_foreign_app(tmp_path, "xy", OPTUNA, *XY, "hydra.sweep.dir=mine/search")
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    folder = tmp_path / "mine" / "search"
    assert read_study(folder) is not None and (folder / "study.db").is_file()
    assert sorted(p.name for p in folder.iterdir() if p.name.isdigit()) == ["0", "1"]
    assert not (tmp_path / "outputs" / "optuna").exists()
    # found again
    r = run_foreign_app(tmp_path, "xy", OPTUNA, *XY, "hydra.sweep.dir=mine/search", "hydra.sweeper.n_trials=3")
    assert r.returncode == 0 and sorted(p.name for p in folder.iterdir() if p.name.isdigit()) == ["0", "1", "2"]


def test_two_folders_for_one_study_are_refused_in_one_line(tmp_path):
    r = run_foreign_app(tmp_path, "xy", OPTUNA, *XY, "hydra.sweep.dir=a", "hydra.sweeper.dir=b")
    assert r.returncode == 1
    assert "hydra.sweep.dir=a and hydra.sweeper.dir=b: the study's folder is hydra.sweeper.dir" in r.stderr
    assert "Traceback" not in r.stderr
