"""What every job shares: the --conf command line and its exit codes, reading the input, the run manifest."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Callable

from jobs.config import InputConf
from jobs.storage import LocalStorage, hidden
from udfs.errors import ConfigError, InputError, MissingPackageError, ModelReferenceError  # noqa: F401 - InputError: the jobs raise it
from udfs.models.packages import check_models
from udfs.platform import get_spark
from udfs.runtime.progress import QUIET, is_connect


def parse_args(description: str, argv: list[str] | None, epilog: str | None = None, *,
               plan: bool = False) -> argparse.Namespace:
    """``epilog``: what ``--help`` adds after the options (udfs.config.config_help: the configuration keys);
    ``plan``: the job takes ``--plan``. ``--quiet`` sets TEXTSPARK_QUIET, which the workers inherit."""
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf", required=True, help="job config YAML, e.g. conf/jobs/sample.yml")
    parser.add_argument("--quiet", action="store_true", help="no progress or model-load lines (the summary stays)")
    if plan:
        parser.add_argument("--plan", action="store_true", help="print the estimated time from recorded costs; "
                                                                "run nothing")
    args = parser.parse_args(argv)
    if args.quiet:
        os.environ[QUIET] = "1"
    return args


def run_cli(execute: Callable[[], Any], report: Callable[[Any], None], *, source: str | None = None,
            input_errors: tuple[type[Exception], ...] = ()) -> int:
    """A job's command line: a configuration error (a model reference that does not resolve included) exits
    2, an input or output error 3, a package a model needs that is not installed 3, each with one line on
    stderr (no traceback). A configuration error found past parsing (a task's model reference, a column
    of the table) names ``source``, the job's file, when it does not name one itself."""
    try:
        summary = execute()
    except ConfigError as exc:
        if source and not exc.source:
            exc = ConfigError(exc.key, exc.value, exc.allowed, source=source)
        print(f"configuration error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except ModelReferenceError as exc:  # a model a job names directly (evaluate, train), not through a task
        where = f"{source}: " if source else ""
        print(f"configuration error: {where}{_one_line(exc)}", file=sys.stderr)
        return 2
    except (InputError, *input_errors) as exc:
        print(f"input error: {_one_line(exc)}", file=sys.stderr)
        return 3
    except MissingPackageError as exc:
        print(f"missing package: {_one_line(exc)}", file=sys.stderr)
        return 3
    except Exception as exc:  # noqa: BLE001 - a task that failed on a worker (after Spark's retries)
        first = worker_error(exc)
        if first is None:
            raise
        print(f"job failed: {first}", file=sys.stderr)
        return 4
    report(summary)
    return 0


# Spark's loggers that print a failed task's Java and Python trace, once per attempt (1,100 lines for one model
# that does not load): a job prints the first worker error in one line instead (worker_error). The Spark UI and
# event log keep the traces; TEXTSPARK_TASK_LOGS=1 keeps them on stderr too (bench/faults.py reads "Lost task").
TASK_LOGS = "TEXTSPARK_TASK_LOGS"
TASK_FAILURE_LOGGERS = ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager",
                        "org.apache.spark.util.Utils", "org.apache.spark.sql.execution.datasources.FileFormatWriter")


def job_spark(profile: str | None, conf: dict | None = None):
    """The job's session (udfs.platform.get_spark) with Spark's per-attempt task-failure traces off, on a
    classic session (over Spark Connect they are the server's log), unless TEXTSPARK_TASK_LOGS=1."""
    spark = get_spark(profile, conf=conf)
    if not is_connect(spark) and os.environ.get(TASK_LOGS, "") in ("", "0"):
        jvm = spark.sparkContext._jvm
        level = jvm.org.apache.logging.log4j.Level.OFF
        for name in TASK_FAILURE_LOGGERS:
            jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, level)
    return spark


PYTHON_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit)): (.*)$")


