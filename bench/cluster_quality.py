"""Clustering quality against known topics (labels hidden from every fit): ours vs TF-IDF + k-means.

    .venv/bin/python bench/cluster_quality.py [--corpus bbc|drugs] [--articles 2225] [--seeds 3] [--k-range 2 10]

Corpora: ``bbc`` (BBC news, 5 topics, 2,225 articles; --articles takes a stratified sample) and ``drugs``
(drugs.com reviews labeled by the condition treated: the 10 conditions with at least 20 reviews, 479
reviews; a second corpus: lexical_weight 0.5 was kept because the two corpora favour opposite sides of it).
k = the number of true labels.

Ours: the cluster job's defaults through the same udfs.clustering functions jobs/cluster.py uses: the
default catalog embedder (distributed embed UDF; a text is the mean of its 150-word windows'
embeddings) joined to TF-IDF + LSA(100) features fitted on the texts (lexical_weight 0.5) -> Spark MLlib
k-means (cosine), best of n_init=3 runs by k-means cost. Also ours with lexical_weight 0 (embeddings
only). Baselines, in the same process on the same texts: scikit-learn TF-IDF (English stop words,
sublinear tf, min_df=2, max_df=0.5) + k-means (n_init=10), and the same TF-IDF reduced to 100 dimensions
with LSA before k-means. NMI (arithmetic normalisation) and purity are against the true labels. Also
reports the k the silhouette picks in --k-range. Uses a throw-away MLflow registry unless
MLFLOW_TRACKING_URI is set.
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

from udfs.clustering.config import parse_cluster_conf  # noqa: E402
from udfs.clustering.features import prepare  # noqa: E402
from udfs.clustering.fit import fit  # noqa: E402
from udfs.clustering.metrics import label_scores, nmi_purity  # noqa: E402
from udfs.clustering.model import assign  # noqa: E402


def baseline_scores(texts: list[str], labels: np.ndarray, k: int, seed: int, lsa: bool) -> tuple[float, float]:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.cluster import contingency_matrix
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    x = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=2, max_df=0.5).fit_transform(texts)
    if lsa:
        x = make_pipeline(TruncatedSVD(100, random_state=seed), Normalizer(copy=False)).fit_transform(x)
    pred = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    return nmi_purity(contingency_matrix(pred, labels))  # clusters x labels, as udfs.clustering.metrics counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=("bbc", "drugs"), default="bbc")
    parser.add_argument("--articles", type=int, default=2225, help="BBC articles (stratified sample below 2225)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--k-range", type=int, nargs=2, default=[2, 10], metavar=("LO", "HI"))
    args = parser.parse_args(argv)

    from pyspark import StorageLevel
    from jobs.datasets import bbc_news, drug_conditions
    from udfs.tasks.embed import embed_plan

    from udfs.platform import get_spark

    bench_registry("embed")
    if args.corpus == "drugs":
        news = drug_conditions()
    else:
        news = bbc_news()
        if args.articles < len(news):
            news = news.groupby("label").sample(frac=args.articles / len(news), random_state=0)
    news = news[["id", "text", "label"]].reset_index(drop=True)
    k = news["label"].nunique()
    print(f"{args.corpus}: {len(news)} texts, k={k} labels {news['label'].value_counts().sort_index().to_dict()}")

    spark = get_spark("local")
    plan = embed_plan()
    path = f"{tempfile.mkdtemp(prefix='textspark-bench-')}/{args.corpus}.parquet"
    news.to_parquet(path, index=False)
    df = spark.read.parquet(path)
    started = time.time()
    defaults = parse_cluster_conf({"k": k})  # the job's defaults: windows of chunk_words words, mean per article
    prepared = prepare(df, id_column="id", text_column="text", label_column="label", embed_plan=plan,
                       chunk_words=defaults.chunk_words, max_chunks=defaults.max_chunks,
                       ).persist(StorageLevel.MEMORY_AND_DISK)
    n = prepared.where("vector IS NOT NULL").count()
    embed_s = time.time() - started
    print(f"embedded {n} texts with {plan.model.label} (windows of {defaults.chunk_words} words, at most "
          f"{defaults.max_chunks} per text) in {embed_s:.1f} s ({n / embed_s:.1f} texts/s)")

    ours = "ours: embeddings + TF-IDF/LSA, Spark k-means"
    variants = {ours: {}, "ours, embeddings only (lexical_weight 0)": {"lexical_weight": 0.0}}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    results.update({"baseline: TF-IDF + k-means": [], "baseline: TF-IDF + LSA(100) + k-means": []})
    labels = news["label"].to_numpy()
    texts = news["text"].tolist()
    for seed in range(args.seeds):
        t0 = time.time()
        for name, keys in variants.items():
            result = fit(prepared, parse_cluster_conf({"k": k, "seed": 10 * seed, **keys}),
                         embedding_model=plan.model.uri)
            s = label_scores(assign(prepared, result.clustering))
            results[name].append((s["nmi"], s["purity"]))
        t1 = time.time()
        results["baseline: TF-IDF + k-means"].append(baseline_scores(texts, labels, k, seed, lsa=False))
        results["baseline: TF-IDF + LSA(100) + k-means"].append(baseline_scores(texts, labels, k, seed, lsa=True))
        print(f"seed {seed}: our 2 fits {t1 - t0:.1f} s, baselines {time.time() - t1:.1f} s")

    print(f"\n{f'method (k={k})':<44} {'NMI mean':>9} {'min':>6} {'max':>6} {'purity mean':>12} {'min':>6} {'max':>6}")
    means = {}
    for name, vals in results.items():
        nmi, pur = np.array([v[0] for v in vals]), np.array([v[1] for v in vals])
        means[name] = (nmi.mean(), pur.mean())
        print(f"{name:<44} {nmi.mean():>9.3f} {nmi.min():>6.3f} {nmi.max():>6.3f} {pur.mean():>12.3f} "
              f"{pur.min():>6.3f} {pur.max():>6.3f}")
    baselines = [name for name in means if name.startswith("baseline: ")]
    for name in baselines:
        print(f"ratio ours / {name[len('baseline: '):]}: NMI x{means[ours][0] / means[name][0]:.2f}, "
              f"purity x{means[ours][1] / means[name][1]:.2f}")

    result = fit(prepared, parse_cluster_conf({"k_range": list(args.k_range), "seed": 0}),
                 embedding_model=plan.model.uri)
    s = label_scores(assign(prepared, result.clustering))
    cands = ", ".join(f"{k}:{v:.3f}" for k, v in result.candidates.items() if v is not None)
    print(f"\nk by silhouette in {args.k_range}: k={result.k} (sample silhouettes {cands}); "
          f"NMI {s['nmi']:.3f}, purity {s['purity']:.3f}")
    for i, what in enumerate(("NMI", "purity")):
        beaten = [name[len("baseline: "):] for name in baselines if means[ours][i] > means[name][i]]
        print(f"ours beats on {what} (mean over seeds): {', '.join(beaten) or 'none'}")
    prepared.unpersist()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
