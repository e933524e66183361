"""``input.stream``: the analyze job's tasks over Structured Streaming.

``readStream`` of the input folder (parquet, json, csv; the schema is taken from the files already there) or
table -> the same tasks as a batch run -> ``writeStream`` to the parquet output folder with the checkpoint, or
with ``output.table`` through Spark's table sink (``toTable``: :class:`TableSink`, each row with the provenance
columns of udfs/io/tables.py; on the JVM catalog's Parquet tables the file sink into the table's folder, so all
that follows holds for the table's folder too; Sail 0.7.2 has no streaming table sink: a one-line ConfigError).
Spark's file sink commits each micro-batch exactly once (its ``_spark_metadata`` log lists the committed
files; Spark readers of the folder read only those), and the checkpoint records which input files were
processed, so a re-run, or a run after a crash, processes each input file once.

``trigger: available_now`` runs one ``availableNow`` query: what is there, then it stops (run it from a
scheduler). ``"<n> seconds"`` runs one every n seconds until stopped (Ctrl-C, or ``stop`` set): each checked
first, as below. Each Python worker keeps its models between micro-batches while Spark keeps the worker
(``spark.python.worker.reuse``); Spark stops Python workers idle for a minute (a fixed timeout in
PythonWorkerFactory), so with triggers further apart than that each micro-batch loads its models again, from
the per-host model cache (no registry download).

What a run adds around Spark's query, so that the folder is trustworthy for every reader:

- **Only committed files in the output.** A crash mid-batch leaves that batch's files in the folder, whole or
  cut short, and the restarted query writes the batch again: Spark readers skip them, but pandas and pyarrow
  read every data file, so they read rows twice or fail. A run deletes the data files no micro-batch
  committed when it starts, before its query (a checkpoint serves one query at a time, Spark's own rule, and
  the output's lease admits one job), and when it ends (its query stopped). An output folder that holds data
  files but no ``_spark_metadata`` (another writer's) is refused. At any time, :func:`committed_files` lists the
  committed files (``pd.read_parquet(committed_files(path))``).
- **No input file read as nulls.** Spark reads a folder with one schema: a file without the text column
  gives rows of null text (Parquet, JSON), and a CSV file is read by position whatever its header says.
  Before each query, every file it may read (new ones, and those of a micro-batch planned but not committed)
  is checked from its own schema (Parquet: the footer; JSON: its records; CSV: the header line): the text
  column a string, the id column an integer or a string, a CSV header in the stream's order. A bad file stops
  the run (:class:`InputError`, exit 3, naming the file and what is expected) or, with
  ``bad_files: quarantine``, is moved with ``<name>.reason.txt`` to ``input.stream.quarantine`` (default
  ``<input>/_quarantine``, on the input's filesystem and hidden from Spark and pandas readers) and listed in the
  summary. A file landing after the check but before the query lists the folder is caught in the
  micro-batch (every row's ``_metadata.file_path`` must be a checked file): the batch fails uncommitted, and
  the run checks again and restarts the query.
"""
from __future__ import annotations

import re
import threading
import time

import pandas as pd

from udfs.errors import InputError
from udfs.io.inputs import reader_options
from udfs.io.jobconf import JobConf
from udfs.io.stream_input import check_input_files, check_quarantine
from udfs.io.stream_sinks import FolderSink, TableSink
from udfs.tasks.pipeline import PlannedTask, apply_tasks

GUARD = "textspark stream: an input file the job did not check: "
GUARD_RESTARTS = 3  # checks and query restarts per run after files landing between a check and a query


