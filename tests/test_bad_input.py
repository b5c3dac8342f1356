"""Bad input, one row per input: the one message that refuses it must name the key, option or file.

`TRAIN_ROWS` gives every key of the training config (the schema in `trainer/schema.py`, each
model family's settings, each optimizer option's keys) at least one invalid value;
`test_every_config_key_has_a_row` fails when a key is added without one. Each row is refused
in-process, wherever that happens: Hydra's composition (a type or a choice), `validate` (a
range), or `train` (status invalid, or a DataError). `END_TO_END` runs a few of them as a user
types them (exit status 2, one `error:` line, no traceback). `ANALYSIS_ROWS` does the same for
every option of `python -m budgetsweep.analysis`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from budgetsweep import models
from budgetsweep.analysis.__main__ import main as analysis_main
from budgetsweep.contract import METRICS_FILE, first_line
from budgetsweep.trainer import DataError, train
from budgetsweep.trainer.schema import OBJECTIVES, TrainConfig

from helpers import CONF, OPTUNA, compose_cfg, grid_sweep, run_cases_together, run_foreign_app, run_py

# (key, overrides, what the message must contain: the key unless given). NPZ_<kind> and FILE
# are replaced by files the `files` fixture makes.
TRAIN_ROWS: list[tuple[str, list[str], str | None]] = [
    ("batch_size", ["batch_size=0"], None),
    ("batch_size", ["batch_size=abc"], None),
    ("eval_batch_size", ["eval_batch_size=0"], None),
    ("epochs", ["epochs=0"], None),
    ("seed", ["seed=abc"], None),
    ("device", ["device=tpu9"], None),
    ("scheduler", ["scheduler=bogus"], None),
    ("warmup_epochs", ["warmup_epochs=-1"], None),
    ("warmup_epochs", ["warmup_epochs=2", "epochs=1"], None),
    ("label_smoothing", ["label_smoothing=1.0"], None),
    ("objective", ["objective=status"], None),
    ("objective", ["objective=loss"], None),
    ("amp", ["amp=fp8"], None),
    ("channels_last", ["channels_last=sometimes"], None),
    ("compile", ["compile=maybe"], None),
    ("threads", ["threads=0"], None),
    ("trials_per_gpu", ["trials_per_gpu=0"], None),
    ("checkpoint", ["checkpoint=maybe"], None),
    ("progress", ["progress=maybe"], None),
    ("save_weights", ["save_weights=all"], None),
    ("logger", ["logger=bogus"], None),
    ("tags", ["tags=5"], None),
    ("budget.max_params", ["budget.max_params=-5"], None),
    ("budget.max_params", ["budget.max_params=0"], None),
    ("budget.max_flops", ["budget.max_flops=0"], None),
    ("data.name", ["data.name=imagenet"], None),
    ("data.root", ["data=cifar10", "data.root=FILE"], None),  # a file where the folder should be
    ("data.path", ["data=npz", "data.path=no/such.npz"], None),
    ("data.path", ["data=npz", "data.path=NPZ_negative_label"], "y_train"),
    ("data.path", ["data=npz", "data.path=NPZ_no_test_images"], "x_test"),
    ("data.path", ["data=npz", "data.path=NPZ_label_past_classes"], "y_test"),
    ("data.path", ["data=npz", "data.path=NPZ_other_shapes"], "x_test"),
    ("data.val_size", ["data.val_size=-1"], None),
    ("data.val_size", ["data.val_size=0"], None),  # the objective (val_acc) needs the validation split
    ("data.val_size", ["data.val_size=160"], None),  # all of train
    ("data.split_seed", ["data.split_seed=-1"], None),
    ("data.train_subset", ["data.train_subset=0"], None),
    ("data.test_subset", ["data.test_subset=0"], None),
    ("data.n_train", ["data.n_train=0"], None),
    ("data.n_test", ["data.n_test=0"], None),
    ("data.image_size", ["data.image_size=0"], None),
    ("data.image_size", ["data.image_size=28"], "model"),  # the model expects 32 px
    ("data.num_classes", ["data.num_classes=0"], None),
    ("data.num_classes", ["data.num_classes=1"], None),
    ("data.augment.crop_padding", ["data.augment.crop_padding=-1"], None),
    ("data.augment.crop_padding", ["data.augment.crop_padding=32"], None),
    ("data.augment.flip", ["data.augment.flip=sideways"], None),
    ("data.augment.cutout", ["data.augment.cutout=-1"], None),
    ("data.augment.cutout", ["data.augment.cutout=33"], None),
    ("sweep.trial", ["sweep.trial=-1"], None),
    ("sweep.study", ["sweep.study=[1,2]"], None),
    ("sweep.factor", ["sweep.factor=[1]"], None),
    ("sweep.value", ["sweep.value=[1]"], None),
    ("sweep.baseline", ["sweep.baseline=maybe"], None),
    ("sweep.repeat", ["sweep.repeat=-1"], None),
    ("model", ["model=nope"], None),
    ("model.name", ["model.name=nope"], None),
    ("model.N", ["model.N=0"], None),
    ("model.B", ["model.B=0"], None),
    ("model.C", ["model.C=abc"], None),
    ("model.F", ["model.F=0"], None),
    ("model.K", ["model.K=0"], None),
    ("model.P", ["model.P=0"], None),
    ("model.P", ["model.P=9"], None),
    ("model.stem_kernel", ["model.stem_kernel=0"], None),
    ("model.in_channels", ["+model.in_channels=0"], None),
    ("model.image_size", ["+model.image_size=0"], None),
    ("model.num_classes", ["+model.num_classes=0"], None),
    ("optimizer", ["optimizer=nadam"], None),
    ("optimizer._target_", ["optimizer._target_=os.system"], None),
    ("optimizer._target_", ["optimizer._target_=torch.optim.Nope"], "optimizer"),
    ("optimizer._partial_", ["optimizer._partial_=false"], None),
    ("optimizer.lr", ["optimizer.lr=0"], None),
    ("optimizer.lr", ["optimizer.lr=abc"], None),
    ("optimizer.weight_decay", ["optimizer.weight_decay=-1"], None),
    ("optimizer.betas", ["optimizer.betas=[2,0.9]"], None),
    ("optimizer.betas", ["optimizer.betas=5"], None),
    ("optimizer.momentum", ["optimizer=sgd", "optimizer.momentum=-1"], None),
    ("optimizer.nesterov", ["optimizer=sgd", "optimizer.nesterov=maybe"], None),
]


def _write_npz(path: Path, n_train=8, n_test=4, y_train=None, y_test=None, test_side=32, classes=None) -> Path:
    arrays = dict(
        x_train=np.zeros((n_train, 32, 32, 3), np.uint8),
        y_train=np.arange(n_train) % 2 if y_train is None else np.asarray(y_train),
        x_test=np.zeros((n_test, test_side, test_side, 3), np.uint8),
        y_test=np.arange(n_test) % 2 if y_test is None else np.asarray(y_test),
    )
    if classes is not None:
        arrays["classes"] = np.asarray(classes)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    return bad_files(tmp_path)


def bad_files(folder: Path) -> dict[str, str]:
    """The bad files the rows name: npz files each with one problem, and a plain file."""
    (folder / "a_file").write_text("not a folder\n")
    return {
        "FILE": str(folder / "a_file"),
        "NPZ_negative_label": str(_write_npz(folder / "neg.npz", y_train=[0, 1, -1, 0, 1, 0, 1, 0])),
        "NPZ_no_test_images": str(_write_npz(folder / "empty.npz", n_test=0)),
        "NPZ_label_past_classes": str(_write_npz(folder / "cls.npz", y_test=[0, 1, 2, 0], classes=["a", "b"])),
        "NPZ_other_shapes": str(_write_npz(folder / "shapes.npz", test_side=28)),
    }


def substitute(args: list[str], files: dict[str, str]) -> list[str]:
    for placeholder, path in files.items():
        args = [a.replace(placeholder, path) for a in args]
    return args


def refusal(overrides: list[str], run_dir: Path) -> tuple[str, str]:
    """(where, message): the message refusing `overrides`, and where it came from: Hydra's
    composition, or the trainer (an invalid run, or a DataError). Fails if nothing refuses."""
    try:
        cfg = compose_cfg(overrides)
    except (ConfigCompositionException, MissingConfigException) as e:
        return "compose", f"{e}\n{e.__cause__ or ''}"
    try:
        metrics = train(cfg, run_dir)
    except DataError as e:
        return "data", str(e)
    assert metrics["status"] == "invalid", (
        f"{overrides} accepted: {metrics['status']}, objective {metrics['objective']}"
    )
    return "train", metrics["error"]


@pytest.mark.parametrize("key,args,says", TRAIN_ROWS, ids=[" ".join(r[1]) for r in TRAIN_ROWS])
def test_bad_setting_is_refused_naming_it(tmp_path, files, key, args, says):
    where, message = refusal(substitute(args, files), tmp_path / "run")
    assert (says or key) in message, message
    if where != "compose":  # ours: one line "key: why" (Hydra's own is a short paragraph)
        assert "\n" not in message and re.match(r"^[\w.]+: ", message), message
        assert not list((tmp_path / "run").glob("history.csv")), "refused after training started"


def config_keys() -> set[str]:
    """Every key a user can set: the schema's leaves, each family's settings, each optimizer's keys."""
    keys: set[str] = set()

    def walk(cls, prefix: str) -> None:
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.default_factory):  # a node: its keys
                walk(f.default_factory, f"{prefix}{f.name}.")
            else:
                keys.add(prefix + f.name)

    walk(TrainConfig, "")
    for family in models.list_models():
        keys |= {f"model.{f.name}" for f in dataclasses.fields(models.resolve_model_config({"name": family}))}
    for option in (CONF / "optimizer").glob("*.yaml"):
        optimizer = OmegaConf.to_container(compose_cfg([f"optimizer={option.stem}"]).optimizer)
        keys |= {f"optimizer.{k}" for k in optimizer}
    return keys


