"""``input.stream``: the analyze job's tasks over Structured Streaming.

``readStream`` of the input folder (parquet, json, csv; the schema is taken from the files already there) or
table -> the same tasks as a batch run -> ``writeStream`` to the parquet output folder with the checkpoint, or
with ``output.table`` through Spark's table sink (``toTable``: :class:`TableSink`, each row with the provenance
columns of jobs/tables.py; on the JVM catalog's Parquet tables the file sink into the table's folder, so all
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

import bz2
import csv
import fnmatch
import gzip
import io
import json
import re
import threading
import time
from contextlib import nullcontext
from urllib.parse import unquote, urlsplit

import pandas as pd

from jobs.common import InputError, manifest_json, reader_options
from jobs.config import JobConf
from jobs.output import MANIFEST
from jobs.storage import hidden, join, split, storage_for
from udfs.errors import ConfigError
from udfs.tasks.pipeline import PlannedTask, apply_tasks

SINK_LOG = "_spark_metadata"  # the file sink's log, in the output folder
QUARANTINE = "_quarantine"  # the default quarantine folder, inside the input folder
GUARD = "textspark stream: an input file the job did not check: "
GUARD_RESTARTS = 3  # checks and query restarts per run after files landing between a check and a query
# Sail 0.7.2's answers to a stream into a table (toTable; the file guard's _metadata column)
NOT_STREAMING = ("streaming query must write data to a sink", "resolve metadata column")


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


class FolderSink:
    """``output.path``: Spark's file sink into the folder, its manifest file written at the end."""

    def __init__(self, conf: JobConf, spark):
        self.conf, self.spark, self.path = conf, spark, conf.output.path

    def prepare(self) -> list[str]:
        return prepare_output(self.path, self.spark, source=self.conf.source)

    def holding(self):
        return nullcontext()

    def folder(self) -> str:
        return self.path

    def unsupported(self, exc: Exception) -> None:
        raise exc

    def rows(self, out, planned: list[PlannedTask], run_id: str | None):
        return out

    def start(self, writer):
        return writer.format(self.conf.output.format).start(self.path)

    def remove_uncommitted(self) -> list[str]:
        return remove_uncommitted(self.path, self.spark)

    def finish(self, summary: dict, run_id: str | None) -> None:
        storage_for(self.path, self.spark).write(join(self.path, MANIFEST), manifest_json(**summary).encode())


def table_sink(conf: JobConf, spark) -> "TableSink":
    """``output.table``: checked (jobs/tables.py, and the stream-only checks) before the MLflow run opens."""
    return TableSink(conf, spark)


class TableSink:
    """``output.table``: Spark's table sink (``writeStream.toTable``). For a file-format table (the JVM
    catalog's Parquet tables) that is the file sink into the table's folder: each micro-batch's files are listed
    in its ``_spark_metadata`` when the batch commits, and the table's readers read only those, so a batch a
    killed driver left half-written is not read, and the restarted query (same checkpoint) writes it again, once.
    Each row carries the bookkeeping and provenance columns of a batch run (``textspark_run_id``: this run;
    ``scored_at``: its micro-batch's time). The uncommitted files are removed before and after each run, as for
    a folder; the run's manifest goes into the table property ``textspark.manifest`` at the end, once this
    run's rows (``textspark_run_id``) are counted equal to its micro-batches' input rows."""

    def __init__(self, conf: JobConf, spark):
        from jobs.tables import TableOutput

        self.conf, self.spark, self.name = conf, spark, conf.output.table
        with self.holding():
            self.table = TableOutput(conf.output, spark, id_column=conf.input.id_column, source=conf.source,
                                     streaming=True)
            self._location = self.table.location()

    def holding(self):
        from udfs import metastore

        return metastore.holding(self.spark, f"streaming into table {self.name}")

    def folder(self) -> str | None:
        """The table's folder (a plain path when local), once the table exists."""
        if self._location is None and self.spark.catalog.tableExists(self.name):
            self.table.exists = True
            self._location = self.table.location()
        if self._location is None:
            return None
        return plain(self._location) if urlsplit(self._location).scheme in ("", "file") else self._location

    def prepare(self) -> list[str]:
        """A table that holds data files no stream committed is refused (its rows would vanish for readers
        once the sink's log exists); a crashed run's files are removed."""
        folder = self.folder()
        return [] if folder is None else prepare_output(folder, self.spark, source=self.conf.source,
                                                        what=("output.table", self.name))

    def rows(self, out, planned: list[PlannedTask], run_id: str | None):
        """The tasks' rows with the bookkeeping and provenance columns; their columns checked against the table's."""
        from jobs.tables import TableOutput

        out = TableOutput.with_bookkeeping(out, planned, self.conf.input.text_column)
        out = TableOutput.with_provenance(out, run_id or "")
        self.table.check_schema(out)
        return out

    def start(self, writer):
        fmt = self.conf.output.format or self.table.provider
        return (writer.format(fmt) if fmt else writer).toTable(self.name)

    def unsupported(self, exc: Exception) -> None:
        """An engine that cannot run the stream into a table (Sail 0.7.2: no streaming table sink, no
        ``_metadata`` column on a stream): a one-line ConfigError; any other error as it was raised."""
        found = next((m for m in NOT_STREAMING if m in str(exc)), None)
        if found is None:
            raise exc
        raise ConfigError("output.table", self.name, "a JVM Spark engine for input.stream into a table (this "
                          f"engine answered: {found}; Sail 0.7.2 runs no streaming query into a table)",
                          source=self.conf.source) from None

    def remove_uncommitted(self) -> list[str]:
        with self.holding():
            folder = self.folder()
        return [] if folder is None else remove_uncommitted(folder, self.spark)

    def finish(self, summary: dict, run_id: str | None) -> None:
        with self.holding():
            self.table.exists = self.spark.catalog.tableExists(self.name)
            wrote = self.table.rows_of(run_id or "").count() if self.table.exists else 0
            self.table.row_check(wrote, summary["rows"])
            summary.update(run_id=run_id, output_rows=self.table.count() if self.table.exists else 0,
                           table={"name": self.name, "format": self.conf.output.format or self.table.provider
                                  or self.table.format, "location": self._location})
            if self.table.exists:
                self.table.set_manifest(summary)


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
    def checked(paths: pd.Series) -> pd.Series:  # defined here: pickled by value, workers need not import jobs
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


