"""The ablation planner as pure functions: (baseline, params, overrides) -> jobs. No Hydra app."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from budgetsweep.sweeper.ablation_plan import AblationError, format_plan, parse_factors, plan_ablation


def plan(baseline, args=(), params=None, **kw):
    factors, fixed = parse_factors(params, list(args))
    return plan_ablation(baseline, factors, fixed, **kw)


def coords(p):
    """(factor, value, repeat, seed) per job, in launch order."""
    return [(j.factor, j.value, j.repeat, j.seed) for j in p.jobs]


BASE = None  # the baseline job's factor/value

# baseline values, command-line args, params, repeats, seed -> expected (factor, value, repeat, seed)
PLANS = {
    "spec example: 1 + values != baseline": (
        {"model.C": 68, "optimizer": "adam"},
        ["model.C=32,64,68", "optimizer=adam,sgd"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("model.C", "32", 0, None), ("model.C", "64", 0, None), ("optimizer", "sgd", 0, None)],
    ),
    "64.0 is the baseline 64": (
        {"model.C": 64},
        ["model.C=64.0,32"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("model.C", "32", 0, None)],
    ),
    "1e-3 is the baseline 0.001": (
        {"optimizer.lr": 0.001},
        ["optimizer.lr=1e-3,1e-2"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("optimizer.lr", "0.01", 0, None)],
    ),
    "lists compare elementwise": (
        {"model.B": [2, 2, 2]},
        ["model.B=[1,1,1],[2,2,2.0]"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("model.B", "[1, 1, 1]", 0, None)],
    ),
    "a list is not the int it repeats": (
        {"model.B": 1},
        ["model.B=[1,1,1],1"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("model.B", "[1, 1, 1]", 0, None)],
    ),
    "true is not 1": (
        {"data.augment.flip": True},
        ["data.augment.flip=true,false,1"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("data.augment.flip", "false", 0, None), ("data.augment.flip", "1", 0, None)],
    ),
    "a str field holds 64 as '64'": (
        {"tag": "64"},
        ["tag=64,65"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("tag", "65", 0, None)],
    ),
    "a value listed twice runs once": (
        {"model.C": 8},
        ["model.C=4,4,16"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("model.C", "4", 0, None), ("model.C", "16", 0, None)],
    ),
    "repeats: every variant, seed + repeat, repeat-major": (
        {"model.C": 8},
        ["model.C=4,8"],
        None,
        3,
        5,
        [
            (BASE, BASE, 0, 5),
            ("model.C", "4", 0, 5),
            (BASE, BASE, 1, 6),
            ("model.C", "4", 1, 6),
            (BASE, BASE, 2, 7),
            ("model.C", "4", 2, 7),
        ],
    ),
    "a params entry is a factor even with one value": (
        {"model.stem_kernel": 3},
        [],
        {"model.stem_kernel": 2},
        1,
        0,
        [(BASE, BASE, 0, None), ("model.stem_kernel", "2", 0, None)],
    ),
    "a params entry equal to the baseline runs nothing": (
        {"model.stem_kernel": 3},
        [],
        {"model.stem_kernel": 3},
        1,
        0,
        [(BASE, BASE, 0, None)],
    ),
    "a command-line sweep replaces the params entry": (
        {"model.C": 8},
        ["model.C=16"],
        {"model.C": "4,16"},
        1,
        0,
        [(BASE, BASE, 0, None)],  # model.C=16 is fixed: the baseline itself (see test below)
    ),
    "choice(...) makes one value a factor on the command line": (
        {"model.C": 8},
        ["model.C=choice(64)"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("model.C", "64", 0, None)],
    ),
    "range(...)": (
        {"model.N": 3},
        ["model.N=range(2,5)"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("model.N", "2", 0, None), ("model.N", "4", 0, None)],
    ),
    "config groups compare with the runtime choice": (
        {"model": "resnet_small", "optimizer": "adam"},
        ["model=resnet_small,seed_final", "optimizer=sgd,adamw"],
        None,
        1,
        0,
        [
            (BASE, BASE, 0, None),
            ("model", "seed_final", 0, None),
            ("optimizer", "sgd", 0, None),
            ("optimizer", "adamw", 0, None),
        ],
    ),
    "an optional group left null": (
        {"experiment": None},
        ["experiment=quick"],
        {},
        1,
        0,
        [(BASE, BASE, 0, None)],  # a plain override: fixed, not a factor
    ),
    "the seed as a factor, with repeats": (
        {"seed": 0},
        ["seed=0,10"],
        None,
        2,
        0,
        [(BASE, BASE, 0, 0), ("seed", "10", 0, 10), (BASE, BASE, 1, 1), ("seed", "10", 1, 11)],
    ),
    "+key: absent from the baseline, every value runs": (
        {},
        ["+extra=1,2"],
        None,
        1,
        0,
        [(BASE, BASE, 0, None), ("extra", "1", 0, None), ("extra", "2", 0, None)],
    ),
    "no factors: the baseline alone": (
        {},
        ["epochs=2"],
        None,
        2,
        0,
        [(BASE, BASE, 0, 0), (BASE, BASE, 1, 1)],
    ),
}


@pytest.mark.parametrize("case", PLANS.values(), ids=PLANS.keys())
def test_plan(case):
    baseline, args, params, repeats, seed, expected = case
    p = plan(baseline, args, params, repeats=repeats, seed=seed)
    assert coords(p) == expected
    n_values_run = sum(len(v) for v in p.runs.values())
    assert len(p.jobs) == (1 + n_values_run) * repeats


def test_spec_example_overrides():
    p = plan(
        {"model.C": 68, "optimizer": "adam"}, ["epochs=2", "model.C=32,64,68", "optimizer=adam,sgd"], repeats=2, seed=0
    )
    assert [list(j.overrides) for j in p.jobs[:2]] == [
        ["epochs=2", "sweep.factor=null", "sweep.value=null", "sweep.baseline=true", "sweep.repeat=0", "seed=0"],
        [
            "epochs=2",
            "model.C=32",
            "sweep.factor=model.C",
            "sweep.value='32'",
            "sweep.baseline=false",
            "sweep.repeat=0",
            "seed=0",
        ],
    ]
    assert list(p.jobs[-1].overrides) == [
        "epochs=2",
        "optimizer=sgd",
        "sweep.factor=optimizer",
        "sweep.value=sgd",
        "sweep.baseline=false",
        "sweep.repeat=1",
        "seed=1",
    ]
    assert p.skipped == {"model.C": ("68",), "optimizer": ("adam",)}


def test_fixed_override_wins_over_params_and_seed_is_replaced():
    p = plan({"model.C": 16, "seed": 3}, ["model.C=16", "seed=3"], {"model.C": "4,16"}, repeats=2, seed=3)
    assert [list(j.overrides) for j in p.jobs] == [
        ["model.C=16", "sweep.factor=null", "sweep.value=null", "sweep.baseline=true", "sweep.repeat=0", "seed=3"],
        ["model.C=16", "sweep.factor=null", "sweep.value=null", "sweep.baseline=true", "sweep.repeat=1", "seed=4"],
    ]


def test_list_values_go_back_in_override_grammar():
    p = plan({"model.B": 2}, ["model.B=[1,1,1],[3,'x y']"], record_prefix=None)
    assert [j.overrides for j in p.jobs] == [(), ("model.B=[1,1,1]",), ("model.B=[3,'x y']",)]
    # what the job will receive parses back to the listed values
    parsed = OverridesParser.create().parse_overrides(["model.B=[3,'x y']"])[0].value()
    assert parsed == [3, "x y"]


def test_record_prefix_for_configs_without_a_sweep_node():
    p = plan({"a": 1}, ["a=choice(2)"], record_prefix="++sweep.")
    assert p.jobs[1].overrides == (
        "a=2",
        "++sweep.factor=a",
        "++sweep.value='2'",
        "++sweep.baseline=false",
        "++sweep.repeat=0",
    )


ERRORS = {
    "unknown key": ({"model.C": 8}, ["model.X=1,2"], None, 1, 0, r"factor 'model.X' is not a key or config group"),
    "repeats 0": ({}, [], None, 0, 0, r"repeats must be an int >= 1, got 0"),
    "repeats negative": ({}, [], None, -2, 0, r"repeats must be an int >= 1, got -2"),
    "repeats float": ({}, [], None, 1.5, 0, r"repeats must be an int >= 1, got 1.5"),
    "repeats bool": ({}, [], None, True, 0, r"repeats must be an int >= 1, got True"),
    "repeats without a seed": ({}, [], None, 2, None, r"repeats=2 needs an int `seed`"),
    "interval": ({"x": 1.0}, ["x=interval(0,1)"], None, 1, 0, r"not a list of values"),
    "hydra key": ({}, [], {"hydra.job.chdir": "true,false"}, 1, 0, r"cannot vary Hydra's own config"),
    "seed not an int": ({"seed": 0}, ["seed=a,b"], None, 1, 0, r"seed values must be ints"),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_bad_input_is_one_clear_error(case):
    baseline, args, params, repeats, seed, message = case
    with pytest.raises(AblationError, match=message) as info:
        plan(baseline, args, params, repeats=repeats, seed=seed)
    assert "\n" not in str(info.value)


def test_format_plan_names_counts_and_skips():
    p = plan({"model.C": 68, "optimizer": "adam"}, ["model.C=32,64,68", "optimizer=adam,sgd"], repeats=2, seed=0)
    lines = format_plan(p, {1: "5,123,456 params > budget 5,000,000"})
    assert lines[0].startswith("Ablation: 8 jobs = (1 baseline + 3 variants) x 2 repeats")
    text = "\n".join(lines)
    assert "model.C" in text and "runs 32, 64" in text and "skips 68" in text
    assert "skips adam" in text and "seeds: 0..1" in text
    assert "model.C=32: 5,123,456 params > budget" in text


def test_docstring_examples_run():
    import doctest

    import budgetsweep.sweeper.ablation_plan as module

    assert doctest.testmod(module).failed == 0
