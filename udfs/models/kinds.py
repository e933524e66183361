"""Model kinds: which kinds exist, and the builder that turns a version's ``textspark/`` folder into a model.

``KINDS`` names every kind textspark registers versions with, so a registry tag or a catalog entry is checked
without importing any builder. Each kind's builder is registered by the room that implements it
(``register``): the models room's backends below, ``kmeans_centroids`` by ``udfs.clustering`` when that package
is imported (importing any of its modules does, e.g. a worker unpickling a clustering's UDF). A builder is
called on the worker as ``builder(folder, device=..., precision=..., **params)``; ``folder`` holds
``textspark.json`` and, for kinds with weights, ``weights/``. A registry value only ever picks a registered
builder by its kind: it never names a module.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

Builder = Callable[..., Any]

KINDS: tuple[str, ...] = ("hf_encoder", "embedding_head", "hf_classifier", "kmeans_centroids", "fasttext_lid",
                          "lingua_lid", "lingua_hybrid_lid", "bergamot", "hf_seq2seq")

_builders: dict[str, Builder | str] = {}


def register(kind: str, builder: Builder | str) -> None:
    """Make ``builder`` the one for ``kind``: a callable, or ``"module:callable"`` within the registering room
    (imported when a model of that kind is first built, so torch and transformers load on workers only)."""
    if kind not in KINDS:
        raise ValueError(f"kind: got {kind!r}; allowed: {', '.join(KINDS)}")
    _builders[kind] = builder


def registered() -> tuple[str, ...]:
    """The kinds this process can build now, sorted."""
    return tuple(sorted(_builders))


def builder(kind: str) -> Builder:
    """The builder registered for ``kind``; ValueError for an unknown kind, LookupError for a known kind whose
    room was not imported in this process."""
    if kind not in KINDS:
        raise ValueError(f"textspark.json kind: got {kind!r}; allowed: {', '.join(sorted(KINDS))}")
    try:
        found = _builders[kind]
    except KeyError:
        raise LookupError(f"kind {kind!r} has no builder in this process: the room that implements it registers "
                          f"it when imported (registered: {', '.join(registered()) or 'none'})") from None
    if isinstance(found, str):
        module, _, attr = found.partition(":")
        found = _builders[kind] = getattr(importlib.import_module(module), attr)
    return found


# The models room's own backends (udfs.models.backends), one module per weight layout.
register("hf_encoder", "udfs.models.backends.hf:load_encoder")
register("embedding_head", "udfs.models.backends.heads:load_head_classifier")
register("hf_classifier", "udfs.models.backends.hf_classifier:load_classifier")
register("fasttext_lid", "udfs.models.backends.fasttext_lid:load_detector")
register("lingua_lid", "udfs.models.backends.lingua_lid:load_lingua_detector")  # short texts (textspark[lingua])
register("lingua_hybrid_lid", "udfs.models.backends.lingua_lid:load_hybrid_detector")  # fastText long, lingua short
register("bergamot", "udfs.models.backends.bergamot:load_translator")
register("hf_seq2seq", "udfs.models.backends.seq2seq:load_seq2seq")
