"""Docs that cannot drift: every `python run.py ...` and `budgetsweep analyze ...` command in the
bash blocks of README.md and of the site's pages (docs/*.md) runs here, cut down to seconds
(synthetic data, one epoch, a tiny model, two trials). A command shown on several pages runs once.

A renamed key, preset or option breaks this test. Commands that need what a test machine does
not have (a SLURM cluster, a remote PostgreSQL server) are checked for composition only: the
same overrides, not swept, with `--cfg hydra`, which fails on an unknown key or option.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, TINY_DOCUMENTED, run_apps_together, run_cases_together

README = ROOT / "README.md"
# README and the site's own pages; docs/examples/ holds committed reports, whose commands need real data
DOC_PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

SMALL_MODEL = ["model.N=2", "model.B=1", "model.C=8"]  # only where the command does not set the key
TWO_TRIALS = ["hydra.sweeper.n_trials=2"]
NEEDS_A_CLUSTER = ("hydra/launcher=submitit_slurm", "postgresql://")
ANALYZE = ["budgetsweep", "analyze"]


def bash_blocks(page: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)


def doc_commands() -> list[list[str]]:
    """The run.py and analysis commands of the pages' bash blocks, as argument lists, each once.
    `python -m budgetsweep.analysis ARGS` is the same command as `budgetsweep analyze ARGS`."""
    commands = []
    for page in DOC_PAGES:
        for block in bash_blocks(page):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                for part in re.split(r"&&|;", line):
                    words = shlex.split(part, comments=True)
                    while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value python ...
                        words = words[1:]
                    if words[:3] == ["python", "-m", "budgetsweep.analysis"]:
                        words = [*ANALYZE, *words[3:]]
                    if (words[:2] == ["python", "run.py"] or words[:2] == ANALYZE) and words not in commands:
                        commands.append(words)
    return commands


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _is_sweep(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        (parsed,) = OverridesParser.create().parse_overrides([override])
    except Exception:  # a placeholder such as `experiment=...`: not a sweep
        return False
    return parsed.is_sweep_override()


def _fill_placeholders(args: list[str]) -> list[str]:
    """The pages' placeholders (`experiment=...`, `data.path=...`) -> values that exist here."""
    out = []
    for a in args:
        if a == "experiment=...":
            out.append("experiment=search_small")
        elif _key(a) in ("data", "data.path"):  # the data is replaced by TINY_DOCUMENTED's synthetic set
            continue
        else:
            out.append(a)
    return out


def run_args(args: list[str]) -> list[str]:
    """A run.py command of the pages cut down to seconds."""
    args = _fill_placeholders(args)
    keys = {_key(a) for a in args}
    swept = {_key(a) for a in args if _is_sweep(a)}
    extra = [t for t in TINY_DOCUMENTED if _key(t) not in swept]
    extra += [m for m in SMALL_MODEL if _key(m) not in keys]
    if _selects_optuna(args):
        extra += TWO_TRIALS
    return args + extra


def _selects_optuna(args: list[str]) -> bool:
    """`hydra/sweeper=optuna` on the command line or in the chosen preset."""
    if "hydra/sweeper=optuna" in args:
        return True
    presets = [a.split("=", 1)[1] for a in args if _key(a) == "experiment"]
    return any(
        "override /hydra/sweeper: optuna" in (ROOT / "conf" / "experiment" / f"{p}.yaml").read_text()
        for p in presets
        if (ROOT / "conf" / "experiment" / f"{p}.yaml").is_file()
    )


def compose_args(args: list[str]) -> list[str]:
    """A command that needs a cluster: its overrides, not swept, printed with --cfg hydra."""
    kept = [a for a in _fill_placeholders(args) if a != "-m" and not _is_sweep(a)]
    return kept + ["--cfg", "hydra"]


def _env() -> dict:
    return {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


RUN_COMMANDS = [c for c in doc_commands() if c[1] == "run.py"]
ANALYSIS_COMMANDS = [c for c in doc_commands() if c[:2] == ANALYZE]


def test_the_pages_have_the_commands_this_test_runs():
    assert len(DOC_PAGES) >= 10  # README and the site's pages
    assert len(RUN_COMMANDS) >= 10 and len(ANALYSIS_COMMANDS) >= 3  # the extraction still finds them


def _command_line(command: list[str]) -> list[str]:
    """A run.py command's arguments, cut down to seconds (or composed only: a cluster's)."""
    args = command[2:]
    return compose_args(args) if any(m in a for a in args for m in NEEDS_A_CLUSTER) else run_args(args)


@pytest.fixture(scope="module")
def readme_runs(request, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """The run commands this pytest run selected, each in a folder of its own, run together."""
    return run_cases_together(
        request, tmp_path_factory, "test_readme_run_command", lambda params: _command_line(params["command"])
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", RUN_COMMANDS, ids=[" ".join(c[2:])[:80] or "(none)" for c in RUN_COMMANDS])
def test_readme_run_command(command, readme_runs, request):
    proc = readme_runs[request.node.callspec.id]
    assert proc.returncode == 0, f"{shlex.join(command)}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> Path:
    """A tiny grid sweep and a tiny Optuna study to point the pages' analysis commands at."""
    cwd = tmp_path_factory.mktemp("readme-analysis")
    grid = ["-m", "model.C=8,16", "hydra.sweep.dir=outputs/sweeps/grid"]
    study = [
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.study_name=my-study",
        "hydra.sweeper.params=null",
        "optimizer.lr=interval(0.001,0.01)",
    ]
    for proc in run_apps_together([(run_args(args), cwd) for args in (grid, study)]):
        assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd


def analysis_args(args: list[str], cwd: Path) -> list[str]:
    """The pages' folders and storage placeholders -> the tiny sweeps made here."""
    study_dir = "outputs/optuna/my-study"
    replace = {"--storage": f"sqlite:///{cwd / study_dir / 'study.db'}", "--study": "my-study"}
    out, option = [], None
    for a in args:
        if a.startswith("--"):
            option = a
        elif option in replace:
            a = replace[option]
        elif option is None and not (cwd / a).exists():  # a SWEEP_DIR that a page only names
            a = study_dir if "optuna" in a else "outputs/sweeps/grid"
        out.append(a)
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", ANALYSIS_COMMANDS, ids=[" ".join(c[2:])[:80] or "(none)" for c in ANALYSIS_COMMANDS]
)
def test_readme_analysis_command(command, sweeps):
    # `python -m budgetsweep` is the `budgetsweep` console script
    proc = _run(["-m", "budgetsweep", "analyze", *analysis_args(command[2:], sweeps), "--no-plots"], sweeps)
    assert proc.returncode == 0, f"{shlex.join(command)}\n{proc.stderr[-3000:]}"
    assert "report.md" in proc.stdout
