"""An Analysis as one HTML page: report.html, the interactive twin of report.md.

The page is self-contained and works offline: plotly.js is written into it once (about 5 MB),
every figure only calls it, and nothing is fetched when it is viewed. It holds the same
information as report.md and its PNGs: the text (`report.describe_*`), the tables (the display
DataFrames of `tables`, sortable by clicking a header: a few lines of inline JavaScript), and
three figures with hover (the objective against size, each study's history, a two-factor
grid's heatmap). Pure rendering, like `report`: nothing here computes a result or writes a file.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline

from . import tables
from .best import Score, best_run, objective_name, ranked
from .best import score as score_of
from .grid import Grid
from .pipeline import Analysis
from .plots import best_so_far, pareto_front
from .report import describe_best_run, describe_combine, describe_study, status_counts
from .study import StudySummary

HEIGHT = 480  # px of each figure; the width follows the page
BLUE, ORANGE, RED, GREY, GREEN = "#1f77b4", "#ff7f0e", "#d62728", "#7f7f7f", "#2ca02c"

# Clicking a header sorts its table by that column, again reverses it. A cell sorts by the number
# it starts with ("71.23 ± 0.45", "1,234", "+0.50", "16 (baseline)") when both cells have one, else
# as text with digits compared as numbers ("run 8" before "run 12"); empty cells stay last.
SORT_SCRIPT = """
document.addEventListener("click", function (event) {
  var th = event.target.closest("table.sortable th");
  if (!th) return;
  var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
  var up = th.getAttribute("aria-sort") !== "ascending";
  Array.from(th.parentNode.cells).forEach(function (h) { h.removeAttribute("aria-sort"); });
  th.setAttribute("aria-sort", up ? "ascending" : "descending");
  var key = function (row) {
    var text = row.cells[col].textContent.trim();
    var number = text.replace(/,/g, "").match(/^[+-]?(\\d+\\.?\\d*|\\.\\d+)(e[+-]?\\d+)?/i);
    return {text: text, number: number ? parseFloat(number[0]) : NaN};
  };
  var rows = Array.from(body.rows).map(function (row) { return [key(row), row]; });
  rows.sort(function (a, b) {
    a = a[0]; b = b[0];
    if (!a.text || !b.text) return !a.text - !b.text;
    var d = isNaN(a.number) || isNaN(b.number)
      ? a.text.localeCompare(b.text, undefined, {numeric: true}) : a.number - b.number;
    return up ? d : -d;
  });
  rows.forEach(function (pair) { body.appendChild(pair[1]); });
});
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; padding: 0 1em; color: #222; }
table.sortable { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
table.sortable { display: block; max-width: 100%; overflow-x: auto; }  /* a wide table scrolls */
table.sortable th, table.sortable td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
table.sortable th { background: #f3f3f3; cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
.note { color: #8a5a00; }
"""


def page(analysis: Analysis, study_front: list[str] | None = None, untrained: list[float] | None = None) -> str:
    """report.html of `analysis`. `study_front`, `untrained`: as for `plots.accuracy_vs_params`
    (the studies' Pareto-front run folders, ringed; sizes of suggestions never trained)."""
    figures: list[go.Figure] = []
    body = [_header(analysis)]
    df = analysis.runs
    if df is not None:
        body += _runs(df, analysis.budget, figures, study_front or [], untrained or [])
    if analysis.grid is not None:
        body += _grid(analysis.grid, figures)
    if analysis.ablation is not None:
        body += _ablation(analysis)
    if analysis.combined is not None:
        body += ["<h2>Combine the best</h2>", _lines(describe_combine(analysis.combined))]
    for summary in analysis.studies:
        body += _study(summary, figures)
    title = html.escape(", ".join(p.name for p in analysis.paths) or "Optuna study")
    # plotly.js once, before the first figure's call to it; none at all when nothing is drawn
    script = f"<script>{plotly.offline.get_plotlyjs()}</script>" if figures else ""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>Sweep analysis: {title}</title>",
            f"<style>{STYLE}</style>",
            script,
            f"<script>{SORT_SCRIPT}</script>",
            "</head><body>",
            *[_place(part, figures) for part in body],
            "</body></html>",
        ]
    )


def _header(analysis: Analysis) -> str:
    sources = ", ".join(f"<code>{html.escape(str(p))}</code>" for p in analysis.paths) or "(study only)"
    title = html.escape(", ".join(p.name for p in analysis.paths) or "Optuna study")
    out = [f"<h1>Sweep analysis: {title}</h1>", f"<p>Generated by <code>budgetsweep analyze</code> from {sources}.</p>"]
    if analysis.runs is not None:
        out.append(f"<p><b>{len(analysis.runs)} runs:</b> {html.escape(status_counts(analysis.runs))}.</p>")
    if analysis.warnings:
        items = "".join(f"<li><code>{html.escape(w)}</code></li>" for w in analysis.warnings)
        out.append(f"<details><summary>{len(analysis.warnings)} warning(s) while reading</summary><ul>{items}</ul>")
        out[-1] += "</details>"
    return "\n".join(out)


# A part of the body is HTML text, or an int: the index of the figure drawn there.
def _place(part: str | int, figures: list[go.Figure]) -> str:
    if isinstance(part, str):
        return part
    return figures[part].to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"figure-{part}",  # fixed ids: the same analysis gives the same page
        default_height=f"{HEIGHT}px",
        config={"displaylogo": False},
    )


def _figure(figures: list[go.Figure], fig: go.Figure) -> int:
    fig.update_layout(height=HEIGHT, template="plotly_white", hoverlabel={"align": "left"})
    figures.append(fig)
    return len(figures) - 1


def table(display: pd.DataFrame) -> str:
    """A display DataFrame (`tables.*_display`: text cells) as a sortable HTML table."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in display.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(v))}</td>" for v in row) + "</tr>"
        for row in display.itertuples(index=False)
    )
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def _lines(text: str) -> str:
    """Plain report text as paragraphs; an indented line (a command to run) as code."""
    out = []
    for line in text.splitlines():
        if line.startswith("    "):
            out.append(f"<pre><code>{html.escape(line.strip())}</code></pre>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    return "\n".join(out)


def _runs(
    df: pd.DataFrame, budget: int | None, figures: list, study_front: list[str], untrained: list[float]
) -> list[str | int]:
    score = score_of(df)
    out: list[str | int] = []
    fig = objective_vs_params(df, budget, score, study_front, untrained)
    if fig is not None:
        what = "Accuracy" if score.name == "val_acc" else html.escape(score.name)
        out += [f"<h2>{what} against size</h2>", _figure(figures, fig)]
    top = ranked(df).head(10)  # the report's table: best first, its first row the best run
    if len(top):
        out += ["<h3>Best runs</h3>", table(tables.runs_display(top, objective_name(df)))]
        out.append(_lines(describe_best_run(df)))
    others = df[df["status"] != "completed"]
    if len(others):
        shown = tables.runs_display(others)
        shown = shown[[c for c in ("run", "status", "params") if c in shown]]
        shown["reason"] = others["error"].fillna("") if "error" in others else ""
        out += ["<h3>Runs that did not complete</h3>", table(shown)]
    return out


def _numbers(df: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(df[column], errors="coerce") if column in df else pd.Series(np.nan, index=df.index)


def objective_vs_params(
    df: pd.DataFrame,
    budget: int | None,
    score: Score,
    study_front: list[str] | None = None,
    untrained: list[float] | None = None,
) -> go.Figure | None:
    """`plots.accuracy_vs_params` with hover: each run's label, values and folder."""
    params, value = _numbers(df, "params"), _numbers(df, score.column)
    measured = params.notna() & value.notna()
    done = df[measured & (df["status"] == "completed")]
    if done.empty:
        return None
    scale = 100.0 if score.percent else 1.0
    unit = "%" if score.percent else ""
    fig = go.Figure()

    def points(runs: pd.DataFrame, name: str, marker: dict, y=None, yaxis: str = "y") -> None:
        fig.add_trace(
            go.Scatter(
                x=params[runs.index],
                y=scale * value[runs.index] if y is None else y,
                mode="markers",
                name=name,
                marker=marker,
                yaxis=yaxis,
                customdata=np.column_stack(
                    [
                        runs["label"].astype(str),
                        [score.show(v) + unit if pd.notna(v) else "" for v in value[runs.index]],
                        runs["run_dir"].astype(str) if "run_dir" in runs else [""] * len(runs),
                        runs["status"].astype(str),
                    ]
                ),
                hovertemplate=(
                    "<b>%{customdata[0]}</b> (%{customdata[3]})<br>params %{x:,}<br>"
                    f"{html.escape(score.name)} %{{customdata[1]}}<br>%{{customdata[2]}}<extra></extra>"
                ),
            )
        )

    points(done, "completed run", {"color": BLUE, "size": 8, "opacity": 0.75})
    sign = 1.0 if score.direction == "maximize" else -1.0
    front = pareto_front(params[done.index], sign * value[done.index])
    fig.add_trace(
        go.Scatter(
            x=params[front],
            y=scale * value[front],
            mode="lines+markers",
            line={"shape": "hv", "color": ORANGE},
            marker={"symbol": "circle-open", "size": 13, "color": ORANGE},
            name="Pareto front",
            hoverinfo="skip",
        )
    )
    stopped = df[measured & (df["status"] == "pruned")]
    if len(stopped):
        points(stopped, "pruned (value before the stop)", {"symbol": "circle-open", "size": 8, "color": GREY})
    if study_front and "run_dir" in done:
        ringed = done[done["run_dir"].map(lambda d: str(Path(d).resolve())).isin(study_front)]
        diamond = {"symbol": "diamond-open", "size": 14, "color": GREEN, "line": {"width": 2}}
        points(ringed, "study's Pareto front (best_trials)", diamond)
    # Sized but never trained: crosses along the bottom (a second y axis in [0, 1]), not dropped.
    over = df[params.notna() & (df["status"] == "over_budget")]
    cross = {"symbol": "x", "size": 9, "color": RED}
    if len(over):
        points(over, "over budget (not trained)", cross, y=[0.0] * len(over), yaxis="y2")
    if untrained:
        fig.add_trace(
            go.Scatter(
                x=untrained,
                y=[0.0] * len(untrained),
                yaxis="y2",
                mode="markers",
                marker=cross,
                name="study suggestion over budget (not trained)",
                hovertemplate="params %{x:,}: over the budget, never trained<extra></extra>",
            )
        )
    if budget:
        line = {"color": RED, "dash": "dash", "width": 1}
        fig.add_vline(x=budget, line=line)
        # a shape has no legend entry: an empty trace gives it one
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, name=f"budget {budget:,}"))
    best = best_run(df)  # the run report.md and `budgetsweep evaluate` name
    if best is not None and best.name in done.index:
        fig.add_annotation(
            x=np.log10(float(params[best.name])),  # a log axis places annotations by log10
            y=scale * float(value[best.name]),
            text=f"best: {html.escape(str(best['label']))}",
            showarrow=True,
            arrowhead=2,
            ax=-40,
            ay=-30,
        )
    ylabel = "best validation accuracy (%)" if score.name == "val_acc" else f"{score.label} ({score.better})"
    what = "Accuracy" if score.name == "val_acc" else score.name
    fig.update_layout(
        title=f"{what} vs size ({len(done)} of {len(df)} runs completed)",
        xaxis={"type": "log", "title": "trainable parameters (log scale)"},
        yaxis={"title": ylabel},
        yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _grid(grid: Grid, figures: list) -> list[str | int]:
    score = grid.score
    factors = ", ".join(f"<code>{html.escape(f)}</code>" for f in grid.factors)
    out: list[str | int] = [
        "<h2>Grid</h2>",
        f"<p>Factors: {factors}. <code>{html.escape(score.name)}</code> ({score.better}) is the mean ± std "
        "(ddof=1) over each cell's completed repeats, <code>n</code> of them.</p>",
    ]
    out += [f'<p class="note">{html.escape(note)}</p>' for note in grid.notes]
    if grid.pivot is not None:
        a, b = (html.escape(f) for f in grid.factors)
        out.append(f"<h3><code>{a}</code> × <code>{b}</code></h3>")
        fig = grid_heatmap(grid)
        if fig is not None:
            out.append(_figure(figures, fig))
        out.append(table(tables.pivot_display(grid)))
    out += ["<h3>Every cell, best first</h3>", table(tables.grid_display(grid))]
    return out


def grid_heatmap(grid: Grid) -> go.Figure | None:
    """`plots.grid_heatmap` with hover: both factors' values and the cell's mean ± std."""
    if grid.pivot is None or grid.pivot.isna().all().all():
        return None
    score, pivot, std = grid.score, grid.pivot, grid.std
    scale = 100.0 if score.percent else 1.0
    data = scale * pivot.to_numpy(dtype=float)
    rows, columns = [str(r) for r in pivot.index], [str(c) for c in pivot.columns]
    shown = [
        [score.show(pivot.at[r, c], std.at[r, c] if std is not None else None) for c in pivot.columns]
        for r in pivot.index
    ]
    written = [[(f"{v:.1f}" if score.percent else f"{v:.3g}") if np.isfinite(v) else "" for v in row] for row in data]
    fig = go.Figure(
        go.Heatmap(
            z=np.where(np.isfinite(data), data, None),
            x=columns,
            y=rows,
            text=written,
            texttemplate="%{text}",
            customdata=shown,
            colorscale="Viridis",
            reversescale=score.direction != "maximize",  # the best cell is the brightest either way
            colorbar={"title": {"text": score.label}},
            hovertemplate=(
                f"{html.escape(grid.factors[0])}=%{{y}}<br>{html.escape(grid.factors[1])}=%{{x}}<br>"
                f"{html.escape(score.name)} %{{customdata}}<extra></extra>"
            ),
        )
    )
    best = np.nanargmax(data) if score.direction == "maximize" else np.nanargmin(data)
    i, j = np.unravel_index(best, data.shape)
    fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, line={"color": RED, "width": 3})
    fig.update_layout(
        title=f"{score.name}: mean over repeats, best outlined ({score.better})",
        # categories, even for numbers: each value its own row or column, in the pivot's order
        xaxis={"type": "category", "title": grid.factors[1]},
        yaxis={"type": "category", "title": grid.factors[0]},
    )
    return fig


