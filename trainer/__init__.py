"""Training one config (`train`, in `training`), evaluating and exporting its kept weights.

training     train(cfg, run_dir): the order of checks, fit, metrics.json
loop         fit(): epochs, the non-finite check, checkpoints each epoch
build        device, precision, threads, compile: the run's `Setup`
schema       the typed config (defaults written once) and its validation
evaluate     `budgetsweep evaluate`: kept weights on a data source; export
"""

from budgetsweep.data import DataError

from .schema import TrainConfig, TrainConfigError, register_configs
from .training import train

__all__ = ["DataError", "TrainConfig", "TrainConfigError", "register_configs", "train"]
