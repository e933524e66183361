"""Fitting: k-means (Spark MLlib) on every row that has a vector, k given or chosen in ``k_range``.

- :func:`choose_k` scores every candidate k on a sample: by default its :func:`stability` (how much two
  k-means fits on different random 80% subsamples agree, on the driver, over ``sample_size`` rows at most),
  ``k_selection: silhouette`` keeps the plain best silhouette of one Spark fit per k;
- :func:`fit` fits ``pyspark.ml.clustering.KMeans`` on every row that has a vector and returns a
  :class:`~udfs.clustering.model.Clustering` (centroids + the embedding model version that made the
  vectors + the per-language means when they are centered + the LSA arrays) in a :class:`FitResult`.
  Where ``prepared`` holds the rows' languages (``_lang``), the embeddings are centered per language as
  ``center_languages`` says and the TF-IDF features drop the stop words of every language the rows hold
  (:mod:`udfs.clustering.languages`).

Distances: ``cosine`` (default; k-means and the silhouette both use cosine) or ``euclidean`` (k-means and
the silhouette use squared Euclidean distance). The silhouette sample stays in Spark.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from udfs.clustering import languages as langs
from udfs.clustering.config import ClusterConf
from udfs.clustering.features import fit_lexical, with_lexical
from udfs.clustering.model import Clustering
from udfs.vectors import unit_rows

RESAMPLES = 10   # pairs of subsamples per candidate k
SUBSAMPLE = 0.8  # share of the sample in each subsample


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


def stability(x: np.ndarray, k: int, *, distance: str = "cosine", resamples: int = RESAMPLES,
              fraction: float = SUBSAMPLE, seed: int = 0) -> tuple[float, float] | None:
    """How reproducible a k-means with ``k`` clusters is on the rows ``x``: for each of ``resamples`` pairs of
    random subsamples (``fraction`` of the rows each), the adjusted Rand index between the two fits' clusters
    of the rows both subsamples hold. (mean, standard deviation) over the pairs; None when a subsample has
    fewer than ``k`` distinct rows. A k that cuts through a dense group (or merges two) moves from one
    subsample to the next; the true number of groups does not. Cosine: k-means on unit rows.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    x = unit_rows(np.asarray(x, dtype=np.float64)) if distance == "cosine" else np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n, m = len(x), max(2, int(round(fraction * len(x))))
    scores = []
    for r in range(resamples):
        a, b = (np.sort(rng.choice(n, m, replace=False)) for _ in range(2))
        if min(len(np.unique(x[a], axis=0)), len(np.unique(x[b], axis=0))) < k:
            return None
        fa, fb = (KMeans(k, n_init=1, random_state=seed + 2 * r + i).fit(x[rows])
                  for i, rows in enumerate((a, b)))
        both = np.intersect1d(a, b)
        scores.append(adjusted_rand_score(fa.predict(x[both]), fb.predict(x[both])))
    return float(np.mean(scores)), float(np.std(scores))


def pick_k(scores: dict[int, float | None]) -> int:
    """The candidate with the highest score; ties (to 6 decimals): the larger k. Two well-separated groups
    next to a far third are perfectly stable as 2 clusters and as 3; the finer partition is the one to keep."""
    scored = {k: round(s, 6) for k, s in scores.items() if s is not None}
    return max(scored, key=lambda k: (scored[k], k))


