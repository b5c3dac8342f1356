"""Is a suggestion trainable? Compose the trial's config, size it with the one budget check.

Every suggestion is composed here, in the sweeper's process, exactly as its job will be
(`ConfigLoader.load_sweep_config`, as Hydra's launchers do), and sized by
`models.check_budget` (no weights allocated). The verdict is written on the trial for the
samplers: Optuna 5 constraints (`Trial.set_constraint`, a value > 0 is infeasible) named

    params   n_params / budget.max_params - 1   (> 0: over budget)
    valid    1 when the model cannot be built from this config (the family's ConfigError), else 0

so that samplers that handle constraints (TPE, NSGA-II, GP) learn the boundary and
`best_trial` never picks an infeasible trial. The loop then tells an infeasible trial PRUNED
(it has no objective value; samplers without constraints skip pruned trials) without
launching it, and it does not count in n_trials. A bug in a model family (any other
exception) propagates.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import SweeperError


def compose(hydra_context: Any, config: DictConfig, overrides: list[str]) -> DictConfig:
    """The job's config for these overrides; raises what Hydra raises for a key or type it refuses."""
    return hydra_context.config_loader.load_sweep_config(config, list(overrides))


def size_trial(trial: Any, cfg: DictConfig) -> Any:
    """`models.check_budget` on the trial's model under its budget; the result is recorded on the
    trial (user attributes `params`, `max_params`, `status`/`error` when infeasible; the
    constraints). Returns the `models.Sizing`."""
    import models  # torch: loaded once a sweep sizes its first suggestion, not at Hydra's start

    model = OmegaConf.select(cfg, "model", default=None)
    max_params = OmegaConf.select(cfg, "budget.max_params", default=None)
    if model is None:
        raise SweeperError(
            "the Optuna sweeper sizes each suggestion's `model` node (models.check_budget): this config has none"
        )
    if isinstance(max_params, bool) or not (max_params is None or isinstance(max_params, int)):
        raise SweeperError(f"budget.max_params: expected an int or null, got {max_params!r}")
    sizing = models.check_budget(model, max_params)
    if sizing.params is not None:
        trial.set_user_attr("params", sizing.params)
        trial.set_user_attr("max_params", max_params)
    over = sizing.params / max_params - 1.0 if sizing.params is not None and max_params else 0.0
    trial.set_constraint("params", over)
    trial.set_constraint("valid", 1.0 if sizing.status == "invalid" else 0.0)
    if not sizing.fits:
        trial.set_user_attr("status", sizing.status)
        trial.set_user_attr("error", sizing.error)
    return sizing
