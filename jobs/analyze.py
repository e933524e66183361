"""Apply the configured tasks to a text table and write every input row, plus one column per task.

    spark-submit jobs/analyze.py --conf conf/jobs/sample.yml
    python -m jobs.analyze --conf conf/jobs/sample.yml

The output folder also gets ``_textspark_manifest.json`` (tasks, model versions, this run's row and error
counts, each task's cost and the job's wall split: udfs/runtime/costs.py); the same facts are logged to an
MLflow run, and the costs to the cost store that ``--plan`` reads: ``python -m jobs.analyze --conf ... --plan``
prints the job's estimated time from them and runs nothing. The output is written into a staging folder next to it
and committed atomically (udfs/io/commit.py): a crash leaves the previous complete output or the new one.
With ``output.table`` the rows go to a catalog table instead (udfs/io/tables.py: one engine commit per write, a
MERGE for ``mode: incremental``), the manifest into its ``textspark.manifest`` property.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import nullcontext

if __package__ in (None, ""):  # spark-submit jobs/analyze.py: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from udfs.io.inputs import check_input, preflight, read_input  # noqa: E402
from udfs.io.cli import job_spark, parse_args, run_cli  # noqa: E402
from udfs.io.summary import manifest_json, plan_lines, task_rates  # noqa: E402
from udfs.io.jobconf import JobConf, load_job  # noqa: E402
from udfs.io.commit import MANIFEST  # noqa: E402
from udfs.io.output import Output, writer_lease  # noqa: E402
from udfs.errors import ConfigError, InputError  # noqa: E402
from udfs.io.report import figure, tally  # noqa: E402
from udfs.io.stream import run_stream  # noqa: E402
from udfs.io.stream_sinks import table_sink  # noqa: E402
from udfs.io.tables import TableOutput  # noqa: E402
from udfs.config import config_help  # noqa: E402
from udfs.io.tracking import JobRun, job_run, used_models  # noqa: E402
from udfs.tasks.incremental import Incremental, check_ids  # noqa: E402
from udfs.tasks.pipeline import apply_tasks, plan_tasks  # noqa: E402
from udfs.runtime.guard import shown  # noqa: E402
from udfs.tasks.table import TASK_DEFS, task_keys_help  # noqa: E402
from udfs import metastore  # noqa: E402
from udfs.platform import setup_environment  # noqa: E402
from udfs.runtime import costs  # noqa: E402
from udfs.runtime.parallelism import cluster_parallelism, inference_partitions  # noqa: E402
from udfs.runtime.progress import progress  # noqa: E402
from udfs.runtime.scheduling import check_cluster_conf, resource_profile  # noqa: E402


def run(conf: JobConf, *, spark=None) -> dict:
    """Run the job; returns the summary it prints. Config, input and output errors raise before any model
    runs; the output is committed atomically (udfs/io/commit.py)."""
    started = time.time()  # the MLflow run's start: it opens once the checks pass, dated from here
    setup_environment()
    planned = plan_tasks(conf.tasks)
    preflight(t.plan for t in planned)  # every backend installed: one line, exit 3, before Spark starts
    check_input(conf.input, source=conf.source)  # a local input and output are checked before Spark starts
    models = used_models(t.plan for t in planned)
    if conf.output.table is not None and conf.input.stream is None:  # a catalog table (udfs/io/tables.py)
        return _run_table_job(conf, planned, spark, started, models)
    if conf.input.stream is not None:  # Structured Streaming: Spark's file or table sink commits each micro-batch
        spark = spark or job_spark(conf.spark.profile, conf=conf.spark.conf)
        sink = table_sink(conf, spark) if conf.output.table is not None else None  # checked before the run opens
        with job_run("analyze", conf.experiment, conf.output.target, started=started, models=models) as tracked:
            with writer_lease(conf.output, spark, source=conf.source) if sink is None else nullcontext():
                summary = run_stream(conf, planned, spark, sink=sink, run_id=tracked.run_id)
            _log_run(tracked, conf, summary)
        return summary
    with Output(conf.output, source=conf.source) as output:  # the output's lease, released at the end
        if output.skip:
            return _skipped(conf)
        asked = time.time()
        spark = spark or job_spark(conf.spark.profile, conf=conf.spark.conf)
        clock = {"started": started, "asked": asked, "ready": time.time()}  # the wall split (udfs/runtime/costs.py)
        if output.bind(spark).skip:
            return _skipped(conf)
        reading = metastore.holding(spark, f"reading table {conf.input.path}") if conf.input.format == "table" \
            else nullcontext()
        with job_run("analyze", conf.experiment, conf.output.path, started=started, models=models) as tracked, reading:
            summary, dists = _run_batch(conf, planned, output, spark, clock)
            output.close()  # the lease is released before the run is logged
            _log_run(tracked, conf, summary, dists)
    costs.record("analyze", summary)  # the cost store --plan reads
    return summary


def _run_table_job(conf: JobConf, planned, spark, started: float, models) -> dict:
    """``output.table``: the checks (an existing table with mode error, incremental on a format that cannot
    MERGE) before the MLflow run opens and before any model loads; then the write (udfs/io/tables.py)."""
    asked = time.time()
    spark = spark or job_spark(conf.spark.profile, conf=conf.spark.conf)
    clock = {"started": started, "asked": asked, "ready": time.time()}
    with metastore.holding(spark, f"writing table {conf.output.table}"):  # the local catalog: udfs/metastore.py
        table = TableOutput(conf.output, spark, id_column=conf.input.id_column, source=conf.source)
        if table.skip:
            return _skipped(conf)
        with job_run("analyze", conf.experiment, conf.output.table, started=started, models=models) as tracked:
            summary, dists = _run_table(conf, planned, table, spark, clock, tracked.run_id)
            _log_run(tracked, conf, summary, dists)
    costs.record("analyze", summary)
    return summary


def _run_table(conf: JobConf, planned, table: TableOutput, spark, clock: dict, run_id: str) -> tuple[dict, dict]:
    """Read, run every task and write ``table`` in the output's mode (one MERGE for incremental); the row
    check on the rows stamped with ``run_id``; the manifest into the table's properties."""
    started = time.time()
    df, use_profile, partitions, profile, meter = _read(conf, planned, spark)
    incremental = None
    if conf.output.mode == "incremental":  # the table is the previous output
        inc = Incremental(df, meter.tasks, table.previous(), text_column=conf.input.text_column,
                          id_column=conf.input.id_column, profile=profile, partitions=partitions,
                          retry_errors=conf.incremental.retry_errors, previous_at=conf.output.table,
                          source=conf.source)
        incremental = inc.counts()
        check_ids(df, conf.input.id_column, source=conf.source, counted=inc.id_counts)
        out = table.merge_source(inc, incremental, run_id)
        input_rows, computed = incremental["rows"], table.changed_rows(inc)
        meter.total_rows = {column: c["computed"] for column, c in incremental["tasks"].items()}
    else:
        out = apply_tasks(df, conf.input.text_column, meter.tasks, partitions=partitions, profile=profile)
        out = table.with_provenance(table.with_bookkeeping(out, meter.tasks, conf.input.text_column), run_id)
        input_rows = computed = meter.total_rows = df.count()
    if conf.output.partitions:
        out = out.repartition(conf.output.partitions)
    table.check(out, df)
    inferring = time.time()
    with meter:
        table.write(out)
    inferred = time.time()
    wrote = table.rows_of(run_id)
    row, dists = tally(spark.table(conf.output.table) if incremental is not None else wrote, planned)
    written = wrote.count() if incremental is not None else row["rows"]
    table.row_check(written, computed)
    summary = _summary(  # an incremental run tallied the whole table: its rows are the table's
        conf, planned, spark, row, output=conf.output.table, input_rows=input_rows, rows=written,
        output_rows=row["rows"] if incremental is not None else table.count(), started=started, inference_seconds=round(inferred - inferring, 1),
        partitions=partitions, gpu_stage=use_profile, run_id=run_id,
        table={"name": conf.output.table, "format": table.format, "delete_missing": conf.output.delete_missing})
    _add_costs(summary, incremental, meter, spark, partitions, clock, inferring, inferred)
    table.set_manifest(summary)
    return summary, dists


