"""The examples in the library's docstrings run, by the modules' `budgetsweep.*` names: every module
of an installed package whose source has an example (`>>>`) is tested, so a new one is found
without being listed here."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

from helpers import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib


def modules_with_examples() -> list[str]:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = []
    for package in packages:
        # Where the installed package really is (pyproject's package-dir maps it to its folder).
        for folder in importlib.import_module(package).__path__:
            for source in sorted(Path(folder).glob("*.py")):
                if ">>>" in source.read_text(encoding="utf-8"):
                    name = package if source.stem == "__init__" else f"{package}.{source.stem}"
                    found.append(name)
    return found


def runnable_examples(module: object) -> tuple[int, int]:
    """(examples doctest finds in the module, those of them not marked `# doctest: +SKIP`)."""
    examples = [e for test in doctest.DocTestFinder().find(module) for e in test.examples]
    return len(examples), sum(not e.options.get(doctest.SKIP, False) for e in examples)


MODULES = modules_with_examples()


@pytest.mark.parametrize("name", ["budgetsweep.models.budget", "budgetsweep.contract.sweep"])
def test_examples_are_found(name: str) -> None:
    # Modules known to have examples that run when this test was written; more may come.
    assert name in MODULES, MODULES
    assert runnable_examples(importlib.import_module(name))[1] > 0


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    found, runnable = runnable_examples(module)
    assert found > 0, f"{name}: has '>>>' but doctest finds no example (not in a docstring?)"
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (output above)"
    # An example that needs a sweep folder is an illustration, marked +SKIP on every line;
    # any other example runs.
    assert result.attempted == runnable, (name, result, runnable)