# -- the output folder: committed files only ------------------------------------------------------------------

def prepare_output(path: str, spark, *, source: str | None = None,
                   what: tuple[str, str] | None = None) -> list[str]:
    """Before the query: refuse a folder (``what``: a table's key and name) of data files no stream committed;
    delete a crashed run's files."""
    storage = storage_for(path, spark)
    if not storage.exists(join(path, SINK_LOG)):
        data = [rel for rel in storage.files(path) if not hidden(rel)] if storage.is_dir(path) else []
        if data:
            files = "1 data file" if len(data) == 1 else f"{len(data)} data files"
            key, value = what or ("output.path", path)
            new = "table" if what else "folder"
            raise InputError(key, value, f"it holds {files} no stream committed (no {SINK_LOG}): Spark "
                             "readers of a stream's output see only the files its log lists, so these rows would "
                             f"vanish for them; write the stream to a new {new}", source=source)
        return []
    return remove_uncommitted(path, spark)


def committed_files(path: str, spark=None) -> list[str]:
    """The data files of a stream's output folder that a micro-batch committed, as Spark's readers see them:
    what ``pd.read_parquet(committed_files(path))`` reads while a stream writes, or after a crash before the
    next run removed the rest. Local folders give plain paths, others the URIs in the log.

    Spark's file sink logs each batch's files in ``<path>/_spark_metadata/<batch id>`` and, every
    ``spark.sql.streaming.fileSink.log.compactInterval`` batches (10), all files up to it in
    ``<batch id>.compact``; this reads the latest compact file and the batches after it, as Spark does."""
    storage = storage_for(path, spark)
    if not storage.exists(join(path, SINK_LOG)):
        raise ValueError(f"{path}: no {SINK_LOG} folder: not the output of a stream")
    local = urlsplit(path).scheme in ("", "file")
    return [plain(uri) if local else uri for uri in sink_files(storage, path)]


def remove_uncommitted(path: str, spark=None) -> list[str]:
    """Delete the data files of a stream's output folder that no micro-batch committed; the files removed.
    Only while no query writes the folder: a file of a running batch is not committed yet."""
    storage = storage_for(path, spark)
    if not storage.exists(join(path, SINK_LOG)):
        return []
    committed = sink_files(storage, path)
    paths = {plain(uri) for uri in committed}
    names = {uri.rsplit("/", 1)[-1] for uri in committed}  # a folder moved since: its log names other paths
    removed = []
    for rel in storage.files(path):
        full = join(path, rel)
        if hidden(rel) or f"{plain(path).rstrip('/')}/{rel}" in paths or rel.rsplit("/", 1)[-1] in names:
            continue
        storage.delete(full)
        removed.append(full)
    return removed


