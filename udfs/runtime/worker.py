"""Worker side of the runtime: configure the Python worker, fetch its cached model, run one Arrow batch.

``run_batch`` keeps nulls/empties/garbage away from the model, retries a failed batch row by row so one bad
row cannot fail the others, turns a failure into a null result with a reason (or raises, with
``fail_on_error``) and stamps the model version on each row.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pandas as pd

from udfs.models.loading import load
from udfs.runtime.device import auto_precision, configure_threads, select_device
from udfs.text import clean_texts

if TYPE_CHECKING:  # the plan module builds UDFs that call this one
    from udfs.runtime.driver import UdfPlan


def worker_model(p: UdfPlan):
    """Configure this worker (threads, device) and return its cached model."""
    configure_threads()
    device = select_device(p.device)
    precision = _effective_precision(p.precision, device)
    return load(p.model, device=device, precision=precision)


def _effective_precision(precision: str, device: str) -> str:
    """"auto" picks bf16 where this worker's hardware has it natively, else fp32 (udfs.runtime.device.auto_precision)."""
    return auto_precision(device) if precision == "auto" else precision


def run_batch(p: UdfPlan, model: Any, texts: pd.Series) -> pd.DataFrame:
    """One Arrow batch -> a DataFrame with the task's fields, ``model`` and ``error``, rows in input order."""
    n = len(texts)
    clean, reason = clean_texts(texts)
    ok = np.flatnonzero(clean.notna().to_numpy())
    reasons = reason.to_numpy(dtype=object)
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
