"""Trust boundaries of the output (issue 25): one writer per output path (a lease), a commit that refuses a
partial write, failed rows retried by the next incremental run, and one-line errors before any model runs for
a bad previous output, an output that overlaps its input and a corrupt Parquet input."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pyspark.sql import functions as F

from jobs import analyze
from udfs.io.sections import OutputConf
from udfs.io.jobconf import load_job, parse_job
from udfs.io.lease import LEASE_SUFFIX, Lease, LeaseHeld, Owner
from udfs.io.commit import MANIFEST, STAGING
from udfs.io.output import Output
from udfs.io.storage import LocalStorage
from tests.helpers import assert_frame_equal
from udfs.errors import ConfigError, InputError
from udfs.tasks.incremental import Incremental, as_tasks
from udfs.tasks.pipeline import plan_tasks

ROWS = [(1, "Shares rose after strong profits."), (2, "The match ended in a draw."), (3, None),
        (4, "Parliament debated the budget."), (5, "The band played their new album live.")]


def lease_file(out: Path) -> Path:
    return out.parent / STAGING / f"{out.name}{LEASE_SUFFIX}"


def write_lease(out: Path, owner: Owner) -> None:
    lease_file(out).parent.mkdir(parents=True, exist_ok=True)
    lease_file(out).write_text(json.dumps(owner.__dict__))


def dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_job(tmp_path: Path, inp, out, *, mode="overwrite", tasks, name="job", **extra) -> str:
    job = {"input": {"path": str(inp), "text_column": "text", "id_column": "id"}, "tasks": tasks,
           "output": {"path": str(out), "mode": mode}, **extra}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(job))
    return str(path)


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "in.parquet"
    pd.DataFrame(ROWS, columns=["id", "text"]).to_parquet(path)
    return path


# ---- one writer per output path ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["overwrite", "ignore", "error", "incremental", "append"])
def test_a_second_job_on_a_path_being_written_refuses_and_leaves_the_first_ones_staging(tmp_path, mode):
    """Before the lease, the second job's recovery deleted the first job's live staging folder, whatever its
    mode: the first then committed what was left of its rows and exited 0."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "part-old.parquet").write_bytes(b"old")
    first = Output(OutputConf(path=str(out)), source="first.yml")
    Path(first.stage).mkdir(parents=True)
    (Path(first.stage) / "part-0.parquet").write_bytes(b"rows being written")
    with pytest.raises(LeaseHeld) as err:
        Output(OutputConf(path=str(out), mode=mode), source="second.yml")
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(first.lease.owner.started))
    assert str(err.value) == (
        f"second.yml: output.path: got '{out}'; another job is writing this output: host {socket.gethostname()} "
        f"pid {os.getpid()} (run {first.run_id}) since {since}, last heartbeat 0 s ago; allowed: one job per "
        "output path at a time (wait for it, or write another path)")
    assert (Path(first.stage) / "part-0.parquet").read_bytes() == b"rows being written"
    first.commit('{"run": "first"}')
    first.close()
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "part-0.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # lease and staging root gone


def test_a_dead_owners_lease_is_taken_over_and_only_then_its_staging_removed(tmp_path):
    out = tmp_path / "out"
    stale = tmp_path / STAGING / "out-20260101T000000-0123abcd"
    stale.mkdir(parents=True)
    (stale / "part-0.parquet").write_bytes(b"partial")
    pid = dead_pid()
    write_lease(out, Owner(socket.gethostname(), pid, "1", Owner.me("x").boot_id, "20260101T000000-0123abcd",
                           time.time() - 5, time.time()))
    with Output(OutputConf(path=str(out)), source="job.yml") as output:
        assert output.recovered == [f"took over the lease of run 20260101T000000-0123abcd (pid {pid} is not "
                                    "running)"]
        assert not stale.exists()
        assert json.loads(lease_file(out).read_text())["run_id"] == output.run_id
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_another_hosts_lease_holds_until_its_heartbeat_is_older_than_the_timeout(tmp_path):
    out = tmp_path / "out"
    now = time.time()
    write_lease(out, Owner("worker-7", 4242, "9", "other-boot", "20260101T000000-0123abcd", now - 3600, now - 100))
    with pytest.raises(LeaseHeld, match=r"another job is writing this output: host worker-7 pid 4242 \(run "
                                        r"20260101T000000-0123abcd\) since .* last heartbeat 10[0-9] s ago"):
        Output(OutputConf(path=str(out), lease_timeout=600))
    assert lease_file(out).exists()  # the live owner's lease stays
    with Output(OutputConf(path=str(out), lease_timeout=60)) as output:
        assert output.recovered == ["took over the lease of run 20260101T000000-0123abcd (no heartbeat for 100 s "
                                    "(output.lease_timeout is 60))"]


