"""What a job prints and records about a run: the manifest's JSON, each task's rate, and ``--plan``'s estimate."""
from __future__ import annotations

import json
import os
from typing import Any, Callable

from udfs.io.inputs import check_parquet_files, read_input
from udfs.io.storage import LocalStorage, hidden


def task_rates(summary: dict) -> list[str]:
    """One line per task of the analyze job: rows done and rows/s. The seconds are the wall time of the write,
    the one Spark job that reads the input, runs every task (fused in one stage) and writes: each task's
    rate is its rows over that shared time, so it is a floor for the task alone, not its own speed."""
    seconds = summary.get("inference_seconds")
    if not seconds:
        return []
    tasks = summary["tasks"]
    shared = f", shared by the {len(tasks)} tasks that run together" if len(tasks) > 1 else ""
    spread = summary.get("inference_partitions") or "the input's"
    partitions = "partition" if spread == 1 else "partitions"
    computed = {c: n["computed"] for c, n in (summary.get("incremental") or {}).get("tasks", {}).items()}
    lines = []
    for t in tasks:
        done = computed.get(t["column"], summary["rows"])  # incremental: the rows this task computed
        what = f"{done} rows computed" if t["column"] in computed else \
            f"{done} rows done ({done - t['null_with_reason']} with a result)"
        lines.append(f"  {t['column']:<12} {what} at {done / seconds:.1f} rows/s: {seconds} s of reading, "
                     f"inference on {spread} {partitions}{shared}, and writing")
    return lines


def manifest_json(**fields: Any) -> str:
    return json.dumps(fields, indent=2, sort_keys=True, default=str)


def plan_lines(job: str, conf, tasks: list[tuple[str, Any]], start_spark: Callable[[], Any], *,
               max_rows: int | None = None) -> str:
    """``--plan``: the job's estimated time on this cluster from the cost store (udfs.runtime.costs.estimate),
    one line per task (``tasks``: column, UdfPlan) and a total; no model loads, and no Spark session for a
    local Parquet input (its footers give the row count; ``start_spark()`` counts other inputs). The cores are
    the Spark profile's (udfs.runtime.parallelism), the workers as many of them as the rows keep busy.
    ``max_rows``: the job scores at most that many (a sample). A conf without ``inference`` (the shadow job's)
    spreads its rows over every core, on the CPU unless a task's device says otherwise."""
    import pyarrow.parquet as pq

    from udfs.platform import load_spark_profile
    from udfs.runtime import costs
    from udfs.runtime.parallelism import MIN_ROWS_PER_PARTITION, parallelism_from_conf

    inp = conf.input
    if inp.format == "parquet" and inp.path.startswith("/"):
        check_parquet_files(inp.path, source=conf.source)
        files = [inp.path] if os.path.isfile(inp.path) else \
            [os.path.join(inp.path, rel) for rel in LocalStorage().files(inp.path) if not hidden(rel)]
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    else:
        rows = read_input(start_spark(), inp, source=conf.source).count()
    rows = rows if max_rows is None else min(rows, max_rows)
    inference = getattr(conf, "inference", None)
    profile = load_spark_profile(conf.spark.profile)
    settings = {**profile["conf"], **{k: str(v) for k, v in conf.spark.conf.items()}}
    cores = parallelism_from_conf({"spark.master": profile["master"], **settings}) or 1
    workers = max(min(cores, (inference and inference.partitions) or cores, rows // MIN_ROWS_PER_PARTITION), 1)
    gpu = (inference is not None and inference.wants_gpu) or \
        any(str(p.device).startswith("cuda") for _, p in tasks if p is not None)
    device = "gpu" if gpu else "cpu"
    lines, _ = costs.estimate(job, [(c, p.model.label) for c, p in tasks if p is not None], rows, workers, device,
                              cores, costs.records())
    head = (f"plan for {conf.source or job}: {rows:,} input rows on {workers} parallel worker(s) of {cores} "
            f"core(s) ({profile['master']}), {device}; costs recorded in {costs.store_path()}")
    return "\n".join([head, *lines])