def choose_k(feats, conf: ClusterConf, *, n_rows: int, n_distinct: int) -> tuple[int, dict[int, float | None]]:
    """Best k in ``conf.k_range`` on a sample of ~``conf.sample_size`` rows, and every candidate's score.

    ``stability`` (default): the score is the mean minus the standard deviation of :func:`stability` (a
    k must be reproducible on every resample, not on average), computed on the driver over the sample.
    ``silhouette``: each candidate fitted in Spark (best of ``n_init`` runs by cost) and scored by its
    silhouette. Candidates above the number of distinct vectors are skipped (k-means cannot make more
    clusters than there are distinct points); those the sample has too few distinct points for score None.
    """
    lo, hi = conf.k_range
    if lo > n_distinct:
        raise ClusteringError(f"k_range: got [{lo}, {hi}], but the input has only {n_distinct} distinct "
                              f"embedding(s) among {n_rows} row(s) with text; lower k_range or add rows")
    fraction = min(1.0, conf.sample_size / max(n_rows, 1))
    # the whole input when it is small: then ``feats`` (cached by the caller) must stay cached afterwards
    sample = feats.sample(fraction=fraction, seed=conf.seed).cache() if fraction < 1.0 else feats
    candidates = range(lo, min(hi, n_distinct) + 1)
    try:
        scores: dict[int, float | None] = {}
        if conf.k_selection == "stability":
            x = np.array([r["features"].toArray() for r in sample.select("features").collect()])
            for k in candidates:
                mean_std = stability(x, k, distance=conf.distance, seed=conf.seed)
                scores[k] = None if mean_std is None else mean_std[0] - mean_std[1]
        else:
            for k in candidates:
                model = best_kmeans(k, conf, sample)
                scores[k] = silhouette(model, sample, conf) if len(model.clusterCenters()) == k else None
    finally:
        if sample is not feats:
            sample.unpersist()
    if all(s is None for s in scores.values()):
        raise ClusteringError(f"k_range: got [{lo}, {hi}]; no candidate k could be scored on a sample of "
                              f"~{conf.sample_size} rows (too few distinct points); raise sample_size or lower k_range")
    return pick_k(scores), scores


@dataclass
class FitResult:
    clustering: Clustering
    model: Any                           # pyspark.ml.clustering.KMeansModel
    k: int
    silhouette: float | None
    candidates: dict[int, float | None]  # k -> its k_selection score on the sample (k_range only)
    rows: int
    rows_with_vector: int
    distinct: int
    lexical_note: str | None = None      # why the lexical features are on or off (auto), or off although asked for
    languages: dict[str, int] | None = None  # fitted rows per identified language (None: not identified)
    centering_note: str | None = None    # whether the embeddings were centered per language, and why
    stop_word_languages: list[str] = field(default_factory=list)  # whose stop words TF-IDF and keywords drop


def fit(prepared, conf: ClusterConf, *, embedding_model: str | None, language_model: str | None = None) -> FitResult:
    """Fit k-means on every row of ``prepared`` that has a vector (``prepared`` should be persisted).

    ``language_model``: the exact version (``models:/<name>/<version>``) that identified ``prepared``'s
    ``_lang``; without it (or without ``_lang``) the rows' languages are unknown: no centering (an error under
    ``center_languages: true``), English stop words only.
    """
    from pyspark.sql import functions as F

    counts = prepared.agg(F.count(F.lit(1)).alias("rows"), F.count("vector").alias("ok")).first()
    rows, ok = int(counts["rows"]), int(counts["ok"])
    if ok == 0:
        reasons = {r["error"]: r["count"] for r in prepared.groupBy("error").count().collect()}
        raise ClusteringError(f"no row can be clustered: {rows} input row(s), none with an embedding; "
                              f"reasons: {reasons or '(empty input)'}")
    identified = language_model is not None and "_lang" in prepared.columns
    if conf.center_languages is True and not identified:
        raise ClusteringError("center_languages: true, but the rows' languages were not identified "
                              "(no language model)")
    counts = ({(code or langs.UNIDENTIFIED): n for code, n in langs.language_counts(prepared).items()}
              if identified else {})
    on, centering_note = langs.decide(conf.center_languages, counts, identified=identified)
    centering = langs.fit_centering(prepared, counts, language_model) if on else None
    if centering is not None:
        centering_note = f"{centering_note}: {centering.describe()}"
    stop_languages = langs.stop_word_languages(counts)
    centered = langs.center(prepared, centering)
    lexical, lexical_weight, lexical_note = fit_lexical(centered, conf, n_rows=ok,
                                                        stop_words=langs.stop_words(stop_languages),
                                                        centered=centering is not None)
    feats = features(with_lexical(centered, lexical, lexical_weight)).cache()
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
                            lexical=lexical, lexical_weight=lexical_weight, centering=centering)
    return FitResult(clustering=clustering, model=model, k=k, silhouette=score, candidates=candidates,
                     rows=rows, rows_with_vector=ok, distinct=distinct, lexical_note=lexical_note,
                     languages=dict(sorted(counts.items())) if identified else None, centering_note=centering_note,
                     stop_word_languages=stop_languages)
