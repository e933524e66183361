"""Clustering: text -> embeddings -> distributed k-means (Spark MLlib) -> named clusters, versioned in MLflow.

The library half of ``jobs/cluster.py``. Each step is a small function over Spark DataFrames:

- :func:`prepare` gives every input row a vector (from the distributed ``embed`` UDF, or an existing
  embedding column) or a reason it has none (null/empty text, wrong dimension, NaN, zero vector);
- :func:`fit_lexical` fits TF-IDF + LSA (:mod:`udfs.lexical`) on a sample of the texts and
  :func:`with_lexical` joins each row's embedding to its LSA vector (``lexical_weight``, default 0.5;
  0 clusters the embeddings alone);
- :func:`choose_k` fits one k-means per candidate k on a sample and keeps the best silhouette;
- :func:`fit` fits ``pyspark.ml.clustering.KMeans`` on every row that has a vector and returns a
  :class:`Clustering` (centroids + the embedding model version that made the vectors + the LSA arrays);
- :meth:`Clustering.assign_column` puts rows into clusters (the same code for a fresh fit and for new rows);
- :func:`keywords` (class-based TF-IDF, in Spark), :func:`representatives` (closest to the centroid),
  :func:`label_scores` (NMI, purity) and :func:`projection_png` describe the result;
- :func:`register` stores a :class:`Clustering` as a registry version (kind ``kmeans_centroids``) and
  :func:`load_clustering` is that kind's builder, so ``mode: assign`` never refits.

Distances: ``cosine`` (default; 1 - cosine similarity, in [0, 2]; k-means and the silhouette both use
cosine) or ``euclidean`` (k-means and the silhouette use squared Euclidean distance; the reported
distance is the plain Euclidean one). Only samples reach the driver: the silhouette sample stays in Spark,
the lexical sample (``sample_size`` texts), the projection sample (``projection_size`` rows) and
k x (keywords + examples) rows are collected.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from udfs.clustering.lexical import LexicalFitError, LexicalProjection, combine
from udfs.errors import ConfigError
from udfs.models.loading import build, load, local_folder
from udfs.models.registry import register_folder, resolve
from udfs.runtime import driver
from udfs.vectors import unit_rows

TASK = "cluster"
KIND = "kmeans_centroids"
MODES = ("fit", "assign")
DISTANCES = ("cosine", "euclidean")
KEYS = ("mode", "model", "k", "k_range", "embedding_model", "embedding_column", "label_column", "distance",
        "seed", "max_iter", "sample_size", "projection_size", "keywords", "examples", "name", "alias",
        "device", "precision", "chunk_words", "max_chunks", "n_init", "lexical_weight", "lexical_dims")
MAX_K = 1000
log = logging.getLogger(__name__)
EXAMPLE_CHARS = 300

# Reasons a row gets no cluster (besides the embed task's own: null input, empty input, model errors).
NULL_VECTOR = "null embedding"
NON_FINITE = "embedding has NaN or infinite values"
ZERO_VECTOR = "zero embedding (cosine distance undefined)"


class ClusteringError(ValueError):
    """The input cannot be clustered as configured (too few distinct rows for k, no text at all, ...)."""


# ---- configuration ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterConf:
    """The cluster job's own keys (top level of the job YAML, beside input/output/spark/mlflow)."""

    mode: str = "fit"
    k: int | None = None
    k_range: tuple[int, int] | None = None
    model: str | None = None             # assign: the registered clustering, models:/<name>@<alias>
    embedding_model: str | None = None   # fit: embed model reference (default: the catalog's embed model)
    embedding_column: str | None = None  # use this array<float|double> / vector column instead of embedding
    label_column: str | None = None      # only for NMI / purity; never seen by the fit
    distance: str = "cosine"
    seed: int = 42
    max_iter: int = 50
    n_init: int = 3                      # final fit: k-means runs (seeds seed, seed+1, ...); lowest cost wins
    sample_size: int = 5000              # rows (approx.) each candidate k is fitted and scored on; texts for LSA
    projection_size: int = 2000          # rows collected to the driver for the 2-D plot
    keywords: int = 10
    examples: int = 3
    name: str = "textspark-clusters"     # fit: registered model name
    alias: str = "champion"
    device: str = "auto"
    precision: str | None = None
    fail_on_error: bool = False
    chunk_words: int | None = 150        # embed long texts as the mean of windows of this many words (0: off)
    max_chunks: int = 16                 # windows per text at most (the rest of a very long text is ignored)
    lexical_weight: float = 0.5          # share of TF-IDF + LSA features in each row's vector (0: embeddings only)
    lexical_dims: int = 100              # LSA dimensions of the lexical features


