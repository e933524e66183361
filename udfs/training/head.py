"""``method: head``: a softmax head fitted on frozen embeddings, registered with a copy of the encoder.

Every row is embedded with a registered embedding model through the distributed ``embed`` UDF; the vectors
and labels (small: 384 floats a row) are collected and the head is fitted on the driver. The registered
version (kind ``embedding_head``) carries a copy of the encoder and the head, so ``classify`` /
``sentiment`` and ``mlflow.pyfunc.load_model`` load it on their own.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from udfs.models.backends.heads import ENCODER_DIR, HEAD_FILE, domain_weights, fit_head, forward, save_head
from udfs.models.loading import local_folder
from udfs.models.registry import register_folder, resolve
from udfs.runtime import driver
from udfs.runtime.progress import progress, say
from udfs.tasks.embed import embed_plan
from udfs.training.data import Prepared
from udfs.training.settings import KIND_OF_METHOD, TrainSettings


def _fit_head(data: Prepared, s: TrainSettings, base, stage: Path):
    """Fit the head on the training split, weights to ``stage``; (kind, params, test labels, test predictions,
    {"hyper": hyper-parameters})."""
    hyper = s.head_params()
    keys = ["text", "label", "split"] + (["domain"] if "domain" in data.df.columns else [])
    # languages="any": the training table is the user's choice of text, never withheld by the language guard
    total = sum(n for split in data.class_counts.values() for n in split.values())
    meter = progress(data.df.sparkSession, {f"embedding the training rows with {base.label}":
                                            embed_plan(model=base.uri, languages="any")}, total)
    embed = driver.make_udf(next(iter(meter.tasks.values())))
    with meter:
        rows = data.df.select(*keys, embed("text").alias("e")).select(*keys, "e.embedding").toPandas()
    # Spark returns rows in partition order, which varies with the cluster: sort so the seed alone decides
    rows = rows.sort_values(["split", "label", "text"], kind="stable", ignore_index=True)
    ok = rows["embedding"].notna().to_numpy()
    data.counts["embed_failed"] = int((~ok).sum())
    rows = rows[ok]
    x = np.stack(rows["embedding"].to_numpy()).astype(np.float32)
    index = {label: i for i, label in enumerate(data.labels)}
    train_mask = (rows["split"] == "train").to_numpy()
    y = rows["label"].map(index).to_numpy()
    fitting = time.monotonic()
    say(f"fitting the head of {s.name} on {int(train_mask.sum()):,} rows ({hyper['epochs']} epochs)")
    if s.balance_domains and "domain" in rows:  # every domain weighs the same (and its classes within it)
        weights = domain_weights(y[train_mask], rows.loc[train_mask, "domain"].to_numpy(),
                                 class_weight=hyper["class_weight"])
        layers = fit_head(x[train_mask], y[train_mask].astype(np.int64), len(data.labels), seed=s.seed,
                          **{**hyper, "class_weight": None}, sample_weight=weights)
    else:
        layers = fit_head(x[train_mask], y[train_mask].astype(np.int64), len(data.labels), seed=s.seed, **hyper)
    say(f"fitted the head of {s.name} in {time.monotonic() - fitting:.1f} s")
    proba = forward(layers, x[~train_mask])
    pred = [data.labels[j] for j in proba.argmax(axis=1)]
    true = rows.loc[~train_mask, "label"].tolist()
    stage_head(stage, base, layers)
    params = {**base.params, "labels": data.labels, "base_model": base.label,
              "head": {"hidden": hyper["hidden"], "activation": "relu"}}
    return KIND_OF_METHOD["head"], params, true, pred, {"hyper": hyper}


def stage_head(stage: Path, base, layers) -> Path:
    """``stage``/encoder (a copy of the base model's weights) + ``stage``/head.npz: a head's weights folder."""
    stage.mkdir(parents=True)
    shutil.copytree(local_folder(base) / "weights", stage / ENCODER_DIR)
    save_head(stage / HEAD_FILE, layers)
    return stage


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
