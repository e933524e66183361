"""Every job's MLflow run: opened when the job's checks pass, dated from its start, FINISHED or FAILED at its end,
named ``<job> <output> <start>``, linked to the registered model versions it used."""
from __future__ import annotations

import re
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping

MODEL_VERSIONS_TAG = "textspark.model_versions"


def run_name(job: str, output: str, started: float) -> str:
    """``analyze /data/out 2026-12-07T05:10:03``: the job, what it writes, its start (local time, seconds)."""
    return f"{job} {output} {datetime.fromtimestamp(started).isoformat(timespec='seconds')}"


def used_models(plans: Iterable[Any]) -> list[str]:
    """The ``name/version`` of every version UDF plans load: each plan's model, its language guard's detector."""
    return [m.label for p in plans if p is not None
            for m in (p.model, p.guard.detector if p.guard is not None else None) if m is not None]


def logged_model_id(version) -> str | None:
    """The id of the logged model a registered ``ModelVersion`` holds, or None (registered from a folder)."""
    source = version.source or ""
    from_source = source.removeprefix("models:/") if re.fullmatch(r"models:/m-[0-9a-f]+", source) else None
    return version.model_id or from_source


class JobRun:
    """One job's run, logged through ``MlflowClient`` by run id: no fluent run is active while the job runs, so
    library code that logs into the run by id (``mlflow.start_run(run_id=...)``: a model registered in it,
    a training or an evaluation record) can reopen it."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()])

    def log_metrics(self, metrics: Mapping[str, float], *, model_id: str | None = None) -> None:
        """``model_id``: also the metrics of that logged model (its page in the MLflow UI), from this run."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, 0, model_id=model_id)
                                                    for k, v in metrics.items()])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_dict(self, dictionary: dict, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, dictionary, artifact_file)

    def log_figure(self, figure, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_artifact(self, local_path: str) -> None:
        self.client.log_artifact(self.run_id, local_path)

    def link_models(self, labels: Iterable[str | None]) -> None:
        """Record the registered versions (``name/version``) the job used, the MLflow 3 way: each version's
        logged model becomes a model input of the run (``get_run(run_id).inputs.model_inputs``). The logged
        model is ``ModelVersion.model_id``, or where the registry leaves that empty (MLflow's SQL registry,
        sqlite included) the ``models:/<model_id>`` the version was registered from. A version registered
        from anything else (before MLflow 3, a folder) has no logged model: the tag
        ``textspark.model_versions`` is the fallback, set for every version (sorted, comma-separated), since
        MLflow has no search from a model to the runs that used it and ``search_runs`` can filter on a tag."""
        from mlflow.entities import LoggedModelInput

        used = sorted({label for label in labels if label})
        if not used:
            return
        model_ids = []
        for label in used:
            name, version = label.rsplit("/", 1)
            model_id = logged_model_id(self.client.get_model_version(name, version))
            if model_id and model_id not in model_ids:
                model_ids.append(model_id)
        if model_ids:
            self.client.log_inputs(self.run_id, models=[LoggedModelInput(model_id=m) for m in model_ids])
        self.set_tags({MODEL_VERSIONS_TAG: ",".join(used)})

    def log_dataset(self, context: str, *, path: str | None = None, table: str | None = None,
                    fingerprint: Any = None) -> None:
        """Lineage: the folder ``path`` or the catalog ``table`` the job read (``context`` "input") or wrote
        ("output"), as an MLflow dataset of the run (``get_run(run_id).inputs.dataset_inputs``, the
        ``mlflow.data.context`` tag telling which). A meta dataset, its source a ``SparkDatasetSource``: no Spark
        job runs for it, on any engine. ``fingerprint``: what makes its digest (e.g. rows, format, run)."""
        import hashlib
        import json

        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.data.spark_dataset_source import SparkDatasetSource
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        source = SparkDatasetSource(table_name=table) if table is not None else SparkDatasetSource(path=path)
        digest = hashlib.sha256(json.dumps([source.to_dict(), fingerprint], sort_keys=True, default=str).encode())
        dataset = MetaDataset(source, name=table if table is not None else path, digest=digest.hexdigest()[:16])
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(
            dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])])

    def running(self) -> None:
        """Back to RUNNING after library code reopened the run by id and ended it (the job goes on)."""
        self.client.update_run(self.run_id, status="RUNNING")


@contextmanager
def job_run(job: str, experiment: str, output: str, *, started: float | None = None,
            models: Iterable[str | None] = (), tags: Mapping[str, Any] | None = None) -> Iterator[JobRun]:
    """The job's run, started at ``started`` (the job's start, ``time.time()``; default now) and linked to
    ``models`` (``name/version`` labels); FINISHED when the body returns, FAILED when it raises (KILLED on
    Ctrl-C), with the time it ended. Open it once the configuration is checked: a job refused for its
    configuration leaves no run."""
    from udfs.models.registry import client
    from udfs.platform import get_experiment_id

    started = time.time() if started is None else started
    mlc = client()
    created = mlc.create_run(get_experiment_id(experiment), start_time=int(started * 1000),
                             run_name=run_name(job, output, started), tags={"textspark.job": job, **(tags or {})})
    tracked = JobRun(mlc, created.info.run_id)
    try:
        tracked.link_models(models)
        yield tracked
    except BaseException as exc:
        mlc.set_terminated(tracked.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    mlc.set_terminated(tracked.run_id, "FINISHED")
