"""The local catalog that outlives the session (issue 27, udfs/metastore.py): the shipped ``local`` profile keeps
its tables in the data folder (here the test session's ``$XDG_DATA_HOME``, never the user's), so a table one
``python -m jobs.analyze`` wrote is read by ``get_spark("local").table(name)`` in a new process; folder jobs never
open the metastore (two run side by side while another process holds it open), and two table jobs at once both
finish (the second waits for the first to hand the metastore back)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from jobs import analyze
from udfs.io.jobconf import load_job
from udfs.io.tables import PROVENANCE
from tests.helpers import register_catalog_entry
from udfs import metastore
from udfs.tasks.incremental import BOOKKEEPING

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["the weather is nice today and the train arrived on time", "o tempo está bom hoje e o trem chegou",
         "das Wetter ist heute schön und der Zug kam an", "il fait beau aujourd'hui et le train est arrivé",
         "markets rose after the match", "a cidade acordou cedo"]
READ = """
import json, sys
from udfs.platform import get_spark
spark = get_spark("local")
table = spark.table(sys.argv[1]).drop(*sys.argv[2].split(","))
rows = sorted(table.toPandas().to_dict("records"), key=lambda r: r["id"])
where = [r[1] for r in spark.sql(f"DESCRIBE TABLE EXTENDED {sys.argv[1]}").collect() if r[0] == "Location"][0]
print("RESULT " + json.dumps({"columns": table.columns, "rows": rows, "location": where}, default=str))
"""


@pytest.fixture(scope="module")
def language(mlflow_registry):
    register_catalog_entry("textspark-lid176")
    return [{"task": "language", "column": "lang"}]


def parquet_input(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": pa.array(range(len(TEXTS)), pa.int32()), "text": TEXTS}), path / "part-0.parquet")
    return path


def job_file(tmp_path: Path, name: str, inp: Path, output: dict, tasks: list[dict]) -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump({"input": {"path": str(inp), "id_column": "id"}, "output": output, "tasks": tasks}))
    return path


def start(*args: str, logs: Path) -> subprocess.Popen:
    """A new process (its own JVM) of this venv's python, in the checkout, with the test session's environment
    (the temporary registry and data folder)."""
    logs.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=open(logs / "stdout", "w"),
                            stderr=open(logs / "stderr", "w"), start_new_session=True)


def finish(proc: subprocess.Popen, logs: Path, timeout: float = 600) -> str:
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert rc == 0, (logs / "stderr").read_text()[-3000:]
    return (logs / "stdout").read_text()


def expected_rows(spark, folder: Path) -> list[dict]:
    frame = spark.read.parquet(str(folder)).toPandas()
    return json.loads(json.dumps(sorted(frame.to_dict("records"), key=lambda r: r["id"]), default=str))


def test_a_table_a_job_wrote_is_read_by_get_spark_local_in_a_new_process(spark, language, tmp_path):
    data = Path(os.environ["XDG_DATA_HOME"]) / "textspark"
    assert data.is_relative_to(tmp_path.parents[1])  # the test session's data folder, not the user's
    inp = parquet_input(tmp_path / "in")
    analyze.run(load_job(job_file(tmp_path, "folder", inp, {"path": str(tmp_path / "folder")}, language)),
                spark=spark)
    table = f"scored_{uuid.uuid4().hex[:8]}"  # in the default database: the data folder's warehouse
    metastore.release(spark)  # the jobs below open the metastore: this process hands it back
    job = job_file(tmp_path, "table", inp, {"table": table}, language)
    finish(start("-m", "jobs.analyze", "--conf", str(job), logs=tmp_path / "job"), tmp_path / "job")

    out = finish(start("-c", READ, table, ",".join((*BOOKKEEPING, *PROVENANCE)), logs=tmp_path / "read"),
                 tmp_path / "read")
    got = json.loads(out.split("RESULT ", 1)[1])
    assert got["rows"] == expected_rows(spark, tmp_path / "folder")  # row for row the folder output
    assert got["columns"] == spark.read.parquet(str(tmp_path / "folder")).columns
    assert got["location"] == f"file:{data / 'warehouse' / table}"
    assert (data / "metastore_db").is_dir() and (data / "derby.log").is_file()
    assert not (ROOT / "derby.log").exists() and not (ROOT / "metastore_db").exists()
    with metastore.holding(spark, "the test's read"):  # this session sees it too (the same metastore)
        assert spark.table(table).count() == len(TEXTS)


@pytest.mark.slow  # four jobs, two at a time, each in its own JVM
def test_two_concurrent_jobs_work_folder_jobs_never_open_the_metastore_and_table_jobs_take_turns(
        spark, language, tmp_path):
    inp = parquet_input(tmp_path / "in")
    analyze.run(load_job(job_file(tmp_path, "expected", inp, {"path": str(tmp_path / "expected")}, language)),
                spark=spark)
    expected = expected_rows(spark, tmp_path / "expected")

    # the metastore open in this process (a plain spark.table, outside metastore.holding): folder jobs run anyway
    spark.sql("SHOW TABLES").collect()
    lock = metastore.metastore(spark) / "db.lck"
    assert lock.exists()  # Derby's lock file: this JVM has the database booted
    folders = [job_file(tmp_path, f"folder{i}", inp, {"path": str(tmp_path / f"out{i}")}, language) for i in (1, 2)]
    procs = [start("-m", "jobs.analyze", "--conf", str(f), logs=tmp_path / f.stem) for f in folders]
    for proc, f in zip(procs, folders):
        finish(proc, tmp_path / f.stem)
    assert [expected_rows(spark, tmp_path / f"out{i}") for i in (1, 2)] == [expected, expected]

    # two table jobs at once: the second waits for the first to hand the metastore back, then writes
    metastore.release(spark)
    assert not lock.exists()
    tables = [f"turns_{uuid.uuid4().hex[:8]}" for _ in (1, 2)]
    jobs = [job_file(tmp_path, f"table{i}", inp, {"table": t}, language) for i, t in enumerate(tables)]
    procs = [start("-m", "jobs.analyze", "--conf", str(j), logs=tmp_path / j.stem) for j in jobs]
    for proc, j in zip(procs, jobs):
        assert "wrote 6 rows to table" in finish(proc, tmp_path / j.stem)
    with metastore.holding(spark, "the test's reads"):
        for table in tables:
            frame = spark.table(table).drop(*BOOKKEEPING, *PROVENANCE).toPandas()
            got = json.loads(json.dumps(sorted(frame.to_dict("records"), key=lambda r: r["id"]), default=str))
            assert got == expected
    assert not lock.exists()  # handed back


def test_a_job_that_cannot_get_the_metastore_in_time_says_who_holds_it_in_one_line(spark, tmp_path):
    import fcntl

    folder = metastore.metastore(spark)
    holder = folder.parent / "metastore.holder"
    with open(folder.parent / "metastore.lock", "a") as handle:  # what another process's holding() takes
        fcntl.flock(handle, fcntl.LOCK_EX)
        holder.write_text(json.dumps({"pid": 4242, "purpose": "writing table s.t", "since": 0}))
        proc = subprocess.run(
            [sys.executable, "-c", "from udfs import metastore; from udfs.platform import get_spark\n"
             "with metastore.holding(get_spark('local'), 'writing table s.u', wait_s=1): pass"],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    import time

    since = time.strftime("%H:%M:%S", time.localtime(0))
    assert proc.stderr.strip().splitlines()[-1] == (
        f"udfs.errors.InputError: spark catalog: got '{folder}'; the local catalog is held by process 4242 "
        f"(writing table s.t, since {since}); waited 1 s for it (for writing table s.u); run again when it is "
        "done, or set TEXTSPARK_CATALOG_WAIT to wait longer")
