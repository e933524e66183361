"""Run in a subprocess by tests/test_gpu_scheduling.py (one SparkContext per process): a local-cluster with
two fake GPUs per executor; the analyze pipeline with a GPU stage profile between two CPU stages.

    python tests/gpu_cluster_run.py <model reference> <input parquet> <output folder>
Writes <output>/result (the job's columns + probe columns) and <output>/stages.json.
"""
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from udfs.platform import get_spark  # noqa: E402
from udfs.runtime import driver
from udfs.runtime.scheduling import check_cluster_conf, parse_inference, resource_profile  # noqa: E402
from udfs.tasks.pipeline import PlannedTask, apply_tasks, plan_tasks  # noqa: E402


def probe(model, texts, options):
    """Which GPU the task was given, which device the runtime would and does use, and which GPUs the tasks
    running at the same moment hold: each task announces itself in a shared folder and waits (up to 60 s)
    for a second live task, so every recorded ``peers`` list is a set of concurrently running tasks."""
    from udfs.runtime.device import assigned_device, assigned_gpus, select_device

    gpus = ",".join(assigned_gpus())
    live = Path(options["rendezvous"])
    me = live / f"{gpus}.{os.getpid()}.{time.time_ns()}"
    me.write_text(gpus)
    deadline = time.time() + 60
    while len(list(live.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.05)
    peers = sorted(p.read_text() for p in live.iterdir())
    time.sleep(1.0)  # stay live while the next task starts
    me.unlink()
    n = len(texts)
    return {"gpus": [gpus] * n, "assigned": [assigned_device(assigned_gpus())] * n,
            "device": [select_device("auto")] * n, "pid": [os.getpid()] * n, "peers": [peers] * n}


def stage_gpus(column, batches):
    """Records the GPUs the running (non-inference) stage's task was given in ``column``."""
    from pyspark import TaskContext

    info = TaskContext.get().resources().get("gpu")
    for pdf in batches:
        yield pdf.assign(**{column: ",".join(info.addresses) if info else ""})


def _ddl(df) -> str:
    return ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in df.schema.fields)


def main(model_ref: str, input_path: str, out: str) -> None:
    root = Path(__file__).resolve().parent
    spark = get_spark(root / "data" / "local_cluster_gpu.yml")
    res = parse_inference({"gpus_per_task": 1, "partitions": 4})
    assert check_cluster_conf(spark, res) is True
    from udfs.io.jobconf import TaskConf

    live = Path(out) / "live"
    live.mkdir(parents=True)
    planned = plan_tasks([TaskConf(task="embed", column="embedding", settings={"model": model_ref})])
    planned.append(PlannedTask("probe", "probe", driver.plan(
        "embed", probe, [("gpus", "string"), ("assigned", "string"), ("device", "string"), ("pid", "int"),
                         ("peers", "array<string>")], model=model_ref, options={"rendezvous": str(live)})))
    df = spark.read.parquet(input_path)
    df = df.mapInPandas(partial(stage_gpus, "_read_stage_gpus"), _ddl(df) + ", _read_stage_gpus string")
    out_df = apply_tasks(df, "text", planned, profile=resource_profile(res), partitions=4)
    downstream = out_df.repartition(2).mapInPandas(partial(stage_gpus, "_write_stage_gpus"),
                                                   _ddl(out_df) + ", _write_stage_gpus string")
    started = time.time()
    downstream.write.mode("overwrite").parquet(f"{out}/result")
    Path(out, "stages.json").write_text(json.dumps({"seconds": time.time() - started,
                                                    "master": spark.sparkContext.master}))
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
