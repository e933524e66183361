"""The 2-D picture of a clustering: a sample of the vectors k-means saw (``projection_size`` rows reach the
driver), projected by PCA, coloured by cluster (named in the legend by its top keywords), centroids marked."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from udfs.vectors import unit_rows


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


def legend_label(cluster: int, rows: int, names: Mapping[int, str] | None = None) -> str:
    name = (names or {}).get(cluster)
    return f"{cluster}: {name} ({rows})" if name else f"{cluster} ({rows})"


def projection_png(vectors: np.ndarray, clusters: np.ndarray, centroids: np.ndarray, path: str | Path, *,
                   title: str = "", distance: str = "euclidean", names: Mapping[int, str] | None = None) -> Path:
    """:func:`projection_xy` of the sample, coloured by cluster, centroids marked; written to ``path``.

    The legend names each cluster ``<id>: <names[id]> (<rows in the sample>)``, or ``<id> (<rows>)`` without."""
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
            ax.scatter(xy[m, 0], xy[m, 1], s=8, alpha=0.6, color=cmap(c % cmap.N), label=legend_label(c, int(m.sum()), names))
        ax.scatter(cxy[:, 0], cxy[:, 1], marker="X", s=120, c="black", label="centroids")
        ax.legend(fontsize=7, markerscale=1.5, loc="best")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title or f"{len(vectors)} sampled rows, k={len(centroids)}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
