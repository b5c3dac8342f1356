"""The sweep engine's shortcuts, each checked against the long way it replaces: a trial's config
composed once (the launcher gets the sweeper's), an over-budget suggestion sized without a
compose where that gives the same model, and a model sized once per architecture."""

from __future__ import annotations

import os
import pickle
import signal
import time

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from budgetsweep.sweeper import sizing as sizing_module
from budgetsweep.sweeper.composed import ComposedOnce
from budgetsweep.sweeper.feasibility import Patcher
from budgetsweep.sweeper.optuna_storage import _CTRL_C
from budgetsweep.sweeper.sizing import Sizer

from helpers import CONF, TINY_RUN


def run_py_config(overrides=()):
    """run.py's config as a sweep's process holds it: with its hydra node (the config groups chosen)."""
    from budgetsweep.trainer import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF)):
        return compose(config_name="config", overrides=[*TINY_RUN, *overrides], return_hydra_config=True)


class CountingLoader:
    def __init__(self) -> None:
        self.calls = 0

    def load_sweep_config(self, master_config, sweep_overrides):
        self.calls += 1
        return OmegaConf.create({"overrides": list(sweep_overrides)})

    def get_sources(self):
        return ["hydra's own"]


def test_the_launcher_gets_the_config_the_sweeper_composed_once():
    hydra_loader = CountingLoader()
    loader = ComposedOnce(hydra_loader)
    master = OmegaConf.create({})
    composed = loader.compose(master, ["x=1", "hydra.sweep.subdir=0"])
    assert loader.load_sweep_config(master, ["x=1", "hydra.sweep.subdir=0"]) is composed
    assert hydra_loader.calls == 1
    # used once: a second launch of the same overrides (a rerun of the trial) composes anew
    assert loader.load_sweep_config(master, ["x=1", "hydra.sweep.subdir=0"]) is not composed
    assert hydra_loader.calls == 2
    assert loader.get_sources() == ["hydra's own"]  # the rest is Hydra's loader


def test_a_loader_sent_to_another_process_carries_no_composed_config():
    loader = ComposedOnce(CountingLoader())
    loader.compose(OmegaConf.create({}), ["x=1"])
    copy = pickle.loads(pickle.dumps(loader))
    assert copy.kept == {} and len(loader.kept) == 1


def test_suggestions_past_the_keep_limit_fall_out():
    loader = ComposedOnce(CountingLoader())
    for i in range(100):
        loader.compose(OmegaConf.create({}), [f"x={i}"])
    assert len(loader.kept) == 64 and ("x=99",) in loader.kept and ("x=0",) not in loader.kept


def counting_patcher():
    """A Patcher over run.py's config, and the group overrides it composed, in order."""
    composed = []

    def compose(groups):
        composed.append(groups)
        return run_py_config(groups)

    return Patcher(run_py_config(), compose), composed


def test_plain_keys_and_group_choices_give_the_composed_model_with_one_compose_per_choice():
    patcher, composed = counting_patcher()
    for params in (
        ["model.C=24", "model.N=3", "optimizer.lr=0.01", "budget.max_params=1000"],
        ["model.C=12", "optimizer=sgd", "optimizer.lr=0.02"],
        ["model.C=16", "optimizer=sgd", "optimizer.lr=0.03", "model.P=4"],
    ):
        expected = run_py_config(params)
        with patcher.patched(params) as patched:
            assert patched is not None and "hydra" not in patched
            for key in ("model", "budget", "optimizer"):
                assert OmegaConf.to_container(patched[key], resolve=True) == OmegaConf.to_container(
                    expected[key], resolve=True
                ), (params, key)
    assert composed == [["optimizer=sgd"]]  # the sweep's own config for the first; sgd composed once


def test_the_kept_config_gets_its_own_values_back_after_each_trial_interpolations_included():
    config = OmegaConf.create(
        {"model": {"C": 8, "width": "${model.C}", "sizes": [1, 2]}, "budget": {"max_params": None}, "lr": 0.1}
    )
    patcher = Patcher(config, compose=lambda groups: config)
    before = OmegaConf.to_container(config, resolve=False)
    with patcher.patched(["model.C=24", "model.width=16", "budget.max_params=1000"]) as cfg:
        assert (cfg.model.C, cfg.model.width, cfg.budget.max_params) == (24, 16, 1000)
    with patcher.patched(["model.C=12"]) as cfg:
        assert cfg.model.width == 12  # the interpolation is back, and follows the new value
    with pytest.raises(RuntimeError), patcher.patched(["lr=0.5", "model.C=4"]) as cfg:
        raise RuntimeError("the sizing failed")  # its values are put back all the same
    with patcher.patched(["model.sizes=[3,4]", "model.C=6"]) as cfg:  # a node's value: set on a copy
        assert (list(cfg.model.sizes), cfg.model.C) == ([3, 4], 6)
    kept, _ = patcher.bases[()]
    assert OmegaConf.to_container(kept, resolve=False) == before
    assert OmegaConf.to_container(config, resolve=False) == before  # the sweep's own config was never touched


