"""A vector for every input row, or the reason it has none; the lexical features joined to it.

- :func:`prepare` gives every input row a vector (from the distributed ``embed`` UDF, or an existing
  embedding column) or a reason it has none (null/empty text, wrong dimension, NaN, zero vector), and,
  given a language plan, its language (``_lang``, :mod:`udfs.clustering.languages`);
- :func:`fit_lexical` fits TF-IDF + LSA (:mod:`udfs.clustering.lexical`) on a sample of the texts and
  :func:`with_lexical` joins each row's embedding to its LSA vector (``lexical_weight``: a number given
  by the user wins, 0 clusters the embeddings alone; ``auto``, the default, lets :func:`decide_lexical`
  choose from the sample; never where the embeddings are centered per language). Only the lexical sample
  (``sample_size`` texts) reaches the driver.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from udfs.clustering.config import ClusterConf
from udfs.clustering.languages import language_column
from udfs.clustering.lexical import LexicalFitError, LexicalProjection, combine, shared_term_share
from udfs.errors import ConfigError
from udfs.runtime import driver

log = logging.getLogger(__name__)

# Reasons a row gets no cluster (besides the embed task's own: null input, empty input, model errors).
NULL_VECTOR = "null embedding"
NON_FINITE = "embedding has NaN or infinite values"
ZERO_VECTOR = "zero embedding (cosine distance undefined)"
AUTO_LEXICAL_WEIGHT = 0.5  # the weight lexical_weight: auto joins at, where the texts share enough terms


def prepare(df, *, id_column: str, text_column: str, label_column: str | None = None,
            embedding_column: str | None = None, embed_plan=None, dim: int | None = None, distance: str = "cosine",
            chunk_words: int | None = None, max_chunks: int = 16, language_plan=None):
    """One row per input row: ``_id, _text, [_label], [_lang], vector array<double>, error``.

    ``vector`` is null exactly where ``error`` says why: the embed task's reason (null / empty text, a
    model failure) or a bad vector (null, wrong dimension, NaN/inf, zero length under cosine). ``dim``
    is the expected dimension (assign: the centroids'); without it, the most common one of an input
    ``embedding_column`` (one cheap pass over that column; an embed model's vectors are never re-checked).
    ``language_plan`` (the ``detect_language`` task's, :func:`udfs.clustering.languages.language_plan_for`):
    ``_lang`` is each row's language (null where the text has none to find).
    """
    from pyspark.sql import functions as F

    cols = [F.col(f"`{id_column}`").alias("_id"), F.col(f"`{text_column}`").cast("string").alias("_text")]
    if label_column:
        cols.append(F.col(f"`{label_column}`").cast("string").alias("_label"))
    if language_plan is not None:
        cols.append(language_column(language_plan, F.col(f"`{text_column}`").cast("string")).alias("_lang"))
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


def embed_chunked(encoder, texts: list[str], chunk_words: int | None, max_chunks: int = 16) -> np.ndarray:
    """In-process twin of the Spark path in :func:`prepare`: mean of the windows' embeddings per text."""
    if not chunk_words:
        return encoder.embed(texts)
    return encoder.embed_windows(texts, chunk_words, max_chunks, renormalize=False).astype(np.float64)


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


def decide_lexical(lexical: LexicalProjection, texts: list[str], k: int, *, seed: int = 0,
                   centered: bool = False) -> tuple[float, str]:
    """``lexical_weight: auto``: (weight, reason) from the sample's texts; the lexical features are joined
    (at :data:`AUTO_LEXICAL_WEIGHT`) only where texts share terms often enough for TF-IDF to link them, and
    never where the embeddings are ``centered`` per language: a term belongs to one language, so TF-IDF links
    rows of a language and the lexical half pulls them back together (bench/data/mixed_news.csv, e5-small
    centered, k=5: topic NMI 0.70 on the embeddings alone; TF-IDF joined at 0.5, 0.62 without the stop
    words of all four languages, 0.20 without English ones only).

    The TF-IDF cosine of two texts that share no kept term is 0: it can pull a cluster together only
    where the texts of a cluster share terms. With ``k`` equal clusters, 1/k of all pairs of texts lie
    inside one; the rule asks that at least half that many pairs share a term (``share >= 1 / (2k)``, k
    the largest k tried). Short texts fail it (BBC headlines: 1-2% of pairs share a term; the lexical half is
    noise there), long texts pass it by far (full BBC articles 98%, drug reviews 76%).
    """
    x = lexical.tfidf(texts)
    share = shared_term_share(x, seed=seed)
    terms = float(np.mean(np.diff(x.indptr))) if len(texts) else 0.0
    need = 1.0 / (2 * k)
    facts = (f"{share:.1%} of pairs of the {len(texts)} sampled texts share a term (need >= {need:.1%} = "
             f"1/(2k), k={k}); {terms:.1f} kept terms per text")
    if centered:
        return 0.0, (f"lexical features off (auto: the embeddings are centered per language, and TF-IDF terms "
                     f"belong to one language): {facts}")
    if share >= need:
        return AUTO_LEXICAL_WEIGHT, f"lexical features on (auto, weight {AUTO_LEXICAL_WEIGHT}): {facts}"
    return 0.0, f"lexical features off (auto: embeddings only): {facts}"


def fit_lexical(prepared, conf: ClusterConf, *, n_rows: int, stop_words: tuple[str, ...] = (),
                centered: bool = False) -> tuple[LexicalProjection | None, float, str | None]:
    """TF-IDF + LSA (:mod:`udfs.clustering.lexical`, without English stop words nor ``stop_words``) fitted on
    ~``conf.sample_size`` texts of rows with an embedding, and the weight to join it at: ``conf.lexical_weight``
    when a number, else :func:`decide_lexical`'s (``centered``: the embeddings are centered per language).

    Only that sample reaches the driver. Returns (projection, weight, note): the note says why (always
    under ``auto``); (None, 0.0, why) when the weight is 0, the sample is too small or shares too few terms:
    the clustering then runs on the embeddings alone, and says so.
    """
    from pyspark.sql import functions as F

    if conf.lexical_weight == 0:
        return None, 0.0, None
    rows = prepared.where(F.col("vector").isNotNull() & F.col("_text").isNotNull())
    fraction = min(1.0, conf.sample_size / max(n_rows, 1))
    if fraction < 1.0:
        rows = rows.sample(fraction=fraction, seed=conf.seed)
    texts = [r[0] for r in rows.select("_text").limit(conf.sample_size).collect()]
    try:
        lexical = LexicalProjection.fit(texts, conf.lexical_dims, seed=conf.seed, stop_words=stop_words)
    except LexicalFitError as exc:
        note = f"lexical features off (embeddings only): {exc}"
        log.warning("%s", note)
        return None, 0.0, note
    if conf.lexical_weight != "auto":
        return lexical, float(conf.lexical_weight), None
    weight, note = decide_lexical(lexical, texts, conf.k or conf.k_range[1], seed=conf.seed, centered=centered)
    log.info("%s", note)
    return (lexical if weight > 0 else None), weight, note
