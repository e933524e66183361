"""The batch core: one batch of texts and a plan -> one row of the task's fields per text, with reasons.

Every path that runs a task calls :func:`run_batch`: the scalar Arrow UDF (``udfs.runtime.driver.make_udf``)
and the mapInArrow stage (``udfs.tasks.pipeline.apply_tasks``) through ``udfs.runtime.worker.run_arrow_batch``,
and the MLflow pyfunc face (``udfs.models.pyfunc``) through ``udfs.tasks.serving``. So the same row gets the
same result on each of them. In order, per batch:

1. cleaning: ``udfs.text.clean_texts`` keeps nulls, empties and garbage away from the model (each gets its
   reason), then the task's own ``screen`` (e.g. translate's "no letters to translate");
2. the language guard (``udfs.runtime.guard``): rows in a language the model does not read get its reason;
3. the task's ``predict`` on the rows left, all at once: the model's own methods cut them into length-bucketed
   batches of fixed shapes (``udfs.models.backends.batching.run_batches``), so a row's result does not depend
   on the rows beside it; a batch that fails is retried row by row, so one bad row cannot fail the others;
4. mapping: predict's columns (one value per row, plus optional per-row reasons under ``"error"``) go back
   to their rows; a row without a result keeps None and gets its reason; ``model`` stamps the version.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from udfs.runtime.guard import withheld
from udfs.runtime.plan import UdfPlan
from udfs.text import clean_texts

ROW_ERRORS = "error"  # the key under which predict may return per-row reasons


def run_batch(p: UdfPlan, model: Any, texts: pd.Series) -> pd.DataFrame:
    """One batch of texts -> a DataFrame with the task's fields, ``model`` and ``error``, rows in input order
    (a fresh 0..n-1 index); a row without a result has None in every field and its reason in ``error``.
    With ``p.fail_on_error`` the first row left without a result raises instead."""
    n = len(texts)
    clean, reason = clean_texts(texts.reset_index(drop=True))
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
