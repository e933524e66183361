"""A job's command line: ``--conf`` and ``--quiet`` (:func:`parse_args`), its exit codes with one line on stderr
(:func:`run_cli`), and the Spark session with the per-attempt task-failure traces off (:func:`job_spark`)."""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, Callable

from udfs.errors import ConfigError, InputError, MissingPackageError, ModelReferenceError
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
