"""Every sampler README names works: 3 tiny trials each, and a sampler whose
package is missing ends with one line naming the package to install."""

from __future__ import annotations

import sys

import pytest

from budgetsweep.sweeper.errors import SweeperError
from budgetsweep.sweeper.settings import parse_settings

from helpers import OPTUNA, load_study, only_study_dir, run_foreign_app, sweeper_settings

XY = ["x=interval(-2,2)", "y=interval(-2,2)", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=1"]
SAMPLERS = {
    "tpe": ["hydra.sweeper.sampler.n_startup_trials=1"],
    "random": [],
    "grid": ["x=choice(-1,0,1)", "y=choice(0,1)"],
    # a model-based suggestion from the second trial on (the package is used, not only imported)
    "cmaes": ["hydra.sweeper.sampler.n_startup_trials=1"],
    "gp": ["hydra.sweeper.sampler.n_startup_trials=1"],
    "qmc": [],
    "nsgaii": ["hydra.sweeper.sampler.population_size=2"],
}


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_each_sampler_runs_three_trials(tmp_path, sampler):
    chosen = [f"hydra/sweeper/sampler={sampler}", "hydra.sweeper.sampler.seed=0", *SAMPLERS[sampler]]
    r = run_foreign_app(tmp_path, "xy", OPTUNA, *XY, *chosen)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    study = load_study(only_study_dir(tmp_path))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert len({(t.params["x"], t.params["y"]) for t in study.trials}) == 3


def test_a_missing_sampler_package_is_one_line(tmp_path):
    # cmaes made unimportable in the sweep's process, as on a machine without it
    runner = tmp_path / "without_cmaes.py"
    runner.write_text(
        'import runpy, sys\nsys.modules["cmaes"] = None\nsys.argv = sys.argv[1:]\n'
        'runpy.run_path(sys.argv[0], run_name="__main__")\n'
    )
    r = run_foreign_app(
        tmp_path, "xy", OPTUNA, *XY, "hydra/sweeper/sampler=cmaes", python=[sys.executable, str(runner)]
    )
    assert r.returncode == 1
    assert "hydra.sweeper.sampler: CmaEsSampler needs the 'cmaes' package: pip install cmaes" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("target, package", [("QMCSampler", "scipy"), ("GPSampler", "scipy")])
def test_the_packages_each_sampler_needs_are_checked_before_anything_runs(monkeypatch, target, package):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(SweeperError, match=f"{target} needs the '{package}' package: pip install {package}"):
        parse_settings(sweeper_settings(sampler={"_target_": f"optuna.samplers.{target}"}))
