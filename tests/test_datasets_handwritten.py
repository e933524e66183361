"""The hand-written training reviews (udfs/data/handwritten_reviews.csv): what the reader returns, and that
no review is one of the evaluation sets' (bench/data), which models are scored on."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from udfs.io.datasets import handwritten_reviews

ROOT = Path(__file__).resolve().parents[1]
LANGS = ["de", "en", "es", "fr", "it", "pt"]


def letters(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def test_the_reader_returns_every_review_with_its_language_and_a_known_label():
    df = handwritten_reviews()
    assert list(df.columns) == ["id", "text", "label", "lang"]
    assert len(df) == 686
    assert df["id"].is_unique and df["text"].is_unique
    counts = df.groupby(["lang", "label"]).size().unstack()
    assert list(counts.index) == LANGS and list(counts.columns) == ["negative", "neutral", "positive"]
    assert counts.min().min() == 35 and counts.max().max() == 40
    assert (df["text"].str.strip() == df["text"]).all() and (df["text"].str.len() > 0).all()


def test_no_training_review_is_an_evaluation_review():
    train = set(map(letters, handwritten_reviews()["text"]))
    for name in ("multilingual_reviews.csv", "multilingual_reviews_2.csv"):
        evaluation = pd.read_csv(ROOT / "bench" / "data" / name, keep_default_na=False)
        assert not train & set(map(letters, evaluation["text"])), name