def _int(data: dict, key: str, default: int | None, lo: int, hi: int, src: str | None) -> int | None:
    value = data.get(key, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(key, value, f"an integer from {lo} to {hi}", source=src)
    return value


def _fraction(data: dict, key: str, default: float, src: str | None) -> float:
    value = data.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ConfigError(key, value, "a number from 0 (embeddings only) up to, not including, 1", source=src)
    return float(value)


def _name(data: dict, key: str, src: str | None, what: str = "a column name") -> str | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(key, value, what, source=src)
    return value


def parse_cluster_conf(data: Mapping[str, Any], *, source: str | None = None) -> ClusterConf:
    """Validate the cluster keys of a job mapping; every error names the key, the value and what is allowed."""
    src = source
    data = dict(data)
    mode = data.get("mode", "fit")
    if mode not in MODES:
        raise ConfigError("mode", mode, MODES, source=src)
    distance = data.get("distance", "cosine")
    if distance not in DISTANCES:
        raise ConfigError("distance", distance, DISTANCES, source=src)
    k = _int(data, "k", None, 2, MAX_K, src)
    k_range = data.get("k_range")
    if k_range is not None:
        ok = (isinstance(k_range, (list, tuple)) and len(k_range) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in k_range))
        if not ok or not 2 <= k_range[0] <= k_range[1] <= MAX_K:
            raise ConfigError("k_range", k_range, f"[lo, hi] with integers 2 <= lo <= hi <= {MAX_K}", source=src)
        k_range = (int(k_range[0]), int(k_range[1]))
    model = _name(data, "model", src, "models:/<name>@<alias> of a registered clustering")
    if mode == "fit":
        if (k is None) == (k_range is None):
            raise ConfigError("k", {"k": k, "k_range": data.get("k_range")},
                              "exactly one of k: <int >= 2> or k_range: [lo, hi] (mode: fit)", source=src)
        if model is not None:
            raise ConfigError("model", model, "no model in mode: fit (use embedding_model for the embedder; "
                              "the fitted clustering is registered under name)", source=src)
    else:
        if model is None:
            raise ConfigError("model", None, "models:/<name>@<alias> of a registered clustering (mode: assign)",
                              source=src)
        for key in ("k", "k_range", "embedding_model", "distance", "chunk_words", "max_chunks", "lexical_weight",
                    "lexical_dims"):
            if data.get(key) is not None:
                raise ConfigError(key, data[key], f"nothing in mode: assign (it comes from {model})", source=src)
    embedding_model = _name(data, "embedding_model", src, "a model reference, models:/<name>@<alias>")
    embedding_column = _name(data, "embedding_column", src)
    if embedding_model and embedding_column:
        raise ConfigError("embedding_model", embedding_model, "nothing when embedding_column is given", source=src)
    fail = data.get("fail_on_error", False)
    if not isinstance(fail, bool):
        raise ConfigError("fail_on_error", fail, "true, false", source=src)
    name = _name(data, "name", src, "a registered model name (letters, digits, - _ .)") or ClusterConf.name
    if "/" in name or "@" in name or ":" in name:
        raise ConfigError("name", name, "a registered model name (letters, digits, - _ .)", source=src)
    return ClusterConf(
        mode=mode, k=k, k_range=k_range, model=model, embedding_model=embedding_model,
        embedding_column=embedding_column, label_column=_name(data, "label_column", src), distance=distance,
        seed=_int(data, "seed", 42, 0, 2**31 - 1, src), max_iter=_int(data, "max_iter", 50, 1, 10_000, src),
        sample_size=_int(data, "sample_size", 5000, 10, 10_000_000, src),
        projection_size=_int(data, "projection_size", 2000, 0, 100_000, src),
        keywords=_int(data, "keywords", 10, 1, 100, src), examples=_int(data, "examples", 3, 0, 50, src),
        name=name, alias=_name(data, "alias", src, "an alias name") or "champion",
        device=str(data.get("device", "auto")), precision=data.get("precision"), fail_on_error=fail,
        chunk_words=_int(data, "chunk_words", 150, 0, 100_000, src) or None,
        max_chunks=_int(data, "max_chunks", 16, 1, 10_000, src), n_init=_int(data, "n_init", 3, 1, 100, src),
        lexical_weight=_fraction(data, "lexical_weight", 0.5, src),
        lexical_dims=_int(data, "lexical_dims", 100, 2, 1000, src))


