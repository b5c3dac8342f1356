"""A trial's job config made from the one composed before it, where Hydra would give the same.

Hydra composes a job's config in two steps (`ConfigLoader.load_sweep_config`): the config groups
chosen are merged from their files (the defaults list), then each plain override sets its key
on the result, the overrides are listed in `hydra.overrides` and a few runtime fields are set.
Between a sweep's trials the values of the same plain keys change, and a group's choice among a
few, so the first step gives the same config for each choice, and it is most of the compose (an
instant trial spent half its time composing). `JobTemplates` keeps the first config Hydra
composed for each *shape* of overrides (their keys and kinds, in order, and the config groups
chosen: `optimizer=sgd` and `optimizer=adam` are two shapes) and makes the next ones from a copy
of it: each value set the way Hydra sets it (`OmegaConf.update`, merging; `+`/`++` add the key),
the override lists and the runtime fields written again.

What it does not make is composed by Hydra: a config group added or deleted, a deletion
or a list extension, a sweep left in an override, a value that is a list or a dict, a key of
Hydra's own other than the job's folder and environment (`hydra.sweep.subdir`,
`hydra.job.env_set.*`, which the sweeper sets), or a value its key refuses (Hydra then says so
in its words). tests/test_sweep_engine.py compares the two on run.py's config and a foreign
app's; Hydra's steps were read in hydra-core 1.4.0rc3 (`ConfigLoaderImpl._load_configuration_impl`).
"""

from __future__ import annotations

import copy
import os
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict

SETS = (OverrideType.CHANGE, OverrideType.ADD, OverrideType.FORCE_ADD)
HYDRA_KEYS = ("hydra.sweep.subdir", "hydra.job.env_set.")  # Hydra's own keys a trial sets (startswith)
PLAIN = (str, int, float, bool, type(None))


class ParsedOverrides:
    """Hydra's parse of override strings, kept: a choice's values recur from trial to trial
    (Hydra's parser takes a third of a millisecond an override)."""

    MAX = 4096

    def __init__(self) -> None:
        self.parser = OverridesParser.create()
        self.parsed: dict[str, Override] = {}

    def __call__(self, override: str) -> Override:
        if override not in self.parsed:
            if len(self.parsed) >= self.MAX:
                self.parsed.clear()
            self.parsed[override] = self.parser.parse_overrides([override])[0]
        return self.parsed[override]


def group_keys(config: DictConfig) -> set[str]:
    """The config groups a sweep's config chose from (`hydra.runtime.choices`)."""
    choices = OmegaConf.select(config, "hydra.runtime.choices", default=None)
    return {str(k) for k in choices.keys()} if isinstance(choices, DictConfig) else set()


def is_group(override: Override, groups: set[str]) -> bool:
    return override.key_or_group in groups or "/" in override.key_or_group


class JobTemplates:
    MAX = 32  # shapes kept: one per combination of group choices (and of optional keys)

    def __init__(self, parse: ParsedOverrides | None = None) -> None:
        self.parse = parse or ParsedOverrides()
        self.kept: dict[tuple, DictConfig] = {}

    def read(self, master_config: DictConfig, overrides: list[str]) -> tuple[tuple, list[Override]] | None:
        """The overrides' shape (their keys and kinds, in order, and the config groups' choices: the
        same choice, the same files composed) and their plain overrides with plain values; None when
        a copy could not stand for the compose."""
        try:
            parsed = [self.parse(o) for o in overrides]
        except Exception:  # Hydra's compose says what is wrong with it
            return None
        groups = group_keys(master_config)
        shape: list[tuple] = [(id(master_config),)]
        plain = []
        for o in parsed:
            key = o.key_or_group
            if o.type not in SETS or o.package is not None or o.is_sweep_override():
                return None
            if is_group(o, groups):
                if o.type != OverrideType.CHANGE:
                    return None
                shape.append((o.type, key, o.input_line))
            elif (o.is_hydra_override() and not key.startswith(HYDRA_KEYS)) or not isinstance(o.value(), PLAIN):
                return None
            else:
                shape.append((o.type, key))
                plain.append(o)
        return tuple(shape), plain

    def make(self, master_config: DictConfig, overrides: list[str]) -> DictConfig | None:
        """The job's config for these overrides from the kept one of their shape; None: compose it."""
        read = self.read(master_config, overrides)
        template = None if read is None else self.kept.get(read[0])
        if read is None or template is None:
            return None
        cfg = copy.deepcopy(template)
        try:
            for o in read[1]:  # a group's choice is the template's own
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True, force_add=o.type != OverrideType.CHANGE)
            parsed = [self.parse(o) for o in overrides]
            hydra_lines = [o.input_line for o in parsed if o.is_hydra_override()]
            cfg.hydra.overrides.hydra = [*master_config.hydra.overrides.hydra, *hydra_lines]
            cfg.hydra.overrides.task = [o.input_line for o in parsed if not o.is_hydra_override()]
            with open_dict(cfg.hydra):  # after the overrides, as Hydra does
                for key in cfg.hydra.job.env_copy:
                    cfg.hydra.job.env_set[key] = os.environ[key]
            cfg.hydra.runtime.cwd = os.getcwd()
        except Exception:  # a type the key refuses: Hydra's compose raises it in its own words
            return None
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg

    def keep(self, master_config: DictConfig, overrides: list[str], cfg: DictConfig) -> None:
        """Keep a config Hydra composed for these overrides as its shape's template."""
        read = self.read(master_config, overrides)
        if read is None or read[0] in self.kept or len(self.kept) >= self.MAX or "hydra" not in cfg:
            return
        self.kept[read[0]] = copy.deepcopy(cfg)

    def compose(self, loader: Any, master_config: DictConfig, overrides: list[str]) -> DictConfig:
        """The job's config: from its shape's template, else composed by Hydra (and kept as one)."""
        cfg = self.make(master_config, overrides)
        if cfg is None:
            cfg = loader.load_sweep_config(master_config, list(overrides))
            self.keep(master_config, overrides, cfg)
        return cfg
