"""Where things are: the checkout the tests run from, its configs and the test apps."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"

# Apps that share nothing with run.py, each run as its user would: `python SCRIPT -m ...`.
APPS = {
    "xy": ROOT / "tests" / "apps" / "xy",  # a function of x and y, no budget, no model
    "nobudget": ROOT / "tests" / "apps" / "nobudget",  # a model node but no budget; its own metrics.json
    "sized": ROOT / "tests" / "apps" / "sized",  # our registry's model and a budget; a made-up score, no training
    "mlp": ROOT / "examples" / "mlp",  # plain PyTorch, an MLP `_target_` node, budget.max_params
    # its own models/data/... packages; names its loss with budgetsweep.record
    "ownpkgs": ROOT / "tests" / "apps" / "ownpkgs",
}
SCRIPT = {"mlp": "train.py"}  # the others: app.py
