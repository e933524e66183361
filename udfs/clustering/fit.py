"""Fitting: k-means (Spark MLlib) on every row that has a vector, k given or chosen by the silhouette.

- :func:`choose_k` fits one k-means per candidate k on a sample and keeps the best silhouette;
- :func:`fit` fits ``pyspark.ml.clustering.KMeans`` on every row that has a vector and returns a
  :class:`~udfs.clustering.model.Clustering` (centroids + the embedding model version that made the
  vectors + the LSA arrays) in a :class:`FitResult`.

Distances: ``cosine`` (default; k-means and the silhouette both use cosine) or ``euclidean`` (k-means and
the silhouette use squared Euclidean distance). The silhouette sample stays in Spark.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from udfs.clustering.config import ClusterConf
from udfs.clustering.features import fit_lexical, with_lexical
from udfs.clustering.model import Clustering


class ClusteringError(ValueError):
    """The input cannot be clustered as configured (too few distinct rows for k, no text at all, ...)."""


def _kmeans(k: int, conf: ClusterConf, seed: int | None = None):
    from pyspark.ml.clustering import KMeans

    return KMeans(k=k, seed=conf.seed if seed is None else seed, maxIter=conf.max_iter, featuresCol="features", predictionCol="prediction",
                  distanceMeasure="cosine" if conf.distance == "cosine" else "euclidean")


def best_kmeans(k: int, conf: ClusterConf, data):
    """The lowest-cost (within-cluster distance sum) of ``conf.n_init`` k-means runs (seeds seed, seed+1, ...)
    on ``data``: no label is looked at. Runs end in different local optima, the more so on few rows."""
    return min((_kmeans(k, conf, conf.seed + i).fit(data) for i in range(conf.n_init)),
               key=lambda m: m.summary.trainingCost)


def _evaluator(conf: ClusterConf):
    from pyspark.ml.evaluation import ClusteringEvaluator

    return ClusteringEvaluator(featuresCol="features", predictionCol="prediction", metricName="silhouette",
                               distanceMeasure="cosine" if conf.distance == "cosine" else "squaredEuclidean")


def features(prepared):
    """Rows with a vector, as ``features`` (ml Vector) for MLlib."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    return prepared.where(F.col("vector").isNotNull()).select("_id", array_to_vector("vector").alias("features"))


def silhouette(model, feats, conf: ClusterConf) -> float | None:
    """Silhouette of ``model`` on ``feats`` (None when it is undefined: one cluster, or fewer rows than 3)."""
    preds = model.transform(feats)
    if preds.select("prediction").distinct().count() < 2:
        return None
    return float(_evaluator(conf).evaluate(preds))


def choose_k(feats, conf: ClusterConf, *, n_rows: int, n_distinct: int) -> tuple[int, dict[int, float | None]]:
    """Best k in ``conf.k_range`` by silhouette, each candidate fitted (best of ``n_init`` runs by cost) and
    scored on the same sample.

    Candidates above the number of distinct vectors are skipped (k-means cannot make more clusters than
    there are distinct points); candidates for which the sample has too few distinct points score None.
    """
    lo, hi = conf.k_range
    if lo > n_distinct:
        raise ClusteringError(f"k_range: got [{lo}, {hi}], but the input has only {n_distinct} distinct "
                              f"embedding(s) among {n_rows} row(s) with text; lower k_range or add rows")
    fraction = min(1.0, conf.sample_size / max(n_rows, 1))
    # the whole input when it is small: then ``feats`` (cached by the caller) must stay cached afterwards
    sample = feats.sample(fraction=fraction, seed=conf.seed).cache() if fraction < 1.0 else feats
    try:
        scores: dict[int, float | None] = {}
        for k in range(lo, min(hi, n_distinct) + 1):
            model = best_kmeans(k, conf, sample)
            scores[k] = silhouette(model, sample, conf) if len(model.clusterCenters()) == k else None
    finally:
        if sample is not feats:
            sample.unpersist()
    scored = {k: s for k, s in scores.items() if s is not None}
    if not scored:
        raise ClusteringError(f"k_range: got [{lo}, {hi}]; no candidate k could be scored on a sample of "
                              f"~{conf.sample_size} rows (too few distinct points); raise sample_size or lower k_range")
    best = max(scored, key=lambda k: (scored[k], -k))  # ties: the smaller k
    return best, scores


@dataclass
class FitResult:
    clustering: Clustering
    model: Any                           # pyspark.ml.clustering.KMeansModel
    k: int
    silhouette: float | None
    candidates: dict[int, float | None]  # k -> silhouette on the sample (k_range only)
    rows: int
    rows_with_vector: int
    distinct: int
    lexical_note: str | None = None      # why the lexical features are off although lexical_weight > 0


def fit(prepared, conf: ClusterConf, *, embedding_model: str | None) -> FitResult:
    """Fit k-means on every row of ``prepared`` that has a vector (``prepared`` should be persisted)."""
    from pyspark.sql import functions as F

    counts = prepared.agg(F.count(F.lit(1)).alias("rows"), F.count("vector").alias("ok")).first()
    rows, ok = int(counts["rows"]), int(counts["ok"])
    if ok == 0:
        reasons = {r["error"]: r["count"] for r in prepared.groupBy("error").count().collect()}
        raise ClusteringError(f"no row can be clustered: {rows} input row(s), none with an embedding; "
                              f"reasons: {reasons or '(empty input)'}")
    lexical, lexical_note = fit_lexical(prepared, conf, n_rows=ok) if conf.lexical_weight > 0 else (None, None)
    feats = features(with_lexical(prepared, lexical, conf.lexical_weight)).cache()
    try:
        distinct = feats.select(F.col("features")).distinct().count() if ok < 1_000_000 else ok
        if conf.k_range:
            k, candidates = choose_k(feats, conf, n_rows=ok, n_distinct=distinct)
        else:
            k, candidates = conf.k, {}
            if k > distinct:
                raise ClusteringError(
                    f"k: got {k}, but the input has only {distinct} distinct embedding(s) among {ok} row(s) with "
                    f"text ({ok - distinct} duplicate(s), {rows - ok} row(s) without an embedding); "
                    f"k-means needs at least k distinct rows; lower k or add rows")
        model = best_kmeans(k, conf, feats)
        centers = np.array(model.clusterCenters(), dtype=np.float64)
        if len(centers) != k:  # k-means|| found fewer distinct centers
            raise ClusteringError(f"k: k-means returned {len(centers)} cluster(s) for k={k} "
                                  f"({distinct} distinct embeddings); lower k")
        score = silhouette(model, feats, conf)
    finally:
        feats.unpersist()
    clustering = Clustering(centroids=centers, distance=conf.distance, embedding_model=embedding_model,
                            embedding_column=conf.embedding_column,
                            chunk_words=None if conf.embedding_column else conf.chunk_words, max_chunks=conf.max_chunks,
                            lexical=lexical, lexical_weight=conf.lexical_weight)
    return FitResult(clustering=clustering, model=model, k=k, silhouette=score, candidates=candidates,
                     rows=rows, rows_with_vector=ok, distinct=distinct, lexical_note=lexical_note)
