"""report.html (analysis/html_report.py) opened in headless Chromium: its figures render, its
tables sort, and viewing it sends nothing over the network.

One Chromium launch for all of it; skipped only where no Chromium binary is installed
(Debian: apt-get install chromium).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest

from budgetsweep.analysis import analyze, write
from budgetsweep.contract.layouts import StudyRecord, write_study

from helpers import make_run

# (C, lr, params, val acc): a two-factor grid. Sizes whose text order is not their numeric order
# ("150,000" < "480,000" < "90,000") show that sorting reads the numbers.
GRID = [
    (8, 0.001, 90_000, 0.40),
    (8, 0.01, 90_000, 0.42),
    (16, 0.001, 150_000, 0.55),
    (16, 0.01, 150_000, 0.50),
    (32, 0.001, 480_000, 0.61),
    (32, 0.01, 480_000, 0.58),
]
FIGURES = 3  # objective vs params, the grid's heatmap, the study's history

# Appended to a copy of the page: once it has loaded, click the best-runs table's "params"
# header (what a reader does) and write the column as it then reads into the page; and make one
# request of its own, to a closed local port, which the network log must show (and only it).
CONTROL = "http://127.0.0.1:9/control"
CHECK = (
    """<script>
window.addEventListener("load", function () {
  fetch("%s").catch(function () {});
  var table = document.querySelector("table.sortable");
  var heads = Array.from(table.tHead.rows[0].cells);
  var col = heads.findIndex(function (th) { return th.textContent === "params"; });
  heads[col].click();
  var out = document.createElement("pre");
  out.id = "sort-check";
  out.textContent = JSON.stringify(Array.from(table.tBodies[0].rows).map(function (r) {
    return r.cells[col].textContent;
  }));
  document.body.appendChild(out);
});
</script>"""
    % CONTROL
)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no Chromium binary (chromium, chromium-browser) found: apt-get install chromium")
    return found


def _study(folder: Path) -> None:
    """A tiny Optuna study as our sweeper records it: completed, pruned and over-budget trials."""
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="tiny", storage=url, direction="maximize")
    for c, state, value, constraint in [(16, "COMPLETE", 0.6, -1), (64, "PRUNED", None, 1), (24, "COMPLETE", 0.7, -1)]:
        study.enqueue_trial({"model.C": c})  # ask() then suggests it
        trial = study.ask()
        trial.suggest_int("model.C", 8, 64)
        trial.set_constraint("params", constraint)
        study.tell(trial, value, state=optuna.trial.TrialState[state])
    write_study(folder, StudyRecord(url, "tiny", "maximize", 3))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("html")
    for job, (c, lr, params, val) in enumerate(GRID):
        overrides = [f"model.C={c}", f"optimizer.lr={lr}"]
        make_run(root / "grid", str(job), model={"C": c}, lr=lr, params=params, val=val, overrides=overrides)
    _study(root / "study")
    files = write(analyze([root / "grid", root / "study"]), root / "out", make_plots=False)
    assert root / "out" / "report.html" in files
    return root / "out" / "report.html"


def test_the_page_carries_plotly_once_and_loads_nothing(report):
    text = report.read_text(encoding="utf-8")
    assert text.count("Plotly.newPlot(") == FIGURES
    # plotly.js opens with its banner comment: written once, whatever the number of figures
    assert len(re.findall(r"plotly\.js v\d", text)) == 1
    assert not re.search(r"<(script|link|img)[^>]*\b(src|href)=", text)  # nothing to fetch


def test_chromium_renders_the_figures_sorts_a_table_and_stays_offline(report, tmp_path):
    chromium = _chromium()
    page = report.with_name("check.html")  # beside report.html: the same folder, the same page
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    net_log = tmp_path / "net.json"
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--no-first-run",
            "--disable-background-networking",
            "--virtual-time-budget=10000",
            "--proxy-server=127.0.0.1:9",  # any request would go to a closed port: none leaves
            f"--log-net-log={net_log}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    # (1) each figure's div holds plotly's drawing (the page's scripts removed: their text is no proof)
    drawn = re.sub(r"<script\b.*?</script>", "", dom, flags=re.S).split('id="figure-')[1:]
    assert len(drawn) == FIGURES and all('class="main-svg"' in d for d in drawn)
    # (2) the page's only request is the control: the log records what the page asks for, and
    # it asked for nothing else (files it reads from disk are no network requests). The browser's
    # own background requests (update and time checks) carry no origin, and also meet the dead proxy.
    events = json.loads(net_log.read_text())["events"]
    asked = [e["params"] for e in events if "url" in e.get("params", {})]
    by_page = {p["url"] for p in asked if p.get("initiator", "not an origin") != "not an origin"}
    assert by_page == {CONTROL}
    # (3) the click sorted the column by its numbers, ascending
    found = re.search(r'<pre id="sort-check">(.*?)</pre>', dom, flags=re.S)
    assert found, "the injected click did not run"
    column = json.loads(html.unescape(found.group(1)))
    assert column == sorted(column, key=lambda s: int(s.replace(",", ""))) != sorted(column)
