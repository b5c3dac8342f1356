"""`budgetsweep COMMAND ...`: the commands that follow a sweep, one entry point.

    budgetsweep analyze [SWEEP_DIR ...]      tables, plots and report.md   (budgetsweep.analysis)
    budgetsweep evaluate PATH [data=...]     a run's kept weights on a data source, export
    budgetsweep dashboard STUDY_DIR          optuna-dashboard on a study
    budgetsweep make-sample CIFAR10_DEV_NPZ  rebuild the shipped CIFAR-10 sample
    budgetsweep storage-proxy DATABASE_URL   a gRPC storage proxy for many workers

Each command is also `python -m <its module>`. A command's module is imported only when it
runs, so `budgetsweep analyze` never loads torch's training side.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

COMMANDS = {
    "analyze": ("budgetsweep.analysis.__main__", "tables, plots and report.md for sweep folders"),
    "evaluate": ("budgetsweep.trainer.evaluate", "a run's kept weights on a data source; --export pt2,onnx"),
    "dashboard": ("budgetsweep.analysis.dashboard", "optuna-dashboard on a study folder or storage URL"),
    "make-sample": ("budgetsweep.data.make_sample", "rebuild data/cifar10_sample.npz from the CIFAR-10 dev subset"),
    "storage-proxy": ("budgetsweep.sweeper.storage_proxy", "Optuna's gRPC storage proxy in front of a database"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    return (
        "usage: budgetsweep COMMAND [ARGS ...]\n\ncommands:\n"
        + "\n".join(lines)
        + "\n\n'budgetsweep COMMAND --help' for a command's arguments"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"budgetsweep: error: unknown command {name!r} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest, prog=f"budgetsweep {name}")


if __name__ == "__main__":
    sys.exit(main())
