"""Hand-made run folders, as run.py and the sweepers leave them, written through the run
contract's writers: analysis/ tested without training."""

from __future__ import annotations

from pathlib import Path

import yaml

from budgetsweep.contract import METRICS_FILE, new_metrics, write_history, write_metrics

BASE_MODEL = {"name": "resnet", "N": 3, "B": 1, "C": 16, "F": 3, "K": 1, "P": 8, "stem_kernel": 3}
BUDGET = 500_000


def make_run(
    root: Path,
    job: str,
    *,
    model=None,
    lr=1e-3,
    seed=0,
    overrides=(),
    status="completed",
    val=None,
    sweep=None,
    metrics=None,
    history=True,
    params=None,
) -> Path:
    """One run folder: .hydra/{config,overrides,hydra}.yaml, metrics.json, history.csv.

    `metrics` as a str is written verbatim (to make a corrupt file); `history=False` omits
    history.csv; `sweep` is the ablation sweeper's {factor, value, baseline, repeat}.
    """
    run = root / job
    (run / ".hydra").mkdir(parents=True)
    model = {**BASE_MODEL, **(model or {})}
    sweep = {
        "trial": None,
        "study": None,
        "factor": None,
        "value": None,
        "baseline": False,
        "repeat": 0,
        **(sweep or {}),
    }
    config = {
        "model": model,
        "optimizer": {"name": "adam", "lr": lr, "weight_decay": 0.0},
        "data": {"name": "synthetic", "train_subset": None},
        "batch_size": 64,
        "epochs": 3,
        "seed": seed,
        "budget": {"max_params": BUDGET},
        "objective": "val_acc",
        "sweep": sweep,
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    choices = {
        "model": "resnet_small",
        "optimizer": "adam",
        "data": "synthetic",
        "experiment": "quick",
        "hydra/sweeper": "ablation",
    }
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}}))
    if isinstance(metrics, str):
        (run / METRICS_FILE).write_text(metrics)
    elif metrics is not False:
        done = status == "completed"
        known = dict(
            status=status,
            objective=val,
            val_acc=val,
            test_acc=None if val is None else round(val - 0.01, 6),
            params=params,
            max_params=BUDGET,
            epochs=3 if done else 0,
            epochs_planned=3,
            train_seconds=10.0 if done else 0.0,
            seed=seed,
            overrides=list(overrides),
            error=None if done else f"{status} (test)",
        )
        write_metrics(run, new_metrics(**known | sweep | (metrics or {})))
    if history and status == "completed" and val is not None:
        write_history(
            run,
            [
                dict(
                    epoch=e,
                    train_loss=1.0,
                    train_acc=round(val * e / 3, 4),
                    val_loss=1.0,
                    val_acc=round(val * e / 3, 4),
                    lr=0.001,
                    seconds=3.3,
                )
                for e in (1, 2, 3)
            ],
        )
    return run


def ablation_job(root, job, factor=None, value=None, repeat=0, **kw):
    """A job of the ablation sweeper: coordinates in metrics.json, config `sweep.*` and overrides."""
    overrides = ["experiment=quick", f"seed={repeat}"]
    if factor:
        overrides.append(f"{factor}={value}")
    overrides += [
        f"sweep.factor={factor or 'null'}",
        f"sweep.value={value or 'null'}",
        f"sweep.baseline={'false' if factor else 'true'}",
        f"sweep.repeat={repeat}",
    ]
    sweep = {"factor": factor, "value": value, "baseline": factor is None, "repeat": repeat}
    return make_run(root, job, seed=repeat, overrides=overrides, sweep=sweep, **kw)


def grid_sweep(root: Path) -> Path:
    """`python run.py -m model.C=8,16,32 optimizer.lr=0.001,0.01 seed=0,1` style, partly."""
    vals = {
        (8, 0.001): [0.40],
        (16, 0.001): [0.50, 0.52],
        (32, 0.001): [0.60],
        (8, 0.01): [0.41],
        (16, 0.01): [0.55],
        (32, 0.01): [0.30],
    }
    job = 0
    for (c, lr), accs in vals.items():
        for seed, val in enumerate(accs):
            make_run(
                root,
                str(job),
                model={"C": c},
                lr=lr,
                seed=seed,
                val=val,
                overrides=[f"model.C={c}", f"optimizer.lr={lr}", f"seed={seed}"],
            )
            job += 1
    return root
