"""Shadow scoring: one table scored by two versions of a task (the champion and a challenger) in one pass, and
how their answers differ, before the challenger is promoted.

:func:`shadow` plans both versions as two tasks of one ``mapInArrow`` stage (udfs.tasks.pipeline): where they
share an encoder (two heads on one encoder) they share its forward pass. The diff table holds the row's key,
its language (where the task's models are language-guarded: the guard's language model, the catalog's
``defaults.language``, as a third task of the same stage), both result structs, ``flipped`` (the labels differ;
null where either has no label, and for ``embed``) and ``score_delta`` (the challenger's score for the
champion's label minus the champion's score; for ``embed`` the cosine distance of the two vectors).
:func:`summary` reads it back: the flip rate overall, per champion label and per language, the confusion
matrix champion label x challenger label, and for ``embed`` the drift (cosine similarity mean / p50 / p90 and
the overlap of each row's 10 nearest neighbours in both spaces, on at most 1,000 rows, on the driver).

For ``cluster`` (two registered clusterings) :mod:`udfs.training.shadow_clusters` scores the rows and
matches the clusters (``flipped``: the row left its champion cluster's matched partner), and :func:`summary`
adds the contingency table, the matching and the clusters that split or merge.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from udfs.errors import ConfigError
from udfs.tasks.pipeline import PlannedTask, apply_tasks, plan_tasks
from udfs.training.shadow_clusters import SPLIT_SHARE, ClusterPlan, cluster_shadow, cluster_summary, plan_clusters
from udfs.tasks.table import TASK_DEFS

TASKS = ("classify", "cluster", "embed", "sentiment")
COLUMNS = ("champion", "challenger")
LANGUAGE = "_language"          # the language task's column inside the stage (the diff names it ``language``)
UNIDENTIFIED = "unidentified"   # rows without a detected language, in the per-language counts
OVERLAP_K = 10
OVERLAP_ROWS = 1000


@dataclass(frozen=True)
class _Task:
    """The TaskConf shape plan_tasks reads."""

    task: str
    column: str
    settings: dict = field(default_factory=dict)


def plan_shadow(task: str, champion: str | None, challenger: str, settings: Mapping[str, Any] | None = None,
                *, catalog=None) -> list[PlannedTask] | ClusterPlan:
    """Both versions' plans (resolved here, on the driver; ConfigError keys ``champion``, ``challenger``,
    ``settings.<key>``), struct results for every task, and the language task where a model is guarded.
    ``cluster``: both clusterings loaded (:class:`udfs.training.shadow_clusters.ClusterPlan`; ``champion``
    required: a clustering has no catalog default)."""
    from udfs.models.catalog import load_catalog
    from udfs.tasks.language import language_plan

    if task not in TASKS:
        raise ConfigError("task", task, ", ".join(TASKS))
    if not challenger:
        raise ConfigError("challenger", challenger, "a model reference (models:/name@alias, models:/name/N)")
    if task == "cluster":
        if not champion:
            raise ConfigError("champion", champion, "a registered clustering (models:/name@alias, models:/name/N); "
                              "a clustering has no catalog default")
        return plan_clusters(champion, challenger, settings)
    allowed = ("device", "precision", "fail_on_error") + TASK_DEFS[task].extra_keys
    for key, value in dict(settings or {}).items():
        if key not in allowed:
            raise ConfigError(f"settings.{key}", value, f"keys {', '.join(allowed)}")
    catalog = catalog or load_catalog()
    champion = champion or catalog.default_reference(task)
    entries = [_Task(task, column, {**dict(settings or {}), "model": ref})
               for column, ref in zip(COLUMNS, (champion, challenger))]
    try:
        planned = plan_tasks(entries, catalog=catalog)
    except ConfigError as exc:  # tasks[i].model -> champion / challenger; tasks[i].<key> -> settings.<key>
        index, _, key = exc.key.partition("].")
        column = COLUMNS[int(index.removeprefix("tasks["))] if index.startswith("tasks[") else None
        raise ConfigError(column if key == "model" else f"settings.{key}", exc.value, exc.allowed) from None
    planned = [replace(t, value_field=None) for t in planned]  # embed as struct<embedding, model, error>
    guard = next((t.plan.guard for t in planned if t.plan.guard is not None), None)
    if guard is not None:
        planned.append(PlannedTask("language", LANGUAGE, language_plan(model=guard.detector.uri, device="cpu")))
    return planned


def shadow(df, *, task: str, champion: str | None = None, challenger: str, text_column: str = "text",
           id_column: str | None = None, settings: Mapping[str, Any] | None = None, partitions: int | None = None,
           planned: list[PlannedTask] | ClusterPlan | None = None):
    """The diff DataFrame of ``champion`` (default: the task's catalog default) and ``challenger`` on ``df``.

    Columns: ``id_column`` (else ``text_column``), ``language`` (only where the task's models are
    language-guarded), ``champion``, ``challenger`` (the task's result structs), ``flipped`` (boolean),
    ``score_delta`` (double). ``settings``: the task's keys (``labels=`` for zero-shot classify, ...).
    ``partitions``: spread the rows over this many partitions before scoring. Lazy, like any DataFrame, except
    for ``cluster``: one Spark job scores the rows now (held by ``localCheckpoint``) to match the clusters;
    ``champion`` and ``challenger`` are then struct<cluster, distance, model, error> and ``score_delta`` the
    change in distance to the row's centroid (udfs.training.shadow_clusters).

    Returns:
        DataFrame: one row per input row, the columns above; :func:`summary` turns it into the flip rates, the
            confusion matrix between the versions, the drift of embeddings or the clusters that split or merge.

    Raises:
        ConfigError: an unknown task, a reference that does not resolve, a key column ``df`` lacks; raised
            here, on the driver, before Spark runs.

    Examples:
        Two references to the same version (a random head ``doc-sentiment`` on the tiny test encoder) give no
        flip; a null text has a result from neither:

        >>> from udfs import shadow
        >>> from udfs.training.shadow import summary
        >>> df = spark.createDataFrame([(1, "I love it!"), (2, "Awful."), (3, None)], "id long, text string")
        >>> diff = shadow(df, task="sentiment", champion="models:/doc-sentiment/1",
        ...               challenger="models:/doc-sentiment@champion", id_column="id")
        >>> diff.columns
        ['id', 'champion', 'challenger', 'flipped', 'score_delta']
        >>> [(r.id, r.flipped, r.score_delta) for r in diff.orderBy("id").collect()]
        [(1, False, 0.0), (2, False, 0.0), (3, None, None)]
        >>> {k: v for k, v in summary(diff, "sentiment").items() if k in ("rows", "compared", "flipped", "no_result")}
        {'rows': 3, 'compared': 2, 'flipped': 0, 'no_result': {'champion': 1, 'challenger': 1}}
    """
    from pyspark.sql import functions as F

    planned = planned or plan_shadow(task, champion, challenger, settings)
    key = id_column or text_column
    if key not in df.columns:
        raise ConfigError("id_column", key, df.columns)
    if isinstance(planned, ClusterPlan):
        if partitions:
            df = df.repartition(partitions)
        return cluster_shadow(df, key, text_column, planned)
    kept = df.select(*[F.col(f"`{c}`") for c in dict.fromkeys([key, text_column])])
    scored = apply_tasks(kept, text_column, planned, partitions=partitions)
    c, h = F.col("champion"), F.col("challenger")
    if task == "embed":
        flipped = F.lit(None).cast("boolean")
        delta = 1.0 - _cosine(c["embedding"], h["embedding"])
    else:
        flipped = F.when(c["label"].isNotNull() & h["label"].isNotNull(), c["label"] != h["label"])
        delta = F.when(c["label"].isNotNull(), F.try_element_at(h["scores"], c["label"]) - c["score"])
    language = [F.col(f"{LANGUAGE}.language").alias("language")] if LANGUAGE in scored.columns else []
    return scored.select(F.col(f"`{key}`"), *language, c, h, flipped.alias("flipped"),
                         delta.cast("double").alias("score_delta"))


def _cosine(a, b):
    """Cosine similarity of two array<float> columns (null where either is null or their sizes differ)."""
    from pyspark.sql import functions as F

    def total(arr):
        return F.aggregate(arr, F.lit(0.0).cast("double"), lambda s, v: s + v)

    dot = total(F.zip_with(a, b, lambda x, y: x.cast("double") * y.cast("double")))
    norm_a = F.sqrt(total(F.transform(a, lambda x: x.cast("double") * x.cast("double"))))
    norm_b = F.sqrt(total(F.transform(b, lambda x: x.cast("double") * x.cast("double"))))
    return F.when(F.size(a) == F.size(b), dot / (norm_a * norm_b))


def summary(diff, task: str, *, key: str | None = None, seed: int = 0,
            split_share: float = SPLIT_SHARE) -> dict[str, Any]:
    """What the diff table says (one Spark aggregation; for ``embed`` a second one and a sample on the driver;
    for ``cluster`` udfs.training.shadow_clusters.cluster_summary, ``split_share`` its split threshold)."""
    if task == "embed":
        return _drift(diff, key or diff.columns[0], seed)
    if task == "cluster":
        return cluster_summary(diff, split_share)
    from pyspark.sql import functions as F

    language = F.col("language") if "language" in diff.columns else F.lit(None).cast("string")
    counts = diff.groupBy(F.col("champion.label").alias("c"), F.col("challenger.label").alias("h"),
                          language.alias("lang")).count().collect()
    rows = sum(r["count"] for r in counts)
    compared = [r for r in counts if r["c"] is not None and r["h"] is not None]
    labels = sorted({r["c"] for r in compared} | {r["h"] for r in compared})
    matrix = [[sum(r["count"] for r in compared if (r["c"], r["h"]) == (a, b)) for b in labels] for a in labels]
    per_language = None
    if "language" in diff.columns:
        per_language = _rates(compared, lambda r: r["lang"] or UNIDENTIFIED)
    return {"task": task, "rows": rows, **_rate(compared),
            "no_result": {"champion": sum(r["count"] for r in counts if r["c"] is None),
                          "challenger": sum(r["count"] for r in counts if r["h"] is None)},
            "per_class": _rates(compared, lambda r: r["c"]), "per_language": per_language,
            "confusion": {"labels": labels, "counts": matrix}}


def _rate(rows: list) -> dict[str, Any]:
    compared = sum(r["count"] for r in rows)
    flipped = sum(r["count"] for r in rows if r["c"] != r["h"])
    return {"compared": compared, "flipped": flipped, "flip_rate": flipped / compared if compared else None}


def _rates(rows: list, group) -> dict[str, dict[str, Any]]:
    keys = sorted({group(r) for r in rows})
    return {k: _rate([r for r in rows if group(r) == k]) for k in keys}


def _drift(diff, key: str, seed: int) -> dict[str, Any]:
    from pyspark.sql import functions as F

    both = F.col("champion.embedding").isNotNull() & F.col("challenger.embedding").isNotNull()
    cosine = 1.0 - F.col("score_delta")
    stats = diff.agg(F.count(F.lit(1)).alias("rows"), F.count(F.when(both, 1)).alias("compared"),
                     F.mean(cosine).alias("mean"),
                     F.percentile_approx(cosine, [0.5, 0.9], 10000).alias("q")).first()
    per_language = None
    if "language" in diff.columns:
        lang = F.coalesce(F.col("language"), F.lit(UNIDENTIFIED))
        per_language = {r["lang"]: {"compared": r["n"], "cosine_mean": r["m"]} for r in
                        diff.where(both).groupBy(lang.alias("lang")).agg(F.count(F.lit(1)).alias("n"),
                                                                           F.mean(cosine).alias("m")).collect()}
        per_language = dict(sorted(per_language.items()))
    sample = (diff.where(both).orderBy(F.xxhash64(F.col(f"`{key}`"), F.lit(seed))).limit(OVERLAP_ROWS)
              .select(F.col(f"`{key}`").alias("k"), "champion.embedding", F.col("challenger.embedding").alias("e2"))
              .collect())
    sample = [(r[1], r[2]) for r in sorted(sample, key=lambda r: r[0])]  # the same rows give the same order
    q = stats["q"] or [None, None]
    return {"task": "embed", "rows": stats["rows"], "compared": stats["compared"], "flipped": None,
            "flip_rate": None, "per_class": None, "per_language": per_language, "confusion": None,
            "drift": {"cosine": {"mean": stats["mean"], "p50": q[0], "p90": q[1]},
                      f"neighbour_overlap_at_{OVERLAP_K}": neighbour_overlap(
                          np.array([r[0] for r in sample], dtype=np.float64).reshape(len(sample), -1),
                          np.array([r[1] for r in sample], dtype=np.float64).reshape(len(sample), -1)),
                      "overlap_rows": len(sample)}}


def neighbour_overlap(a: np.ndarray, b: np.ndarray, k: int = OVERLAP_K) -> float | None:
    """The mean share of each row's ``k`` nearest neighbours (cosine, itself excluded; fewer when there are
    fewer other rows) that ``a``'s and ``b``'s vectors of the same rows agree on; None for fewer than 2 rows.
    The two spaces may have different dimensions."""
    n = len(a)
    if n < 2:
        return None
    k = min(k, n - 1)
    neighbours = []
    for x in (a, b):
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        neighbours.append(np.argsort(-sims, axis=1, kind="stable")[:, :k])
    shared = [len(set(p) & set(q)) for p, q in zip(*neighbours)]
    return float(np.mean(shared) / k)