def worker_error(exc: BaseException) -> str | None:
    """The first worker error of a failed Spark job, in one line (the Python exception a worker raised, e.g.
    ``ValueError: ...``), or None when ``exc`` is not a Spark job failure."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    if not isinstance(exc, (Py4JJavaError, PySparkException)):
        return None
    text = str(exc)
    if "Traceback (most recent call last)" in text:  # a Python worker's exception, inside Java's
        found = None
        for line in text.split("Traceback (most recent call last)", 1)[1].splitlines():
            if line.lstrip().startswith("at ") or line.startswith(("Driver stacktrace", "\tat ")):
                break  # the Java frames that follow the worker's traceback
            found = PYTHON_ERROR.match(line) or found  # the last: a chained traceback ends with the raised one
        if found:  # the exception's class without its module (udfs.errors.ModelLoadError: ...)
            return _one_line(f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2)}")[:600]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    causes = [ln for ln in lines if "Exception:" in ln] or lines[:1]
    return _one_line(causes[-1] if causes else type(exc).__name__)[:600]


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def preflight(plans) -> None:
    """Before Spark starts: every model the job's UDF plans load (the language guard's detector included)
    has its backend installed here; the first that does not raises MissingPackageError (exit 3, one line)."""
    check_models(m for p in plans if p is not None
                 for m in (p.model, p.guard.detector if p.guard is not None else None) if m is not None)


def check_input(inp: InputConf, *, source: str | None = None) -> None:
    """What can be checked without Spark: a local Parquet input's files are Parquet files that decode whole
    (Spark's reader can fail on a corrupt page with a Java trace that names no file, or not fail at all)."""
    if inp.format == "parquet" and inp.path.startswith("/"):
        check_parquet_files(inp.path, source=source, decode=True)


def read_input(spark, inp: InputConf, *, source: str | None = None):
    """The input table; a file Spark cannot read in the configured format is an InputError naming
    input.path and input.format (local Parquet files are checked before Spark reads them)."""
    if inp.format == "table":
        return _spark_read(lambda: spark.table(inp.path), "input.table", inp, source)
    if inp.format == "parquet" and inp.path.startswith("/"):
        check_parquet_files(inp.path, source=source)
    options = reader_options(inp.format, inp.options)
    reader = spark.read.options(**options)
    return _spark_read(lambda: reader.format(inp.format).load(inp.path), "input.path", inp, source)


CSV_DEFAULTS = {"header": "true", "multiLine": "true", "escape": '"'}  # RFC 4180: a quote inside a quoted
# field is written twice ("He said ""hi""") and reads back as one; Spark's own default escape is a backslash


def reader_options(fmt: str, given: dict[str, str]) -> dict[str, str]:
    """The reader options for ``input.format``: the user's ``input.options`` over the format's defaults
    (Spark option names are case-insensitive, so ``multiline`` replaces ``multiLine``)."""
    defaults = CSV_DEFAULTS if fmt == "csv" else {}
    named = {key.lower() for key in given}
    return {**{k: v for k, v in defaults.items() if k.lower() not in named}, **given}


def _spark_read(load: Callable[[], Any], key: str, inp: InputConf, source: str | None):
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import AnalysisException

    try:
        return load()
    except (AnalysisException, Py4JJavaError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        causes = [ln for ln in lines if "Exception:" in ln or ln.startswith("[")] or lines[:1]
        raise InputError(key, inp.path, f"Spark cannot read it as format {inp.format}: {causes[0][:300]}",
                         source=source) from None


def check_parquet_files(path: str, *, source: str | None = None, decode: bool = False) -> None:
    """Every data file of a local Parquet input starts and ends with Parquet's magic bytes ``PAR1`` and has a
    readable footer; with ``decode``, every page of every column decodes (pyarrow, one row group at a time:
    a few hundred MB/s, next to a model's few hundred rows/s)."""
    import pyarrow.parquet as pq

    if os.path.isfile(path):
        files = [path]
    else:
        files = [os.path.join(path, rel) for rel in LocalStorage().files(path) if not hidden(rel)]
    for file in files:
        with open(file, "rb") as fh:
            head = fh.read(4)
            fh.seek(max(os.path.getsize(file) - 4, 0))
            tail = fh.read(4)
        if head != b"PAR1" or tail != b"PAR1":
            where = "it" if file == path else file
            raise InputError("input.path", path, f"input.format is parquet but {where} is not a Parquet file; "
                             "allowed: Parquet files, or set input.format (csv, json)", source=source)
        try:
            parquet = pq.ParquetFile(file)
            for group in range(parquet.num_row_groups if decode else 0):
                parquet.read_row_group(group)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises OSError, ArrowInvalid, ... on a corrupt file
            where = "it" if file == path else file
            problem = " ".join(str(exc).split())[:200]
            raise InputError("input.path", path, f"{where} is a corrupt Parquet file ({type(exc).__name__}: "
                             f"{problem}); allowed: Parquet files that read whole", source=source) from None


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
