"""Scores of a clustering against known labels (``label_column``; never seen by the fit): NMI and purity.

Spark counts the (cluster, label) pairs, so only a clusters x labels table reaches the driver; the NMI is
scikit-learn's (``normalized_mutual_info_score``, arithmetic-mean normalisation, its default).
"""
from __future__ import annotations

import numpy as np


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
    """(NMI with arithmetic-mean normalisation, as scikit-learn's default; purity) of a cluster x label table
    of counts (as :func:`sklearn.metrics.cluster.contingency_matrix` makes from per-row labels); (nan, nan)
    when it counts nothing."""
    from sklearn.metrics import normalized_mutual_info_score

    counts = np.asarray(table)
    whole = counts.astype(np.int64)
    if (whole != counts).any() or (whole < 0).any():
        raise ValueError(f"a contingency table holds counts (whole numbers >= 0); got {table!r}")
    n = int(whole.sum())
    if n == 0:
        return float("nan"), float("nan")
    # the table's labelings, one entry per counted row: scikit-learn scores labelings, not tables
    clusters, labels = (np.repeat(axis.ravel(), whole.ravel()) for axis in np.indices(whole.shape))
    nmi = normalized_mutual_info_score(labels, clusters, average_method="arithmetic")
    return float(min(nmi, 1.0)), float(whole.max(1).sum() / n)


def label_scores(assigned) -> dict[str, float]:
    table, _, labels = contingency(assigned)
    nmi, purity = nmi_purity(table)
    return {"nmi": nmi, "purity": purity, "labels": float(len(labels)), "labeled_rows": float(table.sum())}