# ---- the fitted clustering (driver object; also the worker-side kind) ---------------------------

@dataclass
class Clustering:
    """Centroids plus what is needed to reproduce the vectors they were fitted on."""

    centroids: np.ndarray                 # (k, dim) float64
    distance: str = "cosine"
    embedding_model: str | None = None    # exact version: models:/<name>/<version>; None for an input column
    embedding_column: str | None = None
    keywords: dict[int, list[str]] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)
    label: str = "(unregistered)"         # name/version once registered
    chunk_words: int | None = None        # how texts were embedded (assign repeats it)
    max_chunks: int = 16
    lexical: LexicalProjection | None = None  # TF-IDF + LSA features joined to the embeddings (None: off)
    lexical_weight: float = 0.0               # always 0.0 without lexical

    def __post_init__(self) -> None:
        if self.lexical is None:
            self.lexical_weight = 0.0

    @property
    def lexical_dims(self) -> int:
        return self.lexical.dims if self.lexical else 0

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        """Dimension of the vectors k-means saw (the embedding's, plus the LSA dimensions when lexical)."""
        return int(self.centroids.shape[1])

    @property
    def embedding_dim(self) -> int:
        return self.dim - self.lexical_dims

    def vectors(self, embeddings: np.ndarray, texts: list[str | None]) -> np.ndarray:
        """The vectors k-means works on: the embeddings, joined to the texts' LSA vectors when lexical."""
        if self.lexical is None:
            return np.asarray(embeddings, dtype=np.float64)
        return combine(embeddings, self.lexical.transform(texts), self.lexical_weight)

    def assign(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cluster index, distance to its centroid) for each row of ``vectors`` (n, dim)."""
        x = np.asarray(vectors, dtype=np.float64).reshape(-1, self.dim)
        c = self.centroids
        if self.distance == "cosine":
            xn = x / np.linalg.norm(x, axis=1, keepdims=True)
            cn = c / np.linalg.norm(c, axis=1, keepdims=True)
            d = 1.0 - xn @ cn.T
        else:
            d = np.sqrt(np.maximum((x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :], 0.0))
        best = d.argmin(axis=1)
        return best.astype(np.int32), np.maximum(d[np.arange(len(x)), best], 0.0)

    def assign_column(self, vector_column):
        """A Spark column struct<cluster: int, distance: double> (null for a null vector)."""
        from pyspark.sql.functions import pandas_udf

        clustering = Clustering(centroids=self.centroids, distance=self.distance)  # pickled into the UDF: k x dim

        @pandas_udf("struct<cluster: int, distance: double>")
        def textspark_assign(vectors: pd.Series) -> pd.DataFrame:
            n = len(vectors)
            cluster = pd.array([None] * n, dtype="Int32")
            dist = np.full(n, np.nan)
            ok = np.flatnonzero([v is not None and len(v) == clustering.dim for v in vectors])
            if len(ok):
                best, d = clustering.assign(np.stack([np.asarray(vectors.iloc[i], dtype=np.float64) for i in ok]))
                cluster[ok] = best
                dist[ok] = d
            return pd.DataFrame({"cluster": cluster, "distance": pd.array(np.where(np.isnan(dist), None, dist),
                                                                         dtype="Float64")})

        return textspark_assign(vector_column)

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Plain-MLflow face (``mlflow.pyfunc.load_model(...).predict(texts)``): embed (+ LSA), then assign."""
        if not self.embedding_model:
            raise ValueError(f"clustering {self.label} was fitted on an input embedding column "
                             f"({self.embedding_column!r}); pass vectors to assign() instead of texts")

        encoder = load(resolve(self.embedding_model), device="cpu")
        texts = list(texts)
        best, d = self.assign(self.vectors(embed_chunked(encoder, texts, self.chunk_words, self.max_chunks), texts))
        return [{"cluster": int(c), "distance": float(x)} for c, x in zip(best, d)]


