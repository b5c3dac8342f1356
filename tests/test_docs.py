"""README and the site's pages (docs/*.md) name only what exists: the two commands CI runs open
README, and every module, function, command, repository file and page they mention is there.
Renaming a module or moving a file without the docs fails here, in seconds (the commands
themselves run in test_readme.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import yaml

from budgetsweep.cli import COMMANDS

from helpers import ROOT

README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCS = [README, *PAGES]

# What CI runs, in this order: README must show exactly these.
INSTALL = 'python -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && python run.py'
CHECK = ". .venv/bin/activate && pre-commit run --all-files && python -m pytest -q"


def _text(page: Path) -> str:
    return page.read_text()


def _bash_lines(page: Path) -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", _text(page), re.S):
        lines += [line for line in re.sub(r"\\\n\s*", " ", block).splitlines() if line.strip()]
    return lines


def test_readme_is_a_front_door_that_opens_with_the_two_commands():
    assert len(_text(README).splitlines()) < 300
    commands = [line for line in _bash_lines(README) if not line.lstrip().startswith("#")]
    assert commands[:2] == [INSTALL, CHECK]


def _resolves(name: str) -> bool:
    """`budgetsweep.a.b.c`: a module, or an attribute of the longest importable prefix."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            obj = importlib.import_module(module)
            for attr in parts[i:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


def _dotted_names() -> dict[str, str]:
    names = {}
    for page in DOCS:
        for name in re.findall(r"\bbudgetsweep(?:\.[A-Za-z_]\w*)+", _text(page)):
            names.setdefault(name, page.name)
    return names


def test_every_budgetsweep_name_the_docs_mention_exists():
    names = _dotted_names()
    assert len(names) >= 15  # the search still finds them
    missing = [f"{name} ({page})" for name, page in names.items() if not _resolves(name)]
    assert not missing, f"named in the docs but not importable: {missing}"


# A path inside the repository, written in backticks: `sweeper/sizing.py`, `conf/model/`, `tests/test_x.py`.
TOP_LEVEL = ("analysis", "benchmarks", "budgetsweep", "conf", "contract", "data", "docs", "examples", "models")
TOP_LEVEL += ("sweeper", "tests", "trainer")
PATH = re.compile(r"`((?:%s)/[\w./-]*)`" % "|".join(TOP_LEVEL))


def test_every_repository_path_the_docs_mention_exists():
    paths = {(m, page.name) for page in DOCS for m in PATH.findall(_text(page))}
    assert len(paths) >= 20
    # test files are also named bare, `test_train.py`: those are under tests/
    paths |= {(f"tests/{m}", page.name) for page in DOCS for m in re.findall(r"`(test_\w+\.py)`", _text(page))}
    missing = sorted(f"{p} ({page})" for p, page in paths if not (ROOT / p).exists())
    assert not missing, f"named in the docs but not in the repository: {missing}"


def test_every_command_the_docs_show_exists():
    """`budgetsweep COMMAND` is a command of the console script; `python -m MODULE` imports."""
    shown = set()
    for page in DOCS:
        for line in _bash_lines(page):
            for part in re.split(r"&&|;|\|", line):
                words = shlex.split(part, comments=True)
                if words[:1] == ["budgetsweep"]:
                    shown.add(("budgetsweep", words[1], page.name))
                elif words[:2] == ["python", "-m"]:
                    shown.add(("module", words[2], page.name))
    assert {w for kind, w, _ in shown if kind == "budgetsweep"} >= {"analyze", "evaluate", "dashboard"}
    unknown = [f"budgetsweep {w} ({p})" for kind, w, p in shown if kind == "budgetsweep" and w not in COMMANDS]
    unknown += [f"python -m {w} ({p})" for kind, w, p in shown if kind == "module" and not importlib.util.find_spec(w)]
    assert not unknown, f"commands the docs show that do not exist: {unknown}"


def _nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in _nav_pages(v)]
    return [p for item in nav for p in _nav_pages(item)]


def test_the_site_lists_every_page_and_readme_links_resolve():
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    assert sorted(_nav_pages(config["nav"])) == sorted(p.name for p in PAGES)
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _text(README))
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10
    assert not [link for link in local if not (ROOT / link).exists()], "README links to files that are not there"


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_no_page_shows_an_old_command_name(page):
    """The commands before one namespace: bare top-level modules that no longer import."""
    old = re.findall(r"python -m (?:analysis|trainer\.evaluate|data\.make_sample|trainer\.dashboard)\b", _text(page))
    assert not old, f"{page.name}: {old}"
