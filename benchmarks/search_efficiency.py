"""How fast our Optuna sweeper finds a good model, against the standard plugin, on the same wall clock.

    python benchmarks/search_efficiency.py --budget SECONDS [--seeds 0 1 2] [--out DIR] [--record]

The space: run.py's quickstart (`params` of conf/hydra/sweeper/optuna.yaml: small ResNets, three
optimizers, 200k-parameter budget, the shipped 2,500-image sample, 3 epochs). Each search runs
`python run.py -m ...` for `--budget` seconds of wall clock, then its process group is killed;
a trial counts when its metrics.json was written within the budget, its status is completed
and its model has at most the budget's parameters. Three searches per sampler seed:

1. ours: `hydra/sweeper=optuna` as shipped (TPE told the budget constraint, over-budget
   suggestions never trained, median pruning), `hydra.sweeper.timeout` = the budget.
2. plugin: hydra-optuna-sweeper's OptunaSweeper with its default TPE and no pruning. The plugin
   knows no budget, so run.py's own check is lifted (`budget.max_params` huge) and every
   suggestion trains; only the ones within the budget count towards its best. run.py's
   `optuna` sweeper config hides the plugin's own under that name, so
   benchmarks/search_efficiency/hydra/sweeper/plugin_optuna.yaml selects the plugin's class
   with its keys only (n_jobs 1: it learns after every trial, as ours does; max_failure_rate
   1.0: a diverged trial must not end it) and the space is given as command-line overrides.
3. random: the plugin with `hydra/sweeper/sampler=random`, counted the same way. The plugin's
   rather than ours with Optuna's RandomSampler, so that (2) against (3) is TPE's gain alone
   and (1) against (2) the budget-aware engine's, and (3) is the search a user gets with no
   tool of ours at all.

A pruned trial does not count (Optuna's best trial is a completed one too). Each seed sets the
sampler's seed (the training seed stays the config's): the three draw the same random first
suggestions, a paired start (both TPEs suggest at random for their first 10 trials, ours'
`n_startup_trials` and the plugin's default alike, so a short budget mostly measures what the
engine skips: over-budget models and pruned epochs). The searches are
interleaved (seed 0: ours, plugin, random; seed 1 starts one later in that order; ...) so a
change in the machine's load falls on every method alike. Every search has its own folder
under --out (default: a temporary folder, deleted at the end) and its own job registry
(BUDGETSWEEP_REGISTRY), so threads=auto gives each trial the whole machine whatever else
runs. Tuned on validation accuracy (val_acc, the best epoch's); the test split is not used.

Printed: per method and seed the trials trained within the budget, the best validation
accuracy, the time to reach the plugin's final best of the same seed ("not reached" allowed);
then the median over seeds (a seed not reached counts as infinitely late), and whether the
goal is met: ours reaches the plugin's final best in at most half the time the plugin took to
reach it (medians over seeds) and ends higher (median best). A plot of best-so-far validation
accuracy against time goes to benchmarks/search_efficiency.png; with --record the table and
the command replace the "Search efficiency" section of benchmarks/RESULTS.md, where the
results, machine and load are recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from datetime import date
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_PY = ROOT / "run.py"
SPACE_FILE = ROOT / "conf" / "hydra" / "sweeper" / "optuna.yaml"
PLUGIN_CONF = ROOT / "benchmarks" / "search_efficiency"  # holds hydra/sweeper/plugin_optuna.yaml
PLOT = ROOT / "benchmarks" / "search_efficiency.png"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Search efficiency"
METHODS = ("ours", "plugin", "random")
NO_BUDGET = 10**9  # budget.max_params for the plugin's runs: run.py then trains whatever it gets
MANY_TRIALS = 10_000  # n_trials: the clock, not the count, ends every search
TRAINED = ("completed", "pruned", "diverged", "failed")  # statuses of a trial that trained


@dataclass(frozen=True)
class Trial:
    finished: float  # seconds from the search's start to its metrics.json
    status: str
    val_acc: float | None
    params: int | None


# --- the pure part: best-so-far curves and the time to reach a target -----------------------


def counts(trial: Trial, budget: float, max_params: int) -> bool:
    """Whether a trial may be a search's result: completed within the time budget by a model
    within the parameter budget."""
    return (
        trial.status == "completed"
        and trial.val_acc is not None
        and trial.params is not None
        and trial.params <= max_params
        and trial.finished <= budget
    )


def best_so_far(trials: list[Trial], budget: float, max_params: int) -> list[tuple[float, float]]:
    """(time, best validation accuracy so far) at each counted trial that raised the best."""
    curve: list[tuple[float, float]] = []
    for t in sorted((t for t in trials if counts(t, budget, max_params)), key=lambda t: t.finished):
        if not curve or t.val_acc > curve[-1][1]:
            curve.append((t.finished, t.val_acc))
    return curve


def final_best(curve: list[tuple[float, float]]) -> float | None:
    return curve[-1][1] if curve else None


def time_to_reach(curve: list[tuple[float, float]], target: float | None) -> float | None:
    """The first time the curve is at or above `target`; None when it never is (or no target)."""
    if target is None:
        return None
    return next((t for t, best in curve if best >= target), None)


def median_time(times: list[float | None]) -> float | None:
    """The median over seeds, a seed that never reached counting as infinitely late; None when
    that median is itself 'never'."""
    m = statistics.median(math.inf if t is None else t for t in times)
    return None if math.isinf(m) else m


def median_best(bests: list[float | None]) -> float | None:
    found = [b for b in bests if not _missing(b)]
    return statistics.median(found) if found else None


def goal(ours_times: list[float | None], plugin_times: list[float | None], ours_best, plugin_best) -> tuple[bool, str]:
    """Ours reaches the plugin's final best in at most half the plugin's time to it, and ends
    higher (medians over seeds): (met, the sentence that says so)."""
    ours_t, plugin_t = median_time(ours_times), median_time(plugin_times)
    fast = ours_t is not None and plugin_t is not None and ours_t <= plugin_t / 2
    higher = ours_best is not None and (plugin_best is None or ours_best > plugin_best)
    return fast and higher, (
        f"time to the plugin's final best: ours {_seconds(ours_t)} against the plugin's {_seconds(plugin_t)} "
        f"(goal <= half: {'met' if fast else 'not met'}); median best val_acc: ours {_acc(ours_best)}, "
        f"plugin {_acc(plugin_best)} (goal higher: {'met' if higher else 'not met'})"
    )


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))  # pandas holds a None as NaN


def _seconds(t: float | None) -> str:
    return "not reached" if _missing(t) else f"{t:.0f} s"


def _acc(a: float | None) -> str:
    return "none" if _missing(a) else f"{a:.4f}"


# --- running the searches ----------------------------------------------------------------------


def quickstart_space() -> tuple[dict[str, str], int]:
    """The quickstart's search space as override strings, and its parameter budget."""
    from omegaconf import OmegaConf

    params = {k: str(v) for k, v in OmegaConf.load(SPACE_FILE).params.items()}
    return params, int(params["budget.max_params"])


