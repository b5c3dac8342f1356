"""`logger=mlflow`: one MLflow run per job, an MLflow experiment per Optuna study."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

from budgetsweep.contract import WEIGHTS_FILE

from .base import EPOCH_PREFIX, RESULT_PREFIX, TrackedRun, Tracker, flat, numbers, require
from .tb import EPOCH_KEYS

log = logging.getLogger(__name__)
# metrics.json status -> the MLflow run's end state
END_STATES = {"completed": "FINISHED", "pruned": "KILLED"}
MAX_PARAM_LENGTH = 500  # MLflow's limit on a param value


class MlflowTracker(Tracker):
    """Params (the flattened config), `epoch/<column>` metrics per epoch (step = epoch),
    `result/<key>` at the end, tags (ours, the status, the run folder), weights.pt as an artifact.

    MLflow 3 refuses its old file store unless told otherwise, so the default store is a
    SQLite file with an artifacts folder beside it, both under `root`.

    Args:
        tracking_uri: any MLflow tracking URI; null: `sqlite:///<root>/mlflow.db`.
        root: the default store's folder (relative to the working directory).
        experiment: the experiment of runs outside an Optuna study (a study's runs go to one named after it).
        log_weights: upload weights.pt as an artifact at the end.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        root: str = "outputs/mlflow",
        experiment: str = "budgetsweep",
        log_weights: bool = True,
    ) -> None:
        require("mlflow", "mlflow")
        self.root = Path(root).resolve()
        self.tracking_uri = tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"
        self.experiment, self.log_weights = experiment, log_weights
        self.client: Any = None
        self.run_id = ""
        self.run_dir = Path()

    def start(self, config: dict, run: TrackedRun) -> dict:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        self.root.mkdir(parents=True, exist_ok=True)
        self.client, self.run_dir = MlflowClient(self.tracking_uri), run.run_dir
        experiment_id = self._experiment(run.group or self.experiment)
        if run.state and run.state.get("run_id"):  # resumed: continue the run the killed job began
            self.run_id = run.state["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return dict(run.state)
        tags = {"budgetsweep.run_dir": str(run.run_dir), **{f"tag.{t}": "1" for t in run.tags}}
        if run.tags:
            tags["budgetsweep.tags"] = ",".join(run.tags)
        self.run_id = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
        params = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in flat(config) if not k.startswith("logger.")]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        return {"run_id": self.run_id, "experiment": run.group or self.experiment}

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = (self.root / "artifacts" / name).as_uri() if self.tracking_uri.startswith("sqlite") else None
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # another trial of the study created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(row["epoch"])
        self.client.log_batch(
            self.run_id, metrics=[Metric(f"{EPOCH_PREFIX}{k}", float(row[k]), now, step) for k in EPOCH_KEYS]
        )

    def end(self, metrics: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        now, step = int(time.time() * 1000), int(metrics.get("epochs") or 0)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(f"{RESULT_PREFIX}{k}", v, now, step) for k, v in numbers(metrics).items()],
            tags=[RunTag("budgetsweep.status", str(metrics.get("status")))],
        )
        weights = self.run_dir / WEIGHTS_FILE
        if self.log_weights and weights.is_file():
            self.client.log_artifact(self.run_id, str(weights))
        self.client.set_terminated(self.run_id, END_STATES.get(metrics.get("status"), "FAILED"))