def test_every_config_key_has_a_row():
    covered = {key for key, _, _ in TRAIN_ROWS}
    missing = sorted(config_keys() - covered)
    assert not missing, f"keys without an invalid-value row in TRAIN_ROWS: {missing}"
    assert {"model.C", "optimizer.momentum", "data.augment.cutout", "sweep.repeat"} <= config_keys()


def test_every_objective_is_a_metric_a_run_writes(tiny_cfg, tmp_path):
    metrics = train(tiny_cfg(["objective=test_acc"]), tmp_path)
    assert set(OBJECTIVES) <= set(metrics) and isinstance(metrics["objective"], float)


# A few rows as a user types them: exit status 2, one `error:` line naming the key, no traceback.
END_TO_END = [
    (["eval_batch_size=0"], "eval_batch_size"),
    (["data.num_classes=0"], "data.num_classes"),
    (["data=npz", "data.path=NPZ_negative_label"], "y_train"),
    (["hydra.run.dir=FILE/run"], "hydra.run.dir"),
    (["-m", "model.C=4,8", "hydra.sweep.dir=FILE/sweep"], "hydra.sweep.dir"),
]


@pytest.fixture(scope="module")
def end_to_end_runs(request, tmp_path_factory):
    """Every selected END_TO_END row, each in a folder of its own, run together."""
    bad = bad_files(tmp_path_factory.mktemp("files"))
    return run_cases_together(
        request,
        tmp_path_factory,
        "test_bad_input_from_the_app_is_one_line",
        lambda params: ["experiment=quick", "progress=false", *substitute(params["args"], bad)],
        timeout=120,
    )