def embed_chunked(encoder, texts: list[str], chunk_words: int | None, max_chunks: int = 16) -> np.ndarray:
    """In-process twin of the Spark path in :func:`prepare`: mean of the windows' embeddings per text."""
    if not chunk_words:
        return encoder.embed(texts)
    return encoder.embed_windows(texts, chunk_words, max_chunks, renormalize=False).astype(np.float64)


def load_clustering(folder: Path, *, device: str = "cpu", precision: str = "fp32", **params: Any) -> Clustering:
    """Kind ``kmeans_centroids``: ``weights/centroids.npy`` (+ the LSA arrays of :mod:`udfs.lexical` when the
    vectors were joined to lexical features) + ``clusters.json`` (keywords, sizes)."""
    centroids = np.load(Path(folder) / "weights" / "centroids.npy")
    extra = json.loads((Path(folder) / "clusters.json").read_text()) if (Path(folder) / "clusters.json").is_file() else {}
    meta = json.loads((Path(folder) / "textspark.json").read_text()) if (Path(folder) / "textspark.json").is_file() else {}
    return Clustering(centroids=centroids, distance=params.get("distance", "cosine"),
                      embedding_model=params.get("embedding_model"), embedding_column=params.get("embedding_column"),
                      chunk_words=params.get("chunk_words"), max_chunks=int(params.get("max_chunks", 16)),
                      lexical=LexicalProjection.load(Path(folder) / "weights"),
                      lexical_weight=float(params.get("lexical_weight") or 0.0),
                      keywords={int(c): list(w) for c, w in extra.get("keywords", {}).items()},
                      sizes={int(c): int(n) for c, n in extra.get("sizes", {}).items()},
                      label=str(meta.get("name", "(unregistered)")))


def register(clustering: Clustering, *, name: str, alias: str = "champion", run_id: str | None = None,
             description: str = "") -> tuple[str, bool]:
    """Register ``clustering`` (task ``cluster``, kind ``kmeans_centroids``); (version, created).

    Idempotent like every textspark registration: the same centroids, distance, embedding model and
    keywords give the existing version back instead of a new one.
    """
    import tempfile


    params = {"k": clustering.k, "dim": clustering.dim, "distance": clustering.distance,
              "embedding_model": clustering.embedding_model, "embedding_column": clustering.embedding_column,
              "chunk_words": clustering.chunk_words, "max_chunks": clustering.max_chunks,
              "lexical_weight": clustering.lexical_weight, "lexical_dims": clustering.lexical_dims}
    extra = {"clusters.json": {"keywords": {str(c): w for c, w in sorted(clustering.keywords.items())},
                               "sizes": {str(c): n for c, n in sorted(clustering.sizes.items())}}}
    with tempfile.TemporaryDirectory(prefix="textspark-centroids-") as tmp:
        np.save(Path(tmp) / "centroids.npy", np.ascontiguousarray(clustering.centroids, dtype=np.float64))
        if clustering.lexical is not None:
            clustering.lexical.save(Path(tmp))
        version, created = register_folder(name, task=TASK, kind=KIND, params=params, weights=Path(tmp), alias=alias,
                                           description=description, extra_files=extra, run_id=run_id)
    clustering.label = f"{name}/{version}"
    return version, created


def load_registered(reference: str) -> tuple[Clustering, Any]:
    """Driver side: the registered clustering for ``reference`` (centroids are small) and its resolved version."""
    resolved = resolve(reference, task=TASK)
    clustering = build(local_folder(resolved), device="cpu", precision="fp32")
    clustering.label = resolved.label
    return clustering, resolved


# ---- vectors for every row ----------------------------------------------------------------------

