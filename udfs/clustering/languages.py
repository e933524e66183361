"""The languages of a table's rows, for clustering: per-language centering of the embeddings, and the stop
words of every language the table holds.

A multilingual encoder puts a text's language into its vector as strongly as its topic: k-means on a
table of four languages finds the four languages. Subtracting each language's mean vector removes that
direction and keeps the topics (Libovický et al. 2020, "On the language neutrality of pre-trained
multilingual representations"; bench/data/mixed_news.csv, multilingual-e5-small, k=5, `python
bench/encoders_multilingual.py --news`: NMI against the topic 0.09 -> 0.68, against the language 0.86 -> 0.00).

- Each row's language comes from the catalog's language model (``defaults.language``, fastText lid.176),
  through the ``detect_language`` task's UDF in Spark (:func:`language_plan_for`) and the language
  guard's :func:`udfs.runtime.guard.languages_of` for in-process texts (:meth:`LanguageCentering.languages`):
  the same cleaning, the same best guess.
- ``center_languages`` (:func:`decide`): ``auto`` centers when the fitted rows hold 2+ languages with at
  least :data:`CENTER_MIN_ROWS` rows each; ``true`` always; ``false`` never. :func:`fit_centering` computes,
  over the fitted rows (those with a vector), the mean unit embedding of each language with at least
  :data:`CENTER_MIN_ROWS` rows and the mean over all of them; a row's vector becomes
  ``unit(unit(v) - mean(its language))``. A row whose language has no mean of its own (fewer rows in the fit,
  not identified, or not seen in the fit at all: ``mode: assign``, ``predict``) uses the mean over all fitted
  rows. The means and the language model's exact version are part of the fitted clustering
  (:class:`LanguageCentering`, saved beside the centroids), so new rows are centered as the fitted ones were.
- :func:`stop_words`: the stopwordsiso lists of the languages that hold at least
  ``max(STOP_WORDS_MIN_ROWS, STOP_WORDS_MIN_SHARE x identified rows)`` rows (:func:`stop_word_languages`),
  for the TF-IDF features and the keywords. English keeps the project's own lists (Spark's / scikit-learn's
  plus ``describe.EXTRA_STOP_WORDS``): stopwordsiso's English list (1,298 words) drops topic words such as
  world, research, information, million and work.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from udfs.vectors import unit_rows

# A language gets a mean of its own (and counts for ``auto``) from this many fitted rows. The mean of a few
# rows is mostly their topics, and subtracting it removes the topic it should keep: on mixed_news (e5-small,
# k=5, 5 draws each), means taken from 5 rows per language give a topic NMI of 0.13, from 10 rows 0.58
# (0.46-0.67), from 20 rows 0.68 (0.60-0.74), from all 100 rows 0.71.
CENTER_MIN_ROWS = 20
# A language's stop words are used when it holds at least this many rows and this share of the identified
# rows: a few rows of a language are mostly the language model's mistakes on short texts, and each list
# drops words that are content words in other languages (German "war", French "personne", Spanish "general").
STOP_WORDS_MIN_ROWS = 3
STOP_WORDS_MIN_SHARE = 0.001
UNIDENTIFIED = "unidentified"  # the rows no language was found for (no letters, no language model answer)
CENTERED_ZERO = "embedding equals its language's mean (nothing left after language centering)"
MEANS_FILE = "language_means.npy"
CENTERING_FILE = "language_centering.json"
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token pattern


def stop_words(languages: Iterable[str]) -> tuple[str, ...]:
    """The stopwordsiso stop words of ``languages`` (ISO 639-1 codes; codes stopwordsiso has no list for and
    ``en`` add nothing), lower-cased and cut into the tokens a tokenizer sees (``aujourd'hui`` -> aujourd,
    hui; ``por qué`` -> por, qué), sorted."""
    import stopwordsiso

    words: set[str] = set()
    for code in sorted(set(languages)):
        if code == "en" or not stopwordsiso.has_lang(code):
            continue
        for entry in stopwordsiso.stopwords(code):
            words.update(_TOKEN.findall(entry.lower()))
    return tuple(sorted(words))


def stop_word_languages(counts: Mapping[str | None, int]) -> list[str]:
    """The identified languages of ``counts`` (language -> rows) that hold enough rows for their stop words."""
    identified = {code: n for code, n in counts.items() if code and code != UNIDENTIFIED}
    need = max(STOP_WORDS_MIN_ROWS, math.ceil(STOP_WORDS_MIN_SHARE * sum(identified.values())))
    return sorted(code for code, n in identified.items() if n >= need)


def describe_counts(counts: Mapping[str | None, int]) -> str:
    """``de 100, en 100, es 3, unidentified 2``: most rows first, then A-Z."""
    named = {(code or UNIDENTIFIED): n for code, n in counts.items()}
    return ", ".join(f"{code} {n}" for code, n in sorted(named.items(), key=lambda kv: (-kv[1], kv[0])))


def decide(setting: Any, counts: Mapping[str | None, int], *, identified: bool = True) -> tuple[bool, str]:
    """(center?, why) for ``center_languages: setting`` and the fitted rows' ``counts`` (language -> rows);
    ``identified``: whether a language model identified the rows at all."""
    own = {code: n for code, n in counts.items() if code and code != UNIDENTIFIED and n >= CENTER_MIN_ROWS}
    if setting is False:
        return False, "language centering off (center_languages: false)"
    if not identified:
        return False, "language centering off: the rows' languages were not identified (no language model)"
    if setting is True:
        return True, "language centering on (center_languages: true)"
    if len(own) >= 2:
        return True, f"language centering on (auto: {len(own)} languages with >= {CENTER_MIN_ROWS} fitted rows each)"
    found = describe_counts(counts) or "no rows"
    return False, (f"language centering off (auto: needs 2+ languages with >= {CENTER_MIN_ROWS} fitted rows "
                   f"each; found {found})")


@dataclass
class LanguageCentering:
    """Per-language mean unit embeddings, subtracted from each row's unit embedding before k-means."""

    languages: list[str]            # languages with a mean of their own, A-Z
    means: np.ndarray               # (len(languages) + 1, dim) float64: those means, then the mean of all fitted rows
    rows: dict[str, int]            # fitted rows of each language with its own mean
    total: int                      # all fitted rows (the last mean's)
    language_model: str             # the language model that identified them, exact version: models:/<name>/<n>
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.means = np.asarray(self.means, dtype=np.float64)
        self._index = {code: i for i, code in enumerate(self.languages)}

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def describe(self) -> str:
        """``de 100, en 100, es 100, fr 100; every other row: the mean of all 400 fitted rows``."""
        own = describe_counts(self.rows) or "no language with a mean of its own"
        return f"{own}; every other row: the mean of all {self.total} fitted rows"

    def summary(self) -> dict[str, Any]:
        return {"languages": dict(sorted(self.rows.items())), "fitted_rows": self.total,
                "language_model": self.language_model}

    def center(self, vectors: np.ndarray, languages: Iterable[str | None]) -> np.ndarray:
        """``unit(unit(v) - mean(language))`` per row (the mean of all fitted rows for a language without one
        of its own, or None); an all-zero row where nothing is left (the row is its language's mean)."""
        x = unit_rows(np.asarray(vectors, dtype=np.float64).reshape(-1, self.dim))
        rows = [self._index.get(code, len(self.languages)) if code else len(self.languages) for code in languages]
        y = x - self.means[np.asarray(rows, dtype=np.int64)]
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return np.where(norms > 1e-9, y / np.where(norms > 1e-9, norms, 1.0), 0.0)

    def languages_of(self, texts: list[str | None]) -> list[str | None]:
        """In-process twin of the Spark path (the ``detect_language`` task's UDF): each text's best guess by
        :attr:`language_model`, after the runtime's cleaning (None for a null, blank or letterless text)."""
        from udfs.models.registry import resolve
        from udfs.runtime.guard import languages_of
        from udfs.text import clean_texts

        clean, _ = clean_texts(pd.Series(list(texts), dtype=object))
        ok = [i for i, t in enumerate(clean) if t is not None]
        out: list[str | None] = [None] * len(clean)
        if ok:
            codes = languages_of(resolve(self.language_model, task="language"), [clean.iloc[i] for i in ok])
            for i, code in zip(ok, codes):
                out[i] = code
        return out

    # ---- files (a registered clustering's weights/ folder) ----

    def save(self, folder: Path) -> None:
        np.save(Path(folder) / MEANS_FILE, np.ascontiguousarray(self.means, dtype=np.float64))
        (Path(folder) / CENTERING_FILE).write_text(json.dumps(
            {"languages": self.languages, "rows": self.rows, "total": self.total,
             "language_model": self.language_model}, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> "LanguageCentering | None":
        folder = Path(folder)
        if not (folder / CENTERING_FILE).is_file():
            return None
        meta = json.loads((folder / CENTERING_FILE).read_text())
        return cls(languages=list(meta["languages"]), means=np.load(folder / MEANS_FILE),
                   rows={str(k): int(v) for k, v in meta["rows"].items()}, total=int(meta["total"]),
                   language_model=str(meta["language_model"]))


# ---- Spark side ---------------------------------------------------------------------------------

def language_plan_for(reference: str):
    """The ``detect_language`` task's UDF plan for ``reference`` (resolved to one version here, on the driver)."""
    from udfs.tasks.language import language_plan

    return language_plan(model=reference, device="cpu")


def language_column(plan, text_column):
    """Each row's language (ISO 639 code; null for a null, blank or letterless text) by the task's UDF."""
    from udfs.runtime import driver

    return driver.make_udf(plan, only="language")(text_column)


def language_counts(prepared) -> dict[str | None, int]:
    """Rows with a vector per ``_lang`` (None: not identified); {} when ``prepared`` has no ``_lang``."""
    from pyspark.sql import functions as F

    if "_lang" not in prepared.columns:
        return {}
    rows = prepared.where(F.col("vector").isNotNull()).groupBy("_lang").count().collect()
    return {r["_lang"]: int(r["count"]) for r in rows}


def fit_centering(prepared, counts: Mapping[str | None, int], language_model: str) -> LanguageCentering:
    """The means over the rows of ``prepared`` that have a vector (per ``_lang``; see :class:`LanguageCentering`).

    Each Spark partition sums its rows' unit vectors per language (mapInPandas); the driver adds those sums up
    exactly (``math.fsum``), so the means do not depend on the order partitions finish in.
    """
    from pyspark.sql import functions as F

    def partial_sums(batches):
        sums: dict[str, list] = {}
        for batch in batches:
            for code, group in batch.groupby("lang", sort=True):
                x = unit_rows(np.stack([np.asarray(v, dtype=np.float64) for v in group["vector"]]))
                n, s = sums.get(code, (0, 0.0))
                sums[code] = [n + len(x), s + x.sum(axis=0)]
        yield pd.DataFrame({"lang": list(sums), "n": [n for n, _ in sums.values()],
                            "sum": [np.asarray(s).tolist() for _, s in sums.values()]})

    rows = prepared.where(F.col("vector").isNotNull()).select(
        F.coalesce(F.col("_lang"), F.lit("")).alias("lang"), "vector")
    parts = rows.mapInPandas(partial_sums, "lang string, n long, sum array<double>").collect()
    own = sorted(code for code, n in counts.items() if code and code != UNIDENTIFIED and n >= CENTER_MIN_ROWS)
    by_language: dict[str, list] = {}
    for r in parts:
        by_language.setdefault(r["lang"], []).append((int(r["n"]), np.asarray(r["sum"], dtype=np.float64)))
    rows_of = {code: sum(n for n, _ in group) for code, group in by_language.items()}
    every = [s for group in by_language.values() for _, s in group]
    total = sum(rows_of.values())

    def mean(sums: list[np.ndarray], n: int) -> np.ndarray:
        return np.array([math.fsum(col) for col in np.stack(sums).T]) / n

    means = [mean([s for _, s in by_language[code]], rows_of[code]) for code in own]
    means.append(mean(every, total))
    return LanguageCentering(languages=own, means=np.stack(means), rows={code: rows_of[code] for code in own},
                             total=total, language_model=language_model)


def center(prepared, centering: LanguageCentering | None):
    """``prepared`` with each ``vector`` centered by its row's language (unchanged without centering); a row
    left with nothing (it is its language's mean) gets a null vector and the reason :data:`CENTERED_ZERO`."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    if centering is None:
        return prepared

    @pandas_udf("array<double>")
    def textspark_center_languages(vectors: pd.Series, languages: pd.Series) -> pd.Series:
        out = pd.Series([None] * len(vectors), dtype=object)
        ok = np.flatnonzero([v is not None and len(v) == centering.dim for v in vectors])
        if len(ok):  # ``centering`` (languages x dim means) is pickled into the UDF
            x = centering.center(np.stack([np.asarray(vectors.iloc[i], dtype=np.float64) for i in ok]),
                                 [languages.iloc[i] for i in ok])
            alive = np.linalg.norm(x, axis=1) > 0
            out.iloc[ok[alive]] = list(x[alive])
        return out

    lang = F.col("_lang") if "_lang" in prepared.columns else F.lit(None).cast("string")
    staged = prepared.withColumn("_centered", textspark_center_languages(F.col("vector"), lang))
    lost = F.col("error").isNull() & F.col("vector").isNotNull() & F.col("_centered").isNull()
    return (staged.withColumn("error", F.when(lost, F.lit(CENTERED_ZERO)).otherwise(F.col("error")))
            .withColumn("vector", F.col("_centered")).drop("_centered"))
