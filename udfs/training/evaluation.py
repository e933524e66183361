"""Evaluate registered versions on a labeled table and promote an alias only on a measured win.

``evaluate_model`` scores one version with its task's UDF (distributed, like any job) and computes
accuracy, macro/weighted F1 and per-class precision/recall. ``compare_and_promote`` evaluates the current
champion and the candidates on the same rows, moves the alias to the best candidate only when it beats the
champion on ``metric`` by more than ``margin`` (or there is no champion yet), and records every decision:
an MLflow run (params, per-version metrics, ``decision.json``, confusion matrices) and tags on the
registered model and the versions.

Labels: rows with a null/blank true label are dropped (counted). A true label the model cannot predict
(outside its label set) fails with an error naming those labels (``unseen_labels: error``, the default),
or those rows are dropped and counted (``unseen_labels: drop``). A row the model gave no prediction
(bad input) counts as wrong.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, get_args

import mlflow

from udfs.errors import ConfigError
from udfs.models.reference import parse_reference
from udfs.models.registry import client, resolve
from udfs.platform import get_experiment_id
from udfs.runtime import driver
from udfs.models.labels import CANONICAL, canonical_map
from udfs.tasks.table import TASK_DEFS
from udfs.training.metrics import classification_metrics, flat_metrics
from udfs.training.plots import confusion_png

Metric = Literal["macro_f1", "accuracy", "weighted_f1"]
UnseenLabels = Literal["error", "drop"]
METRICS, UNSEEN = get_args(Metric), get_args(UnseenLabels)
EVALUATION_EXPERIMENT = "textspark-evaluation"


@dataclass
class Evaluation:
    reference: str
    name: str
    version: str
    metrics: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)

    def score(self, metric: str) -> float:
        return float(self.metrics[metric])


@dataclass
class Decision:
    model: str
    alias: str
    metric: str
    margin: float
    champion_version: str | None
    champion_score: float | None
    candidate_version: str
    candidate_score: float
    promoted: bool
    applied: bool
    reason: str


def model_labels(plan) -> list[str] | None:
    """The labels a planned sentiment/classify UDF can output (None when the registry does not say)."""
    if plan.task == "sentiment":
        known = plan.model.params.get("labels")
        if not known:
            return list(CANONICAL)
        covered = set(canonical_map(known, plan.options.get("label_map")).values())
        return [c for c in CANONICAL if c in covered]
    labels = plan.options.get("labels") or plan.model.params.get("labels")
    return [str(x) for x in labels] if labels else None


def evaluate_model(df, reference: str, *, task: str, text_column: str = "text", label_column: str = "label",
                   options: Mapping[str, Any] | None = None, unseen_labels: str = "error") -> Evaluation:
    from pyspark.sql import functions as F

    if task not in ("sentiment", "classify"):
        raise ConfigError("task", task, "sentiment, classify")
    if unseen_labels not in UNSEEN:
        raise ConfigError("unseen_labels", unseen_labels, UNSEEN)
    for key, col in (("text_column", text_column), ("label_column", label_column)):
        if col not in df.columns:
            raise ConfigError(key, col, df.columns)
    plan = TASK_DEFS[task].plan(model=reference, **dict(options or {}))
    labels = model_labels(plan)
    truth = F.trim(F.col(f"`{label_column}`").cast("string"))
    scored = df.select(truth.alias("truth"), driver.make_udf(plan)(F.col(f"`{text_column}`")).alias("p")) \
               .select("truth", F.col("p.label").alias("pred"), F.col("p.error").alias("error")).toPandas()
    counts = {"rows_in": len(scored)}
    blank = scored["truth"].isna() | (scored["truth"] == "")
    counts["null_labels"] = int(blank.sum())
    scored = scored[~blank]
    if labels is not None:
        unseen = scored["truth"][~scored["truth"].isin(labels)]
        if len(unseen) and unseen_labels == "error":
            raise ValueError(f"{label_column}: labels {sorted(unseen.unique())[:20]} ({len(unseen)} rows) are not "
                             f"among the labels {plan.model.label} predicts ({', '.join(labels)}); map or drop "
                             "them, or set unseen_labels: drop")
        counts["unseen_labels"] = int(len(unseen))
        scored = scored[scored["truth"].isin(labels)]
    else:
        labels = sorted(set(scored["truth"]) | set(scored["pred"].dropna()))
    if scored.empty:
        raise ValueError(f"no labeled rows left to evaluate {plan.model.label} on ({counts})")
    counts["rows"] = len(scored)
    counts["no_prediction"] = int(scored["pred"].isna().sum())
    preds = [None if p is None or p != p else p for p in scored["pred"]]
    m = classification_metrics(scored["truth"].tolist(), preds, labels)
    return Evaluation(reference=reference, name=plan.model.name, version=plan.model.version, metrics=m, counts=counts)


def decide(champion: Evaluation | None, candidates: Sequence[Evaluation], *, metric: str, margin: float,
           alias: str) -> Decision:
    """Pick the best candidate; promote it only if it beats the champion by more than ``margin``."""
    best = max(candidates, key=lambda e: (e.score(metric), -int(e.version)))
    common = dict(model=best.name, alias=alias, metric=metric, margin=margin, candidate_version=best.version,
                  candidate_score=best.score(metric), applied=False)
    if champion is None:
        return Decision(champion_version=None, champion_score=None, promoted=True,
                        reason=f"no @{alias} yet: v{best.version} becomes @{alias}", **common)
    c, b = champion.score(metric), best.score(metric)
    if best.version == champion.version:
        return Decision(champion_version=champion.version, champion_score=c, promoted=False,
                        reason=f"the best candidate is already @{alias} (v{best.version})", **common)
    if b - c > margin + 1e-9:  # strictly more than the margin (1e-9: float noise, 0.81 - 0.80 > 0.01)
        reason = (f"v{best.version} {metric}={b:.4f} beats @{alias} v{champion.version} {metric}={c:.4f} "
                  f"by {b - c:.4f} > margin {margin}")
        return Decision(champion_version=champion.version, champion_score=c, promoted=True, reason=reason, **common)
    reason = (f"v{best.version} {metric}={b:.4f} does not beat @{alias} v{champion.version} {metric}={c:.4f} "
              f"by more than margin {margin} (difference {b - c:+.4f})")
    return Decision(champion_version=champion.version, champion_score=c, promoted=False, reason=reason, **common)


def compare_and_promote(df, *, name: str, candidates: Sequence[str], task: str, alias: str = "champion",
                        metric: str = "macro_f1", margin: float = 0.0, promote: bool = True,
                        text_column: str = "text", label_column: str = "label",
                        options: Mapping[str, Any] | None = None, unseen_labels: str = "error",
                        experiment: str = EVALUATION_EXPERIMENT, data_description: str = "",
                        run_id: str | None = None) -> dict[str, Any]:
    """Evaluate @alias and ``candidates`` (references to versions of ``name``) on ``df``; maybe move ``alias``.
    ``run_id``: record into that run (the evaluate job's, udfs/io/tracking.py), else a new run ``evaluate <name>``."""
    if metric not in METRICS:
        raise ConfigError("metric", metric, METRICS)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0:
        raise ConfigError("margin", margin, "a number >= 0")
    if not candidates:
        raise ConfigError("candidates", candidates, f"a non-empty list of references to versions of {name!r}")
    resolved = []
    for ref in candidates:
        if parse_reference(ref)[0] != name:
            raise ConfigError("candidates", ref,
                              f"versions of {name!r} (models:/{name}/<version> or models:/{name}@<alias>)")
        resolved.append(resolve(ref, task=task))
    mlc = client()
    aliases = {a: str(v) for a, v in (mlc.get_registered_model(name).aliases or {}).items()}
    champion_version = aliases.get(alias)
    common = dict(task=task, text_column=text_column, label_column=label_column, options=options,
                  unseen_labels=unseen_labels)
    evaluations: dict[str, Evaluation] = {}
    if champion_version is not None:
        evaluations[champion_version] = evaluate_model(df, f"models:/{name}/{champion_version}", **common)
    for r in resolved:
        if r.version not in evaluations:
            evaluations[r.version] = evaluate_model(df, r.uri, **common)
    champion = evaluations.get(champion_version) if champion_version else None
    decision = decide(champion, [evaluations[r.version] for r in resolved], metric=metric, margin=float(margin),
                      alias=alias)
    if decision.promoted and promote:
        mlc.set_registered_model_alias(name, alias, decision.candidate_version)
        decision.applied = True
    summary = {"model": name, "metric": metric, "margin": margin, "data": data_description,
               "evaluations": {v: {"reference": e.reference, "counts": e.counts,
                                   **{k: e.metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1", "per_class")}}
                               for v, e in evaluations.items()},
               "decision": asdict(decision)}
    summary["run_id"] = _record(summary, evaluations, decision, experiment, run_id)
    return summary


def _record(summary: dict, evaluations: dict[str, Evaluation], decision: Decision, experiment: str,
            run_id: str | None = None) -> str:
    with mlflow.start_run(run_id=run_id, experiment_id=None if run_id else get_experiment_id(experiment),
                          run_name=None if run_id else f"evaluate {decision.model}") as run:
        mlflow.log_params({"model": decision.model, "alias": decision.alias, "metric": decision.metric,
                           "margin": decision.margin, "versions": ",".join(evaluations),
                           "data": summary["data"][:500]})
        for version, e in evaluations.items():
            mlflow.log_metrics(flat_metrics(e.metrics, f"v{version}."))
        mlflow.log_metrics({"promoted": float(decision.applied)})
        mlflow.log_dict(summary, "decision.json")
        with tempfile.TemporaryDirectory() as tmp:
            for version, e in evaluations.items():
                mlflow.log_artifact(str(confusion_png(e.metrics["confusion"], e.metrics["labels"],
                                                      Path(tmp) / f"confusion_v{version}.png",
                                                      f"{decision.model} v{version}")))
        mlflow.set_tags({"textspark.job": "evaluate", "textspark.model": decision.model,
                         "textspark.decision": "promoted" if decision.applied else "kept",
                         "textspark.reason": decision.reason[:5000]})
        run_id = run.info.run_id
    mlc = client()
    record = json.dumps({**asdict(decision), "run_id": run_id})
    mlc.set_registered_model_tag(decision.model, "textspark.last_decision", record)
    for version, e in evaluations.items():
        mlc.set_model_version_tag(decision.model, version, f"textspark.eval.{decision.metric}",
                                  f"{e.score(decision.metric):.4f} (run {run_id})")
    mlc.set_model_version_tag(decision.model, decision.candidate_version, "textspark.decision", record)
    return run_id