def sink_files(storage, path: str) -> list[str]:
    """The committed files in the file sink's log of ``path`` (URIs as logged), adds minus deletes in order."""
    files: dict[str, None] = {}
    for _, entries in read_log(storage, join(path, SINK_LOG)):
        for entry in entries:
            if entry.get("action", "add") == "delete":
                files.pop(entry["path"], None)
            else:
                files[entry["path"]] = None
    return list(files)


def log_batches(storage, folder: str) -> dict[int, str]:
    """The files of a Spark metadata log by batch id: ``<n>`` or ``<n>.compact`` (hidden ones, ``.0.crc`` and
    temporaries, are not part of it)."""
    batches = {}
    for name in storage.list(folder):
        found = re.fullmatch(r"(\d+)(\.compact)?", name)
        if found:
            batches[int(found.group(1))] = name
    return batches


def read_log(storage, folder: str) -> list[tuple[int, list[dict]]]:
    """A Spark metadata log (the file sink's ``_spark_metadata``, a file source's ``<checkpoint>/sources/0``) as
    Spark reads it: the latest ``<n>.compact`` (every entry up to batch n) and each batch after it, in order;
    each file is a version line ``v1`` and one JSON entry per line."""
    batches = log_batches(storage, folder)
    if not batches:
        return []
    compacts = [b for b, name in batches.items() if name.endswith(".compact")]
    first, last = (max(compacts) if compacts else min(batches)), max(batches)
    log = []
    for batch in range(first, last + 1):
        if batch not in batches:
            raise InputError(folder, batch, f"Spark's log lacks batch {batch} (it has {sorted(batches)})")
        lines = storage.read(join(folder, batches[batch])).decode("utf-8").split("\n")
        if lines[0].strip() != "v1":
            raise InputError(join(folder, batches[batch]), lines[0][:20], "a Spark log file starts with v1")
        log.append((batch, [json.loads(line) for line in lines[1:] if line.strip()]))
    return log


def plain(uri: str) -> str:
    """The path of a URI, decoded (``file:///in/a%20b.json`` -> ``/in/a b.json``); a plain path unchanged."""
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme else uri


# -- the input files: checked before a query reads them ---------------------------------------------------------

def check_input_files(conf: JobConf, spark, schema, quarantined: list[dict], output: str | None = None):
    """Check the files the next query may read (:func:`input_state`); bad ones stop the run or are
    quarantined (appended to ``quarantined``). Returns the checked files (plain paths; None for a table) and the
    stream's schema (taken from the folder's files, once per run)."""
    inp = conf.input
    if inp.format == "table":
        return None, schema
    files, processed = input_state(conf, spark, output)
    columns = {f: file_columns(f, inp.format, inp.options, spark) for f in files}
    admitted = set()
    for f in files:
        problem = column_problem(columns[f], inp.text_column, inp.id_column)
        if problem is None:
            admitted.add(f)
        else:
            refuse(conf, spark, f, problem, needs(inp.text_column, inp.id_column), quarantined)
    if schema is None:
        schema = stream_schema(spark, conf, processed)
    if inp.format == "csv" and reader_options("csv", inp.options).get("header", "").lower() == "true":
        for f in sorted(admitted):
            if list(columns[f]) != schema.fieldNames():
                admitted.discard(f)
                refuse(conf, spark, f, f"its header is {', '.join(columns[f])}; Spark reads a CSV file by position, "
                       f"as {', '.join(schema.fieldNames())} (the stream's columns)",
                       f"each CSV file of the stream needs the header {', '.join(schema.fieldNames())}", quarantined)
    return {plain(f) for f in admitted}, schema


def check_quarantine(conf: JobConf) -> None:
    """A quarantine folder inside the input folder must be hidden from the file source (``_`` or ``.``)."""
    root, folder = conf.input.path.rstrip("/"), conf.input.stream.quarantine
    if folder and folder.startswith(root + "/") and not hidden(folder[len(root) + 1:]):
        raise ConfigError("input.stream.quarantine", folder, "a folder outside input.path, or one under it whose "
                          "name starts with _ or . (the stream reads every other folder in input.path)",
                          source=conf.source)


def needs(text_column: str, id_column: str | None) -> str:
    if id_column is None:
        return f"each file of the stream needs the column {text_column} (a string)"
    return (f"each file of the stream needs the columns {text_column} (a string) and {id_column} (an integer or a "
            "string)")


