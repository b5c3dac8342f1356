"""One import namespace: everything of ours is `budgetsweep.*`, so an app with its own `models`,
`data`, `analysis`, `trainer`, `sweeper` and `contract` packages sweeps with both our sweepers
and imports its own packages; the installed distribution has no other top-level name; the
console script runs every command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import optuna
import pytest
import yaml

from helpers import ROOT, env

OWN_PACKAGES = ("models", "data", "analysis", "trainer", "sweeper", "contract")
BUDGETSWEEP = Path(sys.executable).with_name("budgetsweep")  # the console script of this environment


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    child = env()
    child.pop("PYTHONPATH", None)  # nothing but the installed package on the path
    return subprocess.run(args, cwd=cwd, env=child, capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    return out


@pytest.fixture
def app(tmp_path: Path) -> Path:
    where = tmp_path / "app"
    shutil.copytree(ROOT / "tests" / "apps" / "ownpkgs", where, ignore=shutil.ignore_patterns("__pycache__"))
    return where


def assert_own_packages(run_dir: Path, app: Path) -> dict:
    record = json.loads((run_dir / "imported.json").read_text())
    for name in OWN_PACKAGES:
        found = record["packages"][name]
        assert found["owner"] == "app" and Path(found["file"]).is_relative_to(app), (name, found)
    return record


def test_an_app_with_its_own_packages_sweeps_with_the_optuna_sweeper(app):
    proc = run(
        [
            sys.executable,
            "app.py",
            "-m",
            "hydra/sweeper=budget_optuna",
            "model.width=int(interval(2,100))",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.seed=0",
            "hydra.sweeper.enqueue=[{model.width:100},{model.width:24}]",
        ],
        app,
    )
    log = ok(proc)
    (study_dir,) = (app / "outputs" / "optuna").iterdir()
    study = optuna.load_study(study_name=study_dir.name, storage=f"sqlite:///{study_dir / 'study.db'}")
    first = study.trials[0]
    # sized from the app's own `_target_: models.make_mlp` on the meta device: 601 > 400, not trained
    assert first.params == {"model.width": 100} and first.user_attrs["status"] == "over_budget", log[-2000:]
    assert not (study_dir / "0").exists()
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3 and study.best_value == 0.0  # the enqueued width 24 is the minimum
    for t in done:
        record = assert_own_packages(study_dir / str(t.number), app)
        assert record["params"] <= 400
        # the app named its loss with budgetsweep.record; the sweeper added the trial and its sizing
        kept = json.loads((study_dir / str(t.number) / "sweep_record.json").read_text())
        assert (kept["source"], kept["objective_name"], kept["directions"]) == ("app", "loss", {"loss": "minimize"})
        assert (kept["trial"], kept["params"], kept["objective"]) == (t.number, t.user_attrs["params"], t.value)
        assert kept["metrics"]["width"] == t.params["model.width"]
    # then what follows a sweep, on this app's study: the report names its loss and its best trial
    best = study.best_trial.number
    out = ok(run([sys.executable, "-m", "budgetsweep", "analyze", str(study_dir)], app))
    assert "WARNING" not in out
    report = (study_dir / "analysis" / "report.md").read_text()
    assert f"**Best run:** {study_dir / str(best)} (trial {best}, loss 0); no weights kept by the app" in report
    assert "| loss " in report and "val acc" not in report
    evaluated = run([sys.executable, "-m", "budgetsweep", "evaluate", str(study_dir)], app)
    said = (evaluated.stdout + evaluated.stderr).strip().splitlines()
    assert len(said) == 1 and "weights" in said[0] and "Traceback" not in said[0], said


def test_an_app_with_its_own_packages_sweeps_with_the_ablation_sweeper(app):
    log = ok(run([sys.executable, "app.py", "-m", "hydra/sweeper=ablation", "model.width=16,100"], app))
    runs = [p.parent for p in app.rglob("imported.json")]
    widths = sorted(int(_width(d)) for d in runs)
    assert widths == [8, 16], log[-2000:]  # the baseline and width 16; width 100 is over the budget, never run
    for d in runs:
        assert_own_packages(d, app)


def _width(run_dir: Path) -> int:
    return yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["model"]["width"]


def test_the_installed_distribution_has_one_top_level_name(tmp_path):
    # outside the checkout, our folders are not importable by their folder names
    for name in OWN_PACKAGES:
        proc = run([sys.executable, "-c", f"import {name}"], tmp_path)
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, name
    proc = run(
        [sys.executable, "-c", "import budgetsweep.models, budgetsweep.conf; print(budgetsweep.models.__name__)"],
        tmp_path,
    )
    assert ok(proc).strip() == "budgetsweep.models"


def test_the_wheel_ships_one_package_with_the_configs_and_the_sample(tmp_path):
    # built from a copy: setuptools writes build/ beside the sources
    source = tmp_path / "source"
    skip = shutil.ignore_patterns(".*", "outputs", "build", "site", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=skip)
    wheel_cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    proc = run([*wheel_cmd, str(source)], tmp_path)
    ok(proc)
    (wheel,) = tmp_path.glob("budgetsweep-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"budgetsweep"}, top
    for needed in (
        "budgetsweep/conf/config.yaml",
        "budgetsweep/conf/experiment/quick.yaml",
        "budgetsweep/data/cifar10_sample.npz",
    ):
        assert needed in names, needed


@pytest.mark.parametrize("command", ["analyze", "evaluate", "dashboard", "make-sample"])
def test_every_command_answers_help_through_the_console_script(command, tmp_path):
    proc = run([str(BUDGETSWEEP), command, "--help"], tmp_path)
    assert proc.returncode == 0 and f"budgetsweep {command}" in proc.stdout + proc.stderr


def test_an_unknown_command_is_one_line(tmp_path):
    proc = run([str(BUDGETSWEEP), "analyse"], tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown command 'analyse'" in proc.stderr and "analyze" in proc.stderr
