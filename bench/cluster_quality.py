"""Clustering quality against known topics (labels hidden from every fit): the job's default vs its
embeddings-only variant vs TF-IDF + k-means, and the k each rule picks vs the true k.

    .venv/bin/python bench/cluster_quality.py [--parts headlines articles drugs] [--sizes 20 50 200 2225]
        [--seeds 3] [--k-range 2 10] [--silhouette-rows 1000] [--cache DIR]

Corpora: BBC headlines (the first line of each of the 2,225 BBC news articles, 5 topics; --sizes takes
stratified samples: 20 = 4 per topic), the full BBC articles, and drugs.com reviews labeled by the
condition treated (the 10 conditions with at least 20 reviews, 479 reviews). k = the number of labels.

Ours: the cluster job's code from the vectors on (udfs.clustering prepare -> fit -> assign: lexical_weight
auto, Spark MLlib k-means, cosine, best of n_init=3 runs by cost), with its defaults, and the same with
lexical_weight 0 (embeddings only). The embeddings are the default catalog embedder's (a text is the mean
of its 150-word windows), computed once in-process with ``embed_chunked`` (the Spark path's twin; fp32) and
cached as .npy in --cache (default: $TEXTSPARK_CACHE/bench, else ~/.cache/textspark/bench), so a rerun
skips the minutes of embedding; they reach the job as an embedding column. Baseline from the same run:
scikit-learn TF-IDF (English stop words, sublinear tf, min_df=2 (1 where 2 leaves no term), max_df=0.5) +
k-means (n_init=10). NMI (arithmetic normalisation) against the true labels, mean over --seeds seeds.
k: chosen in --k-range by the job's default rule (stability across resamples) and by the plain best
silhouette (the old rule: one Spark fit per candidate, so only on tables of --silhouette-rows rows or more),
on the default's vectors. Uses a throw-away MLflow registry unless
MLFLOW_TRACKING_URI is set.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_registry  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from udfs.clustering.config import parse_cluster_conf  # noqa: E402
from udfs.clustering.features import embed_chunked, prepare  # noqa: E402
from udfs.clustering.fit import fit  # noqa: E402
from udfs.clustering.metrics import label_scores, nmi_purity  # noqa: E402
from udfs.clustering.model import assign  # noqa: E402

CHUNK_WORDS, MAX_CHUNKS = 150, 16  # the job's defaults


def tfidf_kmeans_nmi(texts: list[str], labels: np.ndarray, k: int, seed: int) -> float:
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.cluster import contingency_matrix

    for min_df in (2, 1):
        try:
            x = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=min_df, max_df=0.5).fit_transform(texts)
            break
        except ValueError:  # a handful of headlines: no term in 2 texts
            continue
    pred = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return nmi_purity(contingency_matrix(pred, labels))[0]


def embeddings(texts: list[str], plan, cache: Path) -> np.ndarray:
    """The texts' vectors as the job makes them, cached by model version + texts + windowing."""
    key = hashlib.sha256("\x00".join([plan.model.label, str(CHUNK_WORDS), str(MAX_CHUNKS), *texts]).encode()).hexdigest()
    path = cache / f"{plan.model.label.replace('/', '-')}-{len(texts)}-{key[:16]}.npy"
    if path.is_file():
        return np.load(path)
    from udfs.models.loading import load
    from udfs.models.registry import resolve

    started = time.time()
    vectors = embed_chunked(load(resolve(plan.model.uri), device="cpu"), texts, CHUNK_WORDS, MAX_CHUNKS)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    print(f"  embedded {len(texts)} texts in {time.time() - started:.0f} s -> {path}", flush=True)
    return vectors


