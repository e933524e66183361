"""The labeled rows a classifier trains and is measured on: cleaned, subsampled and split, all counted.

Rows with a null/blank label are dropped (``null_labels: drop``, the default) or fail the run
(``null_labels: error``); rows with null/blank text are dropped; exact duplicate (text, label) rows are
dropped unless ``drop_duplicates: false``; ``max_rows`` takes a stratified, deterministic subsample. The
held-out split is stratified and deterministic (rows ranked by a hash of text and label within each class),
or given by ``split_column`` (train / test). With ``domain_column`` (rows from several sources, e.g. tweets
and drug reviews) ``max_rows``, the subsample and the split apply within each domain (a domain's rows are
ranked, kept and split exactly as if it were the only one), and ``domain_counts`` gives each domain's
per-split class counts. Errors, raised before any model work: an empty table, a single
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
    domain_counts: dict[str, dict[str, dict[str, int]]] | None = None  # domain -> split -> label -> rows


def prepare(df, s: TrainSettings) -> Prepared:
    """Clean, subsample and split a labeled table (see the module docstring); raises ValueError on data
    that cannot train a classifier, ConfigError on missing columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    for key in ("text_column", "label_column", "split_column", "domain_column"):
        col = getattr(s, key)
        if col is not None and col not in df.columns:
            raise ConfigError(key, col, df.columns)
    cols = [F.col(f"`{s.text_column}`").cast("string").alias("text"),
            F.trim(F.col(f"`{s.label_column}`").cast("string")).alias("label")]
    if s.split_column:
        cols.append(F.lower(F.trim(F.col(f"`{s.split_column}`").cast("string"))).alias("given_split"))
    domain = F.coalesce(F.col(f"`{s.domain_column}`").cast("string"), F.lit("")) if s.domain_column else F.lit("")
    cols.append(domain.alias("domain"))
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
        d = d.dropDuplicates(["text", "label", "domain"] + (["given_split"] if s.split_column else []))
        counts["duplicates"] = before - d.count()
    by_group = {(r["domain"], r["label"]): int(r["count"]) for r in d.groupBy("domain", "label").count().collect()}
    by_label: dict[str, int] = {}
    for (_, label), n in by_group.items():
        by_label[label] = by_label.get(label, 0) + n
    if not by_label:
        raise ValueError(f"training table has no row with both a text and a label ({counts['rows_in']} rows in, "
                         f"{counts['null_labels']} without label, {counts['null_texts']} without text)")
    if len(by_label) < 2:
        raise ValueError(f"{s.label_column}: only one class ({next(iter(by_label))!r}, {sum(by_label.values())} "
                         "rows); a classifier needs at least 2 classes")
    order = Window.partitionBy("domain", "label").orderBy(F.xxhash64("text", "label", F.lit(s.seed)), "text")
    d = d.withColumn("_rank", F.row_number().over(order))
    keep = _subsample_sizes(by_group, s.max_rows)
    if keep != by_group:
        d = d.join(F.broadcast(_group_table(d.sparkSession, keep, "_keep")), ["domain", "label"])
        d = d.filter(F.col("_rank") <= F.col("_keep")).drop("_keep")
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
        small = sorted(_group_name(g) for g, n in keep.items() if n < 2)
        if small:
            raise ValueError(f"{s.label_column}: classes {small} have fewer than 2 rows; a stratified held-out "
                             "split needs at least 2 per class (add rows or drop the class)")
        n_test = {g: min(n - 1, max(1, round(n * s.test_fraction))) for g, n in keep.items()}
        d = d.join(F.broadcast(_group_table(d.sparkSession, n_test, "_ntest")), ["domain", "label"]) \
             .withColumn("split", F.when(F.col("_rank") <= F.col("_ntest"), "test").otherwise("train")).drop("_ntest")
    d = d.select("text", "label", "split", *(["domain"] if s.domain_column else []))
    per = d.groupBy("split", "label", *(["domain"] if s.domain_column else [])).count().collect()
    class_counts: dict[str, dict[str, int]] = {"train": {}, "test": {}}
    domain_counts: dict[str, dict[str, dict[str, int]]] = {}
    for r in per:
        class_counts[r["split"]][r["label"]] = class_counts[r["split"]].get(r["label"], 0) + int(r["count"])
        if s.domain_column:
            domain_counts.setdefault(r["domain"], {"train": {}, "test": {}})[r["split"]][r["label"]] = int(r["count"])
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
    return Prepared(df=d, labels=labels, counts=counts, class_counts=class_counts,
                    domain_counts=domain_counts if s.domain_column else None)


def _subsample_sizes(by_group: dict[tuple[str, str], int], max_rows: int | None) -> dict[tuple[str, str], int]:
    """Rows kept per (domain, label): all, or a stratified share of ``max_rows`` within each domain larger
    than it (at least 2 a class)."""
    totals: dict[str, int] = {}
    for (domain, _), n in by_group.items():
        totals[domain] = totals.get(domain, 0) + n
    return {(domain, label): n if not max_rows or totals[domain] <= max_rows
            else min(n, max(2, math.ceil(n * max_rows / totals[domain])))
            for (domain, label), n in by_group.items()}


def _group_table(spark, sizes: dict[tuple[str, str], int], column: str):
    return spark.createDataFrame([(domain, label, n) for (domain, label), n in sizes.items()],
                                 f"domain string, label string, {column} int")


def _group_name(group: tuple[str, str]) -> str:
    domain, label = group
    return f"{domain}/{label}" if domain else label
