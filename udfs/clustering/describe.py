"""Describing the clusters: sizes, class-based TF-IDF keywords (in Spark), a name per cluster (its top
keywords), the texts closest to each centroid, and the rows of the ``clusters`` table. Only
k x (keywords + examples) rows reach the driver.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

EXAMPLE_CHARS = 300


def sizes(assigned) -> dict[int, int]:
    from pyspark.sql import functions as F

    rows = assigned.where(F.col("cluster").isNotNull()).groupBy("cluster").count().collect()
    return {int(r["cluster"]): int(r["count"]) for r in rows}


# Words that say nothing about a topic (reporting verbs, titles, counts, time, hedges), added to Spark's
# English stop words for keywords: on short texts they otherwise name clusters ("year, new, called").
EXTRA_STOP_WORDS = (
    "said", "says", "say", "told", "also", "mr", "mrs", "ms", "called", "calls", "call", "new", "year", "years",
    "one", "two", "three", "first", "last", "next", "many", "much", "may", "might", "must", "could", "would",
    "will", "get", "gets", "got", "make", "makes", "made", "take", "takes", "set", "back", "still", "even",
    "well", "yet", "however", "since", "another", "every", "like", "just", "now", "way", "time", "day", "week",
    "people", "according", "including", "among", "around", "without", "within", "already", "ago")


def stop_words_for(languages: Iterable[str] = ()) -> tuple[str, ...]:
    """The words :func:`keywords` drops besides Spark's English stop words: :data:`EXTRA_STOP_WORDS` plus the
    stop words of the table's other ``languages`` (:func:`udfs.clustering.languages.stop_words`)."""
    from udfs.clustering.languages import stop_words

    return tuple(sorted(set(EXTRA_STOP_WORDS) | set(stop_words(languages))))


MIN_DF_SHARE = 0.001  # terms in fewer than max(2, this share of the described texts) texts come last
NAME_WORDS = 3        # keywords in a cluster's name


def keywords(assigned, n: int = 10, *, text_column: str = "_text",
             stop_words: tuple[str, ...] = EXTRA_STOP_WORDS) -> dict[int, list[str]]:
    """Top ``n`` terms per cluster by class-based TF-IDF, computed in Spark.

    Terms: lower-cased runs of 3+ letters, minus Spark's English stop words and ``stop_words`` (the job gives
    :func:`stop_words_for` the table's languages); each text counts a term once (so one long text repeating
    a name cannot name its cluster). For term t and cluster c, ``score = (count(t, c) / words(c)) *
    log(1 + A / count(t))`` with A the mean number of words per cluster (BERTopic's c-TF-IDF): frequent in
    the cluster, rare elsewhere. A term in fewer than
    ``max(2, MIN_DF_SHARE x texts)`` texts (a typo, a one-off name: on short texts such terms top every
    cluster by their rarity) comes after every term that is in enough texts. Ties: A-Z.
    """
    from pyspark.ml.feature import RegexTokenizer, StopWordsRemover
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    docs = assigned.where(F.col("cluster").isNotNull() & F.col(text_column).isNotNull()).select("cluster", text_column)
    tokens = RegexTokenizer(inputCol=text_column, outputCol="_tokens", pattern=r"\p{L}+", gaps=False,
                            minTokenLength=3, toLowercase=True).transform(docs)
    stop = sorted(set(StopWordsRemover.loadDefaultStopWords("english")) | set(stop_words))
    terms = StopWordsRemover(inputCol="_tokens", outputCol="_terms", stopWords=stop).transform(tokens)
    min_df = max(2, int(MIN_DF_SHARE * docs.count()))
    counts = (terms.select("cluster", F.explode(F.array_distinct("_terms")).alias("term"))
              .groupBy("cluster", "term").count())
    per_cluster = counts.groupBy("cluster").agg(F.sum("count").alias("words"))
    per_term = counts.groupBy("term").agg(F.sum("count").alias("total"))
    mean_words = per_cluster.agg(F.avg("words").alias("a"))
    scored = (counts.join(per_cluster, "cluster").join(per_term, "term").crossJoin(mean_words)
              .withColumn("score", (F.col("count") / F.col("words")) * F.log(1.0 + F.col("a") / F.col("total"))))
    rare = (F.col("total") < min_df).cast("int")  # 0 first: terms in enough texts
    rank = F.row_number().over(Window.partitionBy("cluster").orderBy(rare, F.desc("score"), "term"))
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


def names(k: int, keywords_: Mapping[int, list[str]], words: int = NAME_WORDS) -> dict[int, str]:
    """A name per cluster: its top ``words`` keywords (``"goal, match, striker"``); a cluster without keywords,
    or whose name another cluster already has, gets ``#<id>`` too (``"goal, match, striker #3"``)."""
    out: dict[int, str] = {}
    for c in range(k):
        name = ", ".join(list(keywords_.get(c, []))[:words])
        out[c] = f"{name} #{c}" if not name or name in out.values() else name
    return out


def cluster_table(k: int, sizes_: Mapping[int, int], keywords_: Mapping[int, list[str]],
                  examples: Mapping[int, list[tuple[str, str]]]) -> list[dict[str, Any]]:
    """The rows of ``<path>/clusters``: one per cluster (also those with no rows), by cluster id."""
    named = names(k, keywords_)
    return [{"cluster": c, "name": named[c], "size": int(sizes_.get(c, 0)), "keywords": list(keywords_.get(c, [])),
             "examples": [t for _, t in examples.get(c, [])], "example_ids": [i for i, _ in examples.get(c, [])]}
            for c in range(k)]


CLUSTERS_SCHEMA = "cluster int, name string, size long, keywords array<string>, examples array<string>, example_ids array<string>"
