"""`budgetsweep dashboard STUDY_DIR`: optuna-dashboard on a study of our Optuna sweeper.

STUDY_DIR's study.json says where the study is (a SQLite file, or PostgreSQL with the password
masked); the password comes from $BUDGETSWEEP_STORAGE_PASSWORD (or libpq's PGPASSWORD /
~/.pgpass), never from the command line. A storage URL works too. Needs the `dashboard` extra.

In the dashboard each trained trial shows its params, its per-epoch validation accuracy
(intermediate values) and our user attributes (status, params = its size, run_dir); a
suggestion over the budget is PRUNED with a positive `params` constraint and status
`over_budget`, which tells it from a trial the pruner stopped (constraints <= 0, status `pruned`);
optuna-dashboard 0.21 shows neither Optuna 5's constraints nor our status in its trial list, so
`budgetsweep dashboard` gives each such trial a note (Markdown, on its page) saying so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from budgetsweep.contract import first_line
from budgetsweep.contract.layouts import read_study
from budgetsweep.contract.storage import JOURNAL, locate, mask, optuna_storage


class DashboardError(ValueError):
    """A path that is not a study folder, or a missing package; one line."""


def storage_url(path_or_url: str) -> str:
    """The URL to connect with: a study folder's study.json (password put back from the
    environment), or a URL as given."""
    if "://" in path_or_url or path_or_url.startswith(JOURNAL):
        return locate(path_or_url)
    folder = Path(path_or_url)
    try:
        record = read_study(folder)
    except Exception as e:  # ContractError: unreadable study.json
        raise DashboardError(first_line(e)) from None
    if record is None:
        raise DashboardError(f"{folder}: no study.json (pass an Optuna study folder or a storage URL)")
    return locate(record.storage, folder)


def dashboard_app(path_or_url: str):
    """optuna-dashboard's WSGI app on that storage."""
    try:
        import optuna_dashboard
    except ImportError:
        raise DashboardError(
            "the optuna-dashboard package is not installed: pip install 'budgetsweep[dashboard]'"
        ) from None
    url = storage_url(path_or_url)
    note_untrained(url, optuna_dashboard.save_note)
    return optuna_dashboard.wsgi(optuna_storage(url))


NOTE_KEY = "budgetsweep:noted"  # study system attribute: the trial numbers already given a note


def note_untrained(url: str, save_note) -> int:
    """Give each suggestion over the budget (or invalid) a note the dashboard shows on its page:
    optuna-dashboard 0.21 shows it as PRUNED, like a trial the pruner stopped, and does not show
    Optuna 5's named constraints. Each trial is noted once; returns how many were noted now."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.get_storage(optuna_storage(url))
    noted = 0
    for name in optuna.study.get_all_study_names(storage=storage):
        study = optuna.load_study(study_name=name, storage=storage)
        study_id = storage.get_study_id_from_name(name)
        done = set(storage.get_study_system_attrs(study_id).get(NOTE_KEY, []))
        for t in study.get_trials(deepcopy=False):
            if t.number in done or not any(v > 0 for v in t.constraints.values()):
                continue
            status = str(t.user_attrs.get("status", "over_budget")).replace("_", " ")
            why = t.user_attrs.get("error") or ", ".join(f"{k} {v:+g}" for k, v in t.constraints.items())
            save_note(
                optuna.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, t.number)),
                f"**{status.capitalize()}: never trained.** {why}. Told to Optuna as PRUNED with a positive "
                "constraint, so the sampler learns the budget's boundary; not a trial the pruner stopped.",
            )
            done.add(t.number)
            noted += 1
        if noted:
            storage.set_study_system_attr(study_id, NOTE_KEY, sorted(done))
    return noted


def main(argv: Sequence[str] | None = None, prog: str = "budgetsweep dashboard") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("study", help="an Optuna study folder (study.json) or a storage URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    try:
        app = dashboard_app(args.study)
    except DashboardError as e:
        print(f"dashboard: error: {e}", file=sys.stderr)
        return 2
    from wsgiref.simple_server import make_server

    with make_server(args.host, args.port, app) as server:
        print(f"optuna-dashboard on http://{args.host}:{args.port}/ ({mask(storage_url(args.study))}); Ctrl-C stops")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
