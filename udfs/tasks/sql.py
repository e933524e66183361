"""Register textspark's UDFs as SQL functions: ``SELECT embed(text), sentiment(text).label FROM reviews``."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from udfs.runtime import driver
from udfs.tasks.table import TASK_DEFS


def register_sql_functions(spark, tasks: Iterable[str] | None = None, *, models: Mapping[str, str] | None = None,
                           options: Mapping[str, Mapping[str, Any]] | None = None, catalog=None) -> list[str]:
    """Register each task's UDF under the task's name; returns the names registered.

    ``models`` maps task -> model reference (default: the catalog's); ``options`` maps task -> its keyword
    arguments (e.g. ``{"classify": {"labels": [...]}}``). Without ``tasks``, every task whose defaults
    suffice is registered. Plain-valued tasks (embed) return their value; the others their struct.
    """
    models, options = dict(models or {}), dict(options or {})
    chosen = list(tasks) if tasks is not None else [
        name for name, t in TASK_DEFS.items() if all(k in options.get(name, {}) for k in t.required_keys)]
    names = []
    for task in chosen:
        tdef = TASK_DEFS[task]
        plan = tdef.plan(model=models.get(task), catalog=catalog, **options.get(task, {}))
        spark.udf.register(task, driver.make_udf(plan, only=tdef.value_field))
        names.append(task)
    return names
