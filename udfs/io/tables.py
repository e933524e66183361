"""Results in catalog tables (``output.table``): the analyze job's rows written through the session's catalog.

A table is written by its engine, in one commit per write, with no staging folder, lease or manifest file:

- ``overwrite``: ``df.writeTo(name).createOrReplace()`` (an atomic replace on Delta and Iceberg);
- ``append``: ``.append()``, or ``.create()`` when the table is absent;
- ``error``: ``.create()``; an existing table is an InputError (exit 3) before any model loads;
- ``ignore``: nothing when the table exists;
- ``incremental``: one ``MERGE INTO`` keyed by ``input.id_column``: the rows whose text hash or task key changed
  (or that are new, or whose previous result was a model failure) are computed (udfs/tasks/incremental.py,
  with the table as the previous output) and updated or inserted; the others are not touched; the ids the
  input no longer holds are deleted only with ``delete_missing: true``. It needs a format that can MERGE
  (delta, iceberg): a ConfigError otherwise, before any model loads.

``.using(format)`` is passed only when ``output.format`` is given (otherwise the engine's default). The JVM
session's own catalog cannot replace or append to a Parquet (v1) table through DataFrameWriterV2, so there
(a classic session, a format other than delta or iceberg) the same modes go through ``saveAsTable``.

Every row carries the bookkeeping columns of an incremental run (so any mode can follow any other) and two
provenance columns: ``textspark_run_id`` (the job's MLflow run) and ``scored_at`` (when the row was scored;
rows an incremental run reuses keep theirs). The run's manifest goes into the table property
``textspark.manifest`` (and the MLflow run), once the rows are written.

Sail 0.7.2 refuses to write an Iceberg timestamp unless the session's time zone is spelled "UTC": a session
in an alias of UTC (Etc/UTC, GMT...) is set to "UTC" (the same instants) before an Iceberg write; another time
zone fails there with Sail's error.
"""
from __future__ import annotations

import json

from udfs.errors import InputError
from udfs.io.sections import OutputConf
from udfs.io.output import schema_mismatch
from udfs.io.storage import join, storage_for
from udfs.errors import ConfigError
from udfs.runtime.progress import is_connect
from udfs.tasks.incremental import TASK_KEYS, TEXT_HASH, Incremental, task_key

RUN_ID, SCORED_AT = "textspark_run_id", "scored_at"
PROVENANCE = (RUN_ID, SCORED_AT)
MANIFEST_PROPERTY = "textspark.manifest"
MERGE_FORMATS = ("delta", "iceberg")
STREAM_LOG = "_spark_metadata"  # a stream's file sink log in a table's folder (udfs/io/stream.py)
CHANGED = "__ts_changed"  # the MERGE source's flag: the row was computed by this run
SOURCE_VIEW = "__textspark_merge_source"
TIME_ZONE = "spark.sql.session.timeZone"
UTC_ALIASES = ("ETC/UTC", "ETC/UCT", "ETC/GMT", "ETC/ZULU", "GMT", "UCT", "ZULU", "Z", "UNIVERSAL", "ETC/UNIVERSAL")