def search_args(method: str, seed: int, budget: float, folder: Path, space: dict[str, str]) -> list[str]:
    if method == "ours":
        return [
            "hydra/sweeper=optuna",
            f"hydra.sweeper.timeout={budget}",
            f"hydra.sweeper.n_trials={MANY_TRIALS}",
            f"hydra.sweeper.sampler.seed={seed}",
            f"hydra.sweeper.dir={folder}",
        ]
    overrides = [f"{k}={NO_BUDGET if k == 'budget.max_params' else v}" for k, v in space.items()]
    sampler = ["hydra/sweeper/sampler=random"] if method == "random" else []
    return [
        f"hydra.searchpath=[file://{PLUGIN_CONF}]",
        "hydra/sweeper=plugin_optuna",
        *sampler,
        f"hydra.sweeper.sampler.seed={seed}",
        f"hydra.sweeper.n_trials={MANY_TRIALS}",
        f"hydra.sweep.dir={folder}",
        *overrides,
    ]


def run_search(method: str, seed: int, budget: float, out: Path, space: dict[str, str]) -> list[Trial]:
    """Runs one search for `budget` seconds (then kills its process group); its trials."""
    folder = out / f"{method}-seed{seed}"
    log = out / f"{method}-seed{seed}.log"
    env = {k: v for k, v in os.environ.items() if k != "BUDGETSWEEP_STORAGE"}  # ours: SQLite in its folder
    env["BUDGETSWEEP_REGISTRY"] = str(out / f"registry-{method}-seed{seed}")
    args = [sys.executable, str(RUN_PY), "-m", *search_args(method, seed, budget, folder, space)]
    with open(log, "w") as sink:
        t0 = time.time()
        proc = subprocess.Popen(args, cwd=out, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            rc = None
            _kill_group(proc)
        except BaseException:  # Ctrl-C: the search runs in its own session and would go on without us
            _kill_group(proc)
            raise
    if rc:  # ended on its own before the budget, with an error
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"{method} seed {seed}: `run.py -m` exited with {rc} (log {log}):\n{tail}")
    return collect(folder, t0)


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def collect(folder: Path, t0: float) -> list[Trial]:
    """Every job folder's metrics.json, with its write time relative to `t0`."""
    trials = []
    for path in folder.glob("*/metrics.json"):
        try:
            m = json.loads(path.read_text())
        except ValueError:  # cut off by the kill mid-write cannot happen (atomic writes); be safe
            continue
        trials.append(Trial(path.stat().st_mtime - t0, m.get("status", "?"), m.get("val_acc"), m.get("params")))
    return trials


