"""Worker side of the runtime: configure the Python worker, fetch its cached model, run one Arrow batch.

``run_arrow_batch`` takes the text column as Arrow (so a row of bytes that are not UTF-8 is that row's
problem: pandas' own conversion would fail the whole batch on it) and returns the result as Arrow.
``run_batch`` keeps nulls/empties/garbage away from the model, retries a failed batch row by row so one bad
row cannot fail the others, turns a failure into a null result with a reason (or raises, with
``fail_on_error``) and stamps the model version on each row.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
import pandas as pd

from udfs.models import model_cache
from udfs.models.loading import load
from udfs.runtime.costs import Clock, worker_start
from udfs.runtime.device import configure_threads, resolve_precision, select_device
from udfs.runtime.progress import say
from udfs.runtime.guard import withheld
from udfs.runtime.plan import UdfPlan
from udfs.text import arrow_texts, clean_texts


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


def run_batch(p: UdfPlan, model: Any, texts: pd.Series) -> pd.DataFrame:
    """One Arrow batch -> a DataFrame with the task's fields, ``model`` and ``error``, rows in input order."""
    n = len(texts)
    clean, reason = clean_texts(texts)
    ok = np.flatnonzero(clean.notna().to_numpy())
    reasons = reason.to_numpy(dtype=object)
    if p.screen is not None:  # the task's own rule, after the shared hygiene
        ok = _screen(p.screen, clean, ok, reasons)
    if p.guard is not None and len(ok):  # rows in a language the model does not read (udfs.runtime.guard)
        for i, why in zip(ok, withheld(p.guard, clean.iloc[ok].tolist())):
            reasons[i] = why or reasons[i]
        ok = np.array([i for i in ok if reasons[i] is None], dtype=ok.dtype)
    columns = {name: np.full(n, None, dtype=object) for name, _ in p.fields}
    if len(ok):
        rows = clean.iloc[ok].tolist()
        try:
            _assign(columns, ok, p.predict(model, rows, p.options), reasons)
        except Exception:  # one bad row must not fail the others: retry row by row
            if p.fail_on_error:
                raise
            for i, text in zip(ok, rows):
                try:
                    _assign(columns, np.array([i]), p.predict(model, [text], p.options), reasons)
                except Exception as row_exc:  # noqa: BLE001 - the reason is the result
                    reasons[i] = f"{type(row_exc).__name__}: {row_exc}"[:500]
    frame = pd.DataFrame(columns)
    frame["model"] = p.model.label
    frame["error"] = reasons
    if p.fail_on_error and frame["error"].notna().any():
        first = frame["error"].dropna().iloc[0]
        raise ValueError(f"{p.task}: {int(frame['error'].notna().sum())} row(s) failed "
                         f"(fail_on_error=True); first reason: {first}")
    return frame


def _screen(screen, clean: pd.Series, ok: np.ndarray, reasons: np.ndarray) -> np.ndarray:
    """The rows of ``ok`` that ``screen`` lets through; the others get its reason in ``reasons``."""
    keep = []
    for i in ok:
        refused = screen(clean.iat[i])
        if refused is None:
            keep.append(i)
        else:
            reasons[i] = refused
    return np.array(keep, dtype=ok.dtype)


ROW_ERRORS = "error"  # the key under which predict may return per-row reasons


def _assign(columns: dict[str, np.ndarray], idx: np.ndarray, result: Mapping[str, Any],
            reasons: np.ndarray | None = None) -> None:
    for name, values in result.items():
        if name == ROW_ERRORS and name not in columns:
            if reasons is not None:
                for j, i in enumerate(idx):
                    if values[j] is not None:
                        reasons[i] = str(values[j])[:500]
            continue
        if isinstance(values, np.ndarray) and values.ndim == 2:
            values = list(values)
        target = columns[name]
        for j, i in enumerate(idx):
            target[i] = values[j]