def quoted(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


class TableOutput:
    """``output.table`` for one run: its checks (before any model loads), the write, the row check's rows
    and the manifest property."""

    def __init__(self, conf: OutputConf, spark, *, id_column: str | None = None, source: str | None = None,
                 streaming: bool = False):
        self.conf, self.spark, self.name, self.source = conf, spark, conf.table, source
        self.streaming = streaming  # input.stream: the table sink appends (udfs/io/stream.py)
        self.id_column = id_column
        self.exists = spark.catalog.tableExists(self.name)
        self.provider = self._provider() if self.exists else None
        # what the table is (or will be) stored as: the given format, the existing table's, the engine's default
        self.format = conf.format or self.provider or \
            (spark.conf.get("spark.sql.sources.default", None) or "parquet").lower()
        self.v1 = not is_connect(spark) and self.format not in MERGE_FORMATS
        self._check()
        if self.format == "iceberg" and is_connect(spark) and \
                (spark.conf.get(TIME_ZONE, None) or "").upper() in UTC_ALIASES:
            spark.conf.set(TIME_ZONE, "UTC")  # Sail 0.7.2 writes Iceberg timestamps (scored_at) only in "UTC"

    def _error(self, problem: str) -> InputError:
        return InputError("output.table", self.name, problem, source=self.source)

    def _described(self, key: str) -> str | None:
        rows = self.spark.sql(f"DESCRIBE TABLE EXTENDED {self.name}").collect()
        found = [r[1] for r in rows if (r[0] or "").strip() == key]
        return found[0] if found and found[0] else None

    def _provider(self) -> str | None:
        provider = self._described("Provider")
        return provider.lower() if provider else None

    def location(self) -> str | None:
        """Where the existing table's files are (a URI: ``file:/...``), or None."""
        return self._described("Location") if self.exists else None

    def stream_log(self) -> bool:
        """The table's folder holds Spark's file sink log: a stream writes it."""
        where = self.location()
        return where is not None and storage_for(where, self.spark).exists(join(where, STREAM_LOG))

    def _check(self) -> None:
        mode = self.conf.mode
        if self.conf.format in MERGE_FORMATS and not is_connect(self.spark) and not self._has_source(self.conf.format):
            raise ConfigError("output.format", self.conf.format, "parquet (this Spark session has no "
                              f"{self.conf.format} data source: add its package to the session, or run on an "
                              "engine that has it)", source=self.source)
        merged = self.provider or self.format  # a MERGE goes into the existing table, whatever format is given
        if mode == "incremental" and merged not in MERGE_FORMATS:
            why = "the table's" if self.provider else "the given" if self.conf.format else "the engine's default"
            raise ConfigError("output.mode", "incremental", f"overwrite, append, error, ignore for format "
                              f"{merged} ({why}; incremental MERGEs into the table: format delta or iceberg)",
                              source=self.source)
        if self.exists and mode in ("error", "errorifexists"):
            raise self._error(f"the table exists and mode is {mode}; allowed: a new table, or mode overwrite, "
                              "append, ignore or incremental")
        if self.exists and mode == "append" and self.v1 and not self.streaming and self.stream_log():
            raise self._error("mode append: a stream writes this table (Spark's file sink log _spark_metadata lists "
                              "its files, and readers read only those), so rows appended here would not be read; "
                              "append through the stream (input.stream), or overwrite the table")

    def _has_source(self, fmt: str) -> bool:
        jvm = self.spark._jvm
        try:
            jvm.org.apache.spark.sql.execution.datasources.DataSource.lookupDataSource(
                fmt, self.spark._jsparkSession.sessionState().conf())
            return True
        except Exception:  # noqa: BLE001 - py4j's DATA_SOURCE_NOT_FOUND
            return False

    @property
    def skip(self) -> bool:
        return self.exists and self.conf.mode == "ignore"

    @property
    def merging(self) -> bool:
        return self.exists and self.conf.mode == "incremental"

    def previous(self):
        """The table as the previous output of an incremental run (None when it does not exist yet)."""
        return self.spark.table(self.name) if self.exists else None

    # -- the rows ------------------------------------------------------------------------------------------

    @staticmethod
    def with_bookkeeping(out, planned, text_column: str):
        """A plain run's rows plus an incremental run's bookkeeping columns (the text hash, the task keys)."""
        from pyspark.sql import functions as F

        keys = F.create_map(*[x for t in planned for x in (F.lit(t.column), F.lit(task_key(t)))])
        return out.select("*", F.sha2(F.col(quoted(text_column)), 256).alias(TEXT_HASH), keys.alias(TASK_KEYS))

    @staticmethod
    def with_provenance(out, run_id: str):
        from pyspark.sql import functions as F

        return out.select("*", F.lit(run_id).alias(RUN_ID), F.current_timestamp().alias(SCORED_AT))

    @staticmethod
    def merge_source(inc: Incremental, counts: dict, run_id: str):
        """The complete new output of ``inc`` with provenance and the CHANGED flag (computed for some task).
        Reused rows are not written by the MERGE, so they keep their run id and scored_at."""
        from pyspark.sql import functions as F

        out = inc.output(counts, changed=CHANGED)
        return out.select(*[F.col(quoted(c)) for c in out.columns if c != CHANGED], F.lit(run_id).alias(RUN_ID),
                          F.current_timestamp().alias(SCORED_AT), F.col(CHANGED))

    @staticmethod
    def changed_rows(inc: Incremental) -> int:
        """The rows an incremental run computes for at least one task (counted on the join: no model runs)."""
        return inc.joined.filter(inc.computed()).count()

    def check(self, out, df) -> None:
        """append and incremental on an existing table: the rows' columns must be the table's (names, order,
        types); append with an id column: no id the table already holds."""
        if not self.exists or self.conf.mode not in ("append", "incremental"):
            return
        self.check_schema(out)
        table = self.spark.table(self.name)
        if self.conf.mode == "append" and self.id_column and self.id_column in table.columns:
            dupes = df.select(self.id_column).join(table.select(self.id_column), on=self.id_column, how="left_semi")
            count = dupes.count()
            if count:
                raise self._error(f"mode append: {count} rows have input.id_column {self.id_column!r} values "
                                  "already in the table; nothing was written")

    def check_schema(self, out) -> None:
        """An existing table's columns (names, order, types) must be those of ``out``."""
        if not self.exists:
            return
        mismatch = schema_mismatch(self.spark.table(self.name).schema, out.drop(CHANGED).schema)
        if mismatch:
            raise self._error(f"mode {self.conf.mode}: {mismatch.replace('existing output', 'table')}; nothing "
                              "was written (rewrite the table with mode overwrite)")

    # -- the write ------------------------------------------------------------------------------------------

    def _writer(self, out):
        w = out.writeTo(self.name)
        return w.using(self.conf.format) if self.conf.format else w

    def _v1(self, out, mode: str) -> None:
        w = out.write.mode(mode)
        (w.format(self.conf.format) if self.conf.format else w).saveAsTable(self.name)

    def write(self, out) -> None:
        """Write ``out`` (this run's rows; for a MERGE the source with its CHANGED flag) in the mode."""
        mode = "error" if self.conf.mode == "errorifexists" else self.conf.mode
        if mode == "incremental" and not self.exists:
            out, mode = out.filter(CHANGED).drop(CHANGED), "error"  # the first run: every row is new
        if mode == "incremental":
            return self._merge(out)
        try:
            if self.v1:
                self._v1(out, {"overwrite": "overwrite", "append": "append", "error": "error"}[mode])
            elif mode == "overwrite":
                self._writer(out).createOrReplace()
            elif mode == "append" and self.exists:
                out.writeTo(self.name).append()
            else:
                self._writer(out).create()
        except Exception as exc:  # noqa: BLE001 - another job created the table since the check
            if mode == "error" and "already exists" in str(exc).lower():
                raise self._error(f"the table exists and mode is {self.conf.mode}; allowed: a new table, or mode "
                                  "overwrite, append, ignore or incremental") from None
            raise

    def _merge(self, source) -> None:
        cols = [c for c in source.columns if c != CHANGED]
        key = quoted(self.id_column)
        sets = ", ".join(f"{quoted(c)} = s.{quoted(c)}" for c in cols)
        statement = (f"MERGE INTO {self.name} t USING {SOURCE_VIEW} s ON t.{key} = s.{key}\n"
                     f"WHEN MATCHED AND s.{CHANGED} THEN UPDATE SET {sets}\n"
                     f"WHEN NOT MATCHED THEN INSERT ({', '.join(map(quoted, cols))}) "
                     f"VALUES ({', '.join('s.' + quoted(c) for c in cols)})")
        if self.conf.delete_missing:
            statement += "\nWHEN NOT MATCHED BY SOURCE THEN DELETE"
        source.createOrReplaceTempView(SOURCE_VIEW)
        try:
            self.spark.sql(statement).collect()
        finally:
            self.spark.catalog.dropTempView(SOURCE_VIEW)

    def rows_of(self, run_id: str):
        """The table's rows this run wrote."""
        from pyspark.sql import functions as F

        return self.spark.table(self.name).filter(F.col(RUN_ID) == run_id)

    def count(self) -> int:
        return self.spark.table(self.name).count()

    def set_manifest(self, summary: dict) -> None:
        """The run's summary as the table property ``textspark.manifest`` (compact JSON)."""
        text = json.dumps(summary, sort_keys=True, default=str, separators=(",", ":"))
        literal = text.replace("\\", "\\\\").replace("'", "\\'")
        self.spark.sql(f"ALTER TABLE {self.name} SET TBLPROPERTIES ('{MANIFEST_PROPERTY}' = '{literal}')").collect()

    def row_check(self, wrote: int, computed: int) -> None:
        if wrote != computed:
            raise self._error(f"this run wrote {wrote} rows (textspark_run_id = this run) for {computed} rows it "
                              "computed; the table holds what was written")
