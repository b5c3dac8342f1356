"""The pictures, one PNG per function.

Each function takes the collected DataFrame (or a table / study), writes `path`, and
returns it, or None when there is nothing to draw (e.g. no completed run). Our own charts are
`matplotlib.figure.Figure`s saved directly (no pyplot, no backend chosen, no display needed),
in one style, so importing or using analysis leaves a notebook's or an app's matplotlib
settings alone.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.patches
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .best import Score, best_run, ranked, ranking_direction
from .best import score as score_of
from .collect import read_history

DPI = 110  # ~700 px wide at the sizes below: sharp on GitHub, a few tens of kB each


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)  # a bare Figure saves through the Agg canvas for .png
    return path


def _axes(width: float, height: float):
    return Figure(figsize=(width, height)).subplots()


def _completed(df: pd.DataFrame, column: str = "val_acc") -> pd.DataFrame:
    if column not in df or "params" not in df:
        return df.iloc[0:0]
    values = pd.to_numeric(df[column], errors="coerce")
    return df[(df["status"] == "completed") & values.notna() & df["params"].notna()]


def pareto_front(params: pd.Series, acc: pd.Series) -> pd.Index:
    """Index of the runs no other run beats with fewer-or-equal params and higher accuracy."""
    order = sorted(params.index, key=lambda i: (params[i], -acc[i]))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return pd.Index(front)


def accuracy_vs_params(
    df: pd.DataFrame,
    budget: int | None,
    path: Path,
    study_front: list[str] | None = None,
    score: Score | None = None,
    untrained: list[float] | None = None,
) -> Path | None:
    """The objective (validation accuracy for run.py) against parameters (log x), the budget line
    and the Pareto front; `study_front`: run folders of a multi-objective study's front
    (`study.best_trials`), ringed. `score`: what is drawn (default `best.score(df)`). Pruned runs
    are drawn at their best value before the stop; configs over the budget, never trained (the
    runs' `over_budget` records, and `untrained`: the sizes of a study's infeasible suggestions),
    as red crosses on the x axis."""
    score = score or score_of(df)
    done = _completed(df, score.column)
    if done.empty:
        return None
    scale = 100.0 if score.percent else 1.0
    sign = 1.0 if score.direction == "maximize" else -1.0
    ax = _axes(7.0, 4.6)
    params, acc = done["params"].astype(float), scale * done[score.column].astype(float)
    ax.scatter(params, acc, s=28, alpha=0.7, color="tab:blue", label="completed run", zorder=3)
    front = pareto_front(params, sign * acc)
    ax.step(
        params[front],
        acc[front],
        where="post",
        color="tab:orange",
        lw=1.5,
        marker="o",
        mfc="none",
        ms=9,
        label="Pareto front",
        zorder=2,
    )
    stopped = df[(df["status"] == "pruned") & df["params"].notna()] if "params" in df else df.iloc[0:0]
    stopped = stopped[pd.to_numeric(stopped[score.column], errors="coerce").notna()] if score.column in df else df[:0]
    if len(stopped):
        ax.scatter(
            stopped["params"].astype(float),
            scale * stopped[score.column].astype(float),
            s=28,
            facecolors="none",
            edgecolors="tab:gray",
            label="pruned (value before the stop)",
            zorder=3,
        )
    # Sized but never trained: a rug on the x axis, so they are visible, not dropped.
    over = df[(df["status"] == "over_budget") & df["params"].notna()] if "params" in df else df.iloc[0:0]
    sizes = [*over["params"].astype(float), *(untrained or [])]
    if sizes:
        ax.plot(
            sizes,
            np.zeros(len(sizes)),
            "x",
            color="tab:red",
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            ms=7,
            label="over budget (not trained)",
        )
    if study_front and "run_dir" in done:
        ringed = done[done["run_dir"].map(lambda d: str(Path(d).resolve())).isin(study_front)]
        ax.scatter(
            ringed["params"].astype(float),
            scale * ringed[score.column].astype(float),
            s=110,
            marker="D",
            facecolors="none",
            edgecolors="tab:green",
            lw=1.5,
            label="study's Pareto front (best_trials)",
            zorder=4,
        )
    if budget:
        ax.axvline(budget, color="tab:red", ls="--", lw=1, label=f"budget {budget:,}")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("best validation accuracy (%)" if score.name == "val_acc" else f"{score.label} ({score.better})")
    ax.grid(True, which="both", alpha=0.3)
    best = best_run(df)  # the run the report and `budgetsweep evaluate` name, by the objective
    if best is not None and best.name in done.index:  # drawn only where it has a point
        ax.annotate(
            f"best: {_short(best['label'], 30)}",
            (float(best["params"]), scale * float(best[score.column])),
            textcoords="offset points",
            xytext=(-6, 4),
            ha="right",
            fontsize=8,
        )
    ax.margins(x=0.08, y=0.12)
    # Below the axes: inside, it would cover points or the front wherever it goes.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, frameon=False)
    what = "Accuracy" if score.name == "val_acc" else score.name
    ax.set_title(f"{what} vs size ({len(done)} of {len(df)} runs completed)")
    return _save(ax.figure, path)


def ablation_chart(table: pd.DataFrame, factor: str, path: Path, score: Score | None = None) -> Path | None:
    """One factor: the mean objective (validation accuracy for run.py) per value, ±1 std error
    bars, baseline dashed. `score`: what the table aggregates (default val_acc).

    Points, not bars: the y axis is zoomed to the differences, and bars cut off at the axis
    would exaggerate them. Values without a completed run get their status written instead.
    """
    if not (table["n"] > 0).any():
        return None
    ax = _axes(max(4.4, 0.8 * len(table) + 2.4), 3.6)
    x = np.arange(len(table))
    score = score or Score("val_acc", "val_acc", "maximize")
    scale = 100.0 if score.percent else 1.0
    mean = scale * table[f"{score.name}_mean"].astype(float)
    std = scale * table[f"{score.name}_std"].astype(float)  # NaN for n < 2: no bar drawn
    for i, row in table.iterrows():
        if row["n"] == 0:
            continue
        color = "tab:orange" if row["baseline"] else "tab:blue"
        ax.errorbar(
            x[i], mean[i], yerr=None if pd.isna(std[i]) else std[i], fmt="o", ms=7, color=color, capsize=5, lw=1.5
        )
        # Above the error bar, centred: labels beside the points run out of the axes.
        label = f"{mean[i]:.1f}\nn={row['n']}" if score.percent else f"{mean[i]:.4g}\nn={row['n']}"
        if row["runs"] > row["n"]:
            label += f" (+{row['runs'] - row['n']} not completed)"
        top = mean[i] + (0 if pd.isna(std[i]) else std[i])
        ax.annotate(label, (x[i], top), textcoords="offset points", xytext=(0, 5), ha="center", va="bottom", fontsize=8)
    base = table.loc[table["baseline"], f"{score.name}_mean"]
    if len(base) and pd.notna(base.iloc[0]):
        ax.axhline(scale * base.iloc[0], color="tab:orange", ls="--", lw=1, label="baseline mean")
        ax.legend(fontsize=8, loc="best")
    ax.margins(y=0.3)
    ax.set_xlim(-0.6, len(table) - 0.4)
    low = ax.get_ylim()[0]
    for i, row in table.iterrows():
        if row["n"] == 0:  # over budget, invalid, failed...: shown, not dropped
            ax.text(
                x[i],
                low,
                " " + row["status"].replace("_", " "),
                ha="center",
                va="bottom",
                rotation=90,
                fontsize=8,
                color="tab:red",
            )
    ax.set_xticks(x, [_short(v, 14) for v in table["value"]], rotation=30 if len(table) > 5 else 0)
    ax.set_xlabel(factor)
    ax.set_ylabel("best val accuracy (%)" if score.name == "val_acc" else f"{score.label} ({score.better})")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(f"{factor}: mean ± std over repeats")
    return _save(ax.figure, path)


def grid_heatmap(grid, path: Path) -> Path | None:
    """Two factors: the mean objective of each cell as a heatmap, its value written in it, the
    best cell outlined; a cell never run is left blank."""
    if grid.pivot is None or grid.pivot.isna().all().all():
        return None
    score, pivot = grid.score, grid.pivot
    scale = 100.0 if score.percent else 1.0
    data = scale * pivot.to_numpy(dtype=float)
    ax = _axes(max(4.4, 0.9 * pivot.shape[1] + 2.6), max(3.2, 0.55 * pivot.shape[0] + 1.8))
    cmap = matplotlib.colormaps["viridis" if score.direction == "maximize" else "viridis_r"]
    image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, aspect="auto")
    ax.figure.colorbar(image, ax=ax, label=f"{score.label} ({score.better})")
    finite = np.isfinite(data)
    best = np.nanargmax(data) if score.direction == "maximize" else np.nanargmin(data)
    for (i, j), value in np.ndenumerate(data):
        if finite[i, j]:
            text = f"{value:.1f}" if score.percent else f"{value:.3g}"
            r, g, b, _ = image.cmap(image.norm(value))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"  # readable on the cell's colour
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=ink)
    bi, bj = np.unravel_index(best, data.shape)
    ax.add_patch(matplotlib.patches.Rectangle((bj - 0.5, bi - 0.5), 1, 1, fill=False, ec="tab:red", lw=2))
    ax.set_xticks(range(pivot.shape[1]), [_short(str(c), 12) for c in pivot.columns])
    ax.set_yticks(range(pivot.shape[0]), [_short(str(r), 12) for r in pivot.index])
    ax.set_xlabel(grid.factors[1])
    ax.set_ylabel(grid.factors[0])
    ax.set_title(f"{score.name}: mean over repeats, best outlined")
    return _save(ax.figure, path)


def learning_curves(df: pd.DataFrame, path: Path, k: int = 5) -> Path | None:
    """Validation (solid) and training (dashed) accuracy per epoch of the k best runs (the
    report's order: `best.ranked`)."""
    done = _completed(df)
    done = done[done["has_history"]] if "has_history" in done else done
    if done.empty:
        return None
    top = ranked(done, ranking_direction(df)).head(k)
    if top.empty:
        return None
    ax = _axes(6.4, 4.2)
    for color, (_, run) in zip(matplotlib.colormaps["tab10"].colors, top.iterrows(), strict=False):
        hist = read_history(run["run_dir"])
        if hist is None:
            continue
        label = f"{_short(run['label'])} ({100 * run['val_acc']:.1f}%)"
        ax.plot(hist["epoch"], 100 * hist["val_acc"], "-o", ms=3, color=color, label=label)
        if "train_acc" in hist:
            ax.plot(hist["epoch"], 100 * hist["train_acc"], "--", color=color, alpha=0.6)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, title=f"best {len(top)} runs: val (solid), train (dashed)", title_fontsize=8)
    ax.set_title("Learning curves")
    return _save(ax.figure, path)