def test_an_override_is_parsed_once_and_its_value_set_anew_each_time(monkeypatch):
    patcher, _ = counting_patcher()
    parsed = []
    parse = patcher.parse.parser.parse_overrides
    monkeypatch.setattr(
        patcher.parse.parser, "parse_overrides", lambda overrides: parsed.extend(overrides) or parse(overrides)
    )
    seen = []
    for params in (
        ["model.C=24", "optimizer.lr=0.01"],
        ["model.C=12", "optimizer.lr=0.01"],
        ["model.C=24", "optimizer.lr=0.02"],
    ):
        with patcher.patched(params) as cfg:
            seen.append((cfg.model.C, cfg.optimizer.lr))
    assert parsed == ["model.C=24", "optimizer.lr=0.01", "model.C=12", "optimizer.lr=0.02"]
    assert seen == [(24, 0.01), (12, 0.01), (24, 0.02)]


def test_what_only_a_compose_can_tell_is_composed():
    patcher, _ = counting_patcher()

    def patched(params):
        with patcher.patched(params) as cfg:
            return cfg

    assert patched(["+model.extra=1"]) is None  # an addition
    assert patched(["~model.K"]) is None  # a deletion
    assert patched(["model.nonexistent=1"]) is None  # a key the config lacks: the compose's error
    assert patched(["epochs=many"]) is None  # a type the schema refuses: the compose's error
    assert patched(["model.C=8"]) is not None
    with patcher.patched(["epochs=2"]) as cfg:
        own_c = cfg.model.C
    assert patched(["model.C=30", "epochs=many"]) is None  # refused halfway: C=30 is put back
    with patcher.patched(["epochs=2"]) as cfg:
        assert (cfg.epochs, cfg.model.C) == (2, own_c)


def test_an_architecture_is_sized_once(monkeypatch):
    counted = []
    count = sizing_module._count_on_meta
    monkeypatch.setattr(sizing_module, "_count_on_meta", lambda key, node: counted.append(key) or count(key, node))
    sizer = Sizer(max_params=10_000, model_key="model", size_fn=None, size_fn_name=None)
    cfg = OmegaConf.create({"model": {"_target_": "torch.nn.Linear", "in_features": 64, "out_features": 10}})
    first = sizer.size(cfg)
    again = sizer.size(OmegaConf.create(OmegaConf.to_container(cfg)))
    cfg.model.in_features = 2000
    wider = sizer.size(cfg)
    assert counted == ["model", "model"]  # the same values: counted once
    assert first.params == again.params == 650 and first.fits
    assert wider.params == 20_010 and not wider.fits


def test_ctrl_c_inside_a_storage_call_takes_effect_as_the_call_returns():
    """Raised inside SQLite's commit, KeyboardInterrupt could leave the database locked for the
    hand-back that follows: the storage's calls finish first, then Ctrl-C acts."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    finished = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with _CTRL_C.after_the_call():
                os.kill(os.getpid(), signal.SIGINT)
                finished.append("the call")  # not cut short
        assert finished == ["the call"]
        with pytest.raises(KeyboardInterrupt):  # outside a call: at once, as always
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100):
                time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, before)


def composed_both_ways(config_dir, config_name, fixed, trials):
    """Each trial's job config made from its shape's template, and Hydra's own compose of it."""
    from hydra.core.global_hydra import GlobalHydra

    from budgetsweep.sweeper.job_templates import JobTemplates

    pairs = []
    with initialize_config_dir(config_dir=str(config_dir)):
        master = compose(config_name=config_name, overrides=fixed, return_hydra_config=True)
        loader = GlobalHydra.instance().config_loader()
        templates = JobTemplates()
        for overrides in trials:
            made = templates.make(master, overrides)
            try:
                hydras = loader.load_sweep_config(master, list(overrides))
            except Exception as e:  # a value its key refuses
                hydras = e
            else:
                templates.keep(master, overrides, hydras)
            pairs.append((overrides, made, hydras))
    return pairs


