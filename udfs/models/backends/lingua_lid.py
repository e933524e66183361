"""Language identification for short rows: lingua (75 languages; character 1- to 5-gram models and script
rules, made for short and mixed texts), alone or behind fastText lid.176 in one hybrid detector.

Both detectors have fasttext_lid.LanguageDetector's face: ``detect(texts, k=...)`` gives per text the ``k``
most likely (ISO 639-1 code, probability) pairs, best first, and ``[]`` for a text without letters.
lingua's probabilities are its ``compute_language_confidence_values`` (relative likelihoods over the
languages it was built with: they sum to 1). lingua calls Norwegian Bokmål ``nb``; lid.176 and this project
call it ``no``, so ``nb`` becomes ``no`` (Nynorsk stays ``nn`` in both).

lingua ships its models inside its wheel (one ~100 MB native library): nothing is copied into a registered
version for it, and the installed lingua is part of the code, not of the weights. ``lingua_version`` (a
param) names the lingua a version was measured with; a worker with another lingua refuses to load it
rather than give other answers under the same version. lingua runs on the CPU one row at a time, like
fastText: no device batches, nothing to halve on out-of-memory.

Costs (bench/langid_quality.py, 2 CPU cores): all 75 languages in high-accuracy mode take ~1.3 GB of memory
and ~15-20 s to load per Python process; low-accuracy mode ~120 MB and ~1 s. lingua keeps loaded models in
a process-wide store: a second detector in the same process reuses them at no cost, and dropping a detector
frees nothing. lingua has no Galician (gl): a Galician row gets pt or es. Its confidences are spread over
the languages it was built with, so they run lower than lid.176's on the same short row (a min_confidence
chosen for one detector does not carry over to the other).
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from udfs.errors import ConfigError
from udfs.models.backends.fasttext_lid import _LETTER, MAX_CHARS, LanguageDetector

# lingua's ISO 639-1 code -> this project's (lid.176's): Bokmål is "no" there; every other code is kept.
CODE_FIXES = {"nb": "no"}
MODES = ("high", "low")
# The hybrid's default switch point, in characters (stripped): rows at least this long go to fastText.
# Chosen by bench/langid_quality.py on word prefixes of the long sets only (sentences_10lang.txt and
# mixed_news.csv), never on the short set: the shortest length from which fastText is as accurate as lingua.
LONG_CHARS = 50


def lingua_code(language: Any) -> str:
    """The project's ISO 639-1 code for a ``lingua.Language`` (every lingua language has one)."""
    code = language.iso_code_639_1.name.lower()
    return CODE_FIXES.get(code, code)


def _check_lingua_version(wanted: str | None) -> str:
    installed = metadata.version("lingua-language-detector")
    if wanted is not None and str(wanted) != installed:
        raise ConfigError("params.lingua_version", wanted,
                          f"the installed lingua-language-detector, {installed} (pip install "
                          f"lingua-language-detector=={wanted} on the workers, or register a new version)")
    return installed