def optuna_history(study, path: Path, objective: str = "objective") -> Path | None:
    """Every trial of a one-objective study by number: completed ones (their value, and the best so
    far as a step line), pruned ones at the last value they reported (orange x), suggestions over
    the budget or invalid as grey ticks below the axis (never trained: no value). A study of
    several objectives has none (its front is `pareto_chart`)."""
    import optuna

    State = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    if len(study.directions) > 1 or not any(t.state == State.COMPLETE for t in trials):
        return None
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    infeasible = [t for t in trials if any(v > 0 for v in t.constraints.values())]
    done = [t for t in trials if t.state == State.COMPLETE and t not in infeasible and t.value is not None]
    pruned = [t for t in trials if t.state == State.PRUNED and t not in infeasible and t.intermediate_values]
    ax = _axes(7.2, 4.2)
    ax.scatter([t.number for t in done], [t.value for t in done], s=26, color="tab:blue", label="completed", zorder=3)
    if pruned:
        last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
        ax.scatter([t.number for t in pruned], last, marker="x", color="tab:orange", label="pruned (last report)")
    xs, ys = best_so_far(done, maximize)
    ax.step(xs, ys, where="post", color="tab:red", lw=1.2, label="best so far")
    if infeasible:
        ax.plot(
            [t.number for t in infeasible],
            np.zeros(len(infeasible)),
            "|",
            color="grey",
            ms=10,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label=f"over budget or invalid, not trained ({len(infeasible)})",
        )
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{objective} ({'higher' if maximize else 'lower'} is better)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, frameon=False)
    ax.set_title(f"Optimisation history of {study.study_name!r}: {len(trials)} trials")
    return _save(ax.figure, path)