def refuse(conf: JobConf, spark, file: str, problem: str, expected: str, quarantined: list[dict]) -> None:
    """A bad input file: stop the run (InputError), or move it to the quarantine folder with its reason."""
    stream = conf.input.stream
    if stream.bad_files == "stop":
        raise InputError("input.path", file, f"{problem}; {expected}; move it out of the folder, or set "
                         "input.stream.bad_files: quarantine", source=conf.source)
    moved = quarantine(storage_for(conf.input.path, spark), file, conf.input.path,
                       stream.quarantine or join(conf.input.path, QUARANTINE), f"{file}: {problem}; {expected}\n")
    quarantined.append({"file": file, "moved_to": moved, "reason": problem})


def quarantine(storage, file: str, root: str, folder: str, reason: str) -> str:
    """Move ``file`` (under ``root``) to the same relative path under ``folder``, a free name if taken, with
    ``<name>.reason.txt`` written first beside where it goes; where it went."""
    rel = file[len(root.rstrip("/")) + 1:] if file.startswith(root.rstrip("/") + "/") else split(file)[1]
    target, n = join(folder, rel), 0
    while storage.exists(target) or storage.exists(f"{target}.reason.txt"):
        n += 1
        parent, name = split(join(folder, rel))
        stem, dot, ext = name.partition(".")
        target = join(parent, f"{stem}-{n}{dot}{ext}")
    storage.mkdirs(split(target)[0])
    storage.write(f"{target}.reason.txt", reason.encode())
    storage.rename(file, target)
    return target


def input_state(conf: JobConf, spark, output: str | None = None) -> tuple[list[str], list[str]]:
    """The folder's files the next query may read (those no micro-batch has taken yet, and those of a
    micro-batch planned but not committed: it runs again), and those it has processed. The file source logs
    each batch's files in ``<checkpoint>/sources/0``; a batch is done once ``<checkpoint>/commits/<id>`` or the
    sink's log has it."""
    checkpoint, inp, output = conf.input.stream.checkpoint, conf.input, output or conf.output.path
    ck = storage_for(checkpoint, spark)
    done = max([int(n) for n in ck.list(join(checkpoint, "commits")) if n.isdigit()]
               + list(log_batches(storage_for(output, spark), join(output, SINK_LOG)) if output else []) + [-1])
    taken = {plain(e["path"]): e.get("batchId", batch)
             for batch, entries in read_log(ck, join(checkpoint, "sources", "0")) for e in entries}
    files = input_files(storage_for(inp.path, spark), inp.path, inp.options)
    return [f for f in files if taken.get(plain(f), done + 1) > done], \
        [f for f in files if taken.get(plain(f), done + 1) <= done]


def input_files(storage, path: str, options: dict[str, str]) -> list[str]:
    """The data files a file source reads in the folder ``path``: not hidden (``_``, ``.``), and matching the
    ``pathGlobFilter`` option when given."""
    pattern = {k.lower(): v for k, v in options.items()}.get("pathglobfilter")
    return [join(path, rel) for rel in storage.files(path)
            if not hidden(rel) and (pattern is None or fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], pattern))]


def column_problem(columns: dict[str, str] | str, text_column: str, id_column: str | None) -> str | None:
    """What keeps a file with ``columns`` (name -> Spark type name; a string: why it cannot be read) out of the
    stream, in words; None when the text column is a string and the id column an integer or a string."""
    if isinstance(columns, str):
        return columns
    for name in (text_column, id_column):
        if name is not None and name not in columns:
            return f"has no column {name!r} (its columns: {', '.join(sorted(columns)) or 'none'})"
    if kind(columns[text_column]) not in ("string", "null"):
        return f"its column {text_column!r} is {columns[text_column]}, not a string"
    if id_column is not None and kind(columns[id_column]) not in ("integer", "string", "null"):
        return f"its column {id_column!r} is {columns[id_column]}, not an integer or a string"
    return None


def kind(spark_type: str) -> str:
    if spark_type == "string":
        return "string"
    if spark_type in ("tinyint", "smallint", "int", "bigint"):
        return "integer"
    return "null" if spark_type in ("void", "null") else "other"


def file_columns(path: str, fmt: str, options: dict[str, str], spark=None) -> dict[str, str] | str:
    """A file's own columns (name -> Spark type name, in the file's order), or why it cannot be read. Local
    files: Parquet's footer (pyarrow), a JSON file's records, a CSV file's header line; other filesystems and
    compressions Python cannot open: Spark reads the file's schema."""
    opts = {k.lower(): v for k, v in reader_options(fmt, options).items()}
    try:
        if urlsplit(path).scheme in ("", "file") and (fmt == "parquet" or opener(path) is not None) \
                and not (fmt == "csv" and opts.get("inferschema", "").lower() == "true"):
            return local_columns(plain(path), fmt, opts)
        return spark_columns(path, fmt, options, spark)
    except Exception as exc:  # noqa: BLE001 - whatever the reader raised: the file is unreadable as fmt
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot be read as {fmt} ({first[:200]})"


