"""Train a text classifier from a labeled Spark table and register it as a new MLflow model version.

Two methods:

* ``head`` (default): embed every row with a registered embedding model through the distributed ``embed``
  UDF, collect the vectors and labels (small: 384 floats a row), fit a softmax head on the driver.
  The registered version (kind ``embedding_head``) carries a copy of the encoder and the head, so
  ``classify`` / ``sentiment`` and ``mlflow.pyfunc.load_model`` load it on their own.
* ``finetune``: full fine-tuning of the encoder with a classification layer
  (AutoModelForSequenceClassification), on the driver; registered as kind ``hf_classifier``.

Data handling, all counted and logged: rows with a null/blank label are dropped (``null_labels: drop``,
the default) or fail the run (``null_labels: error``); rows with null/blank text are dropped; exact
duplicate (text, label) rows are dropped unless ``drop_duplicates: false``; ``max_rows`` takes a
stratified, deterministic subsample. The held-out split is stratified and deterministic (rows ranked by a
hash of text and label within each class), or given by ``split_column`` (train / test). Errors, raised
before any model work: an empty table, a single class, a class with fewer than 2 rows, test labels the
training split never saw.

The training run logs params, metrics (accuracy, macro/weighted F1, per-class precision/recall/F1), the
per-class report, the confusion matrix (JSON + PNG) and the model. The new version gets alias ``alias``
(default ``candidate``) and ``champion`` only if the model has no champion yet: ``jobs/evaluate.py``
decides promotions.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from udfs.errors import ConfigError
from udfs.models.backends.heads import ENCODER_DIR, HEAD_FILE, fit_head, forward, save_head
from udfs.models.backends.hf_classifier import SequenceClassifier
from udfs.models.catalog import load_catalog
from udfs.models.loading import local_folder
from udfs.models.registry import client, register_folder, resolve
from udfs.platform import get_experiment_id
from udfs.tasks.embed import embed
from udfs.tasks.sentiment import canonical_map

METHODS = ("head", "finetune")
TASKS = ("classify", "sentiment")
NULL_LABELS = ("drop", "error")
TEST_SPLIT_VALUES = ("test", "validation", "val", "dev", "eval", "holdout")
HEAD_DEFAULTS = {"hidden": 256, "epochs": 40, "learning_rate": 1e-3, "weight_decay": 1e-4, "dropout": 0.2,
                 "batch_size": 128, "class_weight": "balanced"}
FINETUNE_DEFAULTS = {"epochs": 2, "learning_rate": 5e-5, "batch_size": 16, "max_length": 128, "weight_decay": 0.01}
TRAINING_EXPERIMENT = "textspark-training"


@dataclass(frozen=True)
class TrainSettings:
    name: str                                   # registered model name
    task: str = "classify"                      # classify | sentiment
    method: str = "head"                        # head | finetune
    base_model: str | None = None               # embedding model reference (default: the catalog's embed)
    text_column: str = "text"
    label_column: str = "label"
    split_column: str | None = None
    test_fraction: float = 0.2
    seed: int = 0
    max_rows: int | None = None
    drop_duplicates: bool = True
    null_labels: str = "drop"
    head: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    label_map: dict[str, str] | None = None     # sentiment: model label -> negative | neutral | positive
    alias: str | None = "candidate"             # moved to the new version
    champion_if_absent: bool = True             # also make it champion when the model has none
    description: str = ""
    experiment: str = TRAINING_EXPERIMENT

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name or "@" in self.name:
            raise ConfigError("register.name", self.name, "a registered model name without / or @")
        if self.task not in TASKS:
            raise ConfigError("task", self.task, TASKS)
        if self.method not in METHODS:
            raise ConfigError("method", self.method, METHODS)
        if self.null_labels not in NULL_LABELS:
            raise ConfigError("null_labels", self.null_labels, NULL_LABELS)
        if isinstance(self.test_fraction, bool) or not isinstance(self.test_fraction, (int, float)) \
                or not 0.0 < self.test_fraction < 1.0:
            raise ConfigError("test_fraction", self.test_fraction, "a number strictly between 0 and 1")
        if self.max_rows is not None and (isinstance(self.max_rows, bool) or not isinstance(self.max_rows, int)
                                          or self.max_rows < 4):
            raise ConfigError("max_rows", self.max_rows, "null or an integer >= 4")
        _check_keys("head", self.head, HEAD_DEFAULTS)
        _check_keys("finetune", self.finetune, FINETUNE_DEFAULTS)

    def head_params(self) -> dict[str, Any]:
        return {**HEAD_DEFAULTS, **self.head}

    def finetune_params(self) -> dict[str, Any]:
        return {**FINETUNE_DEFAULTS, **self.finetune}


def _check_keys(section: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    if not isinstance(given, Mapping):
        raise ConfigError(section, given, f"a mapping with keys {', '.join(defaults)}")
    for key, value in given.items():
        if key not in defaults:
            raise ConfigError(f"{section}.{key}", value, f"keys {', '.join(defaults)}")
        default = defaults[key]
        if isinstance(default, (int, float)) and not isinstance(default, bool) and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ConfigError(f"{section}.{key}", value, "a non-negative number")


@dataclass
class Prepared:
    """The labeled rows after cleaning, sampling and splitting (a Spark DataFrame: text, label, split)."""

    df: Any
    labels: list[str]
    counts: dict[str, int]
    class_counts: dict[str, dict[str, int]]


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


# ---- data -----------------------------------------------------------------------------------------

def prepare(df, s: TrainSettings) -> Prepared:
    """Clean, subsample and split a labeled table (see the module docstring); raises ValueError on data
    that cannot train a classifier, ConfigError on missing columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    for key in ("text_column", "label_column", "split_column"):
        col = getattr(s, key)
        if col is not None and col not in df.columns:
            raise ConfigError(key, col, df.columns)
    cols = [F.col(f"`{s.text_column}`").cast("string").alias("text"),
            F.trim(F.col(f"`{s.label_column}`").cast("string")).alias("label")]
    if s.split_column:
        cols.append(F.lower(F.trim(F.col(f"`{s.split_column}`").cast("string"))).alias("given_split"))
    d = df.select(*cols)
    blank_label = F.col("label").isNull() | (F.col("label") == "")
    blank_text = F.col("text").isNull() | (F.trim(F.col("text")) == "")
    agg = d.agg(F.count(F.lit(1)).alias("rows"), F.sum(blank_label.cast("int")).alias("null_labels"),
                F.sum((~blank_label & blank_text).cast("int")).alias("null_texts")).first()
    counts = {"rows_in": int(agg["rows"]), "null_labels": int(agg["null_labels"] or 0),
              "null_texts": int(agg["null_texts"] or 0)}
    if counts["rows_in"] == 0:
        raise ValueError(f"training table is empty: no rows to train on (text column {s.text_column!r}, "
                         f"label column {s.label_column!r})")
    if counts["null_labels"] and s.null_labels == "error":
        raise ValueError(f"{s.label_column}: {counts['null_labels']} of {counts['rows_in']} rows have a null or "
                         "blank label (null_labels: error); fix them or set null_labels: drop")
    d = d.filter(~blank_label & ~blank_text)
    if s.drop_duplicates:
        before = d.count()
        d = d.dropDuplicates(["text", "label"] + (["given_split"] if s.split_column else []))
        counts["duplicates"] = before - d.count()
    by_label = {r["label"]: int(r["count"]) for r in d.groupBy("label").count().collect()}
    if not by_label:
        raise ValueError(f"training table has no row with both a text and a label ({counts['rows_in']} rows in, "
                         f"{counts['null_labels']} without label, {counts['null_texts']} without text)")
    if len(by_label) < 2:
        raise ValueError(f"{s.label_column}: only one class ({next(iter(by_label))!r}, {sum(by_label.values())} "
                         "rows); a classifier needs at least 2 classes")
    total = sum(by_label.values())
    order = Window.partitionBy("label").orderBy(F.xxhash64("text", "label", F.lit(s.seed)), "text")
    d = d.withColumn("_rank", F.row_number().over(order))
    keep = {label: n for label, n in by_label.items()}
    if s.max_rows and total > s.max_rows:
        keep = {label: max(2, math.ceil(n * s.max_rows / total)) for label, n in by_label.items()}
        d = d.join(F.broadcast(d.sparkSession.createDataFrame(list(keep.items()), "label string, _keep int")), "label")
        d = d.filter(F.col("_rank") <= F.col("_keep")).drop("_keep")
        keep = {label: min(n, by_label[label]) for label, n in keep.items()}
    if s.split_column:
        split = F.when(F.col("given_split") == "train", "train") \
                 .when(F.col("given_split").isin(*TEST_SPLIT_VALUES), "test")
        d = d.withColumn("split", split)
        bad = d.filter(F.col("split").isNull()).select("given_split").distinct().limit(5).collect()
        if bad:
            raise ValueError(f"{s.split_column}: values {[r[0] for r in bad]} are neither train nor one of "
                             f"{', '.join(TEST_SPLIT_VALUES)}")
        d = d.drop("given_split")
    else:
        small = sorted(label for label, n in keep.items() if n < 2)
        if small:
            raise ValueError(f"{s.label_column}: classes {small} have fewer than 2 rows; a stratified held-out "
                             "split needs at least 2 per class (add rows or drop the class)")
        n_test = {label: min(n - 1, max(1, round(n * s.test_fraction))) for label, n in keep.items()}
        tests = d.sparkSession.createDataFrame(list(n_test.items()), "label string, _ntest int")
        d = d.join(F.broadcast(tests), "label") \
             .withColumn("split", F.when(F.col("_rank") <= F.col("_ntest"), "test").otherwise("train")).drop("_ntest")
    d = d.select("text", "label", "split")
    per = d.groupBy("split", "label").count().collect()
    class_counts: dict[str, dict[str, int]] = {"train": {}, "test": {}}
    for r in per:
        class_counts[r["split"]][r["label"]] = int(r["count"])
    labels = sorted(class_counts["train"])
    if len(labels) < 2:
        raise ValueError(f"{s.label_column}: the training split has classes {labels}; need at least 2")
    unseen = sorted(set(class_counts["test"]) - set(labels))
    if unseen:
        raise ValueError(f"{s.label_column}: test-split labels {unseen} never occur in the training split "
                         f"(training labels: {labels})")
    if not class_counts["test"]:
        raise ValueError(f"{s.split_column}: no test rows; a held-out split is needed to measure the model")
    counts.update(train=sum(class_counts["train"].values()), test=sum(class_counts["test"].values()))
    return Prepared(df=d, labels=labels, counts=counts, class_counts=class_counts)