def best_so_far(done: list, maximize: bool) -> tuple[list[int], list[float]]:
    """The trial numbers of `done` (completed trials) in order, and the best value up to each."""
    best, xs, ys = None, [], []
    for t in sorted(done, key=lambda t: t.number):
        if best is None or (t.value > best if maximize else t.value < best):
            best = t.value
        xs.append(t.number)
        ys.append(best)
    return xs, ys


def pruning_chart(study, path: Path, objective: str = "objective") -> Path | None:
    """What each trained trial reported step by step (`trial_reporter`: run.py's epochs): the
    completed ones in blue, the pruned ones in orange ending in an x where the pruner stopped them."""
    import optuna

    State = optuna.trial.TrialState
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    if len(study.directions) > 1 or not trials:
        return None
    ax = _axes(7.2, 4.2)
    for t in trials:
        steps = sorted(t.intermediate_values)
        values = [t.intermediate_values[s] for s in steps]
        stopped = t.state == State.PRUNED
        color = "tab:orange" if stopped else "tab:blue"
        ax.plot(steps, values, "-", color=color, alpha=0.6, lw=1)
        if stopped:
            ax.plot(steps[-1], values[-1], "x", color="tab:red", ms=7)
    n_pruned = sum(t.state == State.PRUNED for t in trials)
    ax.plot([], [], "-", color="tab:blue", label=f"completed ({len(trials) - n_pruned})")
    ax.plot([], [], "-x", color="tab:orange", mec="tab:red", label=f"pruned ({n_pruned}): x where it stopped")
    ax.set_xlabel("step (run.py: epoch)")
    ax.set_ylabel(f"reported {objective}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"Reported values of {study.study_name!r}, where the pruner stopped")
    return _save(ax.figure, path)


def pareto_chart(study, front, path: Path) -> Path | None:
    """A two-objective study: every feasible completed trial, its Pareto front (`study.best_trials`,
    a step line) and the two knee choices (`budgetsweep.analysis.pareto`)."""
    import optuna

    if len(front.objectives) != 2 or front.table.empty:
        return None
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if all(v <= 0 for v in t.constraints.values())
    ]
    # the minimized objective on x (a size), the maximized one on y (an accuracy), when mixed
    x_i = front.directions.index("minimize") if "minimize" in front.directions else 1
    y_i = 1 - x_i
    ax = _axes(7.0, 4.6)
    ax.scatter([t.values[x_i] for t in done], [t.values[y_i] for t in done], s=24, alpha=0.6, label="completed trial")
    x, y = front.table[f"objective {front.objectives[x_i]}"], front.table[f"objective {front.objectives[y_i]}"]
    order = np.argsort(x.to_numpy(dtype=float), kind="stable")
    ax.step(
        x.iloc[order],
        y.iloc[order],
        where="post",
        color="tab:orange",
        marker="o",
        mfc="none",
        ms=9,
        label=f"Pareto front ({len(front.table)})",
    )
    choices = (
        (front.best, "*", "tab:green", "best under the budget"),
        (front.smallest_within, "P", "tab:purple", "smallest within 0.5 points"),
    )
    for row, marker, color, label in choices:
        if row is not None:
            xy = [row[f"objective {front.objectives[x_i]}"]], [row[f"objective {front.objectives[y_i]}"]]
            ax.scatter(*xy, s=160, marker=marker, color=color, label=label, zorder=4)
    if front.objectives[x_i] in ("params", "flops"):
        ax.set_xscale("log")
    ax.set_xlabel(f"{front.objectives[x_i]} ({front.directions[x_i]})")
    ax.set_ylabel(f"{front.objectives[y_i]} ({front.directions[y_i]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, frameon=False)
    ax.set_title(f"Pareto front of {study.study_name!r}")
    return _save(ax.figure, path)


def importances_chart(importances: dict[str, float], path: Path) -> Path | None:
    """A bar per parameter: the importances already computed for the summary.

    Drawn here rather than by optuna's plot_param_importances, which would evaluate them a
    second time, and could disagree with the table on a stochastic evaluator.
    """
    if not importances:
        return None
    names = list(importances)[::-1]  # most important on top
    ax = _axes(6.4, 0.45 * len(names) + 1.4)
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    for i, n in enumerate(names):
        ax.text(importances[n], i, f" {importances[n]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(importances.values()) * 1.15 or 1)
    ax.set_xlabel("importance (Optuna default evaluator, normalised)")
    ax.set_title("Hyperparameter importances")
    return _save(ax.figure, path)


def _short(text, n: int = 40) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"
