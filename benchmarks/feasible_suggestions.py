"""How soon does a sampler find models that fit a tight budget?

    python benchmarks/feasible_suggestions.py [--suggestions 60] [--max-params 60000]

The whole family's search space (experiment=family_search), each suggestion sized with
`models.check_budget` and told to Optuna as the sweeper tells it (nothing is trained; a
feasible one gets a made-up value), for three sampler seeds: TPE (the options of
sampler/tpe_explicit.yaml) and random search, with the constraint values of before the fix
(`params` = params/max - 1, `valid` = 1) and of now (`budgetsweep.sweeper.feasibility.violations`).
Prints feasible suggestions per seed and the invalid ones among all suggestions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetsweep import models  # noqa: E402
from budgetsweep.sweeper.feasibility import violations  # noqa: E402
from budgetsweep.sweeper.space import params_to_overrides, parse_space  # noqa: E402

BASE = {"name": "resnet", "N": 3, "B": 2, "C": 32, "F": 3, "K": 1, "P": 8, "stem_kernel": 3}


def before_fix(sizing, max_params: int) -> dict[str, float]:
    over = sizing.params / max_params - 1 if sizing.params is not None else 0.0
    return {"params": over, "valid": 1.0 if sizing.status == "invalid" else 0.0}


def run(sampler, told, space, max_params: int, n: int) -> tuple[int, int]:
    """`n` suggestions of `space`, each sized and told with the constraint values `told` gives
    (nothing is trained: a feasible one gets a made-up value). (feasible, invalid) counts;
    tests/test_search_feasible.py runs it with the sweeper's own `violations`."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    feasible = invalid = 0
    for _ in range(n):
        trial = study.ask(fixed_distributions=space.distributions)
        model = {**BASE, **{k.split(".", 1)[1]: v for k, v in trial.params.items() if k.startswith("model.")}}
        sizing = models.check_budget(model, max_params)
        for key, value in told(sizing, max_params).items():
            trial.set_constraint(key, value)
        if sizing.fits:
            feasible += 1
            study.tell(trial, 0.5 + sizing.params / 1e7)
        else:
            invalid += sizing.status == "invalid"
            study.tell(trial, None, state=TrialState.PRUNED)
    return feasible, invalid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suggestions", type=int, default=60)
    p.add_argument("--max-params", type=int, default=60_000)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "conf/experiment/family_search.yaml").read_text())["hydra"]["sweeper"]["params"]
    space = parse_space(params_to_overrides({k: str(v) for k, v in params.items()}))
    samplers = {
        "TPE": lambda seed: optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=10, n_ei_candidates=24, multivariate=True, constant_liar=True
        ),
        "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    }
    print(f"| sampler | constraints | feasible of {args.suggestions} (seeds 0, 1, 2) | invalid among them |")
    print("|---|---|---|---|")
    for name, make in samplers.items():
        told_ways = (("before (params/max - 1, valid 1)", before_fix), ("now (log2 ratio, invalid 100)", violations))
        for label, told in told_ways:
            results = [run(make(seed), told, space, args.max_params, args.suggestions) for seed in (0, 1, 2)]
            feasible = ", ".join(str(f) for f, _ in results)
            invalid = ", ".join(str(i) for _, i in results)
            print(f"| {name} | {label} | {feasible} | {invalid} |")


if __name__ == "__main__":
    main()
