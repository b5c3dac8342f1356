"""analysis/ where a day of real use broke it, and no side effects at import.

- A PostgreSQL study recorded by our sweeper is read with the same driver the sweeper used
  (`budgetsweep.contract.storage.connect_url`), not the one SQLAlchemy picks for a bare `postgresql://`.
- The storage password reaches no terminal and no file: an unreadable study is reported with
  the masked URL, whether the password was in `--storage` or in $BUDGETSWEEP_STORAGE_PASSWORD.
- A study without a completed trial (still in its first trial, stopped, or all failed) is
  summarized, not a crash.
- `import analysis` (and drawing our charts) leaves matplotlib's backend and pyplot alone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from budgetsweep.contract.layouts import StudyRecord, write_study
from budgetsweep.contract.storage import PASSWORD_ENV, connect_url, mask

from helpers import ROOT

PASSWORD = "pw-Zr8-not-for-reports"


def run_analysis(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "budgetsweep.analysis", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_secret_nowhere(proc: subprocess.CompletedProcess, out: Path) -> None:
    assert PASSWORD not in proc.stdout and PASSWORD not in proc.stderr, proc.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


# --- the password ------------------------------------------------------


def test_password_given_in_storage_url_is_masked_in_the_warning_and_report(tmp_path):
    url = f"postgresql://someone:{PASSWORD}@127.0.0.1:{free_port()}/nodb"  # nothing listens there
    out = tmp_path / "out"
    proc = run_analysis("--storage", url, "--study", "s", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (warning,) = [line for line in proc.stderr.splitlines() if line.startswith("analysis: warning:")]
    assert "someone:***@127.0.0.1" in warning and "study not readable" in warning
    assert "someone:***@127.0.0.1" in (out / "report.md").read_text()
    assert_secret_nowhere(proc, out)


def test_password_from_the_environment_stays_out_of_the_warning_and_report(tmp_path):
    # What our sweeper records: the URL with the password masked; the password in the environment.
    study_dir = tmp_path / "optuna" / "s"
    write_study(study_dir, StudyRecord(f"postgresql://someone:***@127.0.0.1:{free_port()}/nodb", "s", "maximize", 4))
    proc = run_analysis(str(study_dir), **{PASSWORD_ENV: PASSWORD})
    assert proc.returncode == 0, proc.stderr
    assert "someone:***@127.0.0.1" in proc.stderr and "study not readable" in proc.stderr
    assert_secret_nowhere(proc, study_dir / "analysis")


# --- a study with no completed trial -----------------------------------


@pytest.mark.parametrize(
    "states", [[], [TrialState.FAIL, TrialState.PRUNED, TrialState.RUNNING]], ids=["no trial", "none completed"]
)
def test_study_without_a_completed_trial_is_summarized(tmp_path, states):
    study_dir = tmp_path / "optuna" / "early"
    study_dir.mkdir(parents=True)
    url = f"sqlite:///{study_dir / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="early", storage=url, direction="maximize")
    for state in states:
        trial = study.ask()
        trial.suggest_int("model.C", 8, 64)
        if state != TrialState.RUNNING:  # a sweep still in its trial: left running
            study.tell(trial, None, state=state)
    write_study(study_dir, StudyRecord(url, "early", "maximize", 10))

    proc = run_analysis(str(study_dir))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    counts = "1 pruned, 0 infeasible, 1 failed, 1 other" if states else "0 pruned, 0 infeasible, 0 failed"
    assert f"{len(states)} trials: 0 complete, {counts}." in proc.stdout
    assert "No feasible completed trial." in proc.stdout
    report = (study_dir / "analysis" / "report.md").read_text()
    assert "No feasible completed trial." in report
    trials_csv = (study_dir / "analysis" / "optuna_early_trials.csv").read_text()
    assert trials_csv.count("\n") == (1 + len(states) if states else 1)


# --- PostgreSQL with the project's [postgres] extra --------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_study_is_read_with_the_sweepers_driver(tmp_path):
    from helpers import postgres_server

    with postgres_server(PASSWORD) as url:
        study = optuna.create_study(study_name="pg", storage=connect_url(url), direction="maximize")
        for value in (0.5, 0.75):
            trial = study.ask()
            trial.suggest_int("model.C", 8, 64)
            study.tell(trial, value)
        study_dir = tmp_path / "optuna" / "pg"
        write_study(study_dir, StudyRecord(mask(url), "pg", "maximize", 2))  # as our sweeper records it
        proc = run_analysis(str(study_dir), **{PASSWORD_ENV: PASSWORD})
    assert proc.returncode == 0, proc.stderr
    assert "analysis: warning" not in proc.stderr, proc.stderr
    assert "Study 'pg' (maximize): 2 trials: 2 complete" in proc.stdout
    assert "Best feasible trial #1: value 0.75 (" in (study_dir / "analysis" / "report.md").read_text()
    assert_secret_nowhere(proc, study_dir / "analysis")


# --- no global side effects --------------------------------------------------------------


def test_import_and_charts_leave_matplotlib_alone(tmp_path):
    # A chosen backend must survive `import analysis` and our charts; pyplot is never imported.
    code = f"""
import sys
from pathlib import Path
sys.path.insert(0, {str(ROOT / "tests")!r})
from budgetsweep import analysis
import matplotlib
assert "matplotlib.pyplot" not in sys.modules, "imported pyplot"
from helpers import ablation_job
for job, value in enumerate((0.5, 0.6)):
    ablation_job(Path({str(tmp_path)!r}), str(job), factor="model.C" if job else None, value="32" if job else None,
                 model={{"C": 32}} if job else None, val=value, params=1)
files = analysis.write(analysis.analyze([{str(tmp_path)!r}]))
assert [f.name for f in files if f.suffix == ".png"], files
assert "matplotlib.pyplot" not in sys.modules, "drawing imported pyplot"
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MPLBACKEND": "svg"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
