"""``input.stream``: the analyze job's tasks over Structured Streaming.

``readStream`` of the input folder (parquet, json, csv; the schema is taken from the files already there) or
table -> the same tasks as a batch run -> ``writeStream`` to the parquet output folder with the checkpoint.
Spark's file sink commits each micro-batch exactly once (its ``_spark_metadata`` log lists the committed
files; readers of the folder see only those), and the checkpoint records which input files were processed,
so a re-run, or a run after a crash, processes each input file once.

``trigger: available_now`` processes what is there and stops (run it from a scheduler); ``"<n> seconds"``
runs until stopped. Each Python worker keeps its models between micro-batches while Spark keeps the worker
(``spark.python.worker.reuse``); Spark stops Python workers idle for a minute (a fixed timeout in
PythonWorkerFactory), so with triggers further apart than that each micro-batch loads its models again, from
the per-host model cache (no registry download).
"""
from __future__ import annotations

import time

from jobs.common import InputError, manifest_json, reader_options
from jobs.config import JobConf
from jobs.output import MANIFEST
from jobs.storage import join, storage_for
from udfs.tasks.pipeline import PlannedTask, apply_tasks


def read_stream(spark, conf: JobConf):
    """The input as a streaming DataFrame; a file source takes its schema from the files already there."""
    inp = conf.input
    if inp.format == "table":
        return spark.readStream.table(inp.path)
    options = reader_options(inp.format, inp.options)
    try:
        schema = spark.read.options(**options).format(inp.format).load(inp.path).schema
    except Exception as exc:  # noqa: BLE001 - AnalysisException (no file yet), py4j / Connect errors
        raise InputError("input.path", inp.path, "a stream takes its schema from the files in the folder; "
                         f"Spark could not read one as {inp.format} ({str(exc).splitlines()[0][:200]})",
                         source=conf.source) from None
    return spark.readStream.options(**options).schema(schema).format(inp.format).load(inp.path)


def run_stream(conf: JobConf, planned: list[PlannedTask], spark) -> dict:
    """Run the stream until its trigger ends it; the summary it prints (this run's rows and micro-batches)."""
    started = time.time()
    df = read_stream(spark, conf)
    out = apply_tasks(df, conf.input.text_column, planned, partitions=conf.inference.partitions)
    stream = conf.input.stream
    writer = out.writeStream.format(conf.output.format).outputMode("append") \
                .option("checkpointLocation", stream.checkpoint).queryName(f"textspark-analyze-{int(started)}")
    if stream.trigger == "available_now":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=stream.trigger)
    query = writer.start(conf.output.path)
    try:
        query.awaitTermination()
    except KeyboardInterrupt:
        query.stop()
    progress = [p for p in query.recentProgress if p]
    batches = [p for p in progress if p.get("numInputRows", 0)]
    summary = {
        "output": conf.output.path, "mode": "stream", "trigger": stream.trigger, "checkpoint": stream.checkpoint,
        "rows": sum(int(p["numInputRows"]) for p in batches), "micro_batches": len(batches),
        "seconds": round(time.time() - started, 1),
        "tasks": [{"task": t.task, "column": t.column, "model": t.plan.model.label, "model_uri": t.plan.model.uri}
                  for t in planned],
        "input": {"path": conf.input.path, "format": conf.input.format, "text_column": conf.input.text_column},
        "spark_master": spark.conf.get("spark.master", None),
    }
    storage_for(conf.output.path, spark).write(join(conf.output.path, MANIFEST), manifest_json(**summary).encode())
    return summary
