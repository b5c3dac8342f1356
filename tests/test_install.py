"""The lightest install, `pip install budgetsweep` without extras, is enough for the sweepers: Hydra
imports them from an app's environment, which need not have what `[dev]` brings."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

from helpers import ROOT, env

SWEEPER_MODULES = ("budgetsweep.sweeper.optuna_sweeper", "budgetsweep.sweeper.ablation_sweeper")


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement line (`psycopg2-binary>=2.9` -> psycopg2-binary)."""
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def dev_only_distributions() -> set[str]:
    """The distributions `[dev]` brings (its own extras of this project expanded) that the core does not."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras, core = project["optional-dependencies"], {_name(r) for r in project["dependencies"]}
    found, todo = set(), list(extras["dev"])
    while todo:
        requirement = todo.pop()
        if _name(requirement) == project["name"]:  # budgetsweep[tensorboard,...]: those extras too
            for extra in re.search(r"\[(.*)\]", requirement).group(1).split(","):
                todo += extras[extra.strip()]
        else:
            found.add(_name(requirement))
    return found - core


def test_the_sweepers_import_without_what_dev_brings():
    dev_only = dev_only_distributions()
    assert {"pytest", "scipy", "tensorboard", "psycopg2-binary"} <= dev_only  # the extras were expanded
    code = f"import json, sys\nfor m in {SWEEPER_MODULES!r}: __import__(m)\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    loaded = {m.split(".")[0] for m in json.loads(done.stdout)}
    owners = importlib.metadata.packages_distributions()
    dev_loaded = {
        f"{module} ({dist})"
        for module in loaded
        for dist in owners.get(module, [])
        if dist.lower().replace("_", "-") in dev_only and module != "hydra_plugins"  # a namespace many share
    }
    assert not dev_loaded, f"importing the sweepers loads packages only [dev] installs: {sorted(dev_loaded)}"
