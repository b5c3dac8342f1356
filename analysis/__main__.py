"""`budgetsweep analyze [SWEEP_DIR ...]`: tables, plots and report.md for sweep folders.

Without SWEEP_DIR, the newest folder under outputs/sweeps/, outputs/optuna/ or outputs/ablation/.
Bad input (a path that does not exist, a folder without runs) ends with one line on stderr and
exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn, Sequence

from budgetsweep.contract.values import parse_override

from .collect import AnalysisError, newest_sweep
from .output import output_dir, write
from .pipeline import analyze


class _Parser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line, as every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"analysis: error: {message} (see {self.prog} --help)\n")


def check_baseline(items: list[str] | None) -> str | None:
    """Why the --baseline items are not KEY=VALUE pairs with distinct keys, or None."""
    seen = set()
    for text in items or []:
        parsed = parse_override(text)
        if parsed is None or not parsed[0] or parsed[1] == "":
            return f"--baseline {text!r}: expected KEY=VALUE, e.g. model.C=32"
        if parsed[0] in seen:
            return f"--baseline {parsed[0]}: given twice"
        seen.add(parsed[0])
    return None


def parse_args(argv: Sequence[str] | None, prog: str = "budgetsweep analyze") -> argparse.Namespace:
    p = _Parser(
        prog=prog,
        description="Ablation tables, the combined-best config, Optuna summaries, plots and "
        "report.md for sweep folders (written under SWEEP_DIR/analysis/).",
    )
    p.add_argument(
        "sweep_dirs",
        nargs="*",
        metavar="SWEEP_DIR",
        help="sweep or run folders, merged (default: the newest under outputs/{sweeps,optuna,ablation}/)",
    )
    p.add_argument(
        "--baseline",
        nargs="+",
        metavar="KEY=VALUE",
        default=None,
        help="baseline of a grid / plain-runs ablation, e.g. model.C=32 optimizer=adam "
        "(other factors: their most common value)",
    )
    p.add_argument(
        "--budget", type=int, default=None, help="max trainable parameters (default: the runs' recorded max_params)"
    )
    p.add_argument(
        "--top-k", type=int, default=3, help="values per factor searched when the combined config is over budget"
    )
    p.add_argument("--out", default=None, help="output folder (default: SWEEP_DIR/analysis)")
    p.add_argument("--storage", default=None, help="an Optuna storage URL to summarize too")
    p.add_argument("--study", default=None, help="the study name in --storage")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    args = p.parse_args(argv)
    if (args.storage is None) != (args.study is None):
        p.error("--storage and --study go together")
    if args.top_k < 1:
        p.error(f"--top-k must be >= 1, got {args.top_k}")
    if args.budget is not None and args.budget < 1:
        p.error(f"--budget must be a positive number of parameters, got {args.budget}")
    if problem := check_baseline(args.baseline):
        p.error(problem)
    return args


def main(argv: Sequence[str] | None = None, prog: str = "budgetsweep analyze") -> int:
    args = parse_args(argv, prog)
    # One line per warning, no logger name or level noise: "analysis: warning: ...".
    logging.basicConfig(format="analysis: warning: %(message)s", level=logging.WARNING, stream=sys.stderr)
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        paths = args.sweep_dirs
        if not paths and args.storage is None:
            paths = [newest_sweep()]
        out = output_dir(paths, args.out)
        studies = [(args.storage, args.study)] if args.storage else []
        result = analyze(paths, baseline=args.baseline, budget=args.budget, top_k=args.top_k, studies=studies)
        files = write(result, out, make_plots=not args.no_plots)
    except (AnalysisError, OSError) as e:
        print(f"analysis: error: {e}", file=sys.stderr)
        return 2
    print(result.text)
    print(f"\nWrote {len(files)} files to {out}/, report: {out / 'report.md'} (interactive: {out / 'report.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
