"""``input.stream`` with ``output.table`` (issue 27, udfs/io/stream.py TableSink): the stream appends through Spark's
table sink (``writeStream.toTable``) into the JVM catalog's Parquet table, each micro-batch committed once by
the sink's log; after its driver is killed mid-batch and the job restarts, the table holds every input row
exactly once, for Spark and for pandas reading its folder. A table batch jobs wrote is refused (its rows would
vanish for readers once the sink's log exists), and so is a batch append into a streamed table."""
from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from jobs import analyze
from udfs.io.jobconf import load_job
from udfs.io.tables import MANIFEST_PROPERTY, PROVENANCE, RUN_ID, SCORED_AT
from tests.helpers import assert_frame_equal, kill_stream_driver, run_job, stream_data_files
from tests.sail import sail_remote  # noqa: F401 - a fixture
from tests.test_stream_trust import drop, texts
from udfs import metastore
from udfs.tasks.incremental import BOOKKEEPING, TASK_KEYS


@pytest.fixture
def schema(spark, tmp_path):
    name = f"ts_{uuid.uuid4().hex[:10]}"
    with metastore.holding(spark, "the test's schema"):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {name} LOCATION '{tmp_path / 'warehouse'}'")
    yield name
    with metastore.holding(spark, "the test's schema"):
        spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


def stream_job(tmp_path: Path, inbox: Path, output: dict, model: str, *, name="stream", partitions=None) -> str:
    job = {"input": {"path": str(inbox), "text_column": "text", "id_column": "id",
                     "stream": {"checkpoint": str(tmp_path / f"checkpoint-{name}")}},
           "output": output, "tasks": [{"task": "embed", "column": "vec", "model": model}]}
    if partitions:
        job["inference"] = {"partitions": partitions}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(job))
    return str(path)


def table_folder(spark, table: str) -> Path:
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {table}").collect()
    return Path(next(r[1] for r in rows if r[0] == "Location").removeprefix("file:"))


def test_a_stream_appends_to_a_table_once_per_batch_equal_to_a_batch_run(spark, schema, tiny_encoder, tmp_path,
                                                                         capsys):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    table = f"{schema}.scored"
    job = stream_job(tmp_path, inbox, {"table": table}, tiny_encoder)
    drop(texts(range(20)), inbox, "a.parquet")
    first = analyze.run(load_job(job), spark=spark)
    drop(texts(range(20, 35)), inbox, "b.parquet")
    second = analyze.run(load_job(job), spark=spark)
    again = analyze.run(load_job(job), spark=spark)  # nothing new: nothing written
    assert [(s["rows"], s["micro_batches"], s["output_rows"]) for s in (first, second, again)] == \
        [(20, 1, 20), (15, 1, 35), (0, 0, 35)]
    assert second["table"] == {"name": table, "format": "parquet",
                               "location": (tmp_path / "warehouse" / "scored").as_uri().replace("file:///", "file:/")}

    folder = tmp_path / "batch"  # the same rows through a batch run into a folder
    batch = {"input": {"path": str(inbox), "text_column": "text", "id_column": "id"}, "output": {"path": str(folder)},
             "tasks": [{"task": "embed", "column": "vec", "model": tiny_encoder}]}
    (tmp_path / "batch.yml").write_text(yaml.safe_dump(batch))
    analyze.run(load_job(str(tmp_path / "batch.yml")), spark=spark)
    with metastore.holding(spark, "the test's reads"):
        written = spark.table(table)
        assert written.columns == [*spark.read.parquet(str(folder)).columns, *BOOKKEEPING, *PROVENANCE]
        assert_frame_equal(written.drop(*BOOKKEEPING, *PROVENANCE), spark.read.parquet(str(folder)), atol=1e-6)
        by_run = {r[0]: r[1] for r in written.groupBy(RUN_ID).count().collect()}
        assert by_run == {first["run_id"]: 20, second["run_id"]: 15}
        assert written.filter(f"{SCORED_AT} IS NULL").count() == 0
        prop = spark.sql(f"SHOW TBLPROPERTIES {table} ('{MANIFEST_PROPERTY}')").collect()[0]["value"]
        assert json.loads(prop) == json.loads(json.dumps(again, default=str))  # the last run's manifest
        location = table_folder(spark, table)
    # the table's folder read by pandas: exactly the committed rows
    assert sorted(pd.read_parquet(location)["id"]) == list(range(35))
    assert (location / "_spark_metadata" / "1").is_file() and not (location / "_spark_metadata" / "2").exists()

    analyze.print_summary(second)
    assert f"stream (available_now): 15 rows in 1 micro-batch(es) appended to table {table} in " in \
        capsys.readouterr().out


