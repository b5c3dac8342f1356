"""run.py's Hydra configs, shipped as package data: `pkg://budgetsweep.conf` in a searchpath."""
