"""`budgetsweep evaluate PATH [data overrides] [--export pt2,onnx]`: the kept weights of a
run on any data source the app knows, and the model in deployable files.

PATH is a run folder (its weights.pt), a weights.pt file, or a folder of runs: an Optuna
study folder, a sweep folder or `outputs/runs`: its best run, by the rule analysis and the
sweeper's `optimization_results.yaml` apply (`budgetsweep.contract.sweep.best_run`: the best
completed `objective` in the study's direction, else in its objective name's; ties to the
lowest trial number, then the first folder). The data is the run's own (`.hydra/config.yaml`)
unless overridden: `data=cifar10`, `data=npz data.path=FILE`, `data=cifar10_sample`, or any
`data.<key>=...` on the run's data node. Images go through the training split's normalisation
stored in weights.pt, in the run's precision and memory format, so the run's own test split
gives back its recorded `test_acc` exactly.

Prints one line and records it in `eval.json` (one entry per weights file and data source, the
latest kept) next to weights.pt, or in `--out DIR`; `--export` writes `model.pt2` / `model.onnx`
in the same folder and checks each against the model on a test batch (the largest logit
difference is printed). A run folder that cannot be written (an archive, a read-only mount) is
still evaluated: without `--out` the result is printed and one line says eval.json was not
written there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn, Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from budgetsweep.contract import (
    EVAL_FILE,
    METRICS_FILE,
    RECORD_FILE,
    WEIGHTS_FILE,
    ContractError,
    first_line,
    read_metrics,
    write_atomic,
)
from budgetsweep.contract.layouts import read_study
from budgetsweep.contract.sweep import best_run, declared_direction, folder_order, sweep_direction
from budgetsweep.data import DataError, load_dataset

from .build import Setup, channels_last_is_safe, describe_device, pick_device
from .export import FORMATS, ExportError, export, run_exported
from .loop import evaluate as evaluate_split
from .schema import DataConfig, TrainConfigError, register_configs
from .weights import Deployable, Kept, WeightsError, load_weights

CONF_MODULE = "budgetsweep.conf"  # conf/, installed as package data


class EvalError(ValueError):
    """Bad input to the command (no weights, no runs, an override that is not about data)."""


# --- which run -----------------------------------------------------------------------------


def _runs_under(root: Path) -> list[tuple[Path, dict]]:
    """(folder, metrics) of every readable run under `root`, in the folder order analysis walks
    (`folder_order`: trial 8 before trial 12), which `best_run` breaks its last ties by."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted((d for d in dirnames if d not in {"analysis", ".hydra", "__pycache__"}), key=folder_order)
        if (METRICS_FILE in filenames or RECORD_FILE in filenames) and (metrics := read_metrics(dirpath)):
            found.append((Path(dirpath), metrics))
    return found


def _direction(path: Path, runs: list[tuple[Path, dict]]) -> str:
    """The folder's study direction (study.json), else the one its runs' records declare, else
    their objective name's."""
    try:
        recorded = getattr(read_study(path), "direction", None)
    except ContractError:  # an unreadable study.json: rank by the runs' objective name
        recorded = None
    if not isinstance(recorded, str):
        recorded = declared_direction(metrics for _, metrics in runs) or recorded
    names = (OmegaConf.select(_run_config(d) or OmegaConf.create(), "objective", default=None) for d, _ in runs)
    return sweep_direction(recorded, next((str(n) for n in names if n), None))


def find_run(path: str | Path) -> Path:
    """The run folder PATH stands for (see the module docstring); EvalError says why none."""
    path = Path(path)
    if not path.exists():
        raise EvalError(f"{path}: no such file or folder")
    if path.is_file():
        if path.name != WEIGHTS_FILE:
            raise EvalError(f"{path}: not a {WEIGHTS_FILE} (pass a run folder, a study or sweep folder)")
        return path.parent
    if (path / WEIGHTS_FILE).is_file():
        return path
    if (path / METRICS_FILE).is_file() or (path / RECORD_FILE).is_file():
        _no_weights(path, read_metrics(path))
    runs = _runs_under(path)
    apps_own = any(isinstance(metrics.get("weights"), str) for _, metrics in runs)
    if not apps_own and not any(WEIGHTS_FILE in files for _, _, files in os.walk(path)):
        # Asked before ranking: a sweep of an app that keeps no weights (any Hydra app can use
        # our sweepers) has nothing to evaluate, whatever its runs recorded.
        raise EvalError(
            f"no weights kept in {path}: none of its runs has a {WEIGHTS_FILE} (the app keeps none, or its runs "
            f"were trained with save_weights=none): nothing to evaluate"
        )
    # The rule analysis and the sweeper's summary apply too: the study's direction, ties to the
    # lowest trial number, then to the first folder.
    chosen = best_run([metrics for _, metrics in runs], _direction(path, runs))
    if chosen is None:
        raise EvalError(f"{path}: no completed run under it ({METRICS_FILE} with status completed)")
    best_dir = next(d for d, metrics in runs if metrics is chosen)
    if not (best_dir / WEIGHTS_FILE).is_file():
        _no_weights(best_dir, chosen, "the best run")
    return best_dir