def _ablation(analysis: Analysis) -> list[str | int]:
    abl = analysis.ablation
    score = abl.score
    base = ", ".join(f"<code>{html.escape(f'{f}={v}')}</code>" for f, v in abl.baseline.items())
    units = "in percentage points" if score.percent else "in its own units"
    out: list[str | int] = [
        "<h2>One-at-a-time ablations</h2>",
        f"<p>Baseline: {base}. <code>{html.escape(score.name)}</code> ({score.better}) is the mean ± std "
        f"(ddof=1) over the completed repeats, <code>n</code> of them; Δ is against the baseline, {units}.</p>",
    ]
    out += [f'<p class="note">{html.escape(note)}</p>' for note in abl.notes]
    for factor, numbers in abl.tables.items():
        out += [f"<h3><code>{html.escape(factor)}</code></h3>", table(tables.ablation_display(numbers, score))]
    return out


def _study(summary: StudySummary, figures: list) -> list[str | int]:
    out: list[str | int] = [
        f"<h2>Optuna study <code>{html.escape(summary.name)}</code></h2>",
        f"<p>Storage: <code>{html.escape(summary.storage)}</code>.</p>",
        _lines(describe_study(summary)),
    ]
    fig = optuna_history(summary)
    if fig is not None:
        out.append(_figure(figures, fig))
    if summary.pareto is not None and not summary.pareto.table.empty:
        out += ["<h3>Pareto front</h3>", table(tables.pareto_display(summary.pareto))]
    if len(summary.trials):
        out.append("<h3>Trials, best feasible first</h3>")
        out.append(table(tables.trials_display(summary.trials, summary.direction, summary.objective)))
    return out