def test_a_run_whose_lease_was_taken_over_does_not_commit(tmp_path):
    out = tmp_path / "out"
    output = Output(OutputConf(path=str(out)), source="job.yml")
    Path(output.stage).mkdir(parents=True)
    (Path(output.stage) / "part-0.parquet").write_bytes(b"new")
    now = time.time()
    write_lease(out, Owner("worker-7", 4242, "9", "b", "20260101T000000-0123abcd", now, now))  # judged us gone
    with pytest.raises(LeaseHeld, match="this run lost its lease on the output .*held by host worker-7 pid 4242.*; "
                                        "nothing was committed"):
        output.commit('{"run": "late"}')
    output.close()
    assert not out.exists() and lease_file(out).exists()  # nothing committed; the new owner's lease untouched


def test_the_heartbeat_refreshes_the_lease(tmp_path):
    out = tmp_path / "out"
    (tmp_path / STAGING).mkdir()
    lease = Lease(LocalStorage(), str(out), str(tmp_path / STAGING), "20260101T000000-0123abcd", timeout=0.2)
    assert lease.heartbeat == 0.05  # a quarter of the timeout (at most 30 s)
    lease.acquire()
    try:
        first = json.loads(lease_file(out).read_text())["heartbeat"]
        deadline = time.time() + 10
        while json.loads(lease_file(out).read_text())["heartbeat"] == first and time.time() < deadline:
            time.sleep(0.05)
        assert json.loads(lease_file(out).read_text())["heartbeat"] > first
    finally:
        lease.release()
    assert not lease_file(out).exists()