@pytest.mark.parametrize("args,says", END_TO_END, ids=[" ".join(r[0]) for r in END_TO_END])
def test_bad_input_from_the_app_is_one_line(end_to_end_runs, request, args, says):
    r = end_to_end_runs[request.node.callspec.id]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r.stderr


def test_a_refusal_hydra_wraps_over_lines_ends_as_a_sentence(tmp_path):
    r = run_py(["-m", "hydra/sweeper=optuna", "hydra.sweeper.pruner._target_=os.system", "experiment=quick"], tmp_path)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode != 0 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("hydra.sweeper.pruner: Target 'os.system' cannot be authorized by the Hydra execution")
    assert lines[0].endswith("target family."), lines[0]


@pytest.mark.parametrize(
    "message,line",
    [
        ("In 'config': Could not find 'model/nope'\n\nAvailable options in 'model':\n\tresnet", None),
        ("Could not override 'foo'.\nTo append to your config use +foo=1", None),
        ("(sqlite3.OperationalError) unable to open database file\n(Background on this error at: x)", None),
        ("connection failed: refused\n\tIs the server running on that host", None),
        ("Value 'abc' could not be converted to Integer\n    full_key: batch_size", None),
        ("Target 'x' cannot be authorized by the\nHydra whitelist because it\nruns code. Call a wrapper.", "WHOLE"),
    ],
)
def test_first_line_joins_only_a_sentence_cut_by_wrapping(message, line):
    whole = "Target 'x' cannot be authorized by the Hydra whitelist because it runs code."
    assert first_line(message) == {None: message.splitlines()[0], "WHOLE": whole}[line]


