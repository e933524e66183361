"""Apply the configured tasks to a text table and write every input row, plus one column per task.

    spark-submit jobs/analyze.py --conf conf/jobs/sample.yml
    python -m jobs.analyze --conf conf/jobs/sample.yml

The output folder also gets ``_textspark_manifest.json`` (tasks, model versions, this run's row and error
counts); the same facts are logged to an MLflow run. The output is written into a staging folder next to it
and committed atomically (jobs/output.py): a crash leaves the previous complete output or the new one.
"""
from __future__ import annotations

import os
import sys
import time

if __package__ in (None, ""):  # spark-submit jobs/analyze.py: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jobs.common import check_input, manifest_json, parse_args, read_input, run_cli  # noqa: E402
from jobs.config import JobConf, load_job  # noqa: E402
from jobs.output import MANIFEST, Output  # noqa: E402
from udfs.errors import ConfigError  # noqa: E402
from udfs.tasks.pipeline import apply_tasks, plan_tasks  # noqa: E402
from udfs.platform import get_experiment_id, get_spark, setup_environment  # noqa: E402
from udfs.runtime.scheduling import check_cluster_conf, resource_profile  # noqa: E402


def run(conf: JobConf, *, spark=None) -> dict:
    """Run the job; returns the summary it prints. Config, input and output errors raise before any model
    runs; the output is committed atomically (jobs/output.py)."""
    setup_environment()
    planned = plan_tasks(conf.tasks)
    check_input(conf.input, source=conf.source)  # a local input and output are checked before Spark starts
    output = Output(conf.output, source=conf.source)
    if output.skip:
        return _skipped(conf)
    spark = spark or get_spark(conf.spark.profile, conf=conf.spark.conf)
    if output.bind(spark).skip:
        return _skipped(conf)
    started = time.time()
    df = read_input(spark, conf.input, source=conf.source)
    for key, col in (("input.text_column", conf.input.text_column), ("input.id_column", conf.input.id_column)):
        if col is not None and col not in df.columns:
            raise ConfigError(key, col, df.columns, source=conf.source)
    use_profile = check_cluster_conf(spark, conf.inference)
    out = apply_tasks(df, conf.input.text_column, planned, partitions=conf.inference.partitions,
                      profile=resource_profile(conf.inference) if use_profile else None)
    if conf.output.partitions:
        out = out.repartition(conf.output.partitions)
    output.check_append(out)
    output.check_ids(df, conf.input.id_column)
    with output.staging() as stage:
        out.write.mode("errorifexists").format(conf.output.format).save(stage)
        row = _counts(spark.read.format(conf.output.format).load(stage), planned)  # this run's rows only
        output.add_existing()
        summary = {
            "output": conf.output.path,
            "mode": conf.output.mode,
            "rows": row["rows"],
            "output_rows": spark.read.format(conf.output.format).load(stage).count() if output.appending
            else row["rows"],
            "seconds": round(time.time() - started, 1),
            "tasks": [{"task": t.task, "column": t.column, "model": t.plan.model.label, "model_uri": t.plan.model.uri,
                       "null_with_reason": row[f"{t.column}__errors"]} for t in planned],
            "input": {"path": conf.input.path, "format": conf.input.format, "text_column": conf.input.text_column},
            "spark_master": spark.sparkContext.master,
            "gpu_stage": use_profile,
            "write_id": output.run_id,  # names the staging folder: <parent>/_textspark_staging/<name>-<write_id>
            "recovered": output.recovered,
        }
        output.commit(manifest_json(**summary))
    _log_run(conf, summary)
    return summary


def _counts(written, planned) -> dict:
    from pyspark.sql import functions as F

    counts = [F.count(F.lit(1)).alias("rows")]
    for t in planned:
        err = F.col(t.error_column) if t.error_column else F.col(f"`{t.column}`.error")
        counts.append(F.count(err).alias(f"{t.column}__errors"))
    return written.agg(*counts).first().asDict()


def _skipped(conf: JobConf) -> dict:
    """mode: ignore on an existing output: nothing written, no manifest rewritten, no MLflow run."""
    return {"output": conf.output.path, "mode": "ignore", "rows": 0, "skipped": True, "tasks": []}


def _log_run(conf: JobConf, summary: dict) -> None:
    import mlflow

    with mlflow.start_run(experiment_id=get_experiment_id(conf.experiment), run_name="analyze"):
        mlflow.log_params({"input": conf.input.path, "output": conf.output.path, "mode": conf.output.mode,
                           **{f"model.{t['column']}": t["model"] for t in summary["tasks"]}})
        mlflow.log_metrics({"rows": summary["rows"], "output_rows": summary["output_rows"],
                            "seconds": summary["seconds"],
                            **{f"errors.{t['column']}": t["null_with_reason"] for t in summary["tasks"]}})
        mlflow.log_dict(summary, "textspark_manifest.json")
        mlflow.set_tags({"textspark.job": "analyze"})


def print_summary(summary: dict) -> None:
    if summary.get("skipped"):
        print(f"\n{summary['output']} exists and output.mode is ignore: nothing written")
        return
    for line in summary.get("recovered") or []:
        print(f"recovered {summary['output']}: {line}")
    total = f" (the output now holds {summary['output_rows']})" if summary["mode"] == "append" else ""
    print(f"\nwrote {summary['rows']} rows to {summary['output']}{total} in {summary['seconds']} s")
    for t in summary["tasks"]:
        print(f"  {t['column']:<12} task={t['task']:<10} model={t['model']:<28} null-with-reason={t['null_with_reason']}")
    print(f"manifest: {summary['output']}/{MANIFEST}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    return run_cli(lambda: run(load_job(args.conf)), print_summary)


if __name__ == "__main__":
    sys.exit(main())