def test_the_commit_refuses_when_fewer_rows_were_written_than_read(spark, tiny_encoder, table, tmp_path,
                                                                    monkeypatch, capsys):
    """A part file lost from staging (what a second writer's cleanup did) is caught before the commit."""
    from pyspark.sql.readwriter import DataFrameWriter

    save = DataFrameWriter.save

    def lossy_save(self, path=None, *args, **kwargs):
        save(self, path, *args, **kwargs)
        parts = sorted(Path(path).glob("part-*.parquet"))
        parts[0].unlink()

    job = write_job(tmp_path, table, tmp_path / "out", tasks=[{"task": "embed", "column": "vec",
                                                               "model": tiny_encoder}],
                    inference={"partitions": 2})
    monkeypatch.setattr(DataFrameWriter, "save", lossy_save)
    monkeypatch.setattr(analyze, "job_spark", lambda *a, **k: spark)
    assert analyze.main(["--conf", job]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"input error: {job}: output.path: got '{tmp_path / 'out'}'; this run wrote ")
    assert err.endswith(" rows for 5 input rows; nothing was committed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "job.yml"]


# ---- failed rows are retried ---------------------------------------------------------------------------

def test_a_row_that_failed_in_the_model_is_computed_again_by_the_next_incremental_run(spark, tiny_encoder, tmp_path):
    df = spark.createDataFrame(ROWS, "id int, text string")
    planned = plan_tasks(as_tasks([{"task": "embed", "column": "vec", "model": tiny_encoder}]))
    first = Incremental(df, planned, None, text_column="text", id_column="id").output()
    first.write.parquet(str(tmp_path / "first"))
    full = spark.read.parquet(str(tmp_path / "first"))
    # row 2 failed last time in the model (out of memory); row 3's null input is a reason that stays
    failed = full.withColumn("vec", F.when(F.col("id") == 2, F.lit(None)).otherwise(F.col("vec"))) \
                 .withColumn("vec_error", F.when(F.col("id") == 2, F.lit("OutOfMemoryError: CUDA out of memory"))
                             .otherwise(F.col("vec_error")))
    failed.write.parquet(str(tmp_path / "failed"))
    previous = spark.read.parquet(str(tmp_path / "failed"))

    retry = Incremental(df, planned, previous, text_column="text", id_column="id")
    counts = retry.counts()
    assert counts["tasks"]["vec"]["computed_because"] == {"new": 0, "text_changed": 0, "model_changed": 0,
                                                          "retry": 1}
    assert counts["tasks"]["vec"]["reused"] == 4
    assert_frame_equal(retry.output(counts), full, atol=1e-6)  # row 2 computed again, the others as they were

    kept = Incremental(df, planned, previous, text_column="text", id_column="id", retry_errors=False)
    counts = kept.counts()
    assert (counts["tasks"]["vec"]["computed"], counts["tasks"]["vec"]["reused"]) == (0, 5)
    assert_frame_equal(kept.output(counts), previous, atol=0)


def test_retry_errors_is_a_job_setting(tmp_path, table):
    base = {"input": {"path": str(table), "id_column": "id"}, "tasks": [{"task": "embed"}],
            "output": {"path": str(tmp_path / "out"), "mode": "incremental"}}
    assert parse_job(base).incremental.retry_errors is True
    assert parse_job({**base, "incremental": {"retry_errors": False}}).incremental.retry_errors is False
    with pytest.raises(ConfigError, match=r"incremental.retry_errors: got 'no'; allowed: true, false"):
        parse_job({**base, "incremental": {"retry_errors": "no"}})


# ---- one line, before any model runs -------------------------------------------------------------------

def test_duplicate_ids_in_the_previous_output_are_named_as_the_previous_outputs(spark, tiny_encoder, table, tmp_path,
                                                                               monkeypatch, capsys):
    out = tmp_path / "out"
    job = write_job(tmp_path, table, out, mode="incremental",
                    tasks=[{"task": "embed", "column": "vec", "model": tiny_encoder}])
    monkeypatch.setattr(analyze, "job_spark", lambda *a, **k: spark)
    assert analyze.main(["--conf", job]) == 0
    capsys.readouterr()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rows = pq.read_table(out)  # every part file (pyarrow skips _ and . files, as Spark does)
    pq.write_table(rows.filter(pc.equal(rows["id"], 4)), out / "part-99999-copy.parquet")  # id 4 twice
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert analyze.main(["--conf", job]) == 3
    assert capsys.readouterr().err.strip() == (
        f"input error: {job}: output.path: got '{out}'; the previous output has 1 duplicate 'id' values (e.g. 4); "
        "allowed: a previous output with one row per id (rewrite it with output.mode overwrite)")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("where", ["same", "inside", "holding"])
def test_an_output_path_that_overlaps_the_input_path_is_a_config_error(tmp_path, where):
    inp = tmp_path / "data" / "in"
    inp.mkdir(parents=True)
    out = {"same": inp, "inside": inp / "scored", "holding": tmp_path / "data"}[where]
    job = {"input": {"path": str(inp)}, "tasks": [{"task": "embed"}], "output": {"path": str(out)}}
    with pytest.raises(ConfigError) as err:
        parse_job(job, source="job.yml")
    assert str(err.value) == (f"job.yml: output.path: got '{out}'; allowed: a folder that is neither input.path "
                              f"({inp}), nor inside it, nor holding it (the commit replaces the folder)")


def test_a_sibling_output_whose_name_starts_like_the_input_is_fine(tmp_path):
    (tmp_path / "in").mkdir()
    conf = parse_job({"input": {"path": str(tmp_path / "in")}, "tasks": [{"task": "embed"}],
                      "output": {"path": str(tmp_path / "in-scored")}})
    assert conf.output.path == str(tmp_path / "in-scored")


def test_a_corrupt_parquet_file_with_intact_magic_bytes_is_one_line_before_spark(tmp_path, monkeypatch, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    pd.DataFrame({"id": range(2000), "text": [f"some text number {i} " * 5 for i in range(2000)]}) \
        .to_parquet(inp / "part-0.parquet")
    data = bytearray((inp / "part-0.parquet").read_bytes())
    for i in range(len(data) // 4, len(data) // 4 + 400):  # a damaged page; magic bytes and footer intact
        data[i] ^= 0x5A
    (inp / "part-0.parquet").write_bytes(bytes(data))
    job = write_job(tmp_path, inp, tmp_path / "out", tasks=[{"task": "language", "column": "lang"}])
    monkeypatch.setattr(analyze, "plan_tasks", lambda tasks: [])
    monkeypatch.setattr(analyze, "job_spark", lambda *a, **k: pytest.fail("Spark started"))
    assert analyze.main(["--conf", job]) == 3
    assert capsys.readouterr().err.strip() == (
        f"input error: {job}: input.path: got '{inp}'; {inp}/part-0.parquet is a corrupt Parquet file (OSError: "
        "Unexpected end of stream); allowed: Parquet files that read whole")
    assert load_job(job).input.path == str(inp)


def test_the_lease_holds_through_hadoops_filesystem_too(spark, tmp_path):
    """file: paths go through Hadoop's FileSystem (the code path of hdfs://, s3a://, abfss://)."""
    first = Output(OutputConf(path=f"file:{tmp_path}/out")).bind(spark)
    assert type(first.storage).__name__ == "HadoopStorage"
    with pytest.raises(LeaseHeld, match=f"another job is writing this output: host {socket.gethostname()} pid "
                                        f"{os.getpid()} \\(run {first.run_id}\\)"):
        Output(OutputConf(path=f"file:{tmp_path}/out")).bind(spark)
    first.close()
    with Output(OutputConf(path=f"file:{tmp_path}/out")).bind(spark) as again:
        assert again.recovered == []
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []
