"""Register textspark's UDFs as SQL functions: ``SELECT embed(text), sentiment(text).label FROM reviews``."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from udfs.runtime import driver
from udfs.tasks.table import TASK_DEFS


def register_sql_functions(spark, tasks: Iterable[str] | None = None, *, models: Mapping[str, str] | None = None,
                           options: Mapping[str, Mapping[str, Any]] | None = None, catalog=None) -> list[str]:
    """Register each task's UDF under the task's name; returns the names registered.

    Plain-valued tasks (embed) return their value; the others their struct.

    Args:
        spark: the SparkSession to register the functions in.
        tasks: task names among embed, sentiment, classify, summarize, translate, language; default None: every
            task whose defaults suffice (not translate, which needs ``target``, unless ``options`` gives it).
        models: task -> model reference (``models:/name@alias``, ``models:/name/N``, a name); default None: the
            catalog's ``defaults``.
        options: task -> its factory's keyword arguments but ``model`` (that is ``models``), e.g.
            ``{"classify": {"labels": [...]}, "embed": {"device": "cpu"}}``; default None: each task's defaults.
        catalog: the model catalog (:func:`udfs.models.catalog.load_catalog`) whose defaults apply; default
            None: conf/models.yml (or $TEXTSPARK_MODELS).

    Returns:
        list[str]: the names registered, in the order given.

    Examples:
        On a local session ``spark``, embed on a tiny random encoder registered as ``tiny-encoder`` and
        language on the catalog's default (``textspark-lid176``):

        >>> from udfs import register_sql_functions
        >>> register_sql_functions(spark, ["embed", "language"], models={"embed": "models:/tiny-encoder@champion"})
        ['embed', 'language']
        >>> spark.createDataFrame([("The train was on time today.",)], "text string").createOrReplaceTempView("docs")
        >>> spark.sql("SELECT size(embed(text)) AS dims, language(text).language AS lang FROM docs").collect()
        [Row(dims=32, lang='en')]
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
