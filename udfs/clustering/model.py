"""The fitted clustering: centroids that put rows into clusters, on the driver and in Spark workers.

:class:`Clustering` holds the centroids plus what is needed to reproduce the vectors they were fitted
on (the embedding model version, the per-language means and the language model version when the
embeddings were centered per language, the LSA arrays); :meth:`Clustering.assign_column` puts rows into
clusters (the same code for a fresh fit and for new rows). :func:`register` stores a clustering as a
registry version (kind ``kmeans_centroids``) and :func:`load_clustering` is that kind's builder, so
``mode: assign`` never refits.

Distances: ``cosine`` (1 - cosine similarity, in [0, 2]) or ``euclidean`` (the plain Euclidean distance).
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from udfs.clustering.features import embed_chunked, with_lexical
from udfs.clustering.languages import LanguageCentering, center
from udfs.clustering.lexical import LexicalProjection, combine
from udfs.models.loading import build, load, local_folder
from udfs.models.registry import register_folder, resolve

TASK = "cluster"
KIND = "kmeans_centroids"


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
    centering: LanguageCentering | None = None  # per-language means subtracted from the embeddings (None: off)

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

    def vectors(self, embeddings: np.ndarray, texts: list[str | None],
                languages: list[str | None] | None = None) -> np.ndarray:
        """The vectors k-means works on: the embeddings (centered by the rows' ``languages`` when the clustering
        centers; None: identified here by its language model), joined to the texts' LSA vectors when lexical."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if self.centering is not None:
            if languages is None:
                languages = self.centering.languages_of(list(texts))
            embeddings = self.centering.center(embeddings, languages)
        if self.lexical is None:
            return embeddings
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
        """Plain-MLflow face (``mlflow.pyfunc.load_model(...).predict(texts)``): embed (+ center per language,
        + LSA), then assign. A row left with nothing after centering (it is its language's mean) gets
        ``{"cluster": None, "distance": None}``."""
        if not self.embedding_model:
            raise ValueError(f"clustering {self.label} was fitted on an input embedding column "
                             f"({self.embedding_column!r}); pass vectors to assign() instead of texts")
        encoder = load(resolve(self.embedding_model), device="cpu")
        texts = list(texts)
        x = self.vectors(embed_chunked(encoder, texts, self.chunk_words, self.max_chunks), texts)
        alive = np.linalg.norm(x, axis=1) > 0
        best, d = self.assign(np.where(alive[:, None], x, 1.0))
        return [{"cluster": int(c), "distance": float(y)} if ok else {"cluster": None, "distance": None}
                for c, y, ok in zip(best, d, alive)]


def load_clustering(folder: Path, *, device: str = "cpu", precision: str = "fp32", **params: Any) -> Clustering:
    """Kind ``kmeans_centroids``: ``weights/centroids.npy`` (+ the language means of
    :mod:`udfs.clustering.languages` when the embeddings were centered per language, + the LSA arrays of
    :mod:`udfs.clustering.lexical` when the vectors were joined to lexical features) + ``clusters.json``
    (keywords, sizes)."""
    centroids = np.load(Path(folder) / "weights" / "centroids.npy")
    extra = json.loads((Path(folder) / "clusters.json").read_text()) if (Path(folder) / "clusters.json").is_file() else {}
    meta = json.loads((Path(folder) / "textspark.json").read_text()) if (Path(folder) / "textspark.json").is_file() else {}
    return Clustering(centroids=centroids, distance=params.get("distance", "cosine"),
                      embedding_model=params.get("embedding_model"), embedding_column=params.get("embedding_column"),
                      chunk_words=params.get("chunk_words"), max_chunks=int(params.get("max_chunks", 16)),
                      lexical=LexicalProjection.load(Path(folder) / "weights"),
                      lexical_weight=float(params.get("lexical_weight") or 0.0),
                      centering=LanguageCentering.load(Path(folder) / "weights"),
                      keywords={int(c): list(w) for c, w in extra.get("keywords", {}).items()},
                      sizes={int(c): int(n) for c, n in extra.get("sizes", {}).items()},
                      label=str(meta.get("name", "(unregistered)")))


def register(clustering: Clustering, *, name: str, alias: str = "champion", run_id: str | None = None,
             description: str = "") -> tuple[str, bool]:
    """Register ``clustering`` (task ``cluster``, kind ``kmeans_centroids``); (version, created).

    Idempotent like every textspark registration: the same centroids, distance, embedding model and
    keywords give the existing version back instead of a new one.
    """
    params = {"k": clustering.k, "dim": clustering.dim, "distance": clustering.distance,
              "embedding_model": clustering.embedding_model, "embedding_column": clustering.embedding_column,
              "chunk_words": clustering.chunk_words, "max_chunks": clustering.max_chunks,
              "lexical_weight": clustering.lexical_weight, "lexical_dims": clustering.lexical_dims,
              "center_languages": clustering.centering.summary() if clustering.centering else None}
    extra = {"clusters.json": {"keywords": {str(c): w for c, w in sorted(clustering.keywords.items())},
                               "sizes": {str(c): n for c, n in sorted(clustering.sizes.items())}}}
    with tempfile.TemporaryDirectory(prefix="textspark-centroids-") as tmp:
        np.save(Path(tmp) / "centroids.npy", np.ascontiguousarray(clustering.centroids, dtype=np.float64))
        if clustering.lexical is not None:
            clustering.lexical.save(Path(tmp))
        if clustering.centering is not None:
            clustering.centering.save(Path(tmp))
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


def assign(prepared, clustering: Clustering):
    """``prepared`` + ``cluster`` (int), ``distance`` (double); rows without a vector get nulls, keep ``error``.

    ``vector`` becomes the vector k-means saw (centered by ``_lang`` when the clustering centers per language,
    joined to the lexical features when it has them).
    """
    a = with_lexical(center(prepared, clustering.centering), clustering.lexical, clustering.lexical_weight)
    a = a.withColumn("_a", clustering.assign_column("vector"))
    return a.select(*[c for c in a.columns if c != "_a"], "_a.cluster", "_a.distance")
