"""Per-Python-worker model cache, bounded: the least recently used model goes first.

Operational contract: Spark reuses Python worker processes between tasks when
``spark.python.worker.reuse`` is true (the default; conf/spark/*.yml keep it so). This module's cache lives
as long as the worker process, so each worker loads a given (model version, device, precision) once and
every later Arrow batch and task on that worker reuses it. Keys are exact resolved versions, never aliases,
so moving an alias between jobs can never serve a stale model. Loads are serialised per key by a lock
(Spark may run several UDF threads in one worker, e.g. for multiple UDFs in one stage).
The verdict on a per-host cache folder (``udfs.models.loading.local_folder``) is kept here as well, so it
is verified once per process; ``clear()`` forgets models and verdicts.

The bound (as pyspark.ml's ``model_cache``, which keeps 3 prediction functions): at most
``TEXTSPARK_MODEL_CACHE_MODELS`` models (default 8: the sample job's five, e5, the sentiment and topics heads,
lid176 and Bergamot, stay resident, with room for a shadow job's challengers) and, where
``TEXTSPARK_MODEL_CACHE_BYTES`` is set (``4g``, ``512m`` or bytes), at most that many bytes of their folders
on disk (a head counts the encoder copy in its folder, so this overstates heads that share one). Loading a
model past a bound drops the least recently used others, one warning line each (which model, which bound);
the model just loaded always stays. On a cluster set them with ``spark.executorEnv.<NAME>``. Values derived
from a model (classify's label vectors) live as long as the model (``derived``) and count against nothing.

After each model load the worker's objects are frozen out of the garbage collector's view (``gc.freeze``):
Spark's Python daemon runs a full ``gc.collect()`` after every task, and a worker holding torch,
transformers and a model has ~700k long-lived objects, which made that collection ~0.3 s per Spark task
(bench/fixed_cost.py measures it). Objects created later are collected as usual; an eviction unfreezes
first, so the evicted model's objects are collected with the next load's collection.
"""
from __future__ import annotations

import gc
import logging
import os
import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable, NamedTuple

from udfs.errors import ConfigError

log = logging.getLogger(__name__)

MODELS_ENV = "TEXTSPARK_MODEL_CACHE_MODELS"
BYTES_ENV = "TEXTSPARK_MODEL_CACHE_BYTES"
DEFAULT_MODELS = 8
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass
class _Entry:
    value: Any
    label: str
    size: int  # bytes (0: unknown)


class Limits(NamedTuple):
    models: int
    bytes: int | None  # None: no bound by bytes


_models: OrderedDict[Hashable, _Entry] = OrderedDict()  # least recently used first
_verdicts: dict[Hashable, Any] = {}  # uncounted values (verified cache folders): small, never evicted
_derived: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {key: value}
_locks: dict[Hashable, threading.Lock] = {}
_guard = threading.Lock()
_loads = 0
_here = threading.local()  # loads performed by this thread since its last loads_here()


def limits() -> Limits:
    """The bounds now in force, read from the environment (``TEXTSPARK_MODEL_CACHE_MODELS`` / ``_BYTES``)."""
    raw = os.environ.get(MODELS_ENV, "").strip()
    if raw and not (raw.isdigit() and int(raw) > 0):
        raise ConfigError(MODELS_ENV, raw, "a positive number of models")
    size = os.environ.get(BYTES_ENV, "").strip().lower()
    found = re.fullmatch(r"(\d+)\s*([kmgt]?)b?", size)
    if size and not (found and int(found[1]) > 0):
        raise ConfigError(BYTES_ENV, size, "a positive size: bytes, or a number with k, m, g or t (4g)")
    return Limits(int(raw) if raw else DEFAULT_MODELS, int(found[1]) * _UNITS[found[2]] if size else None)


def get(key: Hashable, loader: Callable[[], Any], *, count: bool = True, label: str | None = None,
        size: Callable[[], int] | None = None) -> Any:
    """The cached value for ``key``; calls ``loader()`` once per process for a new key.

    ``count``: it is a model load, counted by ``load_count`` and held to the bounds (``label`` names it in
    the eviction line, ``size()`` gives its bytes after the load); ``count=False``: a small value (a
    verified cache folder), kept for the process's life."""
    if not count:
        return _verdict(key, loader)
    bounds = limits()  # a bad setting fails before the load, not after it
    with _guard:
        if key in _models:
            _models.move_to_end(key)
            return _models[key].value
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        with _guard:
            if key in _models:  # loaded by another thread meanwhile
                _models.move_to_end(key)
                return _models[key].value
        value = loader()
        entry = _Entry(value, label or repr(key), int(size()) if size is not None else 0)
        _store(key, entry, bounds)
        return value


def _store(key: Hashable, entry: _Entry, bounds: Limits) -> None:
    global _loads
    with _guard:
        _models[key] = entry
        evicted = _evict(key, bounds)
        _loads += 1
    _here.loads = getattr(_here, "loads", 0) + 1
    for label, why in evicted:
        log.warning("textspark model cache: evicted %s (least recently used): %s", label, why)
    if evicted:
        gc.unfreeze()  # the evicted models' objects back in the collector's view: collected just below
    _freeze()


def _evict(keep: Hashable, bounds: Limits) -> list[tuple[str, str]]:
    """Drop the least recently used models (never ``keep``) until the bounds hold; (label, why) for each."""
    evicted = []
    while len(_models) > 1:
        total = sum(e.size for e in _models.values())
        if len(_models) > bounds.models:
            why = f"{len(_models)} models, over the bound of {bounds.models} ({MODELS_ENV})"
        elif bounds.bytes is not None and total > bounds.bytes:
            why = f"{total} bytes of models, over the bound of {bounds.bytes} ({BYTES_ENV})"
        else:
            break
        oldest = next(k for k in _models if k != keep)
        entry = _models.pop(oldest)
        _locks.pop(oldest, None)
        evicted.append((f"{entry.label}, {entry.size} bytes" if entry.size else entry.label, why))
    return evicted


def _verdict(key: Hashable, loader: Callable[[], Any]) -> Any:
    try:
        return _verdicts[key]
    except KeyError:
        pass
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _verdicts:
            _verdicts[key] = loader()
        return _verdicts[key]


def derived(model: Any, key: Hashable, compute: Callable[[], Any]) -> Any:
    """A value computed once from ``model`` (e.g. classify's label vectors), kept while ``model`` lives:
    evicting the model drops it too, and a later model at the same address never sees it (a model that
    cannot be weakly referenced gets it computed on each call)."""
    with _guard:
        try:
            values = _derived.setdefault(model, {})
        except TypeError:  # not weakly referenceable, or unhashable
            values = None
        if values is not None and key in values:
            return values[key]
    if values is None:
        return compute()
    value = compute()
    with _guard:
        return values.setdefault(key, value)


def _freeze() -> None:
    """Collect what is garbage now, then move every surviving object to the permanent generation."""
    gc.collect()
    gc.freeze()


def resident() -> list[str]:
    """The labels of the models this process holds, least recently used first (for tests and diagnostics)."""
    with _guard:
        return [entry.label for entry in _models.values()]


def load_count() -> int:
    """How many loads this process performed (for tests and diagnostics)."""
    return _loads


def loads_here() -> int:
    """How many loads this thread performed since its previous call (the caller's load, not another thread's)."""
    n, _here.loads = getattr(_here, "loads", 0), 0
    return n


def clear() -> None:
    with _guard:
        _models.clear()
        _verdicts.clear()
        _derived.clear()
        _locks.clear()
