"""Apply several tasks to one DataFrame: every input row and column kept, one output column per task."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from udfs.errors import ConfigError, ModelReferenceError
from udfs.runtime import driver, worker
from udfs.tasks.table import TASK_DEFS


@dataclass(frozen=True)
class PlannedTask:
    task: str
    column: str
    plan: driver.UdfPlan
    value_field: str | None = None  # plain-valued tasks (embed): the field written as the column

    @property
    def error_column(self) -> str | None:
        """Plain-valued tasks carry their reason in ``<column>_error``; struct tasks in ``<column>.error``."""
        return f"{self.column}_error" if self.value_field else None

    @property
    def output_columns(self) -> list[str]:
        """The columns this task writes: ``column``, and ``<column>_error`` for plain-valued tasks."""
        return [self.column, self.error_column] if self.error_column else [self.column]


def plan_tasks(tasks: Iterable[Any], *, catalog=None) -> list[PlannedTask]:
    """Resolve every task's model on the driver (fails fast, before Spark work, on a bad reference)."""
    planned = []
    for i, t in enumerate(tasks):
        settings = dict(t.settings)
        try:
            p = TASK_DEFS[t.task].plan(**settings, catalog=catalog)
        except ModelReferenceError as exc:
            raise ConfigError(f"tasks[{i}].model", settings.get("model", "(catalog default)"), str(exc)) from None
        except ConfigError as exc:
            raise ConfigError(f"tasks[{i}].{exc.key}", exc.value, exc.allowed) from None
        planned.append(PlannedTask(t.task, t.column, p, TASK_DEFS[t.task].value_field))
    return planned


def apply_tasks(df, text_column: str, planned: list[PlannedTask], *, profile=None, partitions: int | None = None,
                inputs: list[str] | None = None):
    """``df`` with each task's column appended (and ``<column>_error`` for plain-valued tasks).

    All tasks run in one ``mapInArrow`` stage: one Python worker per partition holds every task's model, and
    tasks on the same encoder share its forward pass (udfs.models.backends.hf), as the scalar Arrow UDFs of
    one ``select`` share theirs (udfs.runtime.driver.make_udf); the stage, not a select of UDFs, because
    only ``mapInArrow`` carries a Spark ``ResourceProfile`` (GPU scheduling) and it passes the other columns
    through untouched. ``partitions`` repartitions first, so reading stays in a stage of its own with the
    default (CPU) profile. Each task's batch goes through the batch core (udfs.runtime.batch.run_batch,
    through udfs.runtime.worker.run_arrow_batch), the one the UDFs and the MLflow pyfunc face run; the
    worker gets the text column as Arrow (a row of invalid UTF-8 gets a reason, not a failed job).
    ``ConfigError`` before any Spark work: a missing or non-string text column, an output column that is
    already an input column or another task's.
    ``inputs``: per task, the column its model reads instead of ``text_column`` (the incremental path hands a
    task null where it keeps the previous result); these columns are left out of the result.
    """
    from pyspark.sql import functions as F

    _check_columns(df, text_column, planned)
    if partitions:
        df = df.repartition(partitions)
    sources = inputs or [text_column] * len(planned)
    originals = [F.col(f"`{c}`") for c in df.columns if c not in (inputs or ())]
    return _apply_in_stage(df, sources, planned, profile, originals, dropped=set(inputs or ()))


def _check_columns(df, text_column: str, planned: list[PlannedTask]) -> None:
    """Before any model loads: the text column exists and holds strings, and no output column (a task's
    ``column``, or the ``<column>_error`` a plain-valued task adds) is an input column or another task's."""
    from pyspark.sql.types import StringType

    if text_column not in df.columns:
        raise ConfigError("input.text_column", text_column, df.columns)
    found = df.schema[text_column].dataType
    if not isinstance(found, StringType):
        raise ConfigError("input.text_column", text_column,
                          f"a string column ({text_column!r} is {found.simpleString()})")
    taken = {c.lower(): f"input column {c!r}" for c in df.columns}  # Spark resolves names case-insensitively
    allowed = (f"a name that is not an input column ({', '.join(df.columns)}) nor another task's output, "
               "compared case-insensitively")
    for i, t in enumerate(planned):
        for name in t.output_columns:
            if name.lower() in taken:
                clash = f"{name!r} is {taken[name.lower()]}" if name == t.column else \
                    f"{t.task} also writes {name!r}, which is {taken[name.lower()]}"
                raise ConfigError(f"tasks[{i}].column", t.column, f"{allowed}; {clash}")
            taken[name.lower()] = f"written by tasks[{i}] ({t.task})"


def _result_names(t: PlannedTask) -> list[str]:
    return [name for name, _ in t.plan.fields] + ["model", "error"]


def _task_columns(planned: list[PlannedTask], field_col) -> list:
    """Each task's output columns, from ``field_col(task_index, field_name)``."""
    from pyspark.sql import functions as F

    outputs = []
    for i, t in enumerate(planned):
        if t.value_field:
            outputs += [field_col(i, t.value_field).alias(t.column), field_col(i, "error").alias(t.error_column)]
        else:
            outputs.append(F.struct(*[field_col(i, n).alias(n) for n in _result_names(t)]).alias(t.column))
    return outputs


def _apply_in_stage(df, sources: list[str], planned: list[PlannedTask], profile, originals, dropped: set[str]):
    import pyarrow as pa
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructField, StructType, _parse_datatype_string

    plans = [t.plan for t in planned]
    types = [_parse_datatype_string(p.struct_type()) for p in plans]  # each task's struct<fields, model, error>
    kept = [c for c in df.columns if c not in dropped]
    flat = StructType([df.schema[c] for c in kept] + [StructField(f"__ts_{i}_{f.name}", f.dataType)
                                                      for i, t in enumerate(types) for f in t.fields])

    def infer(batches):
        models = [None] * len(plans)  # each loaded at its first text
        for batch in batches:
            results = []
            for i, (p, t) in enumerate(zip(plans, types)):
                texts = batch.column(sources[i])
                models[i] = worker.loaded(p, models[i], texts)
                large = pa.types.is_large_string(texts.type)  # answer in the width Spark sends (useLargeVarTypes)
                results.append(worker.run_arrow_batch(p, models[i], texts, t, large_types=large))
            yield pa.RecordBatch.from_arrays([batch.column(c) for c in kept] + [a for r in results for a in r.flatten()],
                                             names=flat.names)

    staged = df.mapInArrow(infer, flat, profile=profile)
    return staged.select(*originals, *_task_columns(planned, lambda i, name: F.col(f"__ts_{i}_{name}")))
