"""Is a suggestion trainable? Compose the trial's config, size it under the budget.

Every suggestion is composed here, in the sweeper's process, exactly as its job will be
(`ConfigLoader.load_sweep_config`, as Hydra's launchers do), and sized by `sweeper.sizing`
(a registry family's `models.check_budget`, a `_target_` model on the meta device, or the
user's size function; no weights allocated). Without a budget nothing is sized. The verdict
is written on the trial for the samplers: Optuna 5 constraints (`Trial.set_constraint`, a value > 0 is infeasible) named

    params   n_params / budget.max_params - 1   (> 0: over budget)
    valid    1 when the model cannot be built from this config (invalid), else 0

so that samplers that handle constraints (TPE, NSGA-II, GP) learn the boundary and
`best_trial` never picks an infeasible trial. The loop then tells an infeasible trial PRUNED
(it has no objective value; samplers without constraints skip pruned trials) without
launching it, and it does not count in n_trials. A bug in a model family (any other
exception) propagates.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from .errors import SweeperError
from .sizing import WAYS_OUT, Sizer, Unsizable


def compose(hydra_context: Any, config: DictConfig, overrides: list[str]) -> DictConfig:
    """The job's config for these overrides; raises what Hydra raises for a key or type it refuses."""
    return hydra_context.config_loader.load_sweep_config(config, list(overrides))


def size_trial(trial: Any, cfg: DictConfig, sizer: Sizer) -> Any:
    """Size the trial's config under its budget (`sweeper.sizing`); the result is recorded on the
    trial (user attributes `params`, `max_params`, `status`/`error` when infeasible; the
    constraints). Returns the `models.Sizing`, or None when there is no budget (nothing recorded).
    Raises SweeperError when the config cannot be sized at all."""
    try:
        sizing = sizer.size(cfg)
    except Unsizable as e:
        raise SweeperError(f"trial {trial.number}: cannot size the config for the budget: {e}; {WAYS_OUT}") from None
    if sizing is None:
        return None
    max_params, _ = sizer.budget(cfg)
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
