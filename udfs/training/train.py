"""Train a text classifier from a labeled Spark table and register it as a new MLflow model version.

Two methods: ``head`` (default, udfs.training.head): a softmax head on frozen embeddings of a registered
embedding model; ``finetune`` (udfs.training.finetune): full fine-tuning of the encoder with a
classification layer. The data is cleaned, subsampled and split by udfs.training.data.prepare, errors
raised before any model work.

The training run logs params, metrics (accuracy, macro/weighted F1, per-class precision/recall/F1), the
per-class report, the confusion matrix (JSON + PNG) and the model. The new version gets alias ``alias``
(default ``candidate``) and ``champion`` only if the model has no champion yet: ``jobs/evaluate.py``
decides promotions.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from udfs.errors import ConfigError
from udfs.models.catalog import load_catalog
from udfs.models.registry import client, register_folder, resolve
from udfs.platform import get_experiment_id
from udfs.models.labels import canonical_map
from udfs.training.data import Prepared, prepare
from udfs.training.finetune import _fit_finetune
from udfs.training.head import _fit_head
from udfs.training.metrics import classification_metrics, flat_metrics
from udfs.training.plots import confusion_png
from udfs.training.settings import TrainSettings


@dataclass
class TrainResult:
    name: str
    version: str
    created: bool
    run_id: str
    method: str
    labels: list[str]
    metrics: dict[str, float]
    report: dict[str, Any]
    confusion: list[list[int]]
    counts: dict[str, int]
    aliases: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def train(df, s: TrainSettings, *, catalog=None, run_id: str | None = None) -> TrainResult:
    """Prepare ``df``, fit by ``s.method``, log the run, register a new version; returns what happened.
    ``run_id``: log into that run (the training job's, udfs/io/tracking.py), else a new run ``train <name>``."""
    base_ref = base_reference(s, catalog)
    base = resolve(base_ref)  # fail before any Spark work on a bad reference
    if s.method == "head" and base.kind != "hf_encoder":
        raise ConfigError("base_model", base_ref, f"an embedding model (kind hf_encoder); got kind {base.kind!r}")
    if s.method == "finetune" and base.kind not in ("hf_encoder", "hf_classifier"):
        raise ConfigError("base_model", base_ref,
                          f"a Hugging Face model (hf_encoder, hf_classifier); got {base.kind!r}")
    data = prepare(df, s)
    if s.task == "sentiment":
        try:
            canonical_map(data.labels, s.label_map)
        except ValueError as exc:
            raise ConfigError("label_map", s.label_map, str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="textspark-train-") as tmp:
        stage = Path(tmp) / "weights"
        if s.method == "head":
            kind, params, test_true, test_pred, extra = _fit_head(data, s, base, stage)
        else:
            kind, params, test_true, test_pred, extra = _fit_finetune(data, s, base, stage)
        if s.label_map:
            params["label_map"] = dict(s.label_map)
        m = classification_metrics(test_true, test_pred, data.labels)
        with mlflow.start_run(run_id=run_id, experiment_id=None if run_id else get_experiment_id(s.experiment),
                              run_name=None if run_id else f"train {s.name}") as run:
            mlflow.log_params({"method": s.method, "task": s.task, "base_model": base.label,
                               "labels": ",".join(data.labels), "test_fraction": s.test_fraction, "seed": s.seed,
                               "max_rows": s.max_rows, "split_column": s.split_column,
                               "null_labels": s.null_labels, "drop_duplicates": s.drop_duplicates,
                               "domain_column": s.domain_column, "balance_domains": s.balance_domains,
                               **{f"{s.method}.{k}": v for k, v in extra["hyper"].items()},
                               **{f"rows.{k}": v for k, v in data.counts.items()}})
            mlflow.log_metrics(flat_metrics(m, "test."))
            mlflow.log_metrics({f"rows.{k}": v for k, v in data.counts.items()})
            mlflow.log_dict({k: m[k] for k in ("accuracy", "macro_f1", "weighted_f1", "per_class", "labels", "rows")},
                            "classification_report.json")
            mlflow.log_dict({"labels": data.labels, "matrix": m["confusion"]}, "confusion_matrix.json")
            mlflow.log_dict(data.class_counts, "class_counts.json")
            if data.domain_counts is not None:
                mlflow.log_dict(data.domain_counts, "domain_counts.json")
            mlflow.log_artifact(str(confusion_png(m["confusion"], data.labels, Path(tmp) / "confusion_matrix.png",
                                                  f"{s.name} ({s.method}) held-out")))
            mlflow.set_tags({"textspark.job": "train_classifier", "textspark.model": s.name})
            run_id = run.info.run_id
        version, created = _register(s, kind, params, stage, run_id, m, data)
    return TrainResult(name=s.name, version=version, created=created, run_id=run_id, method=s.method,
                       labels=data.labels, metrics={k: m[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
                       report=m["per_class"], confusion=m["confusion"], counts=data.counts,
                       aliases=_aliases(s.name))


def base_reference(s: TrainSettings, catalog=None) -> str:
    """The model ``s`` trains on: ``base_model``, else the catalog's embed default."""
    return s.base_model or (catalog or load_catalog()).default_reference("embed")


def _register(s: TrainSettings, kind: str, params: dict, stage: Path, run_id: str, m: dict, data: Prepared):
    version, created = register_folder(
        s.name, task=s.task, kind=kind, params=params, weights=stage, alias=None, run_id=run_id,
        description=s.description or f"{s.method} classifier for {s.task}: {', '.join(data.labels)}",
        languages=list(s.languages) if s.languages else None)
    mlc = client()
    for key, value in {"textspark.train.run_id": run_id, "textspark.train.macro_f1": f"{m['macro_f1']:.4f}",
                       "textspark.train.accuracy": f"{m['accuracy']:.4f}"}.items():
        mlc.set_model_version_tag(s.name, version, key, value)
    if s.alias:
        mlc.set_registered_model_alias(s.name, s.alias, version)
    if s.champion_if_absent and "champion" not in _aliases(s.name):
        mlc.set_registered_model_alias(s.name, "champion", version)
    return version, created


def _aliases(name: str) -> dict[str, str]:
    return {a: str(v) for a, v in (client().get_registered_model(name).aliases or {}).items()}


def result_summary(r: TrainResult) -> dict[str, Any]:
    return {"model": r.uri, "created": r.created, "run_id": r.run_id, "method": r.method, "labels": r.labels,
            "metrics": {k: round(v, 4) for k, v in r.metrics.items()}, "rows": r.counts, "aliases": r.aliases}


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
