"""Lexical features for clustering: TF-IDF reduced by LSA (truncated SVD), as plain arrays.

A sentence-embedding model sees a text as its meaning; the words a topic keeps repeating (names,
jargon) are what TF-IDF sees. The cluster job joins the two (``lexical_weight``): each row's vector is
``[sqrt(1 - w) * e / |e|, sqrt(w) * l]`` with ``e`` its embedding and ``l`` its unit LSA vector, so the
cosine between two rows is ``(1 - w) * cos(embeddings) + w * cos(LSA vectors)``.

:meth:`LexicalProjection.fit` runs scikit-learn's ``TfidfVectorizer`` (its English stop words plus those
of the table's other languages, :func:`udfs.clustering.languages.stop_words`; sublinear tf, ``min_df=2``,
``max_df=0.5``, at most ``max_terms`` terms) and ``TruncatedSVD`` on the driver, on a bounded sample of
texts. Stop words never reach the vocabulary, so :meth:`transform` needs no list of its own. What it
keeps is small and framework-free (vocabulary, idf weights, the SVD components), so :meth:`transform`
runs anywhere, in Spark workers too, and a registered clustering stores it as ``.npy`` and JSON files
instead of a pickle.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udfs.vectors import unit_rows

MIN_DF = 2
MAX_DF = 0.5
MAX_TERMS = 20_000
VOCABULARY_FILE = "lexical_vocabulary.json"
IDF_FILE = "lexical_idf.npy"
COMPONENTS_FILE = "lexical_components.npy"


class LexicalFitError(ValueError):
    """The sample has too few documents or shared terms for an LSA projection."""


def _analyzer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(stop_words="english").build_analyzer()


@dataclass
class LexicalProjection:
    vocabulary: list[str]        # term i <-> column i
    idf: np.ndarray              # (terms,) float32
    components: np.ndarray       # (dims, terms) float32: rows of the SVD's right singular vectors

    @property
    def dims(self) -> int:
        return int(self.components.shape[0])

    @classmethod
    def fit(cls, texts: list[str], dims: int = 100, *, seed: int = 0, max_terms: int = MAX_TERMS,
            stop_words: tuple[str, ...] = ()) -> "LexicalProjection":
        """TF-IDF + truncated SVD on ``texts``; ``dims`` is lowered to what the sample supports. Terms: neither
        scikit-learn's English stop words nor ``stop_words`` (the table's other languages').

        Raises :class:`LexicalFitError` when fewer than 3 texts or 3 terms survive the pruning.
        """
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

        texts = [t for t in texts if t]
        if len(texts) < 3:
            raise LexicalFitError(f"{len(texts)} text(s) in the sample; an LSA projection needs at least 3")
        stop = sorted(ENGLISH_STOP_WORDS | set(stop_words)) if stop_words else "english"
        vec = TfidfVectorizer(stop_words=stop, sublinear_tf=True, min_df=MIN_DF, max_df=MAX_DF,
                              max_features=max_terms, dtype=np.float32)
        try:
            x = vec.fit_transform(texts)
        except ValueError as exc:  # "After pruning, no terms remain", "empty vocabulary"
            raise LexicalFitError(f"{len(texts)} texts: {exc}") from None
        dims = min(dims, x.shape[1] - 1, len(texts) - 1)
        if dims < 1:
            raise LexicalFitError(f"{len(texts)} texts share only {x.shape[1]} term(s) (in at least {MIN_DF} "
                                  f"texts, at most {MAX_DF:.0%} of them)")
        svd = TruncatedSVD(dims, random_state=seed).fit(x)
        # a sample of few distinct texts has a low rank: directions beyond it are numerical noise
        keep = svd.singular_values_ > 1e-4 * svd.singular_values_.max()
        vocabulary = [None] * len(vec.vocabulary_)
        for term, i in vec.vocabulary_.items():
            vocabulary[i] = term
        return cls(vocabulary=vocabulary, idf=vec.idf_.astype(np.float32),
                   components=svd.components_[keep].astype(np.float32))

    def tfidf(self, texts: list[str | None]):
        """(n, terms) scipy CSR: sublinear tf x idf, unit rows (as scikit-learn's TfidfVectorizer)."""
        from scipy import sparse
        from sklearn.preprocessing import normalize

        analyze, index = _analyzer(), self._index()
        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            if not text:
                continue
            counts: dict[int, int] = {}
            for token in analyze(text):
                j = index.get(token)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            rows.extend([r] * len(counts))
            cols.extend(counts)
            vals.extend(counts.values())
        x = sparse.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(len(texts), len(self.vocabulary)))
        x.data = (1.0 + np.log(x.data)) * self.idf[x.indices]
        return normalize(x, copy=False)

    def transform(self, texts: list[str | None]) -> np.ndarray:
        """(n, dims) float64 unit LSA vectors; a zero row for a text with no known term (or null)."""
        return unit_rows(np.asarray(self.tfidf(texts) @ self.components.T, dtype=np.float64))

    def _index(self) -> dict[str, int]:
        if getattr(self, "_lookup", None) is None:
            self._lookup = {t: i for i, t in enumerate(self.vocabulary)}
        return self._lookup

    # ---- files (a registered clustering's weights/ folder) ----

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        np.save(folder / IDF_FILE, self.idf)
        np.save(folder / COMPONENTS_FILE, self.components)
        (folder / VOCABULARY_FILE).write_text(json.dumps(self.vocabulary))

    @classmethod
    def load(cls, folder: Path) -> "LexicalProjection | None":
        folder = Path(folder)
        if not (folder / COMPONENTS_FILE).is_file():
            return None
        return cls(vocabulary=json.loads((folder / VOCABULARY_FILE).read_text()),
                   idf=np.load(folder / IDF_FILE), components=np.load(folder / COMPONENTS_FILE))


def shared_term_share(tfidf, *, pairs: int = 20_000, seed: int = 0) -> float:
    """The share of pairs of texts (rows of ``tfidf``, any sparse matrix) that have at least one term in common.

    Every pair when there are at most ``pairs`` of them; else ``pairs`` random pairs of distinct rows.
    """
    from scipy import sparse

    x = (sparse.csr_matrix(tfidf) != 0).astype(np.float32)
    n = x.shape[0]
    if n < 2:
        return 0.0
    if n * (n - 1) // 2 <= pairs:
        i, j = np.triu_indices(n, 1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, pairs)
        j = (i + rng.integers(1, n, pairs)) % n  # never i itself
    return float((np.asarray(x[i].multiply(x[j]).sum(axis=1)).ravel() > 0).mean())


def combine(embeddings: np.ndarray, lexical: np.ndarray, weight: float) -> np.ndarray:
    """Rows ``[sqrt(1 - weight) * e / |e|, sqrt(weight) * l]`` (``l`` already unit or zero)."""
    e = unit_rows(np.asarray(embeddings, dtype=np.float64))
    return np.hstack([np.sqrt(1.0 - weight) * e, np.sqrt(weight) * np.asarray(lexical, dtype=np.float64)])