def test_a_bad_enqueue_entry_is_refused_before_the_study_exists(tmp_path):
    for entry in ("[{x:5}]", "[{z:1}]"):  # outside the space; not a searched key
        r = run_foreign_app(tmp_path, "xy", OPTUNA, "x=interval(-2,2)", f"hydra.sweeper.enqueue={entry}")
        assert r.returncode == 1 and "hydra.sweeper.enqueue[0]: " in r.stderr and "Traceback" not in r.stderr
        assert not list(tmp_path.rglob("study.db")) and not (tmp_path / "outputs").exists(), entry


# --- python -m budgetsweep.analysis ------------------------------------------------------------------------


def cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = analysis_main(argv)
    except SystemExit as e:  # argparse's own exit
        code = e.code
    return code, capsys.readouterr().err


@pytest.fixture
def sweep(tmp_path) -> str:
    return str(grid_sweep(tmp_path / "grid"))


# (option, arguments with SWEEP for a good sweep folder, what the one error line must name)
ANALYSIS_ROWS = [
    ("SWEEP_DIR", ["no/such/folder"], "no/such/folder"),
    ("SWEEP_DIR", ["FILE"], "a_file"),
    ("SWEEP_DIR", ["EMPTY"], "empty"),
    ("--baseline", ["SWEEP", "--baseline", "model.C"], "--baseline"),
    ("--baseline", ["SWEEP", "--baseline", "=5"], "--baseline"),
    ("--baseline", ["SWEEP", "--baseline", "model.C="], "--baseline"),
    ("--baseline", ["SWEEP", "--baseline", "model.C=8", "model.C=16"], "--baseline model.C"),
    ("--budget", ["SWEEP", "--budget", "0"], "--budget"),
    ("--budget", ["SWEEP", "--budget", "many"], "--budget"),
    ("--top-k", ["SWEEP", "--top-k", "0"], "--top-k"),
    ("--out", ["SWEEP", "--out", "FILE"], "a_file"),
    ("--storage", ["SWEEP", "--storage", "sqlite:///x.db"], "--storage"),
    ("--study", ["SWEEP", "--study", "s"], "--study"),
    ("--no-plots", ["SWEEP", "--no-plots=yes"], "--no-plots"),
    ("--help", ["--help=me"], "--help"),
]


@pytest.mark.parametrize("option,args,says", ANALYSIS_ROWS, ids=[" ".join(r[1]) for r in ANALYSIS_ROWS])
def test_bad_analysis_input_is_one_line(tmp_path, files, sweep, capsys, option, args, says):
    (tmp_path / "empty").mkdir()
    args = [{"SWEEP": sweep, "EMPTY": str(tmp_path / "empty")}.get(a, a) for a in substitute(args, files)]
    code, err = cli(args, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("analysis: error: ") and says in lines[0], err


def test_every_analysis_option_has_a_row(capsys):
    try:
        analysis_main(["--help"])
    except SystemExit:
        pass
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", capsys.readouterr().out)) | {"SWEEP_DIR"}
    assert {"--baseline", "--budget", "--out"} <= options
    assert options <= {option for option, _, _ in ANALYSIS_ROWS}, options


def test_the_same_folder_twice_is_read_once(sweep, capsys, caplog):
    code, _ = cli([sweep, sweep, f"{sweep}/0", "--no-plots"], capsys)
    assert code == 0
    runs = (Path(sweep) / "analysis" / "runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 7  # the header and the grid's seven runs, once each
    assert [r.getMessage() for r in caplog.records if "read once" in r.getMessage()] == [
        f"{sweep}: given twice; read once",
        f"{sweep}/0: inside {sweep}, also given; read once",
    ]


@pytest.mark.parametrize(
    "key,value",
    [
        ("val_acc", "high"),
        ("params", "many"),
        ("status", 5),
        ("status", "done"),
        ("overrides", "x"),
        ("factor", 3),
        ("test_epoch", 1.5),
        ("tags", "a,b"),
    ],
)
def test_a_metrics_file_with_wrong_types_is_a_corrupt_run(sweep, capsys, caplog, key, value):
    path = Path(sweep) / "1" / METRICS_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    code, err = cli([sweep, "--no-plots"], capsys)
    assert code == 0 and "Traceback" not in err
    warned = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith(f"{path}: {key!r} is {value!r}, not "), warned
    assert warned[0].endswith("shown with status 'corrupt'")
    runs = (Path(sweep) / "analysis" / "runs.csv").read_text()
    assert "corrupt" in runs
