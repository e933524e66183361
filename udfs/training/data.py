"""The labeled rows a classifier trains and is measured on: cleaned, subsampled and split, all counted.

Rows with a null/blank label are dropped (``null_labels: drop``, the default) or fail the run
(``null_labels: error``); rows with null/blank text are dropped; exact duplicate (text, label) rows are
dropped unless ``drop_duplicates: false``; ``max_rows`` takes a stratified, deterministic subsample. The
held-out split is stratified and deterministic (rows ranked by a hash of text and label within each class),
or given by ``split_column`` (train / test). Errors, raised before any model work: an empty table, a single
class, a class with fewer than 2 rows, test labels the training split never saw.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from udfs.errors import ConfigError
from udfs.training.settings import TrainSettings

TEST_SPLIT_VALUES = ("test", "validation", "val", "dev", "eval", "holdout")


@dataclass
class Prepared:
    """The labeled rows after cleaning, sampling and splitting (a Spark DataFrame: text, label, split)."""

    df: Any
    labels: list[str]
    counts: dict[str, int]
    class_counts: dict[str, dict[str, int]]


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