ARROW_TYPES = {"int8": "tinyint", "int16": "smallint", "int32": "int", "int64": "bigint", "float": "float",
               "double": "double", "bool": "boolean", "string": "string", "large_string": "string",
               "string_view": "string", "null": "void"}


def spark_columns(path: str, fmt: str, options: dict[str, str], spark) -> dict[str, str]:
    """The schema Spark infers for the one file ``path`` (a Spark job for JSON and CSV)."""
    reader = spark.read.options(**reader_options(fmt, options)).format(fmt)
    return {f.name: f.dataType.simpleString() for f in reader.load(path).schema.fields}


def local_columns(path: str, fmt: str, opts: dict[str, str]) -> dict[str, str]:
    """A local file's columns read by Python: Parquet's footer (pyarrow), a CSV file's header, a JSON file's
    records (``opts``: the reader options, keys in lower case)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return {f.name: ARROW_TYPES.get(str(f.type), str(f.type)) for f in pq.read_schema(path)}
    with opener(path)(path, "rt", encoding=opts.get("encoding", "utf-8"), newline="") as fh:
        if fmt == "csv":
            return csv_header(fh, opts)
        return json_columns(fh, opts.get("multiline", "").lower() == "true")


def opener(path: str):
    """How Python opens ``path`` as text (by its extension, as Hadoop picks a codec), or None."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(".gz"):
        return gzip.open
    if name.endswith(".bz2"):
        return bz2.open
    if re.search(r"\.(deflate|snappy|lz4|zst|zstd|br|xz)$", name):
        return None
    return io.open


def csv_header(fh, opts: dict[str, str]) -> dict[str, str]:
    """A CSV file's columns: its header (``header: true``) or ``_c0, _c1, ...``; Spark reads each as a string."""
    quote, escape = opts.get("quote", '"'), opts.get("escape", "\\")
    reader = csv.reader(fh, delimiter=opts.get("sep", opts.get("delimiter", ",")), quotechar=quote,
                        doublequote=escape == quote, escapechar=None if escape == quote else escape)
    first = next(reader, [])
    names = first if opts.get("header", "").lower() == "true" else [f"_c{i}" for i in range(len(first))]
    return {name: "string" for name in names}


JSON_TYPES = {str: "string", bool: "boolean", int: "bigint", float: "double", list: "array", dict: "struct"}


def json_columns(fh, multiline: bool) -> dict[str, str]:
    """A JSON file's columns and the type Spark would infer for each (conflicting values: string, as Spark;
    only nulls: void). A line that is not a JSON object makes the file unreadable: Spark would read it as a
    row of nulls."""
    if multiline:
        data = json.load(fh)
        records = data if isinstance(data, list) else [data]
    else:
        records = []
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    raise ValueError(f"line {number} is not JSON") from None
    seen: dict[str, set[str]] = {}
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise ValueError(f"record {number} is not a JSON object")
        for key, value in record.items():
            seen.setdefault(key, set()).update(() if value is None else (JSON_TYPES.get(type(value), "string"),))
    return {key: ("void" if not types else types.pop() if len(types) == 1
                  else "double" if types == {"bigint", "double"} else "string") for key, types in seen.items()}


def stream_schema(spark, conf: JobConf, processed: list[str]):
    """The schema the query reads every file with: Spark's, from the files in the folder (bad ones are out of
    it by now). A CSV stream takes it from a file it has processed, when one is left: Spark reads CSV files by
    position, and infers a folder's header from one of its files, which could be a new one in another order."""
    inp = conf.input
    source = processed[0] if inp.format == "csv" and processed else inp.path
    try:
        schema = spark.read.options(**reader_options(inp.format, inp.options)).format(inp.format) \
                      .load(source).schema
    except Exception as exc:  # noqa: BLE001 - AnalysisException (no file yet), py4j / Connect errors
        raise InputError("input.path", inp.path, "a stream takes its schema from the files in the folder; "
                         f"Spark could not read one as {inp.format} ({str(exc).splitlines()[0][:200]})",
                         source=conf.source) from None
    for name in (inp.text_column, inp.id_column):
        if name is not None and name not in schema.fieldNames():
            raise InputError("input.path", inp.path, f"the folder's schema has no column {name!r} (it has "
                             f"{', '.join(schema.fieldNames())})", source=conf.source)
    return schema
