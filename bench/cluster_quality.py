"""Clustering quality on BBC news (5 topics; labels hidden from every fit): ours vs TF-IDF + k-means.

    .venv/bin/python bench/cluster_quality.py [--articles 2225] [--seeds 3] [--k-range 2 10]

Ours: the default catalog embedder (distributed embed UDF; an article is the mean of its 150-word windows'
embeddings, the job's default) -> Spark MLlib k-means (cosine), via the same udfs.clustering functions
jobs/cluster.py uses (final fit: best of n_init=3 k-means runs by k-means cost, as the job does). Baselines, in the same process on the same articles:
scikit-learn TF-IDF (English stop words, sublinear tf, min_df=2, max_df=0.5) + k-means (n_init=10), and
the same TF-IDF reduced to 100 dimensions with LSA before k-means. Each method runs with k=5 for every
seed; NMI (arithmetic normalisation) and purity are against the true topics. Also reports the k the
silhouette picks in --k-range. Uses a throw-away MLflow registry unless MLFLOW_TRACKING_URI is set.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_registry  # noqa: E402

import numpy as np  # noqa: E402


def baseline_scores(texts: list[str], labels: np.ndarray, k: int, seed: int, lsa: bool) -> tuple[float, float]:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    from udfs.clustering import nmi_purity

    x = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=2, max_df=0.5).fit_transform(texts)
    if lsa:
        x = make_pipeline(TruncatedSVD(100, random_state=seed), Normalizer(copy=False)).fit_transform(x)
    pred = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return nmi_purity(_table(pred, labels))


def _table(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    _, lab = np.unique(labels, return_inverse=True)
    table = np.zeros((pred.max() + 1, lab.max() + 1))
    np.add.at(table, (pred, lab), 1)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=2225, help="BBC articles (stratified sample below 2225)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--k-range", type=int, nargs=2, default=[2, 10], metavar=("LO", "HI"))
    args = parser.parse_args(argv)

    from pyspark import StorageLevel
    from udfs import clustering as cl
    from udfs.datasets import bbc_news
    from udfs.embed import embed_plan

    from udfs.platform import get_spark

    bench_registry("embed")
    news = bbc_news()
    if args.articles < len(news):
        news = news.groupby("label").sample(frac=args.articles / len(news), random_state=0)
    news = news[["id", "text", "label"]].reset_index(drop=True)
    print(f"BBC news: {len(news)} articles, topics {news['label'].value_counts().sort_index().to_dict()}")

    spark = get_spark("local")
    plan = embed_plan()
    path = f"{tempfile.mkdtemp(prefix='textspark-bench-')}/bbc.parquet"
    news.to_parquet(path, index=False)
    df = spark.read.parquet(path)
    started = time.time()
    defaults = cl.ClusterConf()  # the job's defaults: windows of chunk_words words, mean per article
    prepared = cl.prepare(df, id_column="id", text_column="text", label_column="label", embed_plan=plan,
                          chunk_words=defaults.chunk_words, max_chunks=defaults.max_chunks,
                          ).persist(StorageLevel.MEMORY_AND_DISK)
    n = prepared.where("vector IS NOT NULL").count()
    embed_s = time.time() - started
    print(f"embedded {n} articles with {plan.model.label} (windows of {defaults.chunk_words} words, at most "
          f"{defaults.max_chunks} per article) in {embed_s:.1f} s ({n / embed_s:.1f} articles/s)")

    results: dict[str, list[tuple[float, float]]] = {"ours: embeddings + Spark k-means (cosine)": [],
                                                     "baseline: TF-IDF + k-means": [],
                                                     "baseline: TF-IDF + LSA(100) + k-means": []}
    labels = news["label"].to_numpy()
    texts = news["text"].tolist()
    for seed in range(args.seeds):
        t0 = time.time()
        fit = cl.fit(prepared, cl.parse_cluster_conf({"k": 5, "seed": 10 * seed}), embedding_model=plan.model.uri)
        s = cl.label_scores(cl.assign(prepared, fit.clustering))
        results["ours: embeddings + Spark k-means (cosine)"].append((s["nmi"], s["purity"]))
        t1 = time.time()
        results["baseline: TF-IDF + k-means"].append(baseline_scores(texts, labels, 5, seed, lsa=False))
        results["baseline: TF-IDF + LSA(100) + k-means"].append(baseline_scores(texts, labels, 5, seed, lsa=True))
        print(f"seed {seed}: ours fit {t1 - t0:.1f} s (silhouette {fit.silhouette:.3f}), baselines {time.time() - t1:.1f} s")

    print(f"\n{'method (k=5)':<44} {'NMI mean':>9} {'min':>6} {'max':>6} {'purity mean':>12} {'min':>6} {'max':>6}")
    means = {}
    for name, vals in results.items():
        nmi, pur = np.array([v[0] for v in vals]), np.array([v[1] for v in vals])
        means[name] = (nmi.mean(), pur.mean())
        print(f"{name:<44} {nmi.mean():>9.3f} {nmi.min():>6.3f} {nmi.max():>6.3f} {pur.mean():>12.3f} "
              f"{pur.min():>6.3f} {pur.max():>6.3f}")
    ours = means["ours: embeddings + Spark k-means (cosine)"]
    for name in list(means)[1:]:
        print(f"ratio ours / {name[len('baseline: '):]}: NMI x{ours[0] / means[name][0]:.2f}, "
              f"purity x{ours[1] / means[name][1]:.2f}")

    fit = cl.fit(prepared, cl.parse_cluster_conf({"k_range": list(args.k_range), "seed": 0}),
                 embedding_model=plan.model.uri)
    s = cl.label_scores(cl.assign(prepared, fit.clustering))
    cands = ", ".join(f"{k}:{v:.3f}" for k, v in fit.candidates.items() if v is not None)
    print(f"\nk by silhouette in {args.k_range}: k={fit.k} (sample silhouettes {cands}); "
          f"NMI {s['nmi']:.3f}, purity {s['purity']:.3f}")
    print(f"wins: NMI {'yes' if all(ours[0] > m[0] for m in list(means.values())[1:]) else 'NO'}, "
          f"purity {'yes' if all(ours[1] > m[1] for m in list(means.values())[1:]) else 'NO'}")
    prepared.unpersist()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
