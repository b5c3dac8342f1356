"""`python -m budgetsweep.trainer.evaluate`: the kept weights on the run's own data (its recorded test_acc,
exactly), on other data sources, from a study folder (its best trial); export to pt2 and ONNX
with the same logits; the "Using the results" page's commands run with tiny overrides."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from budgetsweep.contract import EVAL_FILE, WEIGHTS_FILE, load_metrics

from helpers import OPTUNA, ROOT, TINY_RUN, TINY_SWEEP, run_folders, run_foreign_app, run_py, run_sweep, study_dirs

ENV = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}


def evaluate(
    *args: str, cwd: Path, read_only: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`budgetsweep evaluate ARGS` (as its module); with `read_only`, that folder cannot be written."""
    command = [sys.executable, "-m", "budgetsweep.trainer.evaluate", *args]
    if read_only is not None:
        command = as_read_only(read_only, command)
    return subprocess.run(
        command,
        cwd=cwd,
        env={**(ENV if env is None else env), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def as_read_only(folder: Path, command: list[str]) -> list[str]:
    """`command`, run so that `folder` (a read_only_copy) cannot be written. For a user its file
    modes do that; root writes through file modes, so for root: a read-only bind mount of the
    folder in a mount namespace of the command's own, as an archive or a shared mount is."""
    if os.geteuid() != 0:
        return command
    bind = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", bind, str(folder), *command]


def read_only_copy(run_dir: Path, where: Path) -> Path:
    """A copy of the run folder, `chmod -R a-w`; checked that as_read_only cannot write in it."""
    copy = shutil.copytree(run_dir, where / "archived", ignore=shutil.ignore_patterns(EVAL_FILE))
    for path in [*copy.rglob("*"), copy]:
        path.chmod(path.stat().st_mode & ~0o222)
    probe = as_read_only(copy, [sys.executable, "-c", f"open({str(copy / 'probe')!r}, 'w')"])
    assert subprocess.run(probe, capture_output=True).returncode != 0, "the copy is writable: the test proves nothing"
    return copy


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny run trained by the app, as a user would."""
    cwd = tmp_path_factory.mktemp("app")
    r = run_py([*TINY_RUN, "epochs=2", "hydra.run.dir=outputs/runs/tiny"], cwd)
    assert r.returncode == 0, r.stderr[-2000:]
    return cwd / "outputs" / "runs" / "tiny"


def test_evaluation_reproduces_the_recorded_test_accuracy_exactly(run_dir):
    r = evaluate(str(run_dir), cwd=run_dir)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(r.stdout.strip().splitlines()) == 1 and "test_acc" in r.stdout
    metrics = load_metrics(run_dir)
    (entry,) = json.loads((run_dir / EVAL_FILE).read_text())["evaluations"]
    assert entry["test_acc"] == metrics["test_acc"] and entry["test_loss"] == metrics["test_loss"]
    assert entry["epoch"] == metrics["test_epoch"] and entry["images"] == 64
    assert entry["weights"] == str((run_dir / WEIGHTS_FILE).resolve())


def test_other_data_sources_are_evaluated_and_recorded_side_by_side(run_dir, tmp_path):
    rng = np.random.default_rng(0)
    npz = tmp_path / "mine.npz"
    images = lambda n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)  # noqa: E731
    np.savez(npz, x_train=images(40), y_train=np.arange(40) % 10, x_test=images(30), y_test=np.arange(30) % 10)
    r1 = evaluate(str(run_dir), "data=npz", f"data.path={npz}", "data.val_size=10", cwd=tmp_path)
    r2 = evaluate(str(run_dir), "data=cifar10_sample", "data.test_subset=100", cwd=tmp_path)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr[-2000:] + r2.stderr[-2000:]
    assert str(npz) in r1.stdout and "cifar10_sample" in r2.stdout
    entries = json.loads((run_dir / EVAL_FILE).read_text())["evaluations"]
    by_source = {e["data"]["name"]: e for e in entries}
    assert by_source["npz"]["images"] == 30 and by_source["cifar10_sample"]["images"] == 100
    assert 0 <= by_source["npz"]["test_acc"] <= 1
    # evaluating the same source again replaces its entry
    evaluate(str(run_dir), "data=cifar10_sample", "data.test_subset=100", cwd=tmp_path)
    assert len(json.loads((run_dir / EVAL_FILE).read_text())["evaluations"]) == len(entries)


def test_export_gives_the_same_logits_as_the_trained_model(run_dir, tmp_path):
    from budgetsweep.data import augment
    from budgetsweep.trainer.export import run_exported
    from budgetsweep.trainer.weights import load_weights

    r = evaluate(str(run_dir), "--export", "pt2,onnx", "--out", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "model.pt2").is_file() and (tmp_path / "model.onnx").is_file()
    kept = load_weights(run_dir)
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)  # a batch size not seen at export
    with torch.no_grad():  # what the training loop computes: normalise with the training stats, then the model
        original = kept.model(augment.normalize(images, kept.mean, kept.std))
    for name in ("model.pt2", "model.onnx"):
        assert torch.allclose(run_exported(tmp_path / name, images), original, atol=1e-4), name


def test_a_study_folder_gives_its_best_trial(tmp_path):
    r = run_sweep(tmp_path, "model.C=choice(8,12)", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.seed=0")
    assert r.returncode == 0, r.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    results = yaml.safe_load((study_dir / "optimization_results.yaml").read_text())
    best = Path(results["best_run_dir"])
    assert best.is_absolute() and best == (study_dir / str(results["best_trial"])).resolve()
    assert results["best_weights"] == str(best / WEIGHTS_FILE) and Path(results["best_weights"]).is_file()
    r = evaluate(str(study_dir), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(f"{best}:") and (best / EVAL_FILE).is_file()
    others = [p for p in run_folders(study_dir) if p.resolve() != best]
    assert others and not any((p / EVAL_FILE).exists() for p in others)


@pytest.mark.parametrize(
    "args,says",
    [
        (["nowhere"], "nowhere: no such file or folder"),
        (["RUN", "epochs=3"], "only data overrides"),
        (["RUN", "data=nope"], "nope"),
        (["RUN", "--export", "tflite"], "unknown format 'tflite'"),
    ],
)
def test_bad_input_is_one_line(run_dir, tmp_path, args, says):
    r = evaluate(*[str(run_dir) if a == "RUN" else a for a in args], cwd=tmp_path)
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_run_without_weights_is_one_line(tmp_path):
    r = run_py([*TINY_RUN, "save_weights=none", "hydra.run.dir=outputs/runs/none"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    r = evaluate("outputs/runs/none", cwd=tmp_path)
    assert r.returncode == 2 and "save_weights=none" in r.stderr and "Traceback" not in r.stderr


def test_a_read_only_run_is_evaluated_and_eval_json_goes_where_out_says(run_dir, tmp_path):
    archived = read_only_copy(run_dir, tmp_path)
    try:
        r = evaluate(str(archived), cwd=tmp_path, read_only=archived)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert "test_acc" in r.stdout and "->" not in r.stdout  # printed, recorded nowhere
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"evaluate: {EVAL_FILE} not written: {archived}") and "--out" in line
        r = evaluate(str(archived), "--out", str(tmp_path / "out"), cwd=tmp_path, read_only=archived)
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr[-2000:]
        (entry,) = json.loads((tmp_path / "out" / EVAL_FILE).read_text())["evaluations"]
        assert entry["weights"] == str(archived / WEIGHTS_FILE) and r.stdout.rstrip().endswith(
            str(tmp_path / "out" / EVAL_FILE)
        )
        r = evaluate(str(archived), "--export", "pt2", cwd=tmp_path, read_only=archived)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"evaluate: error: --export: {archived}: cannot write there") and "--out DIR" in line
        assert not (archived / EVAL_FILE).exists() and not (archived / "model.pt2").exists()
    finally:
        for path in [archived, *archived.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)  # so that pytest can remove it


def test_weights_that_do_not_fit_their_own_model_config_are_one_line(run_dir, tmp_path):
    state = torch.load(run_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    state["model_config"] = {**state["model_config"], "C": 2 * state["model_config"]["C"]}
    (tmp_path / "run").mkdir()
    torch.save(state, tmp_path / "run" / WEIGHTS_FILE)
    r = evaluate(str(tmp_path / "run"), cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    (line,) = r.stderr.strip().splitlines()
    assert f"{tmp_path / 'run' / WEIGHTS_FILE}: the weights do not fit the file's own model config: " in line
    assert re.search(r"stem\.0\.weight is \d+x3x3x3, the config's model has \d+x3x3x3 \(and \d+ more", line), line


@pytest.mark.parametrize(
    "classes,says",
    [
        (5, "the model has 10 output classes, the data 5 (data.num_classes): the model would be scored on a 5-class"),
        (20, "the model has 10 output classes, the data 20 (data.num_classes): labels 10..19 have no output"),
    ],
)
def test_data_of_another_number_of_classes_is_refused(run_dir, tmp_path, classes, says):
    r = evaluate(str(run_dir), f"data.num_classes={classes}", cwd=tmp_path)
    (line,) = r.stderr.strip().splitlines()
    assert r.returncode == 2 and line.startswith(f"evaluate: error: {says}"), r.stderr


def test_an_error_comes_without_warnings_of_ours(run_dir, tmp_path):
    env = {k: v for k, v in ENV.items() if k != "PYTHONWARNINGS"}  # warnings shown as a user sees them
    r = evaluate(str(run_dir), "data=npz", f"data.path={tmp_path / 'missing.npz'}", cwd=tmp_path, env=env)
    assert r.returncode == 2
    missing = tmp_path / "missing.npz"
    assert r.stderr.strip().splitlines() == [
        f"evaluate: error: data.path: no such file '{missing}' (an .npz with x_train y_train x_test y_test)"
    ]


def test_a_sweep_whose_app_keeps_no_weights_is_one_line(tmp_path):
    r = run_foreign_app(
        tmp_path,
        "xy",
        OPTUNA,
        "x=interval(-2,2)",
        "y=interval(-2,2)",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweep.dir=sweep",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    r = evaluate("sweep", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        f"evaluate: error: no weights kept in sweep: none of its runs has a {WEIGHTS_FILE} (the app keeps none, or its "
        f"runs were trained with save_weights=none): nothing to evaluate"
    ]


# ----------------------------------------------------------------------------------- README


def readme_commands() -> list[str]:
    """The first bash block of the "Using the results" page (docs/results.md), one command a line."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "docs" / "results.md").read_text(), re.S).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    return [line.split(" #", 1)[0].strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


# servers and uploads: started by hand, not in a test
NOT_RUN = (
    "tensorboard ",
    "mlflow ui",
    "optuna-dashboard ",
    "budgetsweep dashboard",
    "wandb sync",
    "pip ",
)


def test_readme_using_the_results_commands_run(tmp_path):
    commands = readme_commands()
    assert any(c.startswith("budgetsweep evaluate") for c in commands)
    assert any(c.startswith("tensorboard --logdir") for c in commands) and any("mlflow ui" in c for c in commands)
    env = {**ENV, "PYTHONPATH": str(ROOT)}
    for command in commands:
        if command.startswith(NOT_RUN):
            continue
        args = shlex.split(command)
        if args[:2] == ["python", "run.py"]:  # tiny and quick: the same tools, seconds
            multirun = "-m" in args
            args = [sys.executable, str(ROOT / "run.py"), *args[2:], *(TINY_SWEEP if multirun else TINY_RUN)]
            if multirun:
                args += ["hydra.sweeper.n_trials=2", "hydra.sweeper.params=null", "model.C=choice(8,12)"]
        elif args[0] == "python":
            args[0] = sys.executable
        elif args[0] == "budgetsweep":  # the console script is `python -m budgetsweep`
            args = [sys.executable, "-m", *args]
        r = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{command}\n{r.stderr[-3000:]}"
