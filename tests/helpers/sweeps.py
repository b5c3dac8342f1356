"""Sweeps run and read back: `run.py -m hydra/sweeper=optuna` cut down to seconds, the folders
and the study a sweep leaves, and what Hydra recorded for each job."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from .paths import CONF
from .processes import RUN_PY, run_py
from .tiny import TINY_SWEEP

# The default search space and pruner dropped (hydra.sweeper.params=null, pruner none): each
# test gives its own (`++hydra.sweeper.pruner={_target_:...}` replaces the none pruner).
RUN_PY_OPTUNA = ["-m", "hydra/sweeper=optuna", "hydra.sweeper.params=null", "hydra/sweeper/pruner=none", *TINY_SWEEP]


def sweep_args(*args: str) -> list[str]:
    """The command line of `run.py` sweeping with RUN_PY_OPTUNA and then `args`."""
    return [*RUN_PY, *RUN_PY_OPTUNA, *args]


def run_sweep(cwd: Path, *args: str, timeout: float = 240, **extra_env: str) -> subprocess.CompletedProcess:
    """`sweep_args(*args)` run from `cwd` (see run_py)."""
    return run_py([*RUN_PY_OPTUNA, *args], cwd, timeout=timeout, **extra_env)


def study_dirs(cwd: Path) -> list[Path]:
    """The study folders of the Optuna sweeps run from `cwd`, by name."""
    root = cwd / "outputs" / "optuna"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def only_study_dir(where: Path) -> Path:
    """The study folder of the one Optuna sweep run from `where`."""
    (study_dir,) = [p for p in (where / "outputs" / "optuna").iterdir() if p.is_dir()]
    return study_dir


def ablation_dir(where: Path) -> Path:
    """The one ablation sweep's folder made in `where` (its default, outputs/ablation/<name>/)."""
    (sweep,) = (where / "outputs" / "ablation").iterdir()
    return sweep


def run_folders(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep (0, 1, ...), in job order."""
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def metrics(run_dir: Path) -> dict:
    from budgetsweep.contract import load_metrics

    return load_metrics(run_dir)


def job_config(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())


def job_env(run_dir: Path) -> dict:
    """What the sweeper put in the job's Hydra config for it (hydra.job.env_set)."""
    return yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["env_set"]


def times(run_dir: Path) -> dict:
    """times.json, which the test app `xy` writes in its run folder."""
    return json.loads((run_dir / "times.json").read_text())


def load_study(study_dir: Path, storage: str | None = None):
    """The study named in study.json (the masked password comes back from the environment), from
    `storage` when given (the database behind a storage proxy that is gone)."""
    import optuna

    from budgetsweep.contract.layouts import read_study
    from budgetsweep.sweeper.optuna_storage import make_storage

    record = read_study(study_dir)
    return optuna.load_study(study_name=record.study_name, storage=make_storage(storage or record.storage))


def trained(study) -> list:
    """Trials that count in n_trials (feasible, launched), whatever their end."""
    from budgetsweep.contract.sweep import SLOT

    return [t for t in study.get_trials(deepcopy=False) if t.system_attrs.get(SLOT) is True]


def default_space(prefix: str = "") -> dict[str, str]:
    """The whole family's search space (experiment=family_search), the keys under `prefix`."""
    preset = yaml.safe_load((CONF / "experiment" / "family_search.yaml").read_text())
    params = preset["hydra"]["sweeper"]["params"]
    return {k: str(v) for k, v in params.items() if k.startswith(prefix)}


def sweeper_settings(**changes) -> dict:
    """The Optuna sweeper's settings, as Hydra passes them, with `changes`."""
    settings = dict(
        sampler={"_target_": "optuna.samplers.RandomSampler", "seed": 0},
        direction="maximize",
        storage=None,
        study_name=None,
        n_trials=4,
        n_jobs=1,
        max_failure_rate=0.25,
        custom_search_space=None,
        params=None,
        pruner=None,
        dir=None,
        max_suggestions=None,
        heartbeat={"interval": 10, "grace_period": 30},
    )
    return {**settings, **changes}