def optuna_history(summary: StudySummary) -> go.Figure | None:
    """`plots.optuna_history` with hover: each trial's number, value and status in words."""
    import optuna

    study = summary.study
    if study is None or len(study.directions) > 1:
        return None
    State = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    if not any(t.state == State.COMPLETE for t in trials):
        return None
    words = dict(zip(summary.trials["number"], summary.trials["status"])) if "status" in summary.trials else {}
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    infeasible = [t for t in trials if any(v > 0 for v in t.constraints.values())]
    done = [t for t in trials if t.state == State.COMPLETE and t not in infeasible and t.value is not None]
    pruned = [t for t in trials if t.state == State.PRUNED and t not in infeasible and t.intermediate_values]
    name = html.escape(summary.objective)
    fig = go.Figure()

    def points(ts: list, values: list, label: str, marker: dict, y=None, yaxis: str = "y") -> None:
        fig.add_trace(
            go.Scatter(
                x=[t.number for t in ts],
                y=values if y is None else y,
                yaxis=yaxis,
                mode="markers",
                name=label,
                marker=marker,
                customdata=[
                    [f"{v:.4g}" if v is not None else "none", words.get(t.number, "")] for t, v in zip(ts, values)
                ],
                hovertemplate=f"trial %{{x}}<br>{name} %{{customdata[0]}}<br>%{{customdata[1]}}<extra></extra>",
            )
        )

    points(done, [t.value for t in done], "completed", {"color": BLUE, "size": 8})
    if pruned:
        last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
        points(pruned, last, "pruned (last report)", {"symbol": "x", "color": ORANGE, "size": 9})
    xs, ys = best_so_far(done, maximize)
    fig.add_trace(
        go.Scatter(x=xs, y=ys, mode="lines", line={"shape": "hv", "color": RED}, name="best so far", hoverinfo="skip")
    )
    if infeasible:
        tick = {"symbol": "line-ns-open", "size": 12, "color": GREY}
        label = f"over budget or invalid, not trained ({len(infeasible)})"
        # never trained, no value: a tick on the bottom edge (a second y axis in [0, 1])
        points(infeasible, [None] * len(infeasible), label, tick, y=[0.0] * len(infeasible), yaxis="y2")
    fig.update_layout(
        title=f"Optimisation history of {study.study_name!r}: {len(trials)} trials",
        xaxis={"title": "trial"},
        yaxis={"title": f"{summary.objective} ({'higher' if maximize else 'lower'} is better)"},
        yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig
