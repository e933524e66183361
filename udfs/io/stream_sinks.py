"""Where a stream's micro-batches go (udfs/io/stream.py): the output folder through Spark's file sink
(:class:`FolderSink`), or a catalog table through its table sink (:class:`TableSink`)."""
from __future__ import annotations

from contextlib import nullcontext
from urllib.parse import urlsplit

from udfs.errors import ConfigError
from udfs.io.commit import MANIFEST
from udfs.io.jobconf import JobConf
from udfs.io.storage import join, storage_for
from udfs.io.stream_log import plain, prepare_output, remove_uncommitted
from udfs.io.summary import manifest_json
from udfs.tasks.pipeline import PlannedTask

# Sail 0.7.2's answers to a stream into a table (toTable; the file guard's _metadata column)
NOT_STREAMING = ("streaming query must write data to a sink", "resolve metadata column")


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
    """``output.table``: checked (udfs/io/tables.py, and the stream-only checks) before the MLflow run opens."""
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
        from udfs.io.tables import TableOutput

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
        from udfs.io.tables import TableOutput

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
