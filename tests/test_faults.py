"""Faults the analyze job survives, each injected into a real run of `python -m jobs.analyze` (a subprocess
in its own session; only processes it started are killed, by PID): a Python worker or an executor JVM killed
mid-stage is retried with exact output, and a driver killed mid-write leaves the previous output complete."""
import json
import signal

import pandas as pd
import pytest
from pyspark.testing import assertDataFrameEqual

from jobs import analyze
from udfs.io.jobconf import parse_job
from udfs.io.commit import MANIFEST, STAGING
from tests.helpers import cluster_profile, kill_driver, kill_executor, kill_worker, run_job, write_conf

ROWS = 12000  # 4 inference partitions of 3,000 rows: a task computes for seconds, so a kill lands mid-task
WORDS = "markets rose after the match while the film festival opened and shares fell in early trading".split()
CLUSTER_PROFILE = cluster_profile(256)


def tasks(model):
    return [{"task": "embed", "column": "embedding", "model": model, "precision": "fp32"}]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "in.parquet"
    texts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(20 + i % 40)) + f" {i}" for i in range(ROWS)]
    pd.DataFrame({"id": range(ROWS), "text": texts}).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def undisturbed(spark, tiny_encoder, table, tmp_path_factory):
    """The same job run in this process, undisturbed."""
    out = tmp_path_factory.mktemp("undisturbed") / "out"
    analyze.run(parse_job({"input": {"path": str(table), "text_column": "text", "id_column": "id"},
                           "tasks": tasks(tiny_encoder), "output": {"path": str(out)}}), spark=spark)
    return spark.read.parquet(str(out))


def assert_exact(spark, out, undisturbed):
    got = spark.read.parquet(str(out))
    assert got.count() == ROWS and got.select("id").distinct().count() == ROWS  # none missing, none twice
    assertDataFrameEqual(got, undisturbed, atol=1e-6)  # and every row as the undisturbed run wrote it


@pytest.mark.slow  # subprocess jobs (a JVM each; local-cluster: master, workers and executor JVMs)
@pytest.mark.parametrize("profile, fault", [("local", kill_worker), ("local-cluster", kill_worker),
                                            ("local-cluster", kill_executor)],
                         ids=["local-python-worker", "local-cluster-python-worker", "local-cluster-executor"])
def test_a_killed_worker_or_executor_is_retried_with_exact_output(spark, tiny_encoder, table, undisturbed,
                                                                  tmp_path, profile, fault):
    if profile == "local-cluster":
        (tmp_path / "cluster.yml").write_text(CLUSTER_PROFILE)
        profile = str(tmp_path / "cluster.yml")
    for attempt in range(3):  # a worker that finished its task between the CPU probe and the kill fails none
        out = tmp_path / f"out{attempt}"
        conf = write_conf(tmp_path, f"job{attempt}", table, out, tasks(tiny_encoder), profile=profile, partitions=4)
        result = run_job(conf, tmp_path / f"logs{attempt}", fault=fault(out), timeout=300)
        assert result["fault"], "the job ended before the fault could be injected"
        assert result["rc"] == 0, result["stderr"][-3000:]
        assert_exact(spark, out, undisturbed)
        if "Lost task" in result["stderr"]:  # a running task failed, was retried, and the output is exact
            return
    pytest.fail(f"no task failed after killing a {fault.__name__.removeprefix('kill_')} in 3 runs")


@pytest.mark.slow
def test_a_driver_killed_mid_write_leaves_the_previous_output_and_a_rerun_completes(spark, tiny_encoder, table,
                                                                                     undisturbed, tmp_path):
    out = tmp_path / "out"
    small = tmp_path / "small.parquet"
    pd.read_parquet(table).iloc[:50].to_parquet(small)
    analyze.run(parse_job({"input": {"path": str(small), "text_column": "text", "id_column": "id"},
                           "tasks": tasks(tiny_encoder), "output": {"path": str(out)}}), spark=spark)
    previous, previous_manifest = pd.read_parquet(out), (out / MANIFEST).read_bytes()
    conf = write_conf(tmp_path, "job", table, out, tasks(tiny_encoder), partitions=4)

    killed = run_job(conf, tmp_path / "logs-killed", fault=kill_driver(out), timeout=300)
    assert killed["fault"] and killed["rc"] == -signal.SIGKILL, killed["stderr"][-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(out), previous)  # what a pandas reader sees: the whole old table
    assert (out / MANIFEST).read_bytes() == previous_manifest
    assertDataFrameEqual(spark.read.parquet(str(out)), spark.createDataFrame(previous, undisturbed.schema))

    rerun = run_job(conf, tmp_path / "logs-rerun", timeout=300)
    assert rerun["rc"] == 0, rerun["stderr"][-3000:]
    assert_exact(spark, out, undisturbed)
    assert json.loads((out / MANIFEST).read_text())["rows"] == ROWS
    assert not (tmp_path / STAGING).exists()  # the killed run's staging was removed by the re-run
