"""fastText language identification (lid.176): ISO 639-1 code (or the model's ISO 639-3 code where a
language has no two-letter one) and the model's probability, for many rows in microseconds each.
fastText runs on the CPU one row at a time: no device batches, so nothing to halve on out-of-memory."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from udfs.models.backends import inside

# fastText reads one line; the first few thousand characters decide the language of any real document.
MAX_CHARS = 4000
NO_LETTERS = "no letters to identify a language in"
_LETTER = re.compile(r"[^\W\d_]")
_NEWLINES = re.compile(r"[\r\n\v\f\u2028\u2029\x85]+")


class LanguageDetector:
    """Wraps the lid.176 ``.ftz`` through ``fasttext-predict`` (predict-only build, no numpy ABI issues)."""

    def __init__(self, weights: Path, *, file: str = "lid.176.ftz", max_chars: int = MAX_CHARS, **_: Any):
        import fasttext

        path = inside(weights, file, "file")
        if not path.is_file():
            raise FileNotFoundError(f"language model file {file!r} not found in {weights}")
        self._model = fasttext.load_model(str(path))
        self.max_chars = int(max_chars)

    def detect(self, texts: list[str], *, k: int = 1) -> list[list[tuple[str, float]]]:
        """Per text, the ``k`` most likely (code, probability) pairs, best first; [] when a text has no
        letters (digits, emoji or punctuation only), which no language model can identify."""
        out = []
        for text in texts:
            text = _NEWLINES.sub(" ", text[:self.max_chars])
            if not _LETTER.search(text):
                out.append([])
                continue
            pairs = self._model.f.predict(text + "\n", k, 0.0, "replace")
            out.append([(label.replace("__label__", ""), float(prob)) for prob, label in pairs])
        return out

    def predict(self, texts: list[str]) -> list[str | None]:
        """The pyfunc face: the best code per text (None when a text has no letters)."""
        return [best[0][0] if best else None for best in self.detect(texts, k=1)]


def load_detector(folder: Path, *, device: str, precision: str, **params: Any) -> LanguageDetector:
    return LanguageDetector(folder / "weights", **params)
