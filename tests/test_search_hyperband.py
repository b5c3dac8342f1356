"""Multi-fidelity pruning: HyperbandPruner across processes.

Each job rebuilds the configured pruner (Optuna keeps no pruner in the storage) and the pruner
keeps its state in the storage: SuccessiveHalving's rungs are trial system attributes, and
Hyperband's bracket for a trial is crc32("<study name>_<trial number>") modulo the brackets'
total budget (optuna/pruners/_hyperband.py, `_get_bracket_id`), the same in every process once
min_resource and max_resource are given (not "auto", which each job would estimate from the
trials completed when it starts). Three brackets here (max_resource 9, reduction factor 3):
bracket 0 may stop a trial from step 1, bracket 1 from step 3, bracket 2 only at step 9."""

from __future__ import annotations

import binascii
import math

from helpers import OPTUNA, load_study, only_study_dir, run_foreign_app

# the registered node (no YAML file in the app), its options given: min_resource 1 and reduction_factor 3
# are Optuna's defaults
HYPERBAND = ("hydra/sweeper/pruner=hyperband", "hydra.sweeper.pruner.max_resource=9")


def bracket(study_name: str, number: int, n_brackets: int = 3, eta: int = 3) -> int:
    """Hyperband's bracket of a trial, as optuna/pruners/_hyperband.py computes it."""
    budgets = [math.ceil(n_brackets * eta ** (n_brackets - 1 - b) / (n_brackets - b)) for b in range(n_brackets)]
    n = binascii.crc32(f"{study_name}_{number}".encode()) % sum(budgets)
    for b, budget in enumerate(budgets):
        n -= budget
        if n < 0:
            return b
    raise AssertionError


def test_a_hyperband_pruned_sweep_uses_several_brackets_in_worker_processes(tmp_path):
    r = run_foreign_app(
        tmp_path,
        "xy",
        OPTUNA,
        "x=interval(-2,2)",
        "y=interval(-2,2)",
        "steps=9",
        *HYPERBAND,
        "hydra.sweeper.n_trials=14",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=0",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    study = load_study(only_study_dir(tmp_path))
    trials = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(trials) == 14
    brackets = {t.number: bracket(study.study_name, t.number) for t in trials}
    assert len(set(brackets.values())) > 1
    pruned = {t.number: t.last_step for t in trials if t.state.name == "PRUNED"}
    assert pruned, "Hyperband stopped no trial"
    first_rung = {0: 1, 1: 3, 2: 9}  # the first step at which each bracket may stop a trial
    for number, step in pruned.items():
        assert step >= first_rung[brackets[number]], (number, brackets[number], step)
        assert step in (1, 3), (number, step)  # stopped at a rung, never past the last one
