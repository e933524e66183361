"""A job's input: checked before Spark starts where it can be (the models' packages, local Parquet files), then
read in its format with one-line errors."""
from __future__ import annotations

import os
from typing import Any, Callable

from udfs.errors import InputError
from udfs.io.sections import InputConf
from udfs.io.storage import LocalStorage, hidden
from udfs.models.packages import check_models


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
