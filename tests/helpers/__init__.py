"""What the tests share besides fixtures (those are in conftest.py): where things are, cut-down
run settings, running our programs as a user would, and reading back what they leave.

paths       ROOT, CONF and the foreign apps (APPS)
tiny        named override sets (TINY_RUN, TINY_SWEEP, ...) and compose_cfg
processes   run_py, run_foreign_app, start_sweep / kill_when, run_cases_together
sweeps      an Optuna sweep of run.py cut down to seconds; its folders, jobs and study
fake_runs   hand-made run folders for analysis/
postgres    a throwaway PostgreSQL server

pytest puts tests/ on sys.path (it has no __init__.py), so every test module and conftest.py
imports this package as `helpers`. Importing it loads neither torch nor Optuna.
"""

from .fake_runs import BASE_MODEL, BUDGET, ablation_job, grid_sweep, make_run
from .paths import APPS, CONF, ROOT
from .postgres import free_port, pg_bin, postgres_server
from .processes import (
    ABLATION,
    OPTUNA,
    RUN_PY,
    env,
    install_app,
    kill_when,
    run_apps_together,
    run_cases_together,
    run_foreign_app,
    run_py,
    start_sweep,
)
from .sweeps import (
    RUN_PY_OPTUNA,
    ablation_dir,
    default_space,
    job_config,
    job_env,
    load_study,
    metrics,
    only_study_dir,
    run_folders,
    run_sweep,
    study_dirs,
    sweep_args,
    sweeper_settings,
    times,
    trained,
)
from .tiny import TINY_ABLATION, TINY_DOCUMENTED, TINY_RUN, TINY_SWEEP, TINY_TO_INTERRUPT, compose_cfg

__all__ = [
    "ABLATION",
    "APPS",
    "BASE_MODEL",
    "BUDGET",
    "CONF",
    "OPTUNA",
    "ROOT",
    "RUN_PY",
    "RUN_PY_OPTUNA",
    "TINY_ABLATION",
    "TINY_DOCUMENTED",
    "TINY_RUN",
    "TINY_SWEEP",
    "TINY_TO_INTERRUPT",
    "ablation_dir",
    "ablation_job",
    "compose_cfg",
    "default_space",
    "env",
    "grid_sweep",
    "install_app",
    "job_config",
    "job_env",
    "kill_when",
    "load_study",
    "make_run",
    "metrics",
    "only_study_dir",
    "free_port",
    "pg_bin",
    "postgres_server",
    "run_apps_together",
    "run_cases_together",
    "run_folders",
    "run_foreign_app",
    "run_py",
    "run_sweep",
    "start_sweep",
    "study_dirs",
    "sweep_args",
    "sweeper_settings",
    "times",
    "trained",
]
