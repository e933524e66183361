"""Extractive summary quality on BBC news, with a documented proxy (no reference summaries ship offline).

    .venv/bin/python bench/summarize_quality.py [--articles 300] [--sentences 3]

Proxy: each article's headline (its first line) is held out; the summarizer sees only the body. We report
ROUGE-1 recall and ROUGE-L recall of the headline's words by the summary, computed by the `rouge-score`
package (its default tokenizer: lower-cased runs of [a-z0-9]; no stemming, stop words kept), averaged over
articles, for: the default summarize UDF (extractive, sentence centrality on the catalog's embedding model,
run through Spark), lead-N (the body's first N sentences) and random-N (N random sentences in order, seed 0),
all with the same sentence splitter and N.
News bodies are written lead-first, so lead-N is a strong baseline; random-N is the floor.
Uses a throw-away MLflow registry unless MLFLOW_TRACKING_URI is set.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_registry  # noqa: E402

import numpy as np  # noqa: E402


def rouge():
    """The rouge-score package's ROUGE-1 / ROUGE-L scorer and its default tokenizer (lower-cased runs of
    [a-z0-9], no stemming); the package is in the dev extra."""
    from rouge_score import rouge_scorer, tokenizers

    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=False)
    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], tokenizer=tokenizer), tokenizer


def rouge_recalls(scorer, tokenizer, reference: str, candidate: str) -> tuple[float, float, int]:
    """(ROUGE-1 recall, ROUGE-L recall, candidate tokens) of ``candidate`` against ``reference``."""
    scores = scorer.score(reference, candidate)  # score(target, prediction)
    return scores["rouge1"].recall, scores["rougeL"].recall, len(tokenizer.tokenize(candidate))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=300, help="BBC articles (stratified by topic)")
    parser.add_argument("--sentences", type=int, default=3, help="N: sentences per summary for every method")
    args = parser.parse_args(argv)

    from udfs.io.datasets import bbc_news
    from udfs.runtime.driver import make_udf
    from udfs.sentences import split_sentences
    from udfs.tasks.summarize import summarize_plan

    from udfs.platform import get_spark

    bench_registry("summarize")
    news = bbc_news()
    news = news.groupby("label").sample(frac=min(1.0, args.articles / len(news)), random_state=0).reset_index(drop=True)
    print(f"BBC news: {len(news)} articles; input = body (headline held out); N = {args.sentences} sentences")

    spark = get_spark("local")
    plan = summarize_plan(max_sentences=args.sentences)
    df = spark.createDataFrame(news[["id", "body"]])
    started = time.time()
    got = {r.id: r.s for r in df.select("id", make_udf(plan)("body").alias("s")).collect()}
    seconds = time.time() - started
    rng = np.random.default_rng(0)
    scorer, tokenizer = rouge()
    scores: dict[str, list[tuple[float, float, int]]] = {"centrality (ours)": [], f"lead-{args.sentences}": [],
                                                     f"random-{args.sentences}": []}
    errors = 0
    for row in news.itertuples():
        sentences = split_sentences(row.body)
        ours = got[row.id].summary
        errors += ours is None
        pick = sorted(rng.choice(len(sentences), size=min(args.sentences, len(sentences)), replace=False))
        for name, summary in ((f"lead-{args.sentences}", " ".join(sentences[:args.sentences])),
                              (f"random-{args.sentences}", " ".join(sentences[i] for i in pick)),
                              ("centrality (ours)", ours or "")):
            scores[name].append(rouge_recalls(scorer, tokenizer, row.title, summary))
    print(f"summarize UDF ({plan.model.label}): {len(news)} articles in {seconds:.1f} s through Spark "
          f"({len(news) / seconds:.1f} articles/s), {errors} null")
    print(f"{'method':<20} {'ROUGE-1 R':>10} {'ROUGE-L R':>10} {'words':>7}")
    base = np.mean([s[0] for s in scores[f"random-{args.sentences}"]])
    for name, vals in scores.items():
        r1, rl, words = (np.mean([v[i] for v in vals]) for i in range(3))
        print(f"{name:<20} {r1:>10.3f} {rl:>10.3f} {words:>7.1f}   (ROUGE-1 x{r1 / base:.2f} of random)")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
