"""What a sweep shows while it runs: a progress bar with its rate and ETA on a terminal, none in
a log; one line per trial with its values to 4 significant digits."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

import pytest

from helpers import OPTUNA, env, install_app, run_foreign_app

SWEEP = (OPTUNA, "x=interval(-2,2)", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=0")


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux's `script` to give the sweep a terminal")
def test_on_a_terminal_the_sweep_shows_a_bar_up_to_n_trials(tmp_path):
    script = install_app("xy", tmp_path)
    command = shlex.join([sys.executable, str(script), "-m", *SWEEP])
    # a terminal of 120 columns (a pseudo-terminal of script's has none set)
    r = subprocess.run(
        ["script", "-qec", f"stty cols 120 rows 40; {command}", "/dev/null"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:]
    assert "sweep: 100%|" in r.stdout and "3/3 [" in r.stdout


def test_in_a_log_there_is_no_bar_and_each_trial_is_one_short_line(tmp_path):
    r = run_foreign_app(tmp_path, "xy", *SWEEP)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert "sweep:" not in out and "%|" not in out
    launched = [line.split("] ", 1)[1] for line in out.splitlines() if ": launching: x=" in line]
    assert len(launched) == 3
    for line in launched:
        value = line.rsplit("x=", 1)[1]
        assert len(value.lstrip("-").replace(".", "").lstrip("0")) <= 4, line  # 4 significant digits


def test_the_launchers_lines_show_no_override_of_ours(tmp_path):
    (tmp_path / "o").mkdir()
    optuna = run_foreign_app(tmp_path / "o", "xy", *SWEEP)
    assert optuna.returncode == 0, optuna.stderr[-2000:]
    out = optuna.stdout + optuna.stderr
    # the sweeper's own line per trial says it all: none of the launcher's, no internal override
    assert "Launching" not in out and "\t#" not in out and "env_set" not in out and "BUDGETSWEEP_CLAIM" not in out
    (tmp_path / "a").mkdir()
    ablation = run_foreign_app(tmp_path / "a", "xy", "hydra/sweeper=ablation", "x=-1,1")
    assert ablation.returncode == 0, ablation.stderr[-2000:]
    lines = [line.split("] ", 1)[-1] for line in (ablation.stdout + ablation.stderr).splitlines()]
    assert [line for line in lines if line.lstrip().startswith("#")] == [
        "\t#0 : (the baseline config)",
        "\t#1 : x=-1",
        "\t#2 : x=1",
    ]
    assert not any("env_set" in line or line.startswith("Launching") for line in lines)
