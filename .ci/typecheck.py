"""Type-check the installed `budgetsweep.*` packages with mypy (settings: pyproject's [tool.mypy]).

Why a script: the import names are `budgetsweep.contract`, `budgetsweep.sweeper`, ... while the
folders are `contract/`, `sweeper/`, ... (pyproject's [tool.setuptools.package-dir]), and an editable
install maps one to the other with an import hook that mypy does not run. So this builds that
layout once as symbolic links under `.mypy_cache/packages/` (ignored by git, rebuilt on every run),
points MYPYPATH at it, runs mypy, and writes each reported path back as the repository's own file.

    python .ci/typecheck.py                        # the packages listed in [tool.mypy]
    python .ci/typecheck.py -p budgetsweep.models  # any other mypy arguments
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / ".mypy_cache" / "packages"


def package_folders(pyproject: dict) -> dict[str, Path]:
    """Each listed package's folder, by setuptools' package-dir rule (the nearest mapped parent)."""
    setup = pyproject["tool"]["setuptools"]
    mapped = setup.get("package-dir", {})
    folders = {}
    for name in setup["packages"]:
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            parent = ".".join(parts[:i])
            if parent in mapped:
                folders[name] = ROOT / mapped[parent] / Path(*parts[i:])
                break
        else:
            folders[name] = ROOT / Path(*parts)
    return folders


def build_tree(folders: dict[str, Path]) -> dict[Path, Path]:
    """Links the import layout under TREE; returns {link: real folder} for writing paths back."""
    shutil.rmtree(TREE, ignore_errors=True)
    links = {}
    for name in sorted(folders, key=lambda n: n.count(".")):
        where = TREE / Path(*name.split("."))
        if where.exists():  # inside a parent's linked folder already
            continue
        children_elsewhere = any(
            other.startswith(name + ".") and not folders[other].is_relative_to(folders[name]) for other in folders
        )
        if children_elsewhere:  # a real folder holding this package's own files and the children's links
            where.mkdir(parents=True)
            for source in folders[name].glob("*.py*"):
                (where / source.name).symlink_to(source)
        else:
            where.parent.mkdir(parents=True, exist_ok=True)
            where.symlink_to(folders[name], target_is_directory=True)
        links[where] = folders[name]
    return links


def main(argv: list[str]) -> int:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    links = build_tree(package_folders(pyproject))
    env = {**os.environ, "MYPYPATH": str(TREE)}
    proc = subprocess.run([sys.executable, "-m", "mypy", *argv], cwd=ROOT, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    # Longest link first, so a package's own link wins over its parent folder's.
    for link in sorted(links, key=lambda p: len(str(p)), reverse=True):
        for shown in (str(link.relative_to(ROOT)), str(link)):
            out = out.replace(shown + os.sep, os.path.relpath(links[link], ROOT) + os.sep)
    sys.stdout.write(out)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