def corpora(parts: list[str], sizes: list[int]) -> list[tuple[str, pd.DataFrame]]:
    from udfs.io.datasets import bbc_news, drug_conditions

    out = []
    bbc = bbc_news()
    for part in parts:
        if part == "headlines":
            heads = bbc[["id", "title", "label"]].rename(columns={"title": "text"})
            for n in sizes:
                rows = heads if n >= len(heads) else heads.groupby("label").sample(n // 5, random_state=0)
                out.append((f"BBC headlines, {len(rows)}", rows))
        elif part == "articles":
            out.append((f"BBC articles, {len(bbc)}", bbc[["id", "text", "label"]]))
        else:
            drugs = drug_conditions()
            out.append((f"drug reviews by condition, {len(drugs)}", drugs[["id", "text", "label"]]))
    return out


def score(prepared, keys: dict) -> tuple[float, object]:
    result = fit(prepared, parse_cluster_conf({"embedding_column": "vec", **keys}), embedding_model=None)
    return label_scores(assign(prepared, result.clustering))["nmi"], result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", choices=("headlines", "articles", "drugs"),
                        default=["headlines", "articles", "drugs"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 200, 2225], help="headline table sizes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--k-range", type=int, nargs=2, default=[2, 10], metavar=("LO", "HI"))
    parser.add_argument("--silhouette-rows", type=int, default=1000,
                        help="k by the old silhouette rule only on tables this large (it costs a Spark fit per k)")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache folder")
    args = parser.parse_args(argv)

    from pyspark import StorageLevel

    from udfs.platform import get_spark
    from udfs.tasks.embed import embed_plan

    bench_registry("embed")
    cache = args.cache or Path(os.environ.get("TEXTSPARK_CACHE", Path.home() / ".cache" / "textspark")) / "bench"
    spark = get_spark("local")
    plan = embed_plan()
    tmp = tempfile.mkdtemp(prefix="textspark-bench-")
    table = []
    for name, rows in corpora(args.parts, args.sizes):
        started = time.time()
        rows = rows.reset_index(drop=True)
        texts, labels, k = rows["text"].tolist(), rows["label"].to_numpy(), rows["label"].nunique()
        print(f"{name}: k={k} labels {rows['label'].value_counts().sort_index().to_dict()}", flush=True)
        vectors = embeddings(texts, plan, cache)
        path = f"{tmp}/{len(table)}.parquet"
        rows.assign(vec=list(vectors.astype(np.float64))).to_parquet(path, index=False)
        prepared = prepare(spark.read.parquet(path), id_column="id", text_column="text", label_column="label",
                           embedding_column="vec").persist(StorageLevel.MEMORY_AND_DISK)
        nmi = {"default": [], "embeddings only": [], "TF-IDF + k-means": []}
        note = None
        for seed in range(args.seeds):
            value, result = score(prepared, {"k": k, "seed": 10 * seed})
            nmi["default"].append(value)
            note = result.lexical_note
            nmi["embeddings only"].append(score(prepared, {"k": k, "seed": 10 * seed, "lexical_weight": 0.0})[0])
            nmi["TF-IDF + k-means"].append(tfidf_kmeans_nmi(texts, labels, k, seed))
        rules = ("stability", "silhouette") if len(rows) >= args.silhouette_rows else ("stability",)
        picked = {rule: score(prepared, {"k_range": list(args.k_range), "k_selection": rule})[1] for rule in rules}
        prepared.unpersist()
        means = {method: float(np.mean(v)) for method, v in nmi.items()}
        table.append((name, k, means, {rule: str(r.k) for rule, r in picked.items()}, note))
        print(f"  NMI {', '.join(f'{m} {v:.3f} ({min(nmi[m]):.3f}-{max(nmi[m]):.3f})' for m, v in means.items())}")
        print(f"  {note}")
        for rule, r in picked.items():
            print(f"  k by {rule}: {r.k}  ({', '.join(f'{c}:{s:.3f}' for c, s in r.candidates.items() if s is not None)})")
        print(f"  {time.time() - started:.0f} s", flush=True)

    print(f"\nNMI, mean over {args.seeds} seeds (k = true k); k chosen in {args.k_range}")
    print(f"{'corpus, rows':<34} {'default':>8} {'emb only':>9} {'TF-IDF':>7} {'default >= best':>16} "
          f"{'lexical (auto)':>15} {'true k':>7} {'k stab':>7} {'k silh':>7}")
    for name, k, means, ks, note in table:
        best = max(means["embeddings only"], means["TF-IDF + k-means"])
        lexical = "off" if note is None or "features off" in note else "on"
        print(f"{name:<34} {means['default']:>8.3f} {means['embeddings only']:>9.3f} {means['TF-IDF + k-means']:>7.3f} "
              f"{'yes' if means['default'] >= best - 1e-9 else 'NO':>16} {lexical:>15} {k:>7} {ks['stability']:>7} "
              f"{ks.get('silhouette', '-'):>7}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
