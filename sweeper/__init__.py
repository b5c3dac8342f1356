"""Our Hydra sweepers: budget-aware Optuna search and one-at-a-time ablation.

Modules here import lightly: Hydra loads the plugin entry points at every start."""