# ---- metrics ----------------------------------------------------------------------------------------

def classification_metrics(y_true: list[str], y_pred: list[str | None], labels: list[str]) -> dict[str, Any]:
    """accuracy, macro/weighted F1, per-class precision/recall/F1/support, confusion matrix (rows: true).

    A missing prediction (None) counts as wrong for its true class."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    none = "(no prediction)"
    pred = [none if p is None else p for p in y_pred]
    p, r, f, support = precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, pred, labels=labels, average="weighted", zero_division=0)),
        "per_class": {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                              "support": int(support[i])} for i, label in enumerate(labels)},
        "confusion": confusion_matrix(y_true, pred, labels=labels).tolist(),
        "labels": list(labels),
        "rows": len(y_true),
        "no_prediction": sum(x is None for x in y_pred),
    }


def flat_metrics(m: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out = {f"{prefix}{k}": float(m[k]) for k in ("accuracy", "macro_f1", "weighted_f1")}
    for label, stats in m["per_class"].items():
        for k in ("precision", "recall", "f1"):
            out[f"{prefix}{_metric_key(label)}.{k}"] = float(stats[k])
    return out


def _metric_key(label: str) -> str:
    import re

    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", str(label)) or "_"


def confusion_png(confusion: list[list[int]], labels: list[str], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(labels), 1.0 + 0.8 * len(labels)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---- training ---------------------------------------------------------------------------------------

def train(df, s: TrainSettings, *, catalog=None) -> TrainResult:
    """Prepare ``df``, fit by ``s.method``, log the run, register a new version; returns what happened."""
    import mlflow


    base_ref = s.base_model or _default_base(catalog)
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
        with mlflow.start_run(experiment_id=get_experiment_id(s.experiment), run_name=f"train {s.name}") as run:
            mlflow.log_params({"method": s.method, "task": s.task, "base_model": base.label,
                               "labels": ",".join(data.labels), "test_fraction": s.test_fraction, "seed": s.seed,
                               "max_rows": s.max_rows, "split_column": s.split_column,
                               "null_labels": s.null_labels, "drop_duplicates": s.drop_duplicates,
                               **{f"{s.method}.{k}": v for k, v in extra["hyper"].items()},
                               **{f"rows.{k}": v for k, v in data.counts.items()}})
            mlflow.log_metrics(flat_metrics(m, "test."))
            mlflow.log_metrics({f"rows.{k}": v for k, v in data.counts.items()})
            mlflow.log_dict({k: m[k] for k in ("accuracy", "macro_f1", "weighted_f1", "per_class", "labels", "rows")},
                            "classification_report.json")
            mlflow.log_dict({"labels": data.labels, "matrix": m["confusion"]}, "confusion_matrix.json")
            mlflow.log_dict(data.class_counts, "class_counts.json")
            mlflow.log_artifact(str(confusion_png(m["confusion"], data.labels, Path(tmp) / "confusion_matrix.png",
                                                  f"{s.name} ({s.method}) held-out")))
            mlflow.set_tags({"textspark.job": "train_classifier", "textspark.model": s.name})
            run_id = run.info.run_id
        version, created = _register(s, kind, params, stage, run_id, m, data)
    return TrainResult(name=s.name, version=version, created=created, run_id=run_id, method=s.method,
                       labels=data.labels, metrics={k: m[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
                       report=m["per_class"], confusion=m["confusion"], counts=data.counts,
                       aliases=_aliases(s.name))


def _default_base(catalog) -> str:
    return (catalog or load_catalog()).default_reference("embed")


def _fit_head(data: Prepared, s: TrainSettings, base, stage: Path):
    hyper = s.head_params()
    rows = data.df.select("label", "split", embed("text", model=base.uri, with_error=True).alias("e")) \
                  .select("label", "split", "e.embedding").toPandas()
    ok = rows["embedding"].notna().to_numpy()
    data.counts["embed_failed"] = int((~ok).sum())
    rows = rows[ok]
    x = np.stack(rows["embedding"].to_numpy()).astype(np.float32)
    index = {label: i for i, label in enumerate(data.labels)}
    train_mask = (rows["split"] == "train").to_numpy()
    y = rows["label"].map(index).to_numpy()
    layers = fit_head(x[train_mask], y[train_mask].astype(np.int64), len(data.labels), seed=s.seed,
                      **{k: hyper[k] for k in HEAD_DEFAULTS})
    proba = forward(layers, x[~train_mask])
    pred = [data.labels[j] for j in proba.argmax(axis=1)]
    true = rows.loc[~train_mask, "label"].tolist()
    stage_head(stage, base, layers)
    params = {**base.params, "labels": data.labels, "base_model": base.label,
              "head": {"hidden": hyper["hidden"], "activation": "relu"}}
    return "embedding_head", params, true, pred, {"hyper": hyper}


def stage_head(stage: Path, base, layers) -> Path:
    """``stage``/encoder (a copy of the base model's weights) + ``stage``/head.npz: a head's weights folder."""
    stage.mkdir(parents=True)
    shutil.copytree(local_folder(base) / "weights", stage / ENCODER_DIR)
    save_head(stage / HEAD_FILE, layers)
    return stage


def _fit_finetune(data: Prepared, s: TrainSettings, base, stage: Path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer


    hyper = s.finetune_params()
    rows = data.df.toPandas()
    train_rows, test_rows = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    index = {label: i for i, label in enumerate(data.labels)}
    weights = local_folder(base) / "weights"
    torch.manual_seed(s.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(weights))
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "some weights newly initialized": expected, it is the new head
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(weights), num_labels=len(data.labels), id2label=dict(enumerate(data.labels)), label2id=index,
            ignore_mismatched_sizes=True)
    finally:
        transformers.logging.set_verbosity(verbosity)
    texts, y = train_rows["text"].tolist(), train_rows["label"].map(index).to_numpy()
    bs, epochs = int(hyper["batch_size"]), int(hyper["epochs"])
    steps = max(1, epochs * math.ceil(len(texts) / bs))
    opt = torch.optim.AdamW(model.parameters(), lr=float(hyper["learning_rate"]),
                            weight_decay=float(hyper["weight_decay"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / steps))
    gen = torch.Generator().manual_seed(s.seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(texts), generator=gen).tolist()
        for start in range(0, len(texts), bs):
            idx = perm[start:start + bs]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=int(hyper["max_length"]), return_tensors="pt")
            loss = model(**batch, labels=torch.tensor(y[idx], dtype=torch.long)).loss
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
    model.eval()
    stage.mkdir(parents=True)
    model.save_pretrained(stage)
    tokenizer.save_pretrained(stage)
    params = {"labels": data.labels, "max_tokens": int(hyper["max_length"]), "base_model": base.label}
    served = SequenceClassifier(stage, **params)
    proba = served.predict_proba(test_rows["text"].tolist())
    pred = [data.labels[j] for j in proba.argmax(axis=1)]
    return "hf_classifier", params, test_rows["label"].tolist(), pred, {"hyper": hyper}


def _register(s: TrainSettings, kind: str, params: dict, stage: Path, run_id: str, m: dict, data: Prepared):
    version, created = register_folder(
        s.name, task=s.task, kind=kind, params=params, weights=stage, alias=None, run_id=run_id,
        description=s.description or f"{s.method} classifier for {s.task}: {', '.join(data.labels)}")
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


def register_head(name: str, *, task: str, base_model: str, layers, labels: list[str],
                  label_map: Mapping[str, str] | None = None, alias: str | None = "candidate",
                  description: str = "") -> tuple[str, bool]:
    """Register a head with given layers on ``base_model``'s encoder (e.g. one fitted elsewhere); (version, created)."""
    base = resolve(base_model)
    with tempfile.TemporaryDirectory(prefix="textspark-head-") as tmp:
        stage = stage_head(Path(tmp) / "weights", base, layers)
        params = {**base.params, "labels": list(labels), "base_model": base.label,
                  "head": {"hidden": int(layers[0][0].shape[1]) if len(layers) > 1 else 0, "activation": "relu"}}
        if label_map:
            params["label_map"] = dict(label_map)
        return register_folder(name, task=task, kind="embedding_head", params=params, weights=stage, alias=alias,
                               description=description)