def plan(conf: JobConf) -> str:
    """``--plan``: the job's estimated time from the recorded costs (udfs.io.summary.plan_lines); loads no model,
    and starts no Spark session for a local Parquet input."""
    setup_environment()
    planned = plan_tasks(conf.tasks)
    return plan_lines("analyze", conf, [(t.column, t.plan) for t in planned],
                      lambda: job_spark(conf.spark.profile, conf=conf.spark.conf))


def _run_batch(conf: JobConf, planned, output: Output, spark, clock: dict | None = None) -> tuple[dict, dict]:
    """Read, run every task, stage and commit ``output`` (whose lease this run holds); the summary and the
    task distributions. ``clock``: the job's start, when it asked for Spark and when Spark was ready (the
    wall split's setup and spark_start: udfs/runtime/costs.py)."""
    started = time.time()
    clock = clock or {"started": started, "asked": started, "ready": started}
    df, use_profile, partitions, profile, meter = _read(conf, planned, spark)
    incremental = None
    if conf.output.mode == "incremental":  # reuse the committed output's results where nothing changed
        inc = Incremental(df, meter.tasks, output.previous(), text_column=conf.input.text_column,
                          id_column=conf.input.id_column, profile=profile, partitions=partitions,
                          retry_errors=conf.incremental.retry_errors, previous_at=conf.output.path,
                          source=conf.source)
        incremental = inc.counts()  # counts the ids too: checked here, before any model loads
        check_ids(df, conf.input.id_column, source=conf.source, counted=inc.id_counts)
        out = inc.output(incremental)  # a task with nothing to compute does not run
        input_rows = incremental["rows"]
        meter.total_rows = {column: c["computed"] for column, c in incremental["tasks"].items()}
    else:
        out = apply_tasks(df, conf.input.text_column, meter.tasks, partitions=partitions, profile=profile)
        input_rows = meter.total_rows = df.count()
    if conf.output.partitions:
        out = out.repartition(conf.output.partitions)
    output.check_append(out)
    output.check_ids(df, conf.input.id_column)
    with output.staging() as stage:
        inferring = time.time()  # the write runs the read, every task (fused in one stage) and the write
        with meter:
            out.write.mode("error").format(conf.output.format).save(stage)  # "error": Connect has no "errorifexists"
        inferred = time.time()
        inference_seconds = round(inferred - inferring, 1)
        written = spark.read.format(conf.output.format).load(stage)
        row, dists = tally(written, planned)  # this run's rows only
        if row["rows"] != input_rows:  # every input row is written once, or nothing is committed
            raise InputError("output.path", conf.output.path, f"this run wrote {row['rows']} rows for "
                             f"{input_rows} input rows; nothing was committed", source=conf.source)
        output.add_existing()
        summary = _summary(
            conf, planned, spark, row, output=conf.output.path, input_rows=input_rows, rows=row["rows"],
            output_rows=spark.read.format(conf.output.format).load(stage).count() if output.appending else row["rows"],
            started=started, inference_seconds=inference_seconds, partitions=partitions, gpu_stage=use_profile,
            write_id=output.run_id,  # names the staging folder: <parent>/_textspark_staging/<name>-<write_id>
            recovered=output.recovered)
        _add_costs(summary, incremental, meter, spark, partitions, clock, inferring, inferred)
        output.commit(manifest_json(**summary))
    return summary, dists


