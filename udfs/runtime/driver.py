"""The runtime every task shares, driver side: validate settings, resolve the model once, build the UDF.

A task supplies only a predict function ``predict(model, texts, options) -> {field: values}`` (columnar,
one value per text, in order) and its Spark result fields. ``predict`` may also return ``"error"``: one
reason-or-None per text, for rows it could not give a sensible result (e.g. an unsupported language pair)
without failing the batch; those rows keep the values predict gave (normally None) and get that reason.
A task may also supply ``screen(text) -> reason or None``, its own rule for rows that pass the shared
hygiene (``udfs.text.clean_texts``) but that it cannot serve (e.g. ``udfs.text.NeedsLetters``); the runtime
withholds those rows from ``predict`` with that reason.
The runtime does the rest: resolve the model once on the driver (here), load it once per worker
(``udfs.runtime.worker``), and run each batch through the batch core (``udfs.runtime.batch.run_batch``:
cleaning, the language guard, predict, a reason per row without a result, the model version on each row),
the one the mapInArrow stage and the MLflow pyfunc face run too.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from udfs.errors import ConfigError
from udfs.models.catalog import load_catalog
from udfs.models.reference import ResolvedModel
from udfs.models.registry import resolve
from udfs.runtime.guard import plan_guard
from udfs.runtime.plan import PRECISIONS, Predict, Screen, UdfPlan
from udfs.runtime.worker import loaded, run_arrow_batch

__all__ = ["PRECISIONS", "Predict", "Screen", "UdfPlan", "make_udf", "plan"]  # the plan's types: udfs.runtime.plan


def plan(task: str, predict: Predict, fields: list[tuple[str, str]], *, model: str | ResolvedModel | None,
         options: Mapping[str, Any] | None = None, device: str = "auto", precision: str | None = None,
         fail_on_error: bool = False, catalog=None, screen: Screen | None = None, languages: Any = None,
         guarded: bool = True) -> UdfPlan:
    """Driver side: validate settings and resolve the model reference to one exact version (``model`` may
    already be one: the pyfunc face's own version, udfs.tasks.serving).

    ``languages``: None (the version's recorded languages decide the guard), ``"any"`` (no guard) or ISO 639
    codes; ``guarded=False`` for tasks that check languages themselves (language, translate)."""
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ConfigError("device", device, "auto, cpu, cuda, cuda:<index>")
    catalog = catalog or load_catalog()
    if isinstance(model, ResolvedModel):
        resolved = model
    else:
        resolved = resolve(model or catalog.default_reference(task), task=task)
    guard = plan_guard(resolved, languages, lambda: catalog.default_reference("language")) if guarded else None
    precision = precision or resolved.params.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ConfigError("precision", precision, PRECISIONS)
    return UdfPlan(task=task, model=resolved, predict=predict, fields=tuple(fields), options=dict(options or {}),
                   device=device, precision=precision, fail_on_error=bool(fail_on_error), screen=screen, guard=guard)


def make_udf(p: UdfPlan, *, only: str | None = None):
    """The UDF for a plan: the full struct, or just the field ``only`` (e.g. the embedding array).

    A scalar Arrow UDF (``pa.Array -> pa.Array``), not a pandas one: the worker converts the text column
    itself (``udfs.text.arrow_texts``), so a row whose bytes are not UTF-8 gets a reason instead of failing
    the batch, and a column of another type (struct included) gets "input is not a string" per row.
    Scalar, not an iterator UDF: Spark evaluates all scalar Arrow UDFs of one ``select`` / ``withColumn``
    chain in one Python worker per task, batch by batch (measured: one process id for two UDFs of one
    select, and for a UDF applied to another's result), so tasks on the same encoder share the worker's
    model cache and its forward pass there. A Python function of another kind (``mapInArrow``, as
    ``udfs.tasks.pipeline.apply_tasks`` runs, or an iterator UDF) runs in a worker of its own, with its own
    copy of the models. The model comes from the worker's cache per batch (a dict lookup); a batch of nulls
    never loads one. Each batch goes through the batch core, ``udfs.runtime.batch.run_batch``.
    """
    import pyarrow as pa
    from pyspark.sql.functions import arrow_udf
    from pyspark.sql.types import _parse_datatype_string

    result_type = _parse_datatype_string(dict(p.fields)[only] if only else p.struct_type())

    def textspark_udf(texts):
        return run_arrow_batch(p, loaded(p, None, texts), texts, result_type, only=only)

    # the hints that make it a scalar Arrow UDF (set here: pyarrow is imported lazily, on use)
    textspark_udf.__annotations__ = {"texts": pa.Array, "return": pa.Array}
    textspark_udf.__name__ = f"textspark_{p.task}"
    return arrow_udf(textspark_udf, result_type)