def run_stream(conf: JobConf, planned: list[PlannedTask], spark, *, stop: threading.Event | None = None,
               sink: "FolderSink | TableSink | None" = None, run_id: str | None = None) -> dict:
    """Run the stream until its trigger ends it (or ``stop`` is set); the summary it prints: this run's rows
    and micro-batches, the files quarantined and the uncommitted output files removed. ``sink``: the output
    (default the folder ``output.path``; :func:`table_sink` for ``output.table``, checked before the job's
    MLflow run opens); ``run_id``: the job's MLflow run, on a table's rows."""
    started, stream = time.time(), conf.input.stream
    stop = stop or threading.Event()
    check_quarantine(conf)
    sink = sink or FolderSink(conf, spark)
    removed = sink.prepare()
    progress, quarantined, schema, restarts = [], [], None, 0  # restarts: after a file landed mid-check
    try:
        while not stop.is_set():
            tick = time.time()
            with sink.holding():  # a table: the local catalog, while the query runs (udfs/metastore.py)
                admitted, schema = check_input_files(conf, spark, schema, quarantined, sink.folder())
                query = start_query(conf, planned, spark, schema, admitted, started, sink, run_id)
                try:
                    await_query(query, stop)
                except GuardTripped as tripped:
                    restarts += 1
                    if restarts > GUARD_RESTARTS:
                        raise InputError("input.path", tripped.file, "the stream read it, but it was not in the "
                                         f"folder's listing after {GUARD_RESTARTS} checks (is input.path a glob?)",
                                         source=conf.source) from None
                    continue
                finally:
                    progress += [p for p in query.recentProgress if p]
            if stream.trigger == "available_now":
                break
            stop.wait(max(0.0, int(stream.trigger.split()[0]) - (time.time() - tick)))
    except KeyboardInterrupt:
        pass
    finally:
        removed += sink.remove_uncommitted()  # the query has stopped: none is in flight
    batches = [p for p in progress if p.get("numInputRows", 0)]
    summary = {
        "output": conf.output.target, "mode": "stream", "trigger": stream.trigger, "checkpoint": stream.checkpoint,
        "rows": sum(int(p["numInputRows"]) for p in batches), "micro_batches": len(batches),
        "seconds": round(time.time() - started, 1),
        "tasks": [{"task": t.task, "column": t.column, "model": t.plan.model.label, "model_uri": t.plan.model.uri}
                  for t in planned],
        "input": {"path": conf.input.path, "format": conf.input.format, "text_column": conf.input.text_column},
        "spark_master": spark.conf.get("spark.master", None),
        "quarantined": quarantined, "uncommitted_removed": len(removed), "late_file_restarts": restarts,
    }
    sink.finish(summary, run_id)
    return summary


# -- the query ---------------------------------------------------------------------------------------------------

class GuardTripped(Exception):
    """A micro-batch read a file the job had not checked (it landed after the check); the query failed."""

    def __init__(self, file: str):
        super().__init__(file)
        self.file = file


def start_query(conf: JobConf, planned: list[PlannedTask], spark, schema, admitted: set[str] | None, started: float,
                sink: "FolderSink | TableSink", run_id: str | None = None):
    """One ``availableNow`` query of the input (its file rows limited to ``admitted``) through the tasks to the
    output's sink (the folder's file sink, or the table's)."""
    inp = conf.input
    if inp.format == "table":
        df = spark.readStream.table(inp.path)
    else:
        df = spark.readStream.options(**reader_options(inp.format, inp.options)).schema(schema) \
                  .format(inp.format).load(inp.path)
        df = only_checked_files(df, admitted)
    try:
        out = sink.rows(apply_tasks(df, inp.text_column, planned, partitions=conf.inference.partitions), planned,
                        run_id)
        writer = out.writeStream.outputMode("append").option("checkpointLocation", inp.stream.checkpoint) \
                    .queryName(f"textspark-analyze-{int(started)}").trigger(availableNow=True)
        return sink.start(writer)
    except Exception as exc:  # noqa: BLE001 - an engine that cannot run it says so in one line
        sink.unsupported(exc)


def only_checked_files(df, admitted: set[str]):
    """``df`` whose rows must come from ``admitted`` files (plain paths): a row of any other file fails its
    task with GUARD and the file, so no row of an unchecked file reaches the sink."""
    from pyspark.sql.functions import pandas_udf

    allowed, marker = frozenset(admitted), GUARD

    @pandas_udf("boolean")
    def checked(paths: pd.Series) -> pd.Series:  # defined here: pickled by value, workers need not import udfs.io
        from urllib.parse import unquote as decode, urlsplit as parse

        for path in paths.unique():
            if decode(parse(path).path) not in allowed:
                raise RuntimeError(marker + path)
        return pd.Series(True, index=paths.index)

    return df.filter(checked(df.metadataColumn("_metadata").getField("file_path")))


def await_query(query, stop: threading.Event) -> None:
    """Wait for ``query`` to end; stop it when ``stop`` is set or on Ctrl-C. A failure of the guard
    (:func:`only_checked_files`) raises GuardTripped, any other failure as Spark raised it."""
    try:
        while not query.awaitTermination(1):
            if stop.is_set():
                query.stop()
    except KeyboardInterrupt:
        stop.set()
        query.stop()
    except Exception as exc:  # noqa: BLE001 - StreamingQueryException (classic or Connect): is it the guard?
        found = re.search(re.escape(GUARD) + r"(\S+)", str(exc))
        if found is None:
            raise
        raise GuardTripped(found.group(1)) from None