def _no_weights(run_dir: Path, record: dict | None, what: str = "") -> NoReturn:
    """Why a run folder has nothing to evaluate, in one line: an app's own weights (named in its
    `budgetsweep.record`) are not ours to load; run.py's run kept none."""
    kept = (record or {}).get("weights")
    if isinstance(kept, str) and kept:
        raise EvalError(
            f"{run_dir}: {what or 'the run'} keeps its weights in {run_dir / kept}, in its app's own format: "
            f"budgetsweep evaluate loads the {WEIGHTS_FILE} of run.py's runs only; evaluate them with the app"
        )
    if (record or {}).get("source") is not None:
        raise EvalError(f"{run_dir}: {what or 'the run'} kept no weights (its app keeps none): nothing to evaluate")
    raise EvalError(f"{run_dir}: no {WEIGHTS_FILE} (the run was trained with save_weights=none, or did not train)")


# --- which data ----------------------------------------------------------------------------


def _run_config(run_dir: Path) -> DictConfig | None:
    path = run_dir / ".hydra" / "config.yaml"
    return OmegaConf.load(path) if path.is_file() else None


def data_config(run_cfg: DictConfig | None, overrides: Sequence[str]) -> DictConfig:
    """The data node to evaluate on: composed from the app's `conf/` when a `data=` option is
    given, else the run's own data node with the `data.<key>=` overrides applied."""
    for o in overrides:
        if o.split("=", 1)[0].lstrip("+~").split(".")[0] != "data" or "=" not in o:
            raise EvalError(f"{o}: only data overrides are accepted (data=NAME, data.KEY=VALUE)")
    if any(o.split("=", 1)[0] == "data" for o in overrides):
        from hydra import compose, initialize_config_module

        register_configs()
        try:
            with initialize_config_module(config_module=CONF_MODULE):  # Hydra 1.4: version_base is deprecated
                return compose(config_name="config", overrides=list(overrides)).data
        except Exception as e:  # Hydra's own errors: an unknown option, a bad value
            raise EvalError(first_line(e)) from None
    if run_cfg is None:
        raise EvalError("the run folder has no .hydra/config.yaml: name the data (data=cifar10, data=npz ...)")
    node = OmegaConf.merge(OmegaConf.structured(DataConfig), run_cfg.data)
    try:
        return OmegaConf.merge(node, OmegaConf.from_dotlist([o.removeprefix("data.") for o in overrides]))
    except Exception as e:  # an unknown key, a wrong type
        raise EvalError(first_line(e)) from None


# --- evaluate ------------------------------------------------------------------------------


def _setup(kept: Kept, run_cfg: DictConfig | None, device: torch.device) -> Setup:
    """The model as the run's test pass ran it: its memory format and precision."""
    get = (lambda key, default: OmegaConf.select(run_cfg, key, default=default)) if run_cfg else (lambda k, d: d)
    channels_last = str(get("channels_last", "auto")) != "off" and channels_last_is_safe(kept.model, device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    amp = str(get("amp", "auto"))
    bf16 = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    model = kept.model.to(device=device, memory_format=memory_format)
    return Setup(device, model, model, memory_format, bf16)


def evaluate_run(run_dir: Path, overrides: Sequence[str] = (), device: str = "auto") -> dict:
    """Evaluate the run's kept weights on the test split of the data: the eval.json entry
    (`record_evaluation` writes it), plus the test images (`test_images`) for export's check."""
    kept = load_weights(run_dir)
    run_cfg = _run_config(run_dir)
    data_cfg = data_config(run_cfg, overrides)
    dev = pick_device(device)
    ds = load_dataset(data_cfg, dev)
    spec = kept.model_config
    shape = (spec.get("in_channels", 3), spec.get("image_size", 32), spec.get("image_size", 32))
    if ds.image_shape != shape:
        have = "x".join(map(str, ds.image_shape))
        raise EvalError(f"the model takes {'x'.join(map(str, shape))} images; the data has {have} images")
    _check_classes(int(spec.get("num_classes", ds.num_classes)), ds.num_classes, data_cfg)
    ds = dataclasses.replace(ds, mean=kept.mean.to(dev), std=kept.std.to(dev))  # the training normalisation
    batch_size = int(OmegaConf.select(run_cfg, "eval_batch_size", default=1000)) if run_cfg else 1000
    loss, acc = evaluate_split(_setup(kept, run_cfg, dev), ds, ds.x_test, ds.y_test, batch_size)
    record = dict(
        data=OmegaConf.to_container(data_cfg, resolve=True),
        images=len(ds.y_test),
        test_acc=acc,
        test_loss=loss,
        weights=str((run_dir / WEIGHTS_FILE).resolve()),
        epoch=kept.epoch,
        kept=kept.kept,
        device=describe_device(dev),
        evaluated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return dict(record, test_images=ds.x_test)


def _check_classes(model_classes: int, data_classes: int, data_cfg: DictConfig) -> None:
    """A test of the model needs the labels it was trained to give: a label it has no output for
    cannot be scored, and data of fewer classes numbers its labels for another task (a model's
    extra outputs would count as mistakes that the data cannot tell apart from real ones)."""
    if data_classes == model_classes:
        return
    where = "data.num_classes" if data_cfg.get("name") == "synthetic" else "its labels"
    if data_classes > model_classes:
        why = f"labels {model_classes}..{data_classes - 1} have no output to be scored against"
    else:
        why = f"the model would be scored on a {data_classes}-class task it was not trained for"
    raise EvalError(
        f"the model has {model_classes} output classes, the data {data_classes} ({where}): {why}; "
        f"evaluate on data of the model's {model_classes} classes"
    )


def record_evaluation(folder: Path, record: dict) -> Path:
    """Add `record` to folder/eval.json: {"evaluations": [...]}, one entry per weights file and
    data node (a new one replaces its own). OSError when the folder cannot be written."""
    path = folder / EVAL_FILE
    try:
        old = json.loads(path.read_text()).get("evaluations", []) if path.is_file() else []
    except (ValueError, OSError, AttributeError):
        old = []
    same = lambda e: e.get("data") == record["data"] and e.get("weights", record["weights"]) == record["weights"]  # noqa: E731
    kept = [e for e in old if isinstance(e, dict) and not same(e)]
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps({"evaluations": [*kept, record]}, indent=2) + "\n").encode())
    return path


