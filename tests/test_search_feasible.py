"""The sampler is steered toward the feasible region.

The whole family's space (experiment=family_search), budget.max_params=60000: under 1/80 of the space
fits. Each suggestion is sized and told to Optuna with the sweeper's own constraint values
(`budgetsweep.sweeper.feasibility.violations`), as the sweeper does, and nothing is trained: TPE must reach
at least 3 feasible models within 60 suggestions for each of three sampler seeds, where random
search, on the same seeds, finds (almost) none. Before the fix an invalid config (N=4, P=8)
was told a violation of 1 against up to ~1,300 for an over-budget one, and TPE searched the
invalid corner: 0 feasible every time (benchmarks/RESULTS.md, "feasible suggestions").
"""

from __future__ import annotations

import optuna
import pytest

from benchmarks.feasible_suggestions import BASE
from benchmarks.feasible_suggestions import run as told_suggestions
from budgetsweep import models
from budgetsweep.sweeper.feasibility import INVALID, violations
from budgetsweep.sweeper.space import params_to_overrides, parse_space

from helpers import OPTUNA, default_space, only_study_dir, run_foreign_app

MAX_PARAMS = 60_000


def feasible_found(sampler, n: int = 60) -> int:
    """Suggestions from the default space, sized and told as the sweeper tells them."""
    space = parse_space(params_to_overrides(default_space()))
    feasible, _ = told_suggestions(sampler, violations, space, MAX_PARAMS, n)
    return feasible


def tpe(seed: int) -> optuna.samplers.TPESampler:
    # the options of conf/hydra/sweeper/sampler/tpe_explicit.yaml, seeded
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=10, n_ei_candidates=24, multivariate=True, constant_liar=True
    )


def test_tpe_reaches_the_feasible_region_where_random_search_does_not():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    by_tpe = [feasible_found(tpe(seed)) for seed in (0, 1, 2)]
    by_random = [feasible_found(optuna.samplers.RandomSampler(seed=seed)) for seed in (0, 1, 2)]
    assert all(n >= 3 for n in by_tpe), (by_tpe, by_random)
    assert sum(by_tpe) > 3 * sum(by_random), (by_tpe, by_random)


def test_an_invalid_config_is_farther_from_feasible_than_any_over_budget_one():
    invalid = models.check_budget({**BASE, "N": 4, "P": 8}, MAX_PARAMS)
    huge = models.check_budget({**BASE, "N": 4, "B": 3, "C": 128, "P": 1, "F": 5, "K": 3}, MAX_PARAMS)
    near = models.check_budget({**BASE, "C": 24}, MAX_PARAMS)
    fits = models.check_budget({**BASE, "N": 2, "B": 1, "C": 16}, MAX_PARAMS)
    assert invalid.status == "invalid" and huge.status == near.status == "over_budget" and fits.fits

    def total(sizing):
        return sum(v for v in violations(sizing, MAX_PARAMS).values() if v > 0)

    assert total(fits) == 0 < total(near) < total(huge) < total(invalid) == INVALID
    assert huge.params > 1000 * MAX_PARAMS  # the old linear violation (~1,300) outranked an invalid one (1)


def test_flops_budget_adds_its_own_violation():
    sizing = models.check_budget({**BASE, "C": 16}, max_flops=1_000_000)
    assert sizing.status == "over_budget" and sizing.flops > 1_000_000
    values = violations(sizing, None, 1_000_000)
    assert set(values) == {"flops", "valid"} and values["flops"] > 0 and values["valid"] == 0


@pytest.mark.slow
def test_the_sweeper_trains_feasible_models_under_a_tight_budget(tmp_path):
    """The real loop (an app that trains nothing): 3 trained trials within 60 suggestions."""
    space = [f"{k}={v}" for k, v in default_space("model.").items()]
    r = run_foreign_app(
        tmp_path,
        "sized",
        OPTUNA,
        *space,
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.max_suggestions=60",
        "hydra.sweeper.direction=maximize",
        "hydra/sweeper/sampler=tpe",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.sampler.multivariate=true",
        "hydra.sweeper.sampler.constant_liar=true",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    study_dir = only_study_dir(tmp_path)
    trained = sorted(p for p in study_dir.iterdir() if (p / "done.json").is_file())
    assert len(trained) == 3
    import yaml

    results = yaml.safe_load((study_dir / "optimization_results.yaml").read_text())
    assert results["n_trained"] == 3 and results["statuses"] == {"completed": 3}
    assert results["n_infeasible"] + 3 <= 60