def _read(conf: JobConf, planned, spark):
    """The input (its text and id columns checked), whether the inference stage carries the GPU profile, the
    partitions, the profile, and the meter: rows scored per task, live on stderr during the write (the plans
    it returns carry its counters) and each task's cost."""
    df = read_input(spark, conf.input, source=conf.source)
    for key, col in (("input.text_column", conf.input.text_column), ("input.id_column", conf.input.id_column)):
        if col is not None and col not in df.columns:
            raise ConfigError(key, col, df.columns, source=conf.source)
    use_profile = check_cluster_conf(spark, conf.inference)
    partitions = inference_partitions(spark, df, conf.inference.partitions)  # enough to use every core
    profile = resource_profile(conf.inference) if use_profile else None
    meter = progress(spark, planned, skip_nulls=conf.output.mode == "incremental", costs=True)
    return df, use_profile, partitions, profile, meter


def _summary(conf: JobConf, planned, spark, row: dict, *, output: str, input_rows: int, rows: int, output_rows: int,
             started: float, inference_seconds: float, partitions, gpu_stage: bool, **more) -> dict:
    """What a batch run prints, commits as its manifest and logs to MLflow (``more``: the output's own)."""
    return {
        "output": output, "mode": conf.output.mode, **({"table": more.pop("table")} if "table" in more else {}),
        "input_rows": input_rows, "rows": rows, "output_rows": output_rows,
        "seconds": round(time.time() - started, 1),
        "inference_seconds": inference_seconds, "inference_partitions": partitions,  # None: the input's
        "tasks": [{"task": t.task, "column": t.column, "model": t.plan.model.label, "model_uri": t.plan.model.uri,
                   "null_with_reason": row[f"{t.column}__errors"], "reads": reads(t),
                   "languages_recorded": t.plan.model.languages is not None,
                   "skipped_for_language": row[f"{t.column}__skipped_for_language"]} for t in planned],
        "rows_per_language": rows_per_language(planned, row),
        "input": {"path": conf.input.path, "format": conf.input.format, "text_column": conf.input.text_column},
        "spark_master": spark.conf.get("spark.master", None),  # also over Spark Connect
        "gpu_stage": gpu_stage, **more}


