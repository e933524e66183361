"""Worker side of the runtime: configure the Python worker, fetch its cached model, run one Arrow batch.

``run_arrow_batch`` is the Spark paths' way into the batch core (``udfs.runtime.batch.run_batch``, which the
MLflow pyfunc face calls too): it takes the text column as Arrow (so a row of bytes that are not UTF-8 is that
row's problem: pandas' own conversion would fail the whole batch on it), counts the batch's rows and costs,
and returns the core's rows as Arrow.
"""
from __future__ import annotations

import time
from typing import Any

import pandas as pd

from udfs.models import model_cache
from udfs.models.loading import load
from udfs.runtime.batch import run_batch
from udfs.runtime.costs import Clock, worker_start
from udfs.runtime.device import configure_threads, resolve_precision, select_device
from udfs.runtime.progress import say
from udfs.runtime.plan import UdfPlan
from udfs.text import arrow_texts

__all__ = ["loaded", "run_arrow_batch", "run_batch", "to_arrow", "worker_model"]  # run_batch: udfs.runtime.batch


def worker_model(p: UdfPlan):
    """Configure this worker (threads, device) and return its cached model."""
    if p.progress is not None and p.progress.costs is not None:  # udfs.runtime.costs: this worker's start
        start = worker_start(since=p.progress.costs[1])
        if start is not None:
            p.progress.costs[0].add(start)
    configure_threads()
    device = select_device(p.device)
    precision = resolve_precision(p.precision, device)  # auto: bf16 where this worker's hardware has it
    model_cache.loads_here()  # forget this thread's earlier loads (a task's own cached values)
    started = time.perf_counter()
    model = load(p.model, device=device, precision=precision)
    if model_cache.loads_here():  # this call loaded it: one line per load per worker process
        seconds = time.perf_counter() - started
        say(f"loaded {p.model.label} ({p.model.kind}, {device}, {precision}) in {seconds:.1f} s")
        if p.progress is not None:  # udfs.runtime.costs: the task's load seconds
            p.progress.loaded(seconds, device)
    return model


def loaded(p: UdfPlan, model, texts):
    """``model``, or this worker's model for ``p`` once ``texts`` (an Arrow array) holds a value: a batch of
    nulls (the incremental path's reused rows) never loads a model."""
    if model is None and texts.null_count < len(texts):
        return worker_model(p)
    return model


def run_arrow_batch(p: UdfPlan, model: Any, texts, result_type, *, only: str | None = None,
                    large_types: bool = False):
    """One Arrow batch of the text column -> the task's result (the struct, or the field ``only``) as an
    Arrow array of the Spark type ``result_type``, rows in input order."""
    clock = Clock() if p.progress is not None else None  # udfs.runtime.costs: the batch's CPU/wall/GPU seconds
    frame = run_batch(p, model, arrow_texts(texts))
    if p.progress is not None:  # udfs.runtime.progress: the driver's live count of this task's rows
        p.progress.add(texts, clock)
    return to_arrow(frame[only] if only else frame, result_type, large_types=large_types)


def to_arrow(values: pd.Series | pd.DataFrame, spark_type, *, large_types: bool = False):
    """pandas -> Arrow exactly as Spark converts a pandas UDF's result (same converter, same settings)."""
    from pyspark.sql.conversion import PandasToArrowConversion
    from pyspark.sql.types import StructField, StructType

    batch = PandasToArrowConversion.convert([values], StructType([StructField("_0", spark_type)]), safecheck=False,
                                            arrow_cast=True, prefers_large_types=large_types,
                                            assign_cols_by_name=True)
    return batch.column(0)
