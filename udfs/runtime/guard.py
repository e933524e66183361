"""The language guard: a task whose model does not read every language checks each row's language first.

A model's languages are part of its contract (the catalog's ``languages:``, recorded on every registered
version as ``textspark.languages``). When a task's model reads only some languages, each row's language is
identified by the catalog's language model (``defaults.language``) before the task's model sees it; a row in
another language gets a null result and the reason ``language es is not read by textspark-sentiment/3
(reads: en)`` instead of a confident, wrong answer. ``languages: any`` on a task turns the guard off; a list
there replaces what the version records. A version that records nothing is not guarded.

The identification runs once per batch of texts however many tasks guard it: the worker remembers the last
few batches' results (:func:`languages_of`), as the shared encoder remembers its vectors.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from udfs.errors import ConfigError, ModelReferenceError
from udfs.models.reference import ANY, ResolvedModel, checked_languages

RECENT = 8  # batches whose languages a worker remembers (every task of one batch asks for the same texts)
_recent: OrderedDict[tuple, list] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class LanguageGuard:
    """What a worker needs: the language model (resolved on the driver) and what the task's model reads."""

    detector: ResolvedModel
    reads: tuple[str, ...]
    model_label: str

    def reason(self, code: str) -> str:
        return f"language {code} is not read by {self.model_label} (reads: {shown(self.reads)})"

    def key(self) -> dict[str, Any]:
        """What decides which rows it withholds (part of an incremental run's task key)."""
        return {"detector": self.detector.label, "reads": list(self.reads)}


def plan_guard(model: ResolvedModel, languages: Any, detector_reference: Callable[[], str]) -> LanguageGuard | None:
    """Driver side: the guard for a task on ``model``; None where the model reads every language, records
    nothing, or the task says ``languages: any``. The language model (``detector_reference()``, the catalog's
    ``defaults.language``) is resolved here, once."""
    from udfs.models.registry import resolve

    reads = checked_languages(languages) or model.languages  # a task's setting: None, ("any",) or codes
    if reads is None or reads == (ANY,):
        return None
    why = (f"a language model checks each row's language for {model.label}, which reads {shown(reads)} "
           "(register the catalog's defaults.language, or set languages: any on the task)")
    try:
        reference = detector_reference()
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.value, f"{exc.allowed}; {why}", source=exc.source) from None
    try:
        return LanguageGuard(resolve(reference, task="language"), reads, model.label)
    except ModelReferenceError as exc:
        raise ModelReferenceError(f"{exc}; {why}") from None


def languages_of(detector: ResolvedModel, texts: Sequence[str]) -> list[str | None]:
    """Each text's most likely language (ISO 639 code; None for a text with no letters), from this worker's
    copy of ``detector``; the same texts as one of the last RECENT calls are not identified again."""
    from udfs.models.loading import load

    key = (detector.label, tuple(texts))
    with _lock:
        if key in _recent:
            _recent.move_to_end(key)
            return _recent[key]
    codes = [best[0][0] if best else None for best in load(detector, device="cpu").detect(list(texts), k=1)]
    with _lock:
        _recent[key] = codes
        while len(_recent) > RECENT:
            _recent.popitem(last=False)
    return codes


def withheld(guard: LanguageGuard, texts: Sequence[str]) -> list[str | None]:
    """Per text, the reason it is withheld from the task's model, or None (a language it reads, or none found)."""
    return [None if code is None or code in guard.reads else guard.reason(code)
            for code in languages_of(guard.detector, texts)]


SHOWN_LANGUAGES = 12  # a reason names at most this many languages; a longer list says how many more


def shown(codes: tuple[str, ...]) -> str:
    """``en, pt``; a long list (a multilingual model's 94 codes) cut to its first few and a count."""
    if len(codes) <= SHOWN_LANGUAGES:
        return ", ".join(codes)
    return f"{', '.join(codes[:SHOWN_LANGUAGES])} and {len(codes) - SHOWN_LANGUAGES} more"
