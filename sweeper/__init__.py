"""Our Hydra sweepers, for any Hydra app: budget-aware Optuna search (`hydra/sweeper=budget_optuna`)
and one-at-a-time ablation (`hydra/sweeper=ablation`); `budgetsweep.sweeper.trial_reporter.trial_reporter` is the
job's pruning hook.

Modules here import lightly: Hydra loads the plugin entry points at every start."""
