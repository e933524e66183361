"""Apply several tasks to one DataFrame: every input row and column kept, one output column per task."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from udfs import runtime
from udfs.errors import ConfigError
from udfs.tasks import TASK_DEFS


@dataclass(frozen=True)
class PlannedTask:
    task: str
    column: str
    plan: runtime.UdfPlan

    @property
    def error_column(self) -> str | None:
        """Plain-valued tasks (embed) carry their reason in ``<column>_error``; struct tasks in ``.error``."""
        return f"{self.column}_error" if TASK_DEFS[self.task].value_field else None


def plan_tasks(tasks: Iterable[Any], *, catalog=None) -> list[PlannedTask]:
    """Resolve every task's model on the driver (fails fast, before Spark work, on a bad reference)."""
    from udfs.errors import ModelReferenceError

    planned = []
    for i, t in enumerate(tasks):
        settings = dict(t.settings)
        try:
            p = TASK_DEFS[t.task].plan(**settings, catalog=catalog)
        except ModelReferenceError as exc:
            raise ConfigError(f"tasks[{i}].model", settings.get("model", "(catalog default)"), str(exc)) from None
        except ConfigError as exc:
            raise ConfigError(f"tasks[{i}].{exc.key}", exc.value, exc.allowed) from None
        planned.append(PlannedTask(t.task, t.column, p))
    return planned


def apply_tasks(df, text_column: str, planned: list[PlannedTask]):
    """``df`` with each task's column appended (and ``<column>_error`` for plain-valued tasks).

    Each UDF runs once per row: the struct is computed in one projection and split in the next
    (Spark does not collapse projections that would evaluate a Python UDF twice).
    """
    from pyspark.sql import functions as F

    if text_column not in df.columns:
        raise ConfigError("input.text_column", text_column, df.columns)
    clash = [t.column for t in planned if t.column in df.columns]
    if clash:
        raise ConfigError("tasks[].column", clash[0], f"a name not already in the input ({', '.join(df.columns)})")
    originals = [F.col(f"`{c}`") for c in df.columns]
    staged = df.select(*originals, *[runtime.make_udf(t.plan)(F.col(f"`{text_column}`")).alias(f"__ts_{i}")
                                     for i, t in enumerate(planned)])
    outputs = []
    for i, t in enumerate(planned):
        value_field = TASK_DEFS[t.task].value_field
        if value_field:
            outputs += [F.col(f"__ts_{i}.{value_field}").alias(t.column), F.col(f"__ts_{i}.error").alias(t.error_column)]
        else:
            outputs.append(F.col(f"__ts_{i}").alias(t.column))
    return staged.select(*originals, *outputs)