def _add_costs(summary: dict, incremental, meter, spark, partitions, clock: dict, inferring: float,
               inferred: float) -> None:
    """The incremental counts, each task's cost (none over Spark Connect) and the job's wall split."""
    if incremental is not None:
        summary["incremental"] = incremental
    cores = cluster_parallelism(spark)
    summary["costs"] = meter.costs()  # per task: loads, compute, rows
    now = time.time()
    parts = {"setup": clock["asked"] - clock["started"], "spark_start": clock["ready"] - clock["asked"],
             "read": inferring - clock["ready"], "stage": inferred - inferring, "commit": now - inferred}
    summary["wall"] = costs.account(parts, now - clock["started"], summary["costs"],
                                    min(cores or partitions or 1, partitions or cores or 1), cores)


def rows_per_language(planned, row: dict) -> dict | None:
    """The rows per detected language, from the job's first ``language`` task (None without one: the guard
    identifies rows in the workers but keeps no per-row language)."""
    lang = next((t for t in planned if t.task == "language"), None)
    return None if lang is None else {"column": lang.column, "counts": row[f"{lang.column}__languages"]}


def reads(t) -> list[str] | None:
    """The languages a task's rows are checked against (None: no guard; the summary says why)."""
    return list(t.plan.guard.reads) if t.plan.guard is not None else None


def _skipped(conf: JobConf) -> dict:
    """mode: ignore on an existing output: nothing written, no manifest rewritten, no MLflow run."""
    return {"output": conf.output.target, "mode": "ignore", "rows": 0, "skipped": True, "tasks": []}


def _log_run(tracked: JobRun, conf: JobConf, summary: dict, dists: dict | None = None) -> None:
    metrics = {k: summary[k] for k in ("rows", "output_rows", "seconds", "micro_batches") if k in summary}
    metrics.update({f"errors.{t['column']}": t["null_with_reason"] for t in summary["tasks"] if "null_with_reason" in t})
    metrics.update({f"rows_per_language.{code}": n
                    for code, n in ((summary.get("rows_per_language") or {}).get("counts") or {}).items()})
    metrics.update({f"skipped_for_language.{t['column']}.{code}": n for t in summary["tasks"]
                    for code, n in (t.get("skipped_for_language") or {}).items()})
    for column, c in (summary.get("incremental") or {}).get("tasks", {}).items():
        metrics.update({f"computed.{column}": c["computed"], f"reused.{column}": c["reused"],
                        f"dropped.{column}": c["dropped"],
                        **{f"computed.{column}.{why}": n for why, n in c["computed_because"].items()}})
    tracked.log_params({"input": conf.input.path, "output": conf.output.target, "mode": summary["mode"],
                        **{f"model.{t['column']}": t["model"] for t in summary["tasks"]}})
    _log_lineage(tracked, conf, summary)
    tracked.log_metrics({**metrics, **costs.metrics(summary)})  # cost.<column>.<figure>, wall.<part>
    if dists:
        tracked.log_figure(figure(dists), "task_distributions.png")
    tracked.log_dict(summary, "textspark_manifest.json")


