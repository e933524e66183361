"""GPU scheduling on a local-cluster (Spark standalone in one process) with fake GPU discovery."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from udfs.io.jobconf import parse_job
from tests.helpers import assert_frame_equal
from udfs.errors import ConfigError
from udfs.runtime.scheduling import check_discovery_script, parse_inference, supports_stage_level

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster_run(tiny_encoder, tmp_path_factory):
    """Runs tests/gpu_cluster_run.py in its own process (its own SparkContext) and reads what it wrote."""
    work = tmp_path_factory.mktemp("gpu")
    texts = [f"document number {i} about {'sport' if i % 2 else 'politics'} " * (1 + i % 5) for i in range(40)]
    pd.DataFrame({"id": range(40), "text": texts}).to_parquet(work / "in.parquet")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "gpu_cluster_run.py"), tiny_encoder,
                           str(work / "in.parquet"), str(work / "out")], capture_output=True, text=True, timeout=600)
    # the Python traceback, if any, rather than the JVM shutdown noise that follows it
    start = done.stderr.rfind("Traceback (most recent call last)")
    assert done.returncode == 0, done.stderr[start:start + 3000] if start >= 0 else done.stderr[-3000:]
    return work, pd.read_parquet(work / "out" / "result").sort_values("id").reset_index(drop=True)


@pytest.mark.slow  # local-cluster: a Spark standalone master, worker and executor JVMs
def test_concurrent_inference_tasks_get_distinct_gpus_and_the_runtime_uses_its_own(cluster_run):
    _, out = cluster_run
    probe = pd.DataFrame(out["probe"].tolist())
    assert len(out) == 40 and probe["error"].isna().all()
    assert set(probe["gpus"]) == {"0", "1"}                         # one GPU per task, both GPUs used
    assert (probe["assigned"] == "cuda:" + probe["gpus"]).all()     # the task's own address -> cuda:N
    assert set(probe["device"]) == {"cpu"}                          # no CUDA here: CPU fallback
    concurrent = [list(p) for p in probe["peers"] if len(p) > 1]  # GPUs held by tasks live at one moment
    assert concurrent, "expected concurrent inference tasks"
    assert all(sorted(p) == ["0", "1"] for p in concurrent)


@pytest.mark.slow
def test_only_the_inference_stage_carries_the_gpu_profile(cluster_run):
    _, out = cluster_run
    assert set(out["_read_stage_gpus"]) == {""} and set(out["_write_stage_gpus"]) == {""}
    assert set(pd.DataFrame(out["probe"].tolist())["gpus"]) == {"0", "1"}


@pytest.mark.slow
def test_results_equal_local_mode(cluster_run, spark, tiny_encoder):
    from udfs import embed

    work, _ = cluster_run
    on_cluster = spark.read.parquet(str(work / "out" / "result"))
    local = spark.read.parquet(str(work / "in.parquet")).withColumn("embedding", embed("text", model=tiny_encoder))
    assert_frame_equal(on_cluster.select("id", "text", "embedding"), local, atol=1e-5)
    assert on_cluster.filter("embedding_error IS NOT NULL").count() == 0


@pytest.mark.parametrize("section, key, value", [
    ({"gpus_per_task": 0.75}, "inference.gpus_per_task", "0.75"),
    ({"gpus_per_task": 1.5}, "inference.gpus_per_task", "1.5"),
    ({"gpus_per_task": -1}, "inference.gpus_per_task", "-1"),
    ({"stage_level": "yes"}, "inference.stage_level", "'yes'"),
    ({"partitions": 0}, "inference.partitions", "0"),
    ({"gpu": 1}, "inference.gpu", "1"),
])
def test_bad_gpu_settings_fail_naming_the_setting(section, key, value):
    with pytest.raises(ConfigError) as err:
        parse_job({"input": {"path": str(ROOT / "setup.cfg")}, "tasks": [{"task": "embed"}],
                   "output": {"path": "o"}, "inference": section})
    assert err.value.key == key and value in str(err.value)


def test_fractional_gpu_sharing_is_accepted():
    assert parse_inference({"gpus_per_task": 0.25}).gpus_per_task == 0.25
    assert parse_inference({"gpus_per_task": 2}).gpus_per_task == 2.0


def test_discovery_script_failures_name_the_setting():
    assert check_discovery_script(str(ROOT / "tests/data/fake_gpu_discovery.sh")) == ["0", "1"]
    with pytest.raises(ConfigError, match=r"spark.executor.resource.gpu.discoveryScript.*exited 3: no GPU on this node"):
        check_discovery_script(str(ROOT / "tests/data/failing_gpu_discovery.sh"))
    with pytest.raises(ConfigError, match=r"discoveryScript: got '/nope.sh'; allowed: an executable file"):
        check_discovery_script("/nope.sh")


def test_stage_level_support_by_cluster_manager():
    assert supports_stage_level("local[2]", {})[0] is False
    assert supports_stage_level("spark://host:7077", {})[0] is True
    assert supports_stage_level("yarn", {"spark.dynamicAllocation.enabled": "true"}) == (
        False, "spark.dynamicAllocation.enabled is true (task resource profiles need it off)")


def test_local_mode_falls_back_with_a_warning_or_fails_when_required(spark, caplog):
    from udfs.runtime.scheduling import check_cluster_conf

    assert check_cluster_conf(spark, parse_inference({"gpus_per_task": 1})) is False
    assert "does not support stage-level scheduling" in caplog.text
    with pytest.raises(ConfigError, match=r"inference.stage_level: got True"):
        check_cluster_conf(spark, parse_inference({"gpus_per_task": 1, "stage_level": True}))
