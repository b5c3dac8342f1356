"""The run contract (contract/): a torch-free leaf whose writers and readers agree."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from budgetsweep import contract
from budgetsweep.contract import layouts, storage
from budgetsweep.contract.values import canon, parse_value, quote, values_equal


def test_importing_the_contract_loads_no_torch_and_no_optuna():
    code = (
        "import sys, budgetsweep.contract.values, budgetsweep.contract.layouts, budgetsweep.contract.storage; "
        "ours = ('models', 'trainer', 'sweeper', 'analysis'); "
        "bad = [m for m in ('torch', 'optuna', *(f'budgetsweep.{p}' for p in ours)) if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_new_metrics_has_every_documented_key_and_refuses_others():
    m = contract.new_metrics(status="completed", params=12)
    assert tuple(m) == contract.METRICS_KEYS
    assert m["schema_version"] == contract.SCHEMA_VERSION and m["params"] == 12 and m["objective"] is None
    with pytest.raises(KeyError, match="not_a_key"):
        contract.new_metrics(not_a_key=1)


def test_metrics_round_trip_and_reasons(tmp_path):
    contract.write_metrics(tmp_path, contract.new_metrics(status="completed", val_acc=float("nan")))
    m = contract.load_metrics(tmp_path)
    assert m["status"] == "completed" and m["val_acc"] is None  # JSON has no NaN
    with pytest.raises(ValueError, match="status"):
        contract.write_metrics(tmp_path, {"status": "done"})
    empty = tmp_path / "empty"
    with pytest.raises(contract.ContractError, match="missing"):
        contract.load_metrics(empty)
    empty.mkdir()
    (empty / contract.METRICS_FILE).write_text("{trunc")
    with pytest.raises(contract.ContractError, match="unreadable"):
        contract.load_metrics(empty)
    assert contract.read_metrics(empty) is None
    (empty / contract.METRICS_FILE).write_text('{"val_acc": 1}')
    with pytest.raises(contract.ContractError, match="status"):
        contract.load_metrics(empty)


def test_write_atomic_leaves_no_temporary_file(tmp_path):
    contract.write_history(tmp_path, [dict(zip(contract.HISTORY_COLUMNS, range(7)))])
    assert sorted(p.name for p in tmp_path.iterdir()) == [contract.HISTORY_FILE]
    assert (tmp_path / contract.HISTORY_FILE).read_text().splitlines()[0] == ",".join(contract.HISTORY_COLUMNS)


@pytest.mark.parametrize(
    "a, b",
    [
        ("1e-3", 0.001),
        (64.0, 64),
        ("[1,1,1]", [1, 1, 1]),
        (True, "true"),
        (None, "null"),
        ("adam", "adam"),
        ({"a": 1.0}, {"a": 1}),
    ],
)
def test_canon_gives_one_text_per_value(a, b):
    assert canon(a) == canon(b)


def test_canon_parses_back_to_an_equal_value():
    for value in [0.001, 3, [1, 2, 2], "sgd", True, None, 1e-5]:
        assert values_equal(parse_value(canon(value)), value)


@pytest.mark.parametrize(
    "a, b, equal",
    [
        (64, 64.0, True),
        (64, 65, False),
        (True, 1, False),
        (False, 0, False),
        (True, True, True),
        ("64", 64, True),
        ("adam", "adam", True),
        ("adam", "sgd", False),
        (None, None, True),
        (None, "null", False),
        ([1, 2], [1.0, 2], True),
        ([1, 2], [1, 2, 3], False),
        (2, [2], False),
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": 1}, {"b": 1}, False),
        (float("nan"), float("nan"), True),
    ],
)
def test_values_equal(a, b, equal):
    assert values_equal(a, b) is equal
    assert values_equal(b, a) is equal


@pytest.mark.parametrize(
    "text",
    [
        "model.C",
        "optimizer",
        "data/augment",
        "64",
        "1e-3",
        "true",
        "null",
        "[1,1,1]",
        "a b",
        "it's",
        "back\\slash'",
        "x=y,z",
        "${oc.env:HOME}",
        "",
        "-3",
        "resnet_small",
    ],
)
def test_quote_parses_back_to_the_same_string(text):
    (override,) = OverridesParser.create().parse_overrides([f"sweep.value={quote(text)}"])
    assert override.value() == text.replace("${", "\\${")  # OmegaConf reads \${ as a literal ${
    cfg = OmegaConf.create({"sweep": {"value": override.value()}})
    assert cfg.sweep.value == text


def test_study_and_ablation_plan_layouts_round_trip(tmp_path):
    record = layouts.StudyRecord(storage="sqlite:///x.db", study_name="s", direction="maximize", n_trials=4)
    layouts.write_study(tmp_path, record)
    assert layouts.read_study(tmp_path) == record
    plan = layouts.AblationPlanRecord(
        repeats=2,
        factors={"model.C": {"baseline": 16, "runs": ["32"], "skipped": []}},
        variants=[
            layouts.PlannedVariant(None, None),
            layouts.PlannedVariant("model.C", "32", ["model.C=32"], "1 params"),
        ],
        n_jobs=4,
    )
    layouts.write_ablation_plan(tmp_path, plan)
    assert layouts.read_ablation_plan(tmp_path) == plan
    assert layouts.read_study(tmp_path / "nowhere") is None
    (tmp_path / layouts.STUDY_FILE).write_text("[]")
    with pytest.raises(contract.ContractError, match="study.json"):
        layouts.read_study(tmp_path)


def test_storage_password_is_masked_and_restored_for_connecting(monkeypatch):
    masked, secret = storage.split_password("postgresql://me:s3cr%40t@db.example/study")
    assert secret == "s3cr@t" and "s3cr" not in masked and ":***@" in masked
    monkeypatch.setenv(storage.PASSWORD_ENV, secret)
    url = storage.connect_url(masked)
    assert "s3cr%40t@" in url
    assert storage.scrub(f"cannot connect to {url}").endswith("//me:***@db.example/study")
    monkeypatch.delenv(storage.PASSWORD_ENV)
    assert storage.connect_url(masked).split("://")[1] == "me@db.example/study"  # libpq: PGPASSWORD, ~/.pgpass


def test_connect_url_picks_one_postgres_driver_for_everyone():
    import importlib.util

    url = storage.connect_url("postgresql://me@localhost/db")
    has_psycopg3 = importlib.util.find_spec("psycopg") is not None
    has_psycopg2 = importlib.util.find_spec("psycopg2") is not None
    expected = "postgresql+psycopg2://" if has_psycopg2 and not has_psycopg3 else "postgresql://"
    assert url.startswith(expected)


def test_connect_url_finds_a_relative_sqlite_file_in_the_study_folder(tmp_path):
    (tmp_path / "study.db").write_bytes(b"")
    assert storage.connect_url("sqlite:///elsewhere/study.db", tmp_path) == storage.sqlite_url(tmp_path / "study.db")
    assert storage.connect_url("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"


def test_first_line_and_is_missing():
    assert contract.first_line(ValueError("\n  bad thing\nMore detail")) == "bad thing"
    assert contract.first_line(KeyError()) == "KeyError"
    assert contract.is_missing(None) and contract.is_missing(float("nan"))
    assert not contract.is_missing(0) and not contract.is_missing("")
