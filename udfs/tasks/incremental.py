"""Incremental analysis: each row's result for a task is computed once per (text, model version, options).

``analyze(df, tasks, previous=...)`` returns the complete new output: every input row, one column per task,
and two bookkeeping columns. A row's result for a task is taken from ``previous`` when the row's id, the hash
of its text and the task's key (a hash of what decides its result: task, model name/version, options,
precision) are unchanged; otherwise the task's model computes it. Rows absent from ``df`` are not in the
output. The model of a task that has nothing to compute is never loaded.

Bookkeeping columns:

- ``_textspark_text_hash``: SHA-256 of the row's text (null for a null text).
- ``_textspark_task_keys``: map of task column -> the key of the task that produced the row's result.

A previous output without them (written by a plain run) is recomputed in full; so is a task whose column
the previous output lacks or holds with another type. A row whose previous result is a null with a model
failure as its reason (an exception while the model ran: out of memory, a model error; not a null, empty or
unsupported input, which would fail the same way again) is computed again (``retry``) unless
``retry_errors=False``. Counts per task (computed, reused, and why) come from :meth:`Incremental.counts`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

from udfs.errors import ConfigError, InputError
from udfs.tasks.pipeline import PlannedTask, apply_tasks, plan_tasks

TEXT_HASH = "_textspark_text_hash"
TASK_KEYS = "_textspark_task_keys"
BOOKKEEPING = (TEXT_HASH, TASK_KEYS)
REASONS = ("new", "text_changed", "model_changed", "retry")  # why a row is computed; model_changed: model or
# options; retry: the previous result is a null with a model failure as its reason
# A model failure's reason, as udfs.runtime.worker writes it: "<exception class>: <message>". Input reasons
# ("null input", "invalid UTF-8 at byte 3", "language unclear: ...") never start with a bare identifier and ": ".
MODEL_FAILURE = r"^[A-Za-z_][A-Za-z0-9_]*: "


def task_key(t: PlannedTask) -> str:
    """A short hash of what decides a task's result: the task, its model name/version, options, precision,
    and the language guard (its language model's version and the languages read) where there is one."""
    what = {"task": t.task, "model": t.plan.model.label, "options": t.plan.options, "precision": t.plan.precision}
    if t.plan.guard is not None:  # which rows the language guard withholds (absent: keys written before it hold)
        what["guard"] = t.plan.guard.key()
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class _Task:
    """Python-API task entry: ``{"task": "sentiment", "column": "sentiment", "model": ..., <options>}``."""

    task: str
    column: str
    settings: dict


def as_tasks(tasks: Iterable[Any]) -> list:
    """Task entries as dicts (the job YAML's form) or objects with ``task``, ``column`` and ``settings``."""
    out = []
    for i, t in enumerate(tasks):
        if isinstance(t, dict):
            t = dict(t)
            name = t.pop("task", None)
            if not isinstance(name, str):
                raise ConfigError(f"tasks[{i}].task", name, "a task name")
            out.append(_Task(name, t.pop("column", name), t))
        else:
            out.append(t)
    return out


class Incremental:
    """The plan of one incremental run: the joined frame, the new output, and its counts."""

    def __init__(self, df, planned: list[PlannedTask], previous, *, text_column: str, id_column: str | None,
                 profile=None, partitions: int | None = None, retry_errors: bool = True,
                 previous_at: str | None = None, source: str | None = None):
        from pyspark.sql import functions as F

        self.planned, self.id_column, self.text_column = planned, id_column, text_column
        self.retry_errors, self.previous_at, self.source = retry_errors, previous_at, source
        self.keys = {t.column: task_key(t) for t in planned}
        self.previous = previous
        self.full_reason = _unusable(previous, id_column)
        prev = None if self.full_reason else previous
        self.usable = {t.column: prev is not None and _same_type(prev, t) for t in planned}
        base = df.withColumn("__ts_hash", F.sha2(F.col(f"`{text_column}`"), 256))
        if prev is not None:
            kept = [F.col(f"`{id_column}`").alias("__ts_id"), F.col(TEXT_HASH).alias("__ts_prev_hash"),
                    F.col(TASK_KEYS).alias("__ts_prev_keys"), F.lit(True).alias("__ts_prev")]
            kept += [F.col(f"`{c}`").alias(f"__ts_prev_{i}_{c}")
                     for i, t in enumerate(planned) if self.usable[t.column] for c in t.output_columns]
            base = base.join(prev.select(*kept), F.col(f"`{id_column}`") == F.col("__ts_id"), "left").drop("__ts_id")
        reasons = []
        for i, t in enumerate(planned):
            reasons.append(self._reason(i, t, prev is not None).alias(f"__ts_why_{i}"))
        self.joined = base.select("*", *reasons)
        self._inputs = [F.when(F.col(f"__ts_why_{i}").isNotNull(), F.col(f"`{text_column}`")).alias(f"__ts_in_{i}")
                        for i in range(len(planned))]
        self._profile, self._partitions, self._df_columns = profile, partitions, df.columns
        self.id_counts: tuple[int, int, int] | None = None  # (rows, ids, distinct ids), set by counts()

    def _reason(self, i: int, t: PlannedTask, has_prev: bool):
        """Why row's result for task ``i`` is computed (one of REASONS), or null when it is reused."""
        from pyspark.sql import functions as F

        if not has_prev:
            return F.lit("new")
        if not self.usable[t.column]:
            return F.when(F.col("__ts_prev").isNull(), F.lit("new")).otherwise(F.lit("model_changed"))
        why = F.when(F.col("__ts_prev").isNull(), F.lit("new")) \
               .when(~F.col("__ts_hash").eqNullSafe(F.col("__ts_prev_hash")), F.lit("text_changed")) \
               .when(~F.coalesce(F.col("__ts_prev_keys")[t.column] == F.lit(self.keys[t.column]), F.lit(False)),
                     F.lit("model_changed"))
        if self.retry_errors:
            error = F.col(f"`__ts_prev_{i}_{t.error_column}`") if t.error_column else \
                F.col(f"`__ts_prev_{i}_{t.column}`").getField("error")
            why = why.when(F.coalesce(error.rlike(MODEL_FAILURE), F.lit(False)), F.lit("retry"))
        return why

    def computed(self):
        """A boolean Column of :attr:`joined`: the row is computed for at least one task."""
        from pyspark.sql import functions as F

        return F.coalesce(*[F.col(f"__ts_why_{i}") for i in range(len(self.planned))]).isNotNull()

    def output(self, counts: dict | None = None, *, changed: str | None = None):
        """The complete new output: ``df``'s columns, each task's column(s), then the bookkeeping columns
        (and, with ``changed``, a boolean column of that name: the row is computed for at least one task).

        With this run's :meth:`counts`, a task that computes no row is not run at all (no Spark stage, no
        model load); with none of them to run, the output is the join of the input with the previous output."""
        from pyspark.sql import functions as F

        idle = {c for c, n in (counts or {}).get("tasks", {}).items() if n["computed"] == 0 and self.usable[c]}
        run = [(i, t) for i, t in enumerate(self.planned) if t.column not in idle]
        computed = self.joined
        if run:
            staged = self.joined.select("*", *[self._inputs[i] for i, _ in run])
            computed = apply_tasks(staged, self.text_column, [t for _, t in run], profile=self._profile,
                                   partitions=self._partitions, inputs=[f"__ts_in_{i}" for i, _ in run])
        cols = [F.col(f"`{c}`") for c in self._df_columns]
        for i, t in enumerate(self.planned):
            for c in t.output_columns:
                new = F.col(f"`{c}`")
                if t.column in idle:
                    new = F.col(f"`__ts_prev_{i}_{c}`")
                elif self.usable[t.column]:
                    new = F.when(F.col(f"__ts_why_{i}").isNull(), F.col(f"`__ts_prev_{i}_{c}`")).otherwise(new)
                cols.append(new.alias(c))
        keys = F.create_map(*[x for t in self.planned for x in (F.lit(t.column), F.lit(self.keys[t.column]))])
        flag = [self.computed().alias(changed)] if changed else []
        return computed.select(*cols, F.col("__ts_hash").alias(TEXT_HASH), keys.alias(TASK_KEYS), *flag)

    def _check_previous(self) -> int:
        """The previous output's row count, once its ids are known to be unique and present (a duplicate there
        would repeat input rows in the join): InputError naming the previous output otherwise."""
        from pyspark.sql import functions as F

        col = F.col(f"`{self.id_column}`")
        rows, ids, distinct = self.previous.agg(F.count(F.lit(1)), F.count(col), F.countDistinct(col)).first()
        where = self.previous_at or "the previous output"
        if ids < rows:
            raise InputError("output.path", where, f"the previous output has {rows - ids} rows with a null "
                             f"{self.id_column!r}; allowed: a previous output with one row per id (rewrite it "
                             "with output.mode overwrite)", source=self.source)
        if distinct < ids:
            few = self.previous.groupBy(self.id_column).count().filter("count > 1").orderBy(self.id_column) \
                .limit(5).collect()
            raise InputError("output.path", where, f"the previous output has {ids - distinct} duplicate "
                             f"{self.id_column!r} values (e.g. {', '.join(repr(r[0]) for r in few)}); allowed: a "
                             "previous output with one row per id (rewrite it with output.mode overwrite)",
                             source=self.source)
        return rows

    def counts(self) -> dict:
        """Per task column: rows computed (by reason) and reused; plus rows dropped from the previous output."""
        from pyspark.sql import functions as F

        aggs = [F.count(F.lit(1)).alias("rows")]
        for i, _ in enumerate(self.planned):
            why = F.col(f"__ts_why_{i}")
            aggs += [F.count(F.when(why.isNull(), 1)).alias(f"{i}_reused")]
            aggs += [F.count(F.when(why == r, 1)).alias(f"{i}_{r}") for r in REASONS]
        if self.full_reason is None and self.previous is not None:
            aggs.append(F.count("__ts_prev").alias("matched"))
        if self.id_column is not None:  # check_ids' counts, in the same pass
            aggs += [F.count(F.col(f"`{self.id_column}`")).alias("__ids"),
                     F.countDistinct(F.col(f"`{self.id_column}`")).alias("__distinct")]
        previous_rows = self._check_previous() if self.full_reason is None and self.previous is not None else 0
        row = self.joined.agg(*aggs).first().asDict()
        if self.id_column is not None:
            self.id_counts = (row["rows"], row["__ids"], row["__distinct"])
        dropped = previous_rows - row["matched"] if "matched" in row else 0
        tasks = {}
        for i, t in enumerate(self.planned):
            computed = {r: row[f"{i}_{r}"] for r in REASONS}
            tasks[t.column] = {"key": self.keys[t.column], "computed": sum(computed.values()),
                               "reused": row[f"{i}_reused"], "dropped": dropped, "computed_because": computed}
        return {"rows": row["rows"], "dropped": dropped, "full_recompute": self.full_reason, "tasks": tasks}


def _unusable(previous, id_column: str | None) -> str | None:
    """Why ``previous`` cannot be reused (every row is then computed), or None."""
    if previous is None:
        return "no previous output"
    missing = [c for c in (id_column, *BOOKKEEPING) if c not in previous.columns]
    if missing:
        return f"the previous output has no {', '.join(missing)} column (not written incrementally)"
    return None


def _same_type(previous, t: PlannedTask) -> bool:
    """The previous output holds ``t``'s column(s) with the types this run writes."""
    from pyspark.sql.types import _parse_datatype_string

    types = [dict(t.plan.fields)[t.value_field], "string"] if t.value_field else [t.plan.struct_type()]
    return all(c in previous.columns and previous.schema[c].dataType.simpleString()
               == _parse_datatype_string(ddl).simpleString() for c, ddl in zip(t.output_columns, types))


def check_ids(df, id_column: str, *, source: str | None = None, counted: tuple[int, int, int] | None = None) -> None:
    """Incremental runs key rows by id: no null ids, no duplicates (InputError naming a few). ``counted``:
    (rows, non-null ids, distinct ids) of ``df`` when already counted (``Incremental.id_counts``)."""
    from pyspark.sql import functions as F

    if id_column not in df.columns:
        raise ConfigError("input.id_column", id_column, df.columns, source=source)
    if counted is None:
        counted = tuple(df.agg(F.count(F.lit(1)), F.count(F.col(f"`{id_column}`")),
                               F.countDistinct(F.col(f"`{id_column}`"))).first())
    n, ids, distinct = counted
    if ids < n:
        raise InputError("input.id_column", id_column, f"{n - ids} rows have a null id; an incremental "
                         "run needs an id on every row", source=source)
    if distinct < ids:
        few = df.groupBy(id_column).count().filter("count > 1").orderBy(id_column).limit(5).collect()
        raise InputError("input.id_column", id_column, f"{ids - distinct} duplicate ids (e.g. "
                         f"{', '.join(repr(r[0]) for r in few)}); an incremental run needs unique ids", source=source)


def analyze(df, tasks: Iterable[Any], *, previous=None, text_column: str = "text", id_column: str | None = None,
            catalog=None, retry_errors: bool = True):
    """``df`` with one column per task, reusing ``previous`` (an earlier output of this function or of the
    analyze job with ``output.mode: incremental``) where the text and the task's model and options are the same.

    ``tasks``: entries like the job YAML's, e.g. ``[{"task": "sentiment"}, {"task": "embed", "column": "vec"}]``.
    Without ``id_column`` (or ``previous``) every row is computed; the result still carries the bookkeeping
    columns, so it can be the next run's ``previous``. Write the result to a new location (or through the job,
    which commits atomically) before reading it as the next ``previous``: Spark reads lazily.
    ``retry_errors``: compute again the rows whose previous result is a null with a model failure as reason.

    Args:
        df: the input DataFrame, holding ``text_column`` (and ``id_column``).
        tasks: task entries as in a job YAML (``task``, optional ``column`` and ``model``, the task's options).
        previous: an earlier output to reuse results from; default None: every row is computed.
        text_column: the text column's name; default ``text``.
        id_column: the row id's column (distinct, not null), required with ``previous``; default None.
        catalog: the model catalog whose defaults apply; default None: conf/models.yml (or $TEXTSPARK_MODELS).
        retry_errors: compute again rows whose previous result failed in the model; default True.

    Returns:
        DataFrame: every input row and column, one column per task (embed also ``<column>_error``) and the
            bookkeeping columns ``_textspark_text_hash`` and ``_textspark_task_keys``. Lazy, like any DataFrame.

    Raises:
        ConfigError: ``previous`` without ``id_column``, or a task entry that is not valid.
        InputError: null or repeated ids in ``df`` or ``previous``.

    Examples:
        On a local session ``spark``, with a tiny random encoder registered as ``tiny-encoder``; the first
        output is written before it is read back as ``previous``:

        >>> import tempfile
        >>> from udfs import analyze
        >>> tasks = [{"task": "embed", "column": "vec", "model": "models:/tiny-encoder@champion"}]
        >>> day1 = spark.createDataFrame([(1, "The match ended in a draw."), (2, "Shares rose.")],
        ...                              "id long, text string")
        >>> first = analyze(day1, tasks, id_column="id")
        >>> first.columns
        ['id', 'text', 'vec', 'vec_error', '_textspark_text_hash', '_textspark_task_keys']
        >>> path = tempfile.mkdtemp() + "/day1"
        >>> first.write.parquet(path)
        >>> day2 = spark.createDataFrame([(1, "The match ended in a draw."), (3, "A new phone.")],
        ...                              "id long, text string")
        >>> out = analyze(day2, tasks, previous=spark.read.parquet(path), id_column="id")
        >>> [(r.id, len(r.vec)) for r in out.orderBy("id").collect()]
        [(1, 32), (3, 32)]
    """
    if id_column is None and previous is not None:
        raise ConfigError("id_column", None, "a column name: reusing a previous output needs row ids")
    planned = plan_tasks(as_tasks(tasks), catalog=catalog)
    if id_column is not None:
        check_ids(df, id_column)
    return Incremental(df, planned, previous, text_column=text_column, id_column=id_column,
                       retry_errors=retry_errors).output()
