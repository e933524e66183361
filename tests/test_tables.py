"""Results in catalog tables (issue 27, udfs/io/tables.py): the analyze job's ``output.table`` on the JVM session's
own catalog (Parquet managed tables: overwrite, append, error, ignore; incremental is a configuration error) and
on Sail 0.7.2 (tests/sail.py: a Delta table, overwritten, then MERGEd into incrementally); the run's manifest in
the table's properties, the provenance columns, and the input and output as the MLflow run's datasets."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from jobs import analyze
from udfs.io.jobconf import load_job, parse_job
from udfs.io.tables import MANIFEST_PROPERTY, PROVENANCE, RUN_ID, SCORED_AT
from tests.helpers import assert_frame_equal, register_catalog_entry
from tests.sail import connect_session, sail_remote  # noqa: F401 - a fixture
from tests.test_incremental import DAY1
from udfs.errors import ConfigError
from udfs.tasks.incremental import BOOKKEEPING

MORE = [(7, "Scientists built a faster network."), (8, "Oil prices fell.")]


def parquet_input(path: Path, rows) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    ids, texts = zip(*rows)
    pq.write_table(pa.table({"id": pa.array(ids, pa.int32()), "text": pa.array(texts, pa.string())}),
                   path / "part-0.parquet")
    return path


def write_job(tmp_path: Path, name: str, inp: Path, output: dict, tasks: list[dict]) -> str:
    job = {"input": {"path": str(inp), "text_column": "text", "id_column": "id"}, "output": output, "tasks": tasks}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(job))
    return str(path)


@pytest.fixture
def schema(spark, tmp_path):
    """A schema of its own, its managed tables under the test's folder (not the checkout's spark-warehouse)."""
    name = f"ts_{uuid.uuid4().hex[:10]}"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {name} LOCATION '{tmp_path / 'warehouse'}'")
    yield name
    spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


@pytest.fixture
def embed(tiny_encoder):
    return [{"task": "embed", "column": "vec", "model": tiny_encoder}]


def table_job(tmp_path, name, inp, table, tasks, **output):
    return write_job(tmp_path, name, inp, {"table": table, **output}, tasks)


def runs() -> int:
    return len(mlflow.search_runs(experiment_names=["textspark-jobs"], output_format="list"))


def test_overwrite_twice_equals_the_folder_output_with_manifest_provenance_and_lineage(
        spark, schema, embed, tmp_path, capsys):
    inp = parquet_input(tmp_path / "in", DAY1)
    folder = tmp_path / "folder"
    analyze.run(load_job(write_job(tmp_path, "folder", inp, {"path": str(folder)}, embed)), spark=spark)
    table = f"{schema}.results"
    job = table_job(tmp_path, "table", inp, table, embed)
    first = analyze.run(load_job(job), spark=spark)
    summary = analyze.run(load_job(job), spark=spark)  # replaces the first run's rows
    assert (first["rows"], summary["rows"], summary["output_rows"], summary["output"]) == (6, 6, 6, table)
    assert first["run_id"] != summary["run_id"]

    written = spark.table(table)
    assert written.columns[-4:] == [*BOOKKEEPING, *PROVENANCE]
    assert_frame_equal(written.drop(*PROVENANCE, *BOOKKEEPING), spark.read.parquet(str(folder)), atol=1e-6)
    provenance = written.groupBy(RUN_ID).agg({SCORED_AT: "count"}).collect()
    assert [(r[0], r[1]) for r in provenance] == [(summary["run_id"], 6)]  # one run id, scored_at never null

    prop = spark.sql(f"SHOW TBLPROPERTIES {table} ('{MANIFEST_PROPERTY}')").collect()[0]["value"]
    assert json.loads(prop) == json.loads(json.dumps(summary, default=str))
    assert not list(tmp_path.glob("warehouse/**/_textspark_manifest.json"))  # no manifest file for a table

    analyze.print_summary(summary)
    out = capsys.readouterr().out
    assert f"\nwrote 6 rows to table {table} in " in out and "manifest:" not in out

    run = mlflow.get_run(summary["run_id"])
    datasets = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert set(datasets) == {"input", "output"}
    assert (datasets["input"].name, json.loads(datasets["input"].source)) == (str(inp), {"path": str(inp)})
    assert (datasets["output"].name, json.loads(datasets["output"].source)) == (table, {"table_name": table})
    assert datasets["input"].source_type == "spark"


def test_a_folder_output_logs_its_input_and_output_datasets(spark, embed, tmp_path):
    inp = parquet_input(tmp_path / "in", DAY1)
    out = tmp_path / "out"
    analyze.run(load_job(write_job(tmp_path, "folder", inp, {"path": str(out)}, embed)), spark=spark)
    run = mlflow.search_runs(experiment_names=["textspark-jobs"], order_by=["start_time DESC"], max_results=1,
                             output_format="list")[0]
    datasets = {d.tags[0].value: json.loads(d.dataset.source) for d in run.inputs.dataset_inputs}
    assert datasets == {"input": {"path": str(inp)}, "output": {"path": str(out)}}


def test_append_adds_rows_and_error_refuses_an_existing_table_in_one_line(spark, schema, embed, tmp_path, capsys):
    table = f"{schema}.results"
    first = analyze.run(load_job(table_job(tmp_path, "a1", parquet_input(tmp_path / "in1", DAY1), table, embed,
                                           mode="append")), spark=spark)  # creates it
    more = parquet_input(tmp_path / "in2", MORE)
    second = analyze.run(load_job(table_job(tmp_path, "a2", more, table, embed, mode="append")), spark=spark)
    assert (first["rows"], second["rows"], second["output_rows"]) == (6, 2, 8)
    counts = {r[0]: r[1] for r in spark.table(table).groupBy(RUN_ID).count().collect()}
    assert counts == {first["run_id"]: 6, second["run_id"]: 2}
    analyze.print_summary(second)
    assert f"wrote 2 rows to table {table} (the table now holds 8) in " in capsys.readouterr().out

    before = runs()
    job = table_job(tmp_path, "err", more, table, embed, mode="error")
    assert analyze.main(["--conf", job]) == 3
    assert capsys.readouterr().err.strip() == (
        f"input error: {job}: output.table: got '{table}'; the table exists and mode is error; allowed: a new "
        "table, or mode overwrite, append, ignore or incremental")
    assert runs() == before  # refused before the MLflow run opened (and before any model loaded)
    assert spark.table(table).count() == 8


def test_ignore_writes_nothing_to_an_existing_table(spark, schema, embed, tmp_path, capsys):
    table = f"{schema}.results"
    inp = parquet_input(tmp_path / "in", DAY1)
    first = analyze.run(load_job(table_job(tmp_path, "t", inp, table, embed)), spark=spark)
    before = runs()
    summary = analyze.run(load_job(table_job(tmp_path, "ign", parquet_input(tmp_path / "in2", MORE), table, embed,
                                             mode="ignore")), spark=spark)
    assert summary == {"output": table, "mode": "ignore", "rows": 0, "skipped": True, "tasks": []}
    assert runs() == before
    assert [tuple(r) for r in spark.table(table).groupBy(RUN_ID).count().collect()] == [(first["run_id"], 6)]
    analyze.print_summary(summary)
    assert capsys.readouterr().out.strip() == f"{table} exists and output.mode is ignore: nothing written"


def test_incremental_into_a_parquet_table_is_a_one_line_config_error(spark, schema, embed, tmp_path, capsys):
    inp = parquet_input(tmp_path / "in", DAY1)
    table = f"{schema}.results"
    job = table_job(tmp_path, "inc", inp, table, embed, mode="incremental", format="parquet")
    assert analyze.main(["--conf", job]) == 2
    assert capsys.readouterr().err.strip() == (
        f"configuration error: {job}: output.mode: got 'incremental'; allowed: overwrite, append, error, ignore "
        "for format parquet (incremental MERGEs into the table: format delta or iceberg)")
    # no format given: the JVM session's default (parquet) cannot MERGE either; refused before any model loads
    before = runs()
    job = table_job(tmp_path, "inc2", inp, table, embed, mode="incremental")
    assert analyze.main(["--conf", job]) == 2
    assert capsys.readouterr().err.strip() == (
        f"configuration error: {job}: output.mode: got 'incremental'; allowed: overwrite, append, error, ignore "
        "for format parquet (the engine's default; incremental MERGEs into the table: format delta or iceberg)")
    # delta named on a JVM session that has no Delta jars
    job = table_job(tmp_path, "inc3", inp, table, embed, mode="incremental", format="delta")
    assert analyze.main(["--conf", job]) == 2
    assert capsys.readouterr().err.strip().startswith(
        f"configuration error: {job}: output.format: got 'delta'; allowed: parquet (this Spark session has no "
        "delta data source")
    assert runs() == before and not spark.catalog.tableExists(table)


@pytest.mark.parametrize("output, message", [
    ({"path": "/tmp/x", "table": "s.t"}, "output.path: got '/tmp/x'; allowed: exactly one of output.path (a folder) "
                                         "and output.table (a table name)"),
    ({"mode": "overwrite"}, "output.path: got None; allowed: exactly one of output.path (a folder) and output.table "
                            "(a table name)"),
    ({"path": "/tmp/x", "format": "delta"}, "output.format: got 'delta'; allowed: parquet (a folder's format; delta "
                                            "and iceberg are for output.table)"),
    ({"table": "s.t", "delete_missing": True}, "output.delete_missing: got True; allowed: false (true deletes ids "
                                               "missing from the input: only with output.table and output.mode "
                                               "incremental)"),
])
def test_output_config_errors_are_one_line(tmp_path, output, message):
    inp = parquet_input(tmp_path / "in", DAY1)
    with pytest.raises(ConfigError) as err:
        parse_job({"input": {"path": str(inp), "id_column": "id"}, "output": output,
                   "tasks": [{"task": "language"}]}, source="job.yml")
    assert str(err.value) == f"job.yml: {message}"


# -- Sail 0.7.2: a Delta table, overwritten, then MERGEd into ---------------------------------------------------

WORDS = {"en": "the weather is nice today and the train arrived on time in the city",
         "pt": "o tempo está bom hoje e o trem chegou na hora certa na cidade",
         "de": "das Wetter ist heute schön und der Zug kam pünktlich in der Stadt an",
         "fr": "il fait beau aujourd'hui et le train est arrivé à l'heure en ville"}


def texts(n: int, start: int = 0) -> list[tuple[int, str]]:
    langs = sorted(WORDS)
    return [(i, f"{WORDS[langs[i % 4]]} {i}") for i in range(start, start + n)]


def delta_commits(location: Path) -> list[dict]:
    commits = []
    for path in sorted((location / "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        commits.append({k: v for a in actions for k, v in a.items() if k in ("commitInfo", "metaData")})
    return commits


def location(session, table: str) -> Path:
    rows = session.sql(f"DESCRIBE TABLE EXTENDED {table}").collect()
    return Path(next(r[1] for r in rows if r[0] == "Location"))


@pytest.mark.slow
def test_sail_delta_overwrite_then_one_merge_equals_a_full_recompute(sail_remote, mlflow_registry, tmp_path):
    from udfs.models.loading import local_folder
    from udfs.models.registry import resolve

    local_folder(resolve(register_catalog_entry("textspark-lid176")))  # into the cache the server reads
    tasks = [{"task": "language", "column": "lang"}]
    day1 = texts(200)
    day2 = [(i, f"{t} edited") if i % 5 == 0 else (i, t) for i, t in day1] + texts(100, start=200)  # 40 edited
    inp = tmp_path / "in"

    def job(name, mode, table, **extra):
        output = {"table": table, "format": "delta", "mode": mode, **extra}
        return parse_job({"input": {"path": str(inp), "id_column": "id"}, "output": output, "tasks": tasks},
                         source=f"{name}.yml")

    with connect_session(sail_remote, warehouse=tmp_path / "warehouse") as sail:
        sail.sql("CREATE DATABASE IF NOT EXISTS textspark").collect()
        parquet_input(inp, day1)
        first = analyze.run(job("overwrite", "overwrite", "textspark.results"), spark=sail)
        assert first["rows_per_language"]["counts"] == {"de": 50, "en": 50, "fr": 50, "pt": 50}
        assert first["tasks"][0]["null_with_reason"] == 0
        parquet_input(inp, day2)
        second = analyze.run(job("incremental", "incremental", "textspark.results"), spark=sail)
        assert (second["rows"], second["output_rows"]) == (140, 300)
        assert second["incremental"]["tasks"]["lang"]["computed_because"] == \
            {"new": 100, "text_changed": 40, "model_changed": 0, "retry": 0}
        full = analyze.run(job("full", "overwrite", "textspark.full"), spark=sail)
        assert_frame_equal(sail.table("textspark.results").drop(*PROVENANCE),
                           sail.table("textspark.full").drop(*PROVENANCE), atol=1e-6)
        counts = {r[0]: r[1] for r in sail.table("textspark.results").groupBy(RUN_ID).count().collect()}
        assert counts == {first["run_id"]: 160, second["run_id"]: 140}  # reused rows keep their run id
        assert sail.table("textspark.results").filter(f"{SCORED_AT} IS NULL").count() == 0
        assert full["rows"] == 300

        commits = delta_commits(location(sail, "textspark.results"))
        merges = [c["commitInfo"]["operationMetrics"] for c in commits if c["commitInfo"]["operation"] == "MERGE"]
        assert len(merges) == 1
        assert {k: merges[0][k] for k in ("numTargetRowsUpdated", "numTargetRowsInserted", "numTargetRowsDeleted")} \
            == {"numTargetRowsUpdated": 40, "numTargetRowsInserted": 100, "numTargetRowsDeleted": 0}
        manifest = json.loads(commits[-1]["metaData"]["configuration"][MANIFEST_PROPERTY])
        assert (manifest["mode"], manifest["rows"], manifest["run_id"]) == ("incremental", 140, second["run_id"])

        parquet_input(inp, [r for r in day2 if r[0] not in (3, 250)])  # two ids removed from the input
        third = analyze.run(job("delete", "incremental", "textspark.results", delete_missing=True), spark=sail)
        assert (third["rows"], third["output_rows"]) == (0, 298)
        last = [c["commitInfo"]["operationMetrics"] for c in delta_commits(location(sail, "textspark.results"))
                if c["commitInfo"]["operation"] == "MERGE"][-1]
        assert {k: last[k] for k in ("numTargetRowsUpdated", "numTargetRowsInserted", "numTargetRowsDeleted")} == \
            {"numTargetRowsUpdated": 0, "numTargetRowsInserted": 0, "numTargetRowsDeleted": 2}
        assert sail.table("textspark.results").filter("id IN (3, 250)").count() == 0


def iceberg_metadata(location: Path) -> dict:
    return json.loads(max((location / "metadata").glob("v*.metadata.json"),
                          key=lambda p: int(p.name[1:].split(".")[0])).read_text())


@pytest.mark.slow
def test_sail_iceberg_overwrite_then_merge_with_delete_missing(sail_remote, mlflow_registry, tmp_path):
    from udfs.models.loading import local_folder
    from udfs.models.registry import resolve

    local_folder(resolve(register_catalog_entry("textspark-lid176")))
    inp = tmp_path / "in"

    def job(mode, table, **extra):
        return parse_job({"input": {"path": str(inp), "id_column": "id"},
                          "output": {"table": table, "format": "iceberg", "mode": mode, **extra},
                          "tasks": [{"task": "language", "column": "lang"}]}, source="iceberg.yml")

    with connect_session(sail_remote, warehouse=tmp_path / "warehouse") as sail:
        sail.sql("CREATE DATABASE IF NOT EXISTS textspark").collect()
        parquet_input(inp, texts(40))
        first = analyze.run(job("overwrite", "textspark.results"), spark=sail)
        day2 = [(i, f"{t} edited") if i < 4 else (i, t) for i, t in texts(40) if i != 39] + texts(6, start=40)
        parquet_input(inp, day2)  # 4 edited, 6 new, id 39 removed
        second = analyze.run(job("incremental", "textspark.results", delete_missing=True), spark=sail)
        assert (first["rows"], second["rows"], second["output_rows"]) == (40, 10, 45)
        analyze.run(job("overwrite", "textspark.full"), spark=sail)
        assert_frame_equal(sail.table("textspark.results").drop(*PROVENANCE),
                           sail.table("textspark.full").drop(*PROVENANCE), atol=1e-6)
        counts = {r[0]: r[1] for r in sail.table("textspark.results").groupBy(RUN_ID).count().collect()}
        assert counts == {first["run_id"]: 35, second["run_id"]: 10}
        meta = iceberg_metadata(location(sail, "textspark.results"))
        assert [s["summary"]["operation"] for s in meta["snapshots"]] == ["append", "overwrite"]  # one MERGE
        assert json.loads(meta["properties"][MANIFEST_PROPERTY])["run_id"] == second["run_id"]


@pytest.mark.slow
def test_sail_default_format_table_takes_overwrite_append_and_refuses_incremental(sail_remote, mlflow_registry,
                                                                                   tmp_path):
    """No ``format``: Sail's default (Parquet) table; DataFrameWriterV2 replaces and appends it."""
    from udfs.models.loading import local_folder
    from udfs.models.registry import resolve

    local_folder(resolve(register_catalog_entry("textspark-lid176")))

    def job(inp, mode):
        return parse_job({"input": {"path": str(inp), "id_column": "id"},
                          "output": {"table": "textspark.plain", "mode": mode},
                          "tasks": [{"task": "language", "column": "lang"}]}, source="plain.yml")

    one, two = parquet_input(tmp_path / "one", texts(8)), parquet_input(tmp_path / "two", texts(4, start=8))
    with connect_session(sail_remote, warehouse=tmp_path / "warehouse") as sail:
        sail.sql("CREATE DATABASE IF NOT EXISTS textspark").collect()
        analyze.run(job(one, "overwrite"), spark=sail)
        first = analyze.run(job(one, "overwrite"), spark=sail)
        second = analyze.run(job(two, "append"), spark=sail)
        assert (first["table"]["format"], first["output_rows"], second["output_rows"]) == ("parquet", 8, 12)
        counts = {r[0]: r[1] for r in sail.table("textspark.plain").groupBy(RUN_ID).count().collect()}
        assert counts == {first["run_id"]: 8, second["run_id"]: 4}
        with pytest.raises(ConfigError) as err:
            analyze.run(job(two, "incremental"), spark=sail)
        assert str(err.value) == ("plain.yml: output.mode: got 'incremental'; allowed: overwrite, append, error, "
                                  "ignore for format parquet (the table's; incremental MERGEs into the table: format "
                                  "delta or iceberg)")
