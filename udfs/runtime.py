"""The runtime every task shares: driver-side planning, worker-side batches, per-row reasons.

A task supplies only a predict function ``predict(model, texts, options) -> {field: values}`` (columnar,
one value per text, in order) and its Spark result fields. ``predict`` may also return ``"error"``: one
reason-or-None per text, for rows it could not give a sensible result (e.g. an unsupported language pair)
without failing the batch; those rows keep the values predict gave (normally None) and get that reason.
The runtime does the rest: resolve the model once on the driver, load it once per worker, keep
nulls/empties/garbage away from it, turn a failure into a null result with a reason (or raise, with
``fail_on_error``), and stamp the model version on each row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from udfs.errors import ConfigError
from udfs.text import clean_texts

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
Predict = Callable[[Any, list, dict], Mapping[str, Any]]


@dataclass(frozen=True)
class UdfPlan:
    """Everything a worker needs, pickled into the UDF closure (small: no weights, no Spark objects)."""

    task: str
    model: Any  # ResolvedModel
    predict: Predict
    fields: tuple[tuple[str, str], ...]  # (name, Spark SQL type) of the task's own result fields
    options: dict = field(default_factory=dict, hash=False, compare=False)
    device: str = "auto"
    precision: str = "fp32"
    fail_on_error: bool = False

    def struct_type(self) -> str:
        cols = [f"{name}: {dtype}" for name, dtype in self.fields] + ["model: string", "error: string"]
        return f"struct<{', '.join(cols)}>"


def plan(task: str, predict: Predict, fields: list[tuple[str, str]], *, model: str | None,
         options: Mapping[str, Any] | None = None, device: str = "auto", precision: str | None = None,
         fail_on_error: bool = False, catalog=None) -> UdfPlan:
    """Driver side: validate settings and resolve the model reference to one exact version."""
    from udfs.catalog import load_catalog
    from udfs.registry import resolve

    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ConfigError("device", device, "auto, cpu, cuda, cuda:<index>")
    reference = model or (catalog or load_catalog()).default_reference(task)
    resolved = resolve(reference, task=task)
    precision = precision or resolved.params.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ConfigError("precision", precision, PRECISIONS)
    return UdfPlan(task=task, model=resolved, predict=predict, fields=tuple(fields), options=dict(options or {}),
                   device=device, precision=precision, fail_on_error=bool(fail_on_error))


def make_udf(p: UdfPlan, *, only: str | None = None):
    """The pandas UDF for a plan: the full struct, or just the field ``only`` (e.g. the embedding array)."""
    from pyspark.sql.functions import pandas_udf

    return_type = dict(p.fields)[only] if only else p.struct_type()

    @pandas_udf(return_type)
    def textspark_udf(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        model = worker_model(p)
        for texts in batches:
            frame = run_batch(p, model, texts)
            yield frame[only] if only else frame

    textspark_udf.__name__ = f"textspark_{p.task}"
    return textspark_udf


# ---- worker side --------------------------------------------------------------------------------

def worker_model(p: UdfPlan):
    """Configure this worker (threads, device) and return its cached model."""
    from udfs.device import configure_threads, select_device
    from udfs.loading import load

    configure_threads()
    device = select_device(p.device)
    precision = _effective_precision(p.precision, device)
    return load(p.model, device=device, precision=precision)


def _effective_precision(precision: str, device: str) -> str:
    """"auto" picks bf16 where this worker's hardware has it natively, else fp32 (udfs.device.auto_precision)."""
    from udfs.device import auto_precision

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
