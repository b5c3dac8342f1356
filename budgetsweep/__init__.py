"""budgetsweep: architecture and hyperparameter sweeps under a parameter budget, on Hydra and Optuna.

One import namespace over the repository's folders (pyproject's `package-dir`):

    budgetsweep.contract   contract/                the run contract every side shares (torch-free)
    budgetsweep.models     models/                  model families and their exact sizes
    budgetsweep.data       data/                    datasets on the training device
    budgetsweep.trainer    trainer/                 `train(cfg, run_dir)`, evaluate, export
    budgetsweep.sweeper    sweeper/                 the Hydra sweeper plugins
    budgetsweep.analysis   analysis/                tables, plots, reports, the dashboard
    budgetsweep.conf       conf/                    run.py's configs, shipped as package data

`budgetsweep` (the console script, `budgetsweep.cli`) is the one command for what follows a sweep;
`budgetsweep.record(...)` is how any app writes its results in the run contract.
"""

from .app_record import record

__version__ = "0.1.0"
__all__ = ["record"]