class LinguaDetector:
    """lingua's detector over ``languages`` (``"all"``: its 75, or ISO 639-1 codes, ``no`` meaning Bokmål),
    in ``mode`` ``high`` (1- to 5-grams: lingua's default, the accurate one on short rows) or ``low``
    (trigrams only: faster, smaller, weaker on short rows). Models are loaded when it is built (``preload``),
    so the first rows of a task do not pay for them."""

    def __init__(self, *, languages: str | list[str] = "all", mode: str = "high", max_chars: int = MAX_CHARS,
                 preload: bool = True, lingua_version: str | None = None, **_: Any):
        from lingua import LanguageDetectorBuilder

        self.lingua_version = _check_lingua_version(lingua_version)
        if mode not in MODES:
            raise ConfigError("params.mode", mode, MODES)
        if languages == "all":
            builder = LanguageDetectorBuilder.from_all_languages()
        else:
            if isinstance(languages, str) or len(languages) < 2:
                raise ConfigError("params.languages", languages, "all, or a list of at least two ISO 639-1 codes")
            known = {lingua_code(lang): lang for lang in _all_languages()}
            unknown = [c for c in languages if c not in known]
            if unknown:
                raise ConfigError("params.languages", unknown, sorted(known))
            builder = LanguageDetectorBuilder.from_languages(*(known[c] for c in languages))
        if mode == "low":
            builder = builder.with_low_accuracy_mode()
        if preload:
            builder = builder.with_preloaded_language_models()
        self._detector = builder.build()
        self._codes: dict[Any, str] = {lang: lingua_code(lang) for lang in _all_languages()}
        self.mode, self.max_chars = mode, int(max_chars)

    def detect(self, texts: list[str], *, k: int = 1) -> list[list[tuple[str, float]]]:
        """Per text, the ``k`` most likely (code, probability) pairs, best first; [] when a text has no
        letters (digits, emoji or punctuation only), or none that lingua scores."""
        out = []
        for text in texts:
            text = text[:self.max_chars]
            if not _LETTER.search(text):
                out.append([])
                continue
            values = self._detector.compute_language_confidence_values(text)
            out.append([(self._codes[v.language], float(v.value)) for v in values[:k] if v.value > 0])
        return out

    def predict(self, texts: list[str]) -> list[str | None]:
        """The pyfunc face: the best code per text (None when a text has no letters)."""
        return [best[0][0] if best else None for best in self.detect(texts, k=1)]


class HybridDetector:
    """One detector for rows of any length: ``fasttext`` (lid.176) for rows of at least ``long_chars``
    characters (stripped), where it is as accurate as lingua and many times faster, and ``lingua`` for
    shorter rows, where fastText confuses close languages. A row's answer is exactly the answer of the
    detector it was routed to."""

    def __init__(self, fasttext: LanguageDetector, lingua: LinguaDetector, *, long_chars: int = LONG_CHARS):
        if not isinstance(long_chars, int) or isinstance(long_chars, bool) or long_chars < 0:
            raise ConfigError("params.long_chars", long_chars, "a whole number of characters >= 0")
        self.fasttext, self.lingua, self.long_chars = fasttext, lingua, long_chars

    def is_long(self, text: str) -> bool:
        return len(text.strip()) >= self.long_chars

    def detect(self, texts: list[str], *, k: int = 1) -> list[list[tuple[str, float]]]:
        """Per text, the ``k`` best (code, probability) pairs of the detector its length routes it to."""
        routes: dict[bool, list[int]] = {True: [], False: []}
        for i, text in enumerate(texts):
            routes[self.is_long(text)].append(i)
        out: list[list[tuple[str, float]]] = [[] for _ in texts]
        for long, rows in routes.items():
            if rows:
                detector = self.fasttext if long else self.lingua
                for i, best in zip(rows, detector.detect([texts[i] for i in rows], k=k)):
                    out[i] = best
        return out

    def predict(self, texts: list[str]) -> list[str | None]:
        """The pyfunc face: the best code per text (None when a text has no letters)."""
        return [best[0][0] if best else None for best in self.detect(texts, k=1)]


def _all_languages() -> list[Any]:
    from lingua import Language

    return list(Language.all())


def load_lingua_detector(folder: Path, *, device: str, precision: str, **params: Any) -> LinguaDetector:
    """Kind ``lingua_lid``: lingua alone; the version's folder holds only ``textspark.json`` (no weights)."""
    return LinguaDetector(**params)


def load_hybrid_detector(folder: Path, *, device: str, precision: str, file: str = "lid.176.ftz",
                         max_chars: int = MAX_CHARS, long_chars: int = LONG_CHARS, lingua_mode: str = "high",
                         lingua_languages: str | list[str] = "all", lingua_version: str | None = None,
                         **_: Any) -> HybridDetector:
    """Kind ``lingua_hybrid_lid``: the registered ``weights/`` hold lid.176 (``file``), as fasttext_lid's do;
    lingua comes from the installed package (``lingua_version``, when given, must be the installed one)."""
    return HybridDetector(LanguageDetector(folder / "weights", file=file, max_chars=max_chars),
                          LinguaDetector(languages=lingua_languages, mode=lingua_mode, max_chars=max_chars,
                                         lingua_version=lingua_version),
                          long_chars=long_chars)
