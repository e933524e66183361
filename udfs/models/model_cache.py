"""Per-Python-worker model cache.

Operational contract: Spark reuses Python worker processes between tasks when
``spark.python.worker.reuse`` is true (the default; conf/spark/*.yml keep it so). This module's dict lives
as long as the worker process, so each worker loads a given (model version, device, precision) once and
every later Arrow batch and task on that worker reuses it. Keys are exact resolved versions, never aliases,
so moving an alias between jobs can never serve a stale model. Loads are serialised per key by a lock
(Spark may run several UDF threads in one worker, e.g. for multiple UDFs in one stage).
The verdict on a per-host cache folder (``udfs.models.loading.local_folder``) is kept here as well, so it
is verified once per process; ``clear()`` forgets models and verdicts.

After each model load the worker's objects are frozen out of the garbage collector's view (``gc.freeze``):
Spark's Python daemon runs a full ``gc.collect()`` after every task, and a worker holding torch,
transformers and a model has ~700k long-lived objects, which made that collection ~0.3 s per Spark task
(bench/fixed_cost.py measures it). Objects created later are collected as usual.
"""
from __future__ import annotations

import gc
import threading
from typing import Any, Callable, Hashable

_models: dict[Hashable, Any] = {}
_locks: dict[Hashable, threading.Lock] = {}
_guard = threading.Lock()
_loads = 0
_here = threading.local()  # loads performed by this thread since its last loads_here()


def get(key: Hashable, loader: Callable[[], Any], *, count: bool = True) -> Any:
    """The cached value for ``key``; calls ``loader()`` once per process for a new key (``count``: it is a
    model load, counted by ``load_count``; a verified cache folder is cached here too, uncounted)."""
    global _loads
    try:
        return _models[key]
    except KeyError:
        pass
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _models:
            _models[key] = loader()
            _loads += count
            if count:
                _here.loads = getattr(_here, "loads", 0) + 1
                _freeze()
        return _models[key]


def _freeze() -> None:
    """Collect what is garbage now, then move every surviving object to the permanent generation."""
    gc.collect()
    gc.freeze()


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
        _locks.clear()