def same_config(made, composed):
    """The same values as written, the same resolved values (the app's part: Hydra's has fields
    set only as the job runs), and the same flags (struct, readonly)."""
    assert OmegaConf.to_yaml(made) == OmegaConf.to_yaml(composed)

    def app_part(cfg):
        return {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}

    resolved = [OmegaConf.to_container(OmegaConf.create(app_part(c)), resolve=True) for c in (made, composed)]
    assert resolved[0] == resolved[1]
    assert OmegaConf.is_struct(made) and OmegaConf.is_struct(composed)
    assert OmegaConf.is_readonly(made.hydra) == OmegaConf.is_readonly(composed.hydra)


def job_overrides_of(number, params, record=True):
    from budgetsweep.sweeper.launch import job_overrides

    record_node = {"trial": "+sweep.", "study": "+sweep."} if record else None
    return [*job_overrides(number, "study", params, record_node), f"++hydra.job.env_set.BUDGETSWEEP_CLAIM={number}"]


def test_a_trial_config_made_from_the_template_is_the_one_hydra_composes_on_run_py():
    from budgetsweep.trainer import register_configs

    register_configs()
    trials = [
        job_overrides_of(i, params)
        for i, params in enumerate(
            [
                ["model.C=24", "model.N=3", "optimizer.lr=0.01"],
                ["model.C=12", "model.N=2", "optimizer.lr=0.2"],
                ["model.C=16", "model.N=1", "optimizer.lr=1e-05"],
                ["model.C=8", "optimizer=sgd", "optimizer.lr=0.03"],  # a group's choice: its own shape
                ["model.C=10", "optimizer=sgd", "optimizer.lr=0.04"],
                ["model.C=10", "optimizer=adamw", "optimizer.lr=0.04"],  # another choice: composed
                ["model.C=16", "model.N=2", "optimizer.lr=0.5"],
                ["model.C=16", "model.N=2", "batch_size=64"],
                ["model.C=16", "model.N=2", "batch_size=wide"],  # refused by the key's type (an int)
            ]
        )
    ]
    pairs = composed_both_ways(CONF, "config", TINY_RUN, trials)
    made = [overrides for overrides, cfg, _ in pairs if cfg is not None]
    assert made == [trials[1], trials[2], trials[4], trials[6]]  # the first of each shape: Hydra's
    assert isinstance(pairs[-1][2], Exception)  # Hydra refuses it, in its words; no template made it
    for overrides, cfg, composed in pairs:
        if cfg is not None:
            same_config(cfg, composed)
            assert cfg.model.C == composed.model.C and list(cfg.hydra.overrides.task) == [
                o for o in overrides if not o.lstrip("+").startswith("hydra.")
            ]


def test_a_foreign_apps_trial_config_made_from_the_template_is_the_one_hydra_composes():
    from helpers import APPS

    values = [("0.5", "-1.25"), ("1", "2"), ("'text'", "null"), ("1e-3", "${x}"), ("true", "0")]
    trials = [job_overrides_of(i, [f"x={x}", f"y={y}"], record=False) for i, (x, y) in enumerate(values)]
    trials.append(["x=3", "+extra=1", "hydra.sweep.subdir=9"])  # a key added: its own shape
    trials.append(["x=4", "+extra=2", "hydra.sweep.subdir=10"])
    trials.append(["x=[1,2]", "+extra=2", "hydra.sweep.subdir=11"])  # a list value: composed by Hydra
    trials.append(["x=5", "~nan", "hydra.sweep.subdir=12"])  # a deletion: composed by Hydra
    trials.append(["x=6", "~nan", "hydra.sweep.subdir=13"])
    pairs = composed_both_ways(APPS["xy"], "config", ["steps=2"], trials)
    made = [i for i, (_, cfg, _) in enumerate(pairs) if cfg is not None]
    assert made == [1, 2, 3, 4, 6]
    for _, cfg, composed in pairs:
        if cfg is not None:
            same_config(cfg, composed)
    assert pairs[3][1].y == pairs[3][1].x == 0.001 and pairs[2][1].y is None and pairs[6][1].extra == 2


def test_the_objects_of_the_setup_are_left_out_of_full_collections_while_the_loop_runs_only():
    import gc

    from budgetsweep.sweeper.study_loop import setup_frozen

    before = gc.get_freeze_count()
    with setup_frozen():
        assert gc.get_freeze_count() > before  # the modules, configs and study made before the loop
        cycle = [[]]
        cycle[0].append(cycle)  # garbage made in the loop is still collected
        del cycle
        assert gc.collect() >= 2
    assert gc.get_freeze_count() == 0
