"""Shadow scoring of two clusterings (task ``cluster``): which clusters split or merge between versions.

A clustering's cluster ids are arbitrary: version 2's cluster 0 need not be version 1's. :func:`match` reads
the contingency table (rows in champion cluster i and challenger cluster j) and

- pairs the clusters one to one where they share the most rows (``scipy.optimize.linear_sum_assignment``,
  maximizing the shared rows; a pair that shares no row is no pair): a row is ``flipped`` when its challenger
  cluster is not its champion cluster's partner (every row of a champion cluster without a partner flips);
- a champion cluster **splits** when at least 2 challenger clusters each take at least ``split_share`` of its
  rows (default :data:`SPLIT_SHARE`);
- a challenger cluster **merges** when it takes the majority (more than half the rows) of at least 2
  champion clusters.

The same version twice gives the identity pairing, 0 flips and no split or merge.

:func:`plan_clusters` loads both clusterings on the driver (their centroids are small) and the UDF plans that
give each row its vector: the embedding model, one pass where both versions were fitted on the same one with
the same windows (both clusterings then assign the same vectors), and the language model where a clustering
centers per language (``language`` in the diff). ``settings.embedding_column`` reads the vectors from a column
instead (clusterings fitted on vectors). :func:`assignments` is the lazy table of both versions' clusters.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from udfs.errors import ConfigError, ModelReferenceError

SPLIT_SHARE = 0.25  # a champion cluster splits when >= 2 challenger clusters each take at least this share of it
KEYS = ("device", "precision", "fail_on_error", "embedding_column", "split_share")


@dataclass(frozen=True)
class ClusterPlan:
    """Both clusterings, the plans that give rows their vectors and language, and how they are shared.

    ``plans``: column -> UdfPlan (``embedding``, or ``champion embedding`` and ``challenger embedding`` where
    the versions embed differently; ``language`` where one centers per language), the names the costs use."""

    champion: Any  # udfs.clustering.model.Clustering
    challenger: Any
    plans: dict
    embedding_column: str | None = None
    split_share: float = SPLIT_SHARE

    @property
    def shared(self) -> bool:
        return "champion embedding" not in self.plans

    def counted(self, plans: Mapping) -> "ClusterPlan":
        """The same plan with the plans a progress meter returned (each carrying its counter)."""
        return replace(self, plans=dict(plans))


def plan_clusters(champion: str, challenger: str, settings: Mapping[str, Any] | None = None) -> ClusterPlan:
    """Load both registered clusterings (ConfigError keys ``champion``, ``challenger``, ``settings.<key>``)."""
    from udfs.clustering.languages import language_plan_for
    from udfs.clustering.model import load_registered
    from udfs.tasks.embed import embed_plan

    settings = dict(settings or {})
    for key, value in settings.items():
        if key not in KEYS:
            raise ConfigError(f"settings.{key}", value, f"keys {', '.join(KEYS)}")
    share = settings.get("split_share", SPLIT_SHARE)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 0.5:
        raise ConfigError("settings.split_share", share, "a number in (0, 0.5]")
    loaded = []
    for key, reference in (("champion", champion), ("challenger", challenger)):
        try:
            loaded.append(load_registered(reference)[0])
        except ModelReferenceError as exc:
            raise ConfigError(key, reference, f"a registered clustering (task cluster): {exc}") from None
    column = settings.get("embedding_column")
    options = {k: settings[k] for k in ("device", "precision", "fail_on_error") if k in settings}
    plans: dict = {}
    if column is None:
        for key, c in zip(("champion", "challenger"), loaded):
            if not c.embedding_model:
                raise ConfigError("settings.embedding_column", None, f"the column of vectors {c.label} was fitted "
                                  f"on ({c.embedding_column!r}): it was not fitted on texts")
        a, b = loaded
        same = (a.embedding_model, a.chunk_words, a.max_chunks) == (b.embedding_model, b.chunk_words, b.max_chunks)
        names = ["embedding"] if same else ["champion embedding", "challenger embedding"]
        for name, c in zip(names, loaded):
            plans[name] = embed_plan(model=c.embedding_model, **{"device": "cpu", **options})
    centering = next((c.centering for c in loaded if c.centering is not None), None)
    if centering is not None:
        plans["language"] = language_plan_for(centering.language_model)
    return ClusterPlan(loaded[0], loaded[1], plans, column, float(share))


def assignments(df, key: str, text_column: str, plan: ClusterPlan):
    """Lazy: the row's key, ``language`` (where a clustering centers per language), ``champion`` and
    ``challenger`` (struct<cluster, distance, model, error>) and ``score_delta`` (the challenger's distance to
    its centroid minus the champion's). One pass: the shared vectors are assigned by both clusterings."""
    from pyspark.sql import functions as F

    from udfs.clustering.features import prepare
    from udfs.clustering.model import assign

    def prepared(c, embed, language):
        return prepare(df, id_column=key, text_column=text_column, embedding_column=plan.embedding_column,
                       embed_plan=embed, dim=c.embedding_dim, distance=c.distance, chunk_words=c.chunk_words,
                       max_chunks=c.max_chunks, language_plan=language)

    def result(c):
        return F.struct(F.col("cluster"), F.col("distance"), F.lit(c.label).alias("model"), F.col("error"))

    language = plan.plans.get("language")
    distances = {plan.champion.distance, plan.challenger.distance}
    if plan.shared and len(distances) == 1:  # one set of vectors, assigned by both
        base = prepared(plan.champion, plan.plans.get("embedding"), language)
        base = base.withColumn("_vector", F.col("vector")).withColumn("_error", F.col("error"))
        first = assign(base, plan.champion).withColumn("champion", result(plan.champion))
        first = first.drop("cluster", "distance").withColumn("vector", F.col("_vector")) \
            .withColumn("error", F.col("_error"))
        both = assign(first, plan.challenger).withColumn("challenger", result(plan.challenger))
    else:  # each its own vectors (another model, windows or distance), joined on the key
        embed = [plan.plans.get(k) for k in (("embedding", "embedding") if plan.shared else
                                             ("champion embedding", "challenger embedding"))]
        first = assign(prepared(plan.champion, embed[0], language), plan.champion)
        first = first.select("_id", *(["_lang"] if "_lang" in first.columns else []),
                             result(plan.champion).alias("champion"))
        second = assign(prepared(plan.challenger, embed[1], None), plan.challenger) \
            .select(F.col("_id").alias("_id2"), result(plan.challenger).alias("challenger"))
        both = first.join(second, first["_id"].eqNullSafe(second["_id2"]))
    lang = [F.col("_lang").alias("language")] if "_lang" in both.columns else []
    delta = F.col("challenger.distance") - F.col("champion.distance")
    return both.select(F.col("_id").alias(key), *lang, "champion", "challenger", delta.alias("score_delta"))


def match(counts: Mapping[tuple[int, int], int], split_share: float = SPLIT_SHARE) -> dict[str, Any]:
    """What the contingency table ``counts`` ((champion cluster, challenger cluster) -> rows) says: the
    ``contingency`` (its clusters sorted, and the counts), the one-to-one ``matching`` (champion -> challenger
    cluster), the ``splits`` and the ``merges`` (see the module docstring)."""
    from scipy.optimize import linear_sum_assignment

    rows_ = sorted({c for c, _ in counts})
    cols = sorted({h for _, h in counts})
    table = np.array([[counts.get((c, h), 0) for h in cols] for c in rows_], dtype=np.int64).reshape(len(rows_),
                                                                                                       len(cols))
    matching = {}
    if table.size:
        for i, j in zip(*linear_sum_assignment(table, maximize=True)):
            if table[i, j] > 0:
                matching[rows_[i]] = cols[j]
    splits, majority = [], {}
    for i, c in enumerate(rows_):
        total = int(table[i].sum())
        into = {cols[j]: int(n) for j, n in enumerate(table[i]) if n and n >= split_share * total}
        if len(into) >= 2:
            splits.append({"champion": c, "rows": total, "into": into})
        j = int(table[i].argmax()) if total else None
        if j is not None and 2 * table[i, j] > total:
            majority.setdefault(cols[j], {})[c] = int(table[i, j])
    merges = [{"challenger": h, "rows": int(table[:, cols.index(h)].sum()), "from": dict(sorted(sources.items()))}
              for h, sources in sorted(majority.items()) if len(sources) >= 2]
    return {"contingency": {"champion": rows_, "challenger": cols, "counts": table.tolist()},
            "matching": matching, "splits": splits, "merges": merges, "split_share": split_share}


def flipped(matching: Mapping[int, int]):
    """The diff's ``flipped`` column: the challenger cluster is not the champion cluster's partner (null where
    either version has no cluster)."""
    from pyspark.sql import functions as F

    c, h = F.col("champion.cluster"), F.col("challenger.cluster")
    pairs = [F.lit(x) for kv in sorted(matching.items()) for x in kv]
    partner = F.create_map(*pairs)[c] if pairs else F.lit(None).cast("int")
    return F.when(c.isNotNull() & h.isNotNull(), F.coalesce(partner != h, F.lit(True)))


def cluster_shadow(df, key: str, text_column: str, plan: ClusterPlan):
    """The diff table: :func:`assignments` computed now (one Spark job, held by ``localCheckpoint``: the models
    run once), its contingency table matched (:func:`match`), and ``flipped`` added from the matching."""
    from pyspark.sql import functions as F

    assigned = assignments(df, key, text_column, plan).localCheckpoint(eager=True)
    counts = assigned.where(F.col("champion.cluster").isNotNull() & F.col("challenger.cluster").isNotNull()) \
        .groupBy(F.col("champion.cluster").alias("c"), F.col("challenger.cluster").alias("h")).count().collect()
    matching = match({(r["c"], r["h"]): r["count"] for r in counts}, plan.split_share)["matching"]
    columns = [c for c in assigned.columns if c != "score_delta"]
    return assigned.select(*[F.col(f"`{c}`") for c in columns], flipped(matching).alias("flipped"), "score_delta")


def cluster_summary(diff, split_share: float = SPLIT_SHARE) -> dict[str, Any]:
    """What a cluster diff table says (one Spark aggregation): the flip rate overall, per champion cluster and
    per language, and :func:`match`'s contingency table, matching, splits and merges."""
    from pyspark.sql import functions as F

    language = F.col("language") if "language" in diff.columns else F.lit(None).cast("string")
    got = diff.groupBy(F.col("champion.cluster").alias("c"), F.col("challenger.cluster").alias("h"),
                       language.alias("lang"), F.col("flipped").alias("f")).count().collect()
    compared = [r for r in got if r["f"] is not None]
    counts: dict = {}
    for r in compared:
        counts[(r["c"], r["h"])] = counts.get((r["c"], r["h"]), 0) + r["count"]

    def rate(rows) -> dict[str, Any]:
        n, f = sum(r["count"] for r in rows), sum(r["count"] for r in rows if r["f"])
        return {"compared": n, "flipped": f, "flip_rate": f / n if n else None}

    def rates(group) -> dict[str, dict[str, Any]]:
        return {str(k): rate([r for r in compared if group(r) == k]) for k in sorted({group(r) for r in compared})}

    found = match(counts, split_share)  # JSON's keys are strings: the manifest's read back as this summary
    return {"task": "cluster", "rows": sum(r["count"] for r in got), **rate(compared),
            "no_result": {"champion": sum(r["count"] for r in got if r["c"] is None),
                          "challenger": sum(r["count"] for r in got if r["h"] is None)},
            "per_class": rates(lambda r: r["c"]),
            "per_language": rates(lambda r: r["lang"] or "unidentified") if "language" in diff.columns else None,
            "confusion": None, **found, "matching": _keyed(found["matching"]),
            "splits": [{**s, "into": _keyed(s["into"])} for s in found["splits"]],
            "merges": [{**m, "from": _keyed(m["from"])} for m in found["merges"]]}


def _keyed(d: Mapping[int, int]) -> dict[str, int]:
    return {str(k): v for k, v in d.items()}