def prepare(df, *, id_column: str, text_column: str, label_column: str | None = None,
            embedding_column: str | None = None, embed_plan=None, dim: int | None = None, distance: str = "cosine",
            chunk_words: int | None = None, max_chunks: int = 16):
    """One row per input row: ``_id, _text, [_label], vector array<double>, error``.

    ``vector`` is null exactly where ``error`` says why: the embed task's reason (null / empty text, a
    model failure) or a bad vector (null, wrong dimension, NaN/inf, zero length under cosine). ``dim``
    is the expected dimension (assign: the centroids'); without it, the most common one of an input
    ``embedding_column`` (one cheap pass over that column; an embed model's vectors are never re-checked).
    """
    from pyspark.sql import functions as F

    cols = [F.col(f"`{id_column}`").alias("_id"), F.col(f"`{text_column}`").cast("string").alias("_text")]
    if label_column:
        cols.append(F.col(f"`{label_column}`").cast("string").alias("_label"))
    if embedding_column:
        from pyspark.ml.functions import vector_to_array
        from pyspark.ml.linalg import VectorUDT

        dtype = df.schema[embedding_column].dataType
        vec = F.col(f"`{embedding_column}`")
        if isinstance(dtype, VectorUDT):
            vec = vector_to_array(vec)
        elif dtype.simpleString() not in ("array<float>", "array<double>"):
            raise ConfigError("embedding_column", f"{embedding_column} ({dtype.simpleString()})",
                              "a column of type array<float>, array<double> or vector")
        staged = df.select(*cols, vec.cast("array<double>").alias("vector"), F.lit(None).cast("string").alias("error"))
    else:
        staged = _embedded(df.select(*cols), embed_plan, chunk_words, max_chunks)
    if dim is None and embedding_column:  # (an embed model's vectors all have its dimension: no extra pass)
        top = (staged.where(F.col("vector").isNotNull()).groupBy(F.size("vector").alias("dim")).count()
               .orderBy(F.desc("count"), "dim").first())
        dim = int(top["dim"]) if top else 0
    v = F.col("vector")
    bad = F.when(F.col("error").isNotNull(), F.col("error")).when(v.isNull(), F.lit(NULL_VECTOR))
    if dim is not None:
        bad = bad.when(F.size(v) != dim, F.concat(F.lit("embedding has "), F.size(v).cast("string"),
                                                  F.lit(f" values; expected {dim}")))
    bad = (bad
           .when(F.exists(v, lambda x: F.isnan(x) | (F.abs(x) == float("inf")) | x.isNull()), F.lit(NON_FINITE)))
    if distance == "cosine":
        bad = bad.when(F.aggregate(v, F.lit(0.0), lambda acc, x: acc + x * x) == 0.0, F.lit(ZERO_VECTOR))
    staged = staged.withColumn("error", bad)
    return staged.withColumn("vector", F.when(F.col("error").isNull(), v))


def _embedded(rows, plan, chunk_words: int | None, max_chunks: int):
    """``rows`` + ``vector``, ``error`` from the distributed embed UDF.

    With ``chunk_words``, a text is split into windows of that many words (at most ``max_chunks``), every
    window is embedded, and the text's vector is the mean of its windows' (so a long article is not
    cut at the model's token limit). A text whose windows all fail keeps the first window's reason.
    """
    from pyspark.sql import functions as F


    embed = driver.make_udf(plan)
    if not chunk_words:
        staged = rows.select("*", embed(F.col("_text")).alias("_e"))
        return staged.select(*rows.columns, F.col("_e.embedding").cast("array<double>").alias("vector"),
                             F.col("_e.error").alias("error"))
    keyed = rows.withColumn("_row", F.monotonically_increasing_id())
    words = F.split(F.trim(F.col("_text")), r"\s+")
    count = F.least(F.ceil(F.size(words) / chunk_words).cast("int"), F.lit(max_chunks))
    windows = F.transform(F.sequence(F.lit(0), count - 1),
                          lambda i: F.array_join(F.slice(words, i * chunk_words + 1, chunk_words), " "))
    blank = F.col("_text").isNull() | (F.trim(F.col("_text")) == "")
    # blank: one chunk, the embed reason; no longer than a window: the text as it is (Encoder.embed_windows)
    chunks = F.when(blank | (F.size(words) <= chunk_words), F.array(F.col("_text"))).otherwise(windows)
    exploded = keyed.select("_row", F.explode(chunks).alias("_chunk"))
    embedded = exploded.select("_row", embed(F.col("_chunk")).alias("_e"))
    vs = F.col("_vs")
    mean = F.when(F.size(vs) > 0, F.transform(
        F.sequence(F.lit(0), F.size(vs[0]) - 1),
        lambda j: F.aggregate(vs, F.lit(0.0), lambda acc, v: acc + v[j].cast("double")) / F.size(vs)))
    per_row = (embedded.groupBy("_row")
               .agg(F.collect_list("_e.embedding").alias("_vs"), F.min("_e.error").alias("_err"))
               .select("_row", mean.alias("vector"), F.when(F.size(vs) == 0, F.col("_err")).alias("error")))
    return keyed.join(per_row, "_row").drop("_row")


