"""Register textspark's UDFs as SQL functions: ``SELECT embed(text) FROM reviews``."""
from __future__ import annotations

from typing import Iterable


def register_sql_functions(spark, tasks: Iterable[str] | None = None, *, models: dict[str, str] | None = None,
                           catalog=None) -> list[str]:
    """Register each task's UDF (default models unless ``models`` maps task -> reference); returns the names."""
    from udfs import runtime
    from udfs.embed import embed_plan

    builders = {"embed": lambda m: runtime.make_udf(embed_plan(model=m, catalog=catalog), only="embedding")}
    names = []
    for task in tasks or builders:
        spark.udf.register(task, builders[task]((models or {}).get(task)))
        names.append(task)
    return names