# --- reporting ---------------------------------------------------------------------------------


def summary_table(results: dict[tuple[str, int], list[Trial]], seeds: list[int], budget: float, max_params: int):
    """The per-seed rows and the median rows (pandas DataFrame), and the goal (met, sentence)."""
    import pandas as pd

    curves = {key: best_so_far(trials, budget, max_params) for key, trials in results.items()}
    rows, to_plugin = [], {m: [] for m in METHODS}
    for method in METHODS:
        for seed in seeds:
            trials = results[(method, seed)]
            within = [t for t in trials if t.finished <= budget]
            target = final_best(curves[("plugin", seed)])
            reach = time_to_reach(curves[(method, seed)], target)
            to_plugin[method].append(reach)
            rows.append(
                {
                    "method": method,
                    "seed": str(seed),
                    "trained": sum(t.status in TRAINED for t in within),
                    "over budget, trained": sum(
                        t.status in TRAINED and t.params is not None and t.params > max_params for t in within
                    ),
                    "pruned": sum(t.status == "pruned" for t in within),
                    "best val_acc": final_best(curves[(method, seed)]),
                    "s to plugin's best": reach,
                }
            )
    per_seed = pd.DataFrame(rows)
    medians = []
    for method in METHODS:
        mine = per_seed[per_seed.method == method]
        medians.append(
            {
                "method": method,
                "seed": "median",
                "trained": float(mine["trained"].median()),
                "over budget, trained": float(mine["over budget, trained"].median()),
                "pruned": float(mine["pruned"].median()),
                "best val_acc": median_best(list(mine["best val_acc"])),
                "s to plugin's best": median_time(to_plugin[method]),
            }
        )
    table = pd.concat([per_seed, pd.DataFrame(medians)], ignore_index=True)
    table = table.astype(object).where(table.notna(), None)  # "none" / "not reached" stay None, not NaN
    bests = {m: median_best([final_best(curves[(m, s)]) for s in seeds]) for m in METHODS}
    verdict = goal(to_plugin["ours"], to_plugin["plugin"], bests["ours"], bests["plugin"])
    return table, curves, verdict


def markdown(table) -> str:
    shown = table.copy()
    shown["best val_acc"] = [_acc(a) for a in shown["best val_acc"]]
    shown["s to plugin's best"] = [_seconds(t) for t in shown["s to plugin's best"]]
    for col in ("trained", "over budget, trained", "pruned"):
        shown[col] = [f"{v:g}" for v in shown[col]]
    return shown.to_markdown(index=False)


def plot(curves: dict[tuple[str, int], list[tuple[float, float]]], budget: float, max_params: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(METHODS, ("tab:blue", "tab:orange", "tab:gray")))
    styles = ("-", "--", ":", "-.")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (method, seed), curve in sorted(curves.items()):
        if not curve:
            continue
        xs = [t for t, _ in curve] + [budget]  # the best holds until the budget ends
        ys = [b for _, b in curve] + [curve[-1][1]]
        style = styles[seed % len(styles)]
        ax.step(xs, ys, where="post", color=colours[method], linestyle=style, label=f"{method} seed {seed}")
        ax.plot(xs[:-1], ys[:-1], "o", color=colours[method], markersize=3)  # each new best: lines may overlap
    ax.set_xlim(0, budget)
    ax.set_xlabel("seconds since the search started")
    ax.set_ylabel(f"best validation accuracy so far (<= {max_params:,} params)")
    ax.set_title("run.py quickstart space, same wall clock per search")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a search that counted nothing draws no line
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/cpu_name.py, under `python -P` too
    from cpu_name import cpu_name

    cpu = cpu_name()
    plugin = version("hydra-optuna-sweeper")
    return f"{os.cpu_count()} CPUs ({cpu}), torch {version('torch')}, hydra-optuna-sweeper {plugin}"


