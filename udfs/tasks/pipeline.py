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


def apply_tasks(df, text_column: str, planned: list[PlannedTask], *, profile=None, partitions: int | None = None):
    """``df`` with each task's column appended (and ``<column>_error`` for plain-valued tasks).

    Without ``profile``, each task is a pandas UDF in one projection, split into columns by the next (Spark
    does not collapse projections that would evaluate a Python UDF twice). With a Spark ``ResourceProfile``
    (GPU scheduling), all tasks run in one ``mapInPandas`` stage that carries the profile; ``partitions``
    repartitions first, so reading stays in a stage of its own with the default (CPU) profile.
    """
    from pyspark.sql import functions as F

    if text_column not in df.columns:
        raise ConfigError("input.text_column", text_column, df.columns)
    clash = [t.column for t in planned if t.column in df.columns]
    if clash:
        raise ConfigError("tasks[].column", clash[0], f"a name not already in the input ({', '.join(df.columns)})")
    if partitions:
        df = df.repartition(partitions)
    originals = [F.col(f"`{c}`") for c in df.columns]
    if profile is not None:
        return _apply_in_stage(df, text_column, planned, profile, originals)
    staged = df.select(*originals, *[driver.make_udf(t.plan)(F.col(f"`{text_column}`")).alias(f"__ts_{i}")
                                     for i, t in enumerate(planned)])
    return staged.select(*originals, *_task_columns(planned, lambda i, name: F.col(f"__ts_{i}.{name}")))


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


def _apply_in_stage(df, text_column: str, planned: list[PlannedTask], profile, originals):
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructField, StructType, _parse_datatype_string

    flat = StructType(list(df.schema.fields) + [
        StructField(f"__ts_{i}_{name}", _parse_datatype_string(dtype))
        for i, t in enumerate(planned) for name, dtype in list(t.plan.fields) + [("model", "string"), ("error", "string")]])
    plans = [t.plan for t in planned]

    def infer(batches):
        models = [worker.worker_model(p) for p in plans]
        for pdf in batches:
            for i, (p, model) in enumerate(zip(plans, models)):
                frame = worker.run_batch(p, model, pdf[text_column])
                for name in frame.columns:
                    pdf[f"__ts_{i}_{name}"] = frame[name].to_numpy()
            yield pdf

    staged = df.mapInPandas(infer, flat, profile=profile)
    return staged.select(*originals, *_task_columns(planned, lambda i, name: F.col(f"__ts_{i}_{name}")))