def _unwritable(folder: Path, e: OSError) -> str:
    return f"{folder}: cannot write there ({e.strerror or type(e).__name__})"


def export_run(run_dir: Path, formats: Sequence[str], images: torch.Tensor, out: Path | None = None) -> list[str]:
    """Export the kept model in each format; one line per file, with its check on `images`."""
    kept = load_weights(run_dir)
    out = Path(out or run_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"--export: {_unwritable(out, e)}") from None
    batch = images[:16].cpu()
    with torch.no_grad():
        expected = Deployable(kept).eval()(batch)
    lines = []
    for fmt in formats:
        path = export(kept, fmt, out / FORMATS.get(fmt, fmt), batch)
        diff = (run_exported(path, batch) - expected).abs().max().item()
        lines.append(f"exported {fmt}: {path} (largest logit difference on {len(batch)} test images: {diff:.2e})")
    return lines


def main(argv: Sequence[str] | None = None, prog: str = "budgetsweep evaluate") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate a run's kept weights (weights.pt) on a data source; export the model.",
    )
    parser.add_argument("path", help="a run folder, a weights.pt, or a study/sweep folder (its best run)")
    parser.add_argument("overrides", nargs="*", help="data overrides: data=cifar10, data=npz data.path=FILE, ...")
    parser.add_argument("--export", default="", help=f"comma-separated formats: {','.join(FORMATS)}")
    parser.add_argument(
        "--out", type=Path, help="folder for eval.json and the exported files (default: the run folder)"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    args = parser.parse_args(argv)
    try:
        formats = [f for f in args.export.split(",") if f]
        for fmt in formats:
            if fmt not in FORMATS:
                raise ExportError(f"--export: unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
        run_dir = find_run(args.path).resolve()
        result = evaluate_run(run_dir, args.overrides, args.device)
        record = {k: v for k, v in result.items() if k != "test_images"}
        folder = args.out or run_dir
        try:
            written, unwritten = record_evaluation(folder, record), None
        except OSError as e:
            if args.out:  # a folder the user named must take it
                raise EvalError(f"--out: {_unwritable(folder, e)}") from None
            written, unwritten = None, _unwritable(folder, e)  # a read-only run: the result is still printed
        data = result["data"]
        source = data.get("path") or data.get("name")
        print(
            f"{run_dir}: epoch {result['epoch']} weights ({result['kept']}) on {source} test split "
            f"({result['images']} images): test_acc {result['test_acc']:.4f} test_loss {result['test_loss']:.4f}"
            + (f" -> {written}" if written else "")
        )
        if unwritten and formats:  # the files asked for cannot be written either: one error says both
            raise ExportError(f"--export: {unwritten}; --out DIR writes them and {EVAL_FILE} elsewhere")
        if unwritten:
            print(f"evaluate: {EVAL_FILE} not written: {unwritten}; --out DIR writes it elsewhere", file=sys.stderr)
        for line in export_run(run_dir, formats, result["test_images"], args.out) if formats else []:
            print(line)
    except (EvalError, WeightsError, DataError, ExportError, TrainConfigError) as e:
        print(f"evaluate: error: {first_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