def test_a_stream_refuses_a_table_batch_jobs_wrote_and_a_batch_append_refuses_a_streamed_table(
        spark, schema, tiny_encoder, tmp_path, capsys):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    drop(texts(range(4)), inbox, "a.parquet")
    batch_table, stream_table = f"{schema}.batch", f"{schema}.streamed"
    batch = tmp_path / "batch.yml"

    def batch_job(table, mode):
        batch.write_text(yaml.safe_dump({"input": {"path": str(inbox), "text_column": "text", "id_column": "id"},
                                         "output": {"table": table, "mode": mode},
                                         "tasks": [{"task": "embed", "column": "vec", "model": tiny_encoder}]}))
        return str(batch)

    analyze.run(load_job(batch_job(batch_table, "overwrite")), spark=spark)
    job = stream_job(tmp_path, inbox, {"table": batch_table}, tiny_encoder)
    capsys.readouterr()
    assert analyze.main(["--conf", job]) == 3
    assert capsys.readouterr().err.strip() == (
        f"input error: {job}: output.table: got '{batch_table}'; it holds 1 data file no stream committed (no "
        "_spark_metadata): Spark readers of a stream's output see only the files its log lists, so these rows "
        "would vanish for them; write the stream to a new table")

    analyze.run(load_job(stream_job(tmp_path, inbox, {"table": stream_table}, tiny_encoder, name="s2")), spark=spark)
    conf = batch_job(stream_table, "append")
    assert analyze.main(["--conf", conf]) == 3
    assert capsys.readouterr().err.strip() == (
        f"input error: {conf}: output.table: got '{stream_table}'; mode append: a stream writes this table "
        "(Spark's file sink log _spark_metadata lists its files, and readers read only those), so rows appended "
        "here would not be read; append through the stream (input.stream), or overwrite the table")
    with metastore.holding(spark, "the test's reads"):
        assert (spark.table(batch_table).count(), spark.table(stream_table).count()) == (4, 4)


@pytest.mark.slow  # `python -m jobs.analyze` killed mid-batch, then the restart
def test_a_stream_into_a_table_killed_mid_batch_holds_each_row_once_after_the_restart(spark, schema, tiny_encoder,
                                                                                       tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    table = f"{schema}.scored"
    job = stream_job(tmp_path, inbox, {"table": table}, tiny_encoder, partitions=4)
    drop(texts(range(200)), inbox, "a.parquet")
    first = analyze.run(load_job(job), spark=spark)
    with metastore.holding(spark, "the test's reads"):
        location = table_folder(spark, table)
    committed = stream_data_files(location)
    drop(texts(range(200, 8200)), inbox, "b.parquet")

    metastore.release(spark)  # the killed job's driver opens the metastore: this process hands it back
    killed = run_job(Path(job), tmp_path / "logs-killed", fault=kill_stream_driver(location), timeout=300)
    assert killed["fault"] and killed["rc"] == -signal.SIGKILL, killed["stderr"][-3000:]
    assert not (location / "_spark_metadata" / "1").exists()  # killed mid-batch: batch 1 never committed
    left = stream_data_files(location) - committed
    assert left  # ... and it left files in the table's folder

    restarted = analyze.run(load_job(job), spark=spark)  # the same checkpoint: batch 1 again, once
    assert (first["rows"], restarted["rows"], restarted["output_rows"]) == (200, 8000, 8200)
    assert restarted["uncommitted_removed"] >= 1 and not any(p.exists() for p in left)
    with metastore.holding(spark, "the test's reads"):
        written = spark.table(table)
        ids = [r.id for r in written.select("id").collect()]
        assert (len(ids), sorted(ids)) == (8200, list(range(8200)))  # each row once
        by_run = {r[0]: r[1] for r in written.groupBy(RUN_ID).count().collect()}
        assert by_run == {first["run_id"]: 200, restarted["run_id"]: 8000}
        frame = pd.read_parquet(location)  # pandas reads every file in the folder: the same rows
        cols = [c for c in written.columns if c != TASK_KEYS]  # (a map column: pandas reads it as pairs)
        assert_frame_equal(spark.createDataFrame(frame[cols], written.select(cols).schema), written.select(cols),
                           atol=0.0)


@pytest.mark.slow
def test_sail_has_no_streaming_table_sink_a_one_line_config_error(sail_remote, tmp_path):
    """Sail 0.7.2 runs no stream into a table: it cannot resolve a stream's ``_metadata`` column (the job's file
    guard), and answers ``writeStream.toTable`` with "streaming query must write data to a sink" and
    ``foreachBatch`` with "missing argument: Python UDF output type". The job says so in one line."""
    from udfs.io.jobconf import parse_job
    from tests.helpers import register_catalog_entry
    from tests.sail import connect_session
    from udfs.errors import ConfigError

    register_catalog_entry("textspark-lid176")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    drop(texts(range(4)), inbox, "a.parquet")
    conf = parse_job({"input": {"path": str(inbox), "id_column": "id",
                                "stream": {"checkpoint": str(tmp_path / "checkpoint")}},
                      "output": {"table": "sailed", "format": "delta"},
                      "tasks": [{"task": "language", "column": "lang"}]}, source="sail.yml")
    with connect_session(sail_remote, warehouse=tmp_path / "warehouse") as sail:
        with pytest.raises(ConfigError) as err:
            analyze.run(conf, spark=sail)
        assert not sail.catalog.tableExists("sailed")
    assert str(err.value) == ("sail.yml: output.table: got 'sailed'; allowed: a JVM Spark engine for input.stream "
                              "into a table (this engine answered: resolve metadata column; Sail 0.7.2 runs no "
                              "streaming query into a table)")