def record(text: str, path: Path = RESULTS) -> None:
    """Replaces the Search efficiency section of `path` (up to the next `## ` heading), or appends it."""
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(SECTION)), None)
    new = text.rstrip("\n").splitlines()
    if start is None:
        lines += ["", *new]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = [*new, ""] if end < len(lines) else new
    path.write_text("\n".join(lines) + "\n")


def searches(budget: float, seeds: list[int], out: Path | None) -> dict[tuple[str, int], list[Trial]]:
    """Every method for every seed, interleaved; the trials of each search."""
    space, max_params = quickstart_space()
    results: dict[tuple[str, int], list[Trial]] = {}
    with tempfile.TemporaryDirectory(prefix="search-efficiency-") as tmp:
        where = (out or Path(tmp)).resolve()
        for i, seed in enumerate(seeds):
            for method in METHODS[i % 3 :] + METHODS[: i % 3]:  # rotated: no method always first
                print(f"seed {seed}: {method} for {budget:g} s ...", flush=True)
                trials = run_search(method, seed, budget, where, space)
                results[(method, seed)] = trials
                trained = sum(t.status in TRAINED and t.finished <= budget for t in trials)
                best = final_best(best_so_far(trials, budget, max_params))
                print(f"  {trained} trained, best val_acc {_acc(best)}", flush=True)
        if out:
            print(f"search folders and logs: {where}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, required=True, help="wall-clock seconds per search")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampler seeds")
    parser.add_argument("--out", type=Path, help="keep the searches' folders here (default: a temporary folder)")
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--record", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.budget <= 0:
        parser.error(f"--budget: expected a positive number of seconds, got {args.budget:g}")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds: expected distinct non-negative ints, got {args.seeds}")
    if args.out is not None:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            parser.error(f"--out: cannot create {args.out}: {e.strerror}")
    # what reproduces the figures (the folders and the plot's path are this machine's own)
    seeds = " ".join(map(str, args.seeds))
    command = f"python benchmarks/search_efficiency.py --budget {args.budget:g} --seeds {seeds}"
    about_machine = machine() if args.record else ""  # before an hour of searches, not after
    load_before = os.getloadavg()[0]
    try:
        results = searches(args.budget, args.seeds, args.out)
    except KeyboardInterrupt:
        print("interrupted: the search running was stopped, nothing recorded", file=sys.stderr)
        sys.exit(130)
    load_after = os.getloadavg()[0]

    _, max_params = quickstart_space()
    table, curves, (met, sentence) = summary_table(results, args.seeds, args.budget, max_params)
    plot(curves, args.budget, max_params, args.plot)
    text = markdown(table)
    print(f"\n`{command}`\n\n{text}\n")
    print(
        f"Goal (ours reaches the plugin's final best in <= half the plugin's time, and ends higher): "
        f"{'MET' if met else 'NOT MET'}: {sentence}"
    )
    print(f"plot: {args.plot}; load average {load_before:.1f} before, {load_after:.1f} after, {os.cpu_count()} CPUs")
    if args.record:
        about = textwrap.fill(
            f"`{command}` ({date.today()}, {about_machine}, load average {load_before:.1f} before, "
            f"{load_after:.1f} after): run.py's quickstart space, {args.budget:g} s of wall clock per "
            f"search, sampler seeds {seeds}, the three methods interleaved. A trial counts when it "
            f"completed within the time and has at most {max_params:,} parameters; the plugin and "
            f"random search (the plugin's RandomSampler) train over-budget models too. \"s to "
            f"plugin's best\": when the method first matched the plugin's final best of the same seed; "
            f'a median over seeds counts "not reached" as infinitely late. Plot: '
            f"`benchmarks/search_efficiency.png`.",
            width=100,
            break_on_hyphens=False,  # keeps --budget and the command's options whole
        )
        verdict = textwrap.fill(
            f"Goal: ours reaches the plugin's final best in at most half the plugin's time to it, and "
            f"ends higher (medians over seeds): **{'met' if met else 'not met'}**; {sentence}.",
            width=100,
            break_on_hyphens=False,
        )
        title = f"{SECTION}: ours against the standard plugin (`python benchmarks/search_efficiency.py`)"
        record(f"{title}\n\n{about}\n\n{text}\n\n{verdict}\n")
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()