def _log_lineage(tracked: JobRun, conf: JobConf, summary: dict) -> None:
    """The input and the output as the run's datasets (contexts "input" and "output")."""
    inp = conf.input
    where = {"table": inp.path} if inp.format == "table" else {"path": inp.path}
    tracked.log_dataset("input", **where, fingerprint=[inp.format, summary.get("input_rows", summary.get("rows"))])
    out = conf.output
    where = {"table": out.table} if out.table is not None else {"path": out.path}
    tracked.log_dataset("output", **where, fingerprint=[out.format, summary["mode"], tracked.run_id,
                                                        summary.get("rows"), summary.get("output_rows")])


def print_summary(summary: dict) -> None:
    if summary.get("skipped"):
        print(f"\n{summary['output']} exists and output.mode is ignore: nothing written")
        return
    if summary["mode"] == "stream":
        into = f"table {summary['output']}" if summary.get("table") else summary["output"]
        print(f"\nstream ({summary['trigger']}): {summary['rows']} rows in {summary['micro_batches']} micro-batch(es) "
              f"appended to {into} in {summary['seconds']} s; checkpoint {summary['checkpoint']}")
        for q in summary.get("quarantined") or []:
            print(f"  quarantined {q['file']} -> {q['moved_to']}: {q['reason']}")
        if summary.get("uncommitted_removed"):
            print(f"  removed {summary['uncommitted_removed']} data files no micro-batch committed (a crashed run's)")
        return
    for line in summary.get("recovered") or []:
        print(f"recovered {summary['output']}: {line}")
    table = summary.get("table")
    if table:
        total = f" (the table now holds {summary['output_rows']})" if summary["mode"] in ("append", "incremental") \
            else ""
        print(f"\nwrote {summary['rows']} rows to table {summary['output']}{total} in {summary['seconds']} s")
    else:
        total = f" (the output now holds {summary['output_rows']})" if summary["mode"] == "append" else ""
        print(f"\nwrote {summary['rows']} rows to {summary['output']}{total} in {summary['seconds']} s")
    for t in summary["tasks"]:
        print(f"  {t['column']:<12} task={t['task']:<10} model={t['model']:<28} null-with-reason={t['null_with_reason']}")
        if t.get("skipped_for_language"):
            langs = ", ".join(f"{code} {n}" for code, n in t["skipped_for_language"].items())
            print(f"  {'':<12} rows in a language {t['model']} does not read (reads: {shown(tuple(t['reads']))}): "
                  f"{langs}")
    if summary.get("rows_per_language"):
        per = summary["rows_per_language"]
        ranked = sorted(per["counts"].items(), key=lambda kv: (-kv[1], kv[0]))
        print(f"  rows per language ({per['column']}): " + ", ".join(f"{code} {n}" for code, n in ranked))
    unknown = sorted({t["model"] for t in summary["tasks"]
                      if TASK_DEFS[t["task"]].guarded and t.get("languages_recorded") is False})
    if unknown:
        print(f"  warning: {', '.join(unknown)} record no languages: their rows are not checked (register them with "
              "languages: [...] in the catalog, or languages=[...])")
    for column, c in (summary.get("incremental") or {}).get("tasks", {}).items():
        why = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in c["computed_because"].items() if n) or "nothing"
        print(f"  {column:<12} computed {c['computed']} ({why}), reused {c['reused']}, dropped {c['dropped']}")
    if (summary.get("incremental") or {}).get("full_recompute"):
        print(f"  every row computed: {summary['incremental']['full_recompute']}")
    for line in task_rates(summary) + costs.lines(summary):  # rows/s per task; each task's cost, the wall split
        print(line)
    if not table:  # a table's manifest is its textspark.manifest property
        print(f"manifest: {summary['output']}/{MANIFEST}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, epilog=config_help(JobConf) + "\n\n" + task_keys_help(), plan=True)
    if args.plan:  # the estimate from recorded costs: nothing runs
        return run_cli(lambda: plan(load_job(args.conf)), print, source=args.conf)
    return run_cli(lambda: run(load_job(args.conf)), print_summary, source=args.conf)


if __name__ == "__main__":
    sys.exit(main())