# ---- fitting ------------------------------------------------------------------------------------

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


def with_lexical(prepared, lexical: LexicalProjection | None, weight: float):
    """``prepared`` with each ``vector`` joined to the LSA vector of its ``_text`` (unchanged without lexical)."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    if lexical is None:
        return prepared

    @pandas_udf("array<double>")
    def textspark_cluster_vectors(embeddings: pd.Series, texts: pd.Series) -> pd.Series:
        out = pd.Series([None] * len(embeddings), dtype=object)
        ok = np.flatnonzero(embeddings.notna().to_numpy())
        if len(ok):  # ``lexical`` (vocabulary, idf, dims x terms float32) is pickled into the UDF
            e = np.stack([np.asarray(embeddings.iloc[i], dtype=np.float64) for i in ok])
            out.iloc[ok] = list(combine(e, lexical.transform([texts.iloc[i] for i in ok]), weight))
        return out

    return prepared.withColumn("vector", textspark_cluster_vectors(F.col("vector"), F.col("_text")))


def fit_lexical(prepared, conf: ClusterConf, *, n_rows: int) -> tuple[LexicalProjection | None, str | None]:
    """TF-IDF + LSA (:mod:`udfs.lexical`) fitted on ~``conf.sample_size`` texts of rows with an embedding.

    Only that sample reaches the driver. Returns (projection, None), or (None, why) when the sample is too
    small or shares too few terms: the clustering then runs on the embeddings alone, and says so.
    """
    from pyspark.sql import functions as F

    rows = prepared.where(F.col("vector").isNotNull() & F.col("_text").isNotNull())
    fraction = min(1.0, conf.sample_size / max(n_rows, 1))
    if fraction < 1.0:
        rows = rows.sample(fraction=fraction, seed=conf.seed)
    texts = [r[0] for r in rows.select("_text").limit(conf.sample_size).collect()]
    try:
        return LexicalProjection.fit(texts, conf.lexical_dims, seed=conf.seed), None
    except LexicalFitError as exc:
        note = f"lexical features off (embeddings only): {exc}"
        log.warning("%s", note)
        return None, note


def assign(prepared, clustering: Clustering):
    """``prepared`` + ``cluster`` (int), ``distance`` (double); rows without a vector get nulls, keep ``error``.

    ``vector`` becomes the vector k-means saw (joined to the lexical features when the clustering has them).
    """
    a = with_lexical(prepared, clustering.lexical, clustering.lexical_weight)
    a = a.withColumn("_a", clustering.assign_column("vector"))
    return a.select(*[c for c in a.columns if c != "_a"], "_a.cluster", "_a.distance")


# ---- describing the clusters --------------------------------------------------------------------

def sizes(assigned) -> dict[int, int]:
    from pyspark.sql import functions as F

    rows = assigned.where(F.col("cluster").isNotNull()).groupBy("cluster").count().collect()
    return {int(r["cluster"]): int(r["count"]) for r in rows}


# Reporting words that top every news cluster; added to Spark's English stop words for keywords.
EXTRA_STOP_WORDS = ("said", "says", "say", "told", "also", "mr", "mrs", "ms")


def keywords(assigned, n: int = 10, *, text_column: str = "_text",
             stop_words: tuple[str, ...] = EXTRA_STOP_WORDS) -> dict[int, list[str]]:
    """Top ``n`` terms per cluster by class-based TF-IDF, computed in Spark.

    Terms: lower-cased runs of 3+ letters, minus Spark's English stop words and ``stop_words``; each text
    counts a term once (so one long text repeating a name cannot name its cluster). For term t and
    cluster c, ``score = (count(t, c) / words(c)) * log(1 + A / count(t))`` with A the mean number of
    words per cluster (BERTopic's c-TF-IDF): frequent in the cluster, rare elsewhere. Ties: A-Z.
    """
    from pyspark.ml.feature import RegexTokenizer, StopWordsRemover
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    docs = assigned.where(F.col("cluster").isNotNull() & F.col(text_column).isNotNull()).select("cluster", text_column)
    tokens = RegexTokenizer(inputCol=text_column, outputCol="_tokens", pattern=r"\p{L}+", gaps=False,
                            minTokenLength=3, toLowercase=True).transform(docs)
    stop = sorted(set(StopWordsRemover.loadDefaultStopWords("english")) | set(stop_words))
    terms = StopWordsRemover(inputCol="_tokens", outputCol="_terms", stopWords=stop).transform(tokens)
    counts = (terms.select("cluster", F.explode(F.array_distinct("_terms")).alias("term"))
              .groupBy("cluster", "term").count())
    per_cluster = counts.groupBy("cluster").agg(F.sum("count").alias("words"))
    per_term = counts.groupBy("term").agg(F.sum("count").alias("total"))
    mean_words = per_cluster.agg(F.avg("words").alias("a"))
    scored = (counts.join(per_cluster, "cluster").join(per_term, "term").crossJoin(mean_words)
              .withColumn("score", (F.col("count") / F.col("words")) * F.log(1.0 + F.col("a") / F.col("total"))))
    rank = F.row_number().over(Window.partitionBy("cluster").orderBy(F.desc("score"), "term"))
    top = scored.withColumn("rank", rank).where(F.col("rank") <= n).select("cluster", "rank", "term").collect()
    out: dict[int, list[str]] = {}
    for r in sorted(top, key=lambda r: (r["cluster"], r["rank"])):
        out.setdefault(int(r["cluster"]), []).append(r["term"])
    return out


def representatives(assigned, n: int = 3, *, chars: int = EXAMPLE_CHARS) -> dict[int, list[tuple[str, str]]]:
    """Per cluster, up to ``n`` distinct non-null texts closest to its centroid: [(id, text[:chars]), ...]."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if n == 0:
        return {}
    rank = F.row_number().over(Window.partitionBy("cluster").orderBy("distance", "_id"))
    rows = (assigned.where(F.col("cluster").isNotNull() & F.col("_text").isNotNull()).withColumn("rank", rank).where(F.col("rank") <= 4 * n)
            .select("cluster", "rank", F.col("_id").cast("string").alias("id"),
                    F.substring("_text", 1, chars).alias("text")).collect())
    out: dict[int, list[tuple[str, str]]] = {}
    for r in sorted(rows, key=lambda r: (r["cluster"], r["rank"])):
        picked = out.setdefault(int(r["cluster"]), [])
        if len(picked) < n and r["text"] not in {t for _, t in picked}:
            picked.append((r["id"], r["text"]))
    return out


def cluster_table(k: int, sizes_: Mapping[int, int], keywords_: Mapping[int, list[str]],
                  examples: Mapping[int, list[tuple[str, str]]]) -> list[dict[str, Any]]:
    """The rows of ``<path>/clusters``: one per cluster (also those with no rows), by cluster id."""
    return [{"cluster": c, "size": int(sizes_.get(c, 0)), "keywords": list(keywords_.get(c, [])),
             "examples": [t for _, t in examples.get(c, [])], "example_ids": [i for i, _ in examples.get(c, [])]}
            for c in range(k)]


CLUSTERS_SCHEMA = "cluster int, size long, keywords array<string>, examples array<string>, example_ids array<string>"


def contingency(assigned) -> tuple[np.ndarray, list[int], list[str]]:
    """Counts of (cluster, label) over rows that have both: (table, clusters, labels)."""
    from pyspark.sql import functions as F

    rows = (assigned.where(F.col("cluster").isNotNull() & F.col("_label").isNotNull())
            .groupBy("cluster", "_label").count().collect())
    clusters = sorted({int(r["cluster"]) for r in rows})
    labels = sorted({r["_label"] for r in rows})
    table = np.zeros((len(clusters), len(labels)), dtype=np.int64)
    for r in rows:
        table[clusters.index(int(r["cluster"])), labels.index(r["_label"])] = r["count"]
    return table, clusters, labels


def nmi_purity(table: np.ndarray) -> tuple[float, float]:
    """(NMI with arithmetic-mean normalisation, as scikit-learn's default; purity) of a cluster x label table."""
    table = np.asarray(table, dtype=np.float64)
    n = table.sum()
    if n == 0:
        return float("nan"), float("nan")
    pc, pl = table.sum(1) / n, table.sum(0) / n
    nz = table > 0
    pj = table[nz] / n
    mi = float((pj * (np.log(pj) - np.log(np.outer(pc, pl)[nz]))).sum())
    hc = float(-(pc[pc > 0] * np.log(pc[pc > 0])).sum())
    hl = float(-(pl[pl > 0] * np.log(pl[pl > 0])).sum())
    if hc == 0 and hl == 0:
        nmi = 1.0
    else:
        nmi = max(mi, 0.0) / max((hc + hl) / 2.0, np.finfo(float).eps)
    return float(min(nmi, 1.0)), float(table.max(1).sum() / n)


def label_scores(assigned) -> dict[str, float]:
    table, _, labels = contingency(assigned)
    nmi, purity = nmi_purity(table)
    return {"nmi": nmi, "purity": purity, "labels": float(len(labels)), "labeled_rows": float(table.sum())}


def projection_sample(assigned, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``size`` clustered rows collected to the driver: (vectors (m, dim), clusters (m,))."""
    from pyspark.sql import functions as F

    valid = assigned.where(F.col("cluster").isNotNull())
    if size == 0:
        return np.zeros((0, 0)), np.zeros(0, dtype=int)
    total = valid.count()
    if total > size:
        valid = valid.sample(fraction=min(1.0, 1.2 * size / total), seed=seed)
    rows = valid.select("vector", "cluster").limit(size).collect()
    if not rows:
        return np.zeros((0, 0)), np.zeros(0, dtype=int)
    return np.array([r["vector"] for r in rows], dtype=np.float64), np.array([r["cluster"] for r in rows])


def projection_xy(vectors: np.ndarray, clusters: np.ndarray, centroids: np.ndarray,
                  distance: str = "euclidean") -> tuple[np.ndarray, np.ndarray]:
    """2-D PCA coordinates (fitted on the sample ``vectors``, >= 2 rows) of the rows and of the centroids.

    Under ``cosine`` only directions count: rows are drawn as unit vectors, and each centroid (a unit vector
    in Spark's cosine k-means, far outside its members' cloud) at the mean length of its members along it.
    """
    if distance == "cosine":
        vectors, unit = unit_rows(vectors), unit_rows(centroids)
        along = [(vectors[clusters == c] @ unit[c]).mean() if (clusters == c).any() else 1.0
                 for c in range(len(unit))]
        centroids = unit * np.asarray(along)[:, None]
    mean = vectors.mean(0)
    _, _, vt = np.linalg.svd(vectors - mean, full_matrices=False)
    axes = vt[:2].T if vt.shape[0] >= 2 else np.pad(vt.T, ((0, 0), (0, 1)))
    return (vectors - mean) @ axes, (centroids - mean) @ axes


def projection_png(vectors: np.ndarray, clusters: np.ndarray, centroids: np.ndarray, path: str | Path, *,
                   title: str = "", distance: str = "euclidean") -> Path:
    """:func:`projection_xy` of the sample, coloured by cluster, centroids marked; written to ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 5.5), dpi=100)
    if len(vectors) >= 2:
        xy, cxy = projection_xy(vectors, clusters, centroids, distance)
        cmap = plt.get_cmap("tab10" if len(centroids) <= 10 else "tab20")
        for c in range(len(centroids)):
            m = clusters == c
            ax.scatter(xy[m, 0], xy[m, 1], s=8, alpha=0.6, color=cmap(c % cmap.N), label=f"{c} ({int(m.sum())})")
        ax.scatter(cxy[:, 0], cxy[:, 1], marker="X", s=120, c="black", label="centroids")
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title or f"{len(vectors)} sampled rows, k={len(centroids)}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
