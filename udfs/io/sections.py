"""Job configuration: read YAML, validate every section before Spark starts, name the key on error.

Each section is a typed model validated by ``udfs.config`` (the project's one mechanism): input, output,
spark and mlflow here, the analyze job's tasks and the job model in udfs/io/jobconf.py, the shadow job's in
udfs/io/shadowconf.py; the cluster, train and evaluate jobs add their own sections and read ``spark`` /
``mlflow`` through the same models.

Relative paths in a job YAML (``input.path``, ``output.path``, evaluate's ``holdout_of``) are relative to the
working directory, not to the YAML's folder nor to the textspark install (``resolve_path``); a model catalog's
``path:`` / ``train:`` are relative to the catalog file's folder (``udfs.models.catalog``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import Field, field_validator, model_validator

from udfs.config import Allowed, Section
from udfs.errors import ConfigError

InputFormat = Literal["parquet", "csv", "json", "table"]
JOB_EXPERIMENT = "textspark-jobs"

Name = Annotated[str, Field(min_length=1)]
PositiveInt = Annotated[int, Field(ge=1), Allowed("a positive integer")]


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--conf", str(path), "a path to an existing YAML file, e.g. conf/jobs/sample.yml")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:  # one line naming the file and where the YAML breaks
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(where, problem, "valid YAML", source=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("--conf", str(path), "a YAML mapping with input, tasks, output")
    return data


def resolve_path(path: str) -> str:
    """A relative local path is relative to the working directory the job was started from (Spark's own
    convention: ``make run`` starts from the checkout, so conf/jobs/*.yml name ``data/...``), and becomes
    absolute here, when the YAML is read; absolute paths and URIs (s3a://, dbfs:/, file:/...) pass unchanged."""
    if is_remote(path) or path.startswith("/"):
        return path
    return os.path.abspath(path)


def overlaps(a: str, b: str) -> bool:
    """The same path, or one inside the other (local paths compared after resolving links)."""
    def norm(p: str) -> str:
        p = "/" + p.removeprefix("file:").lstrip("/") if p.startswith("file:/") else p
        return (os.path.realpath(p) if p.startswith("/") else p.rstrip("/")) + "/"

    x, y = norm(a), norm(b)
    return x.startswith(y) or y.startswith(x)


def is_remote(path: str) -> bool:
    """A URI with a scheme (``s3a://``, ``hdfs://``, ``dbfs:/``, ``file:/``): Hadoop's FileSystem reads it."""
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", path) is not None


class StreamConf(Section):
    """``input.stream:``: read the input with Structured Streaming and append to the output (udfs/io/stream.py).

    ``bad_files``: what a run does with an input file that does not fit the stream (no text or id column, a
    text column that is not a string, a CSV header in another order, a file it cannot read): ``stop`` (exit 3,
    one line naming the file) or ``quarantine`` (moved to ``quarantine``, default ``<input.path>/_quarantine``,
    with ``<name>.reason.txt``; a rename, so on the input's filesystem)."""

    checkpoint: Annotated[Name, Allowed("a folder path (the stream's checkpoint)")]
    trigger: Annotated[str, Allowed('available_now or "<n> seconds"')] = "available_now"
    bad_files: Literal["stop", "quarantine"] = "stop"
    quarantine: Annotated[Name | None, Allowed("a folder path on the input's filesystem (where bad input files "
                                               "are moved; default <input.path>/_quarantine)")] = None

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, trigger: str) -> str:
        if not re.fullmatch(r"available_now|[1-9][0-9]* seconds?", trigger):
            raise ValueError(trigger)
        return trigger

    @field_validator("checkpoint", "quarantine")
    @classmethod
    def _resolve(cls, path: str | None) -> str | None:
        return None if path is None else resolve_path(path)


class InputConf(Section):
    """``input:``: a file or folder (``path``) in a format, or a catalog table (``table``)."""

    path: Annotated[Name, Allowed("a file or folder path")]
    format: InputFormat = "parquet"
    text_column: Annotated[Name, Allowed("a column name")] = "text"
    id_column: Annotated[Name | None, Allowed("a column name")] = None
    options: Annotated[dict[str, Any], Allowed("a mapping of reader options")] = Field(default_factory=dict)
    stream: StreamConf | None = None

    @model_validator(mode="before")
    @classmethod
    def _table_or_path(cls, data: Any) -> Any:
        """``table: name`` is the path of the ``table`` format; a local path resolves and must exist."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        table = data.pop("table", None)
        fmt = data.setdefault("format", "table" if table is not None else "parquet")
        if fmt == "table":
            if not isinstance(table, str) or not table:
                raise ConfigError("table", table, "a table name")
            data["path"] = table
        elif fmt in get_args(InputFormat) and isinstance(data.get("path"), str) and data["path"]:
            given = data["path"]
            data["path"] = resolve_path(given)
            if not is_remote(data["path"]) and not Path(data["path"]).exists():
                raise ConfigError("path", given, "an existing file or folder")
        return data

    @field_validator("options")
    @classmethod
    def _as_strings(cls, options: dict[str, Any]) -> dict[str, str]:
        return {str(k): str(v) for k, v in options.items()}


class OutputConf(Section):
    """``output:``: where the result goes and how an existing one is treated: a folder (``path``, Parquet,
    committed atomically: udfs/io/commit.py) or a catalog table (``table``: ``[catalog.]schema.name``, written
    through the session's catalog: udfs/io/tables.py); exactly one of them.

    ``format``: a folder's is parquet; a table's is the engine's default when absent (``.using()`` is passed
    only when given). ``mode: incremental`` on a table MERGEs into it, so it needs a format that can (delta,
    iceberg); ``delete_missing: true`` (incremental tables only) deletes the ids the input no longer holds."""

    path: Annotated[Name | None, Allowed("a folder path; exactly one of output.path and output.table")] = None
    table: Annotated[Name | None, Allowed("a table name: [catalog.]schema.name; exactly one of output.path and "
                                          "output.table")] = None
    format: Annotated[Literal["parquet", "delta", "iceberg"] | None,
                      Allowed("parquet, delta, iceberg (a folder: parquet; a table: the engine's default when "
                              "absent)")] = None
    mode: Literal["overwrite", "error", "errorifexists", "append", "ignore", "incremental"] = "overwrite"
    delete_missing: Annotated[bool, Allowed("true, false (an incremental table: delete the ids the input no "
                                            "longer holds)")] = False
    partitions: PositiveInt | None = None
    lease_timeout: Annotated[int, Field(ge=10), Allowed("seconds, at least 10")] = 600

    @model_validator(mode="before")
    @classmethod
    def _path_or_table(cls, data: Any) -> Any:
        """Exactly one of ``path`` and ``table``; a folder's format is parquet."""
        if not isinstance(data, dict):
            return data
        path, table = data.get("path"), data.get("table")
        if (path is None) == (table is None):
            raise ConfigError("path", path,
                              "exactly one of output.path (a folder) and output.table (a table name)")
        if path is not None and data.get("format", "parquet") != "parquet":
            raise ConfigError("format", data["format"], "parquet (a folder's format; delta and iceberg are for "
                              "output.table)")
        if table is not None and isinstance(table, str) and not TABLE_NAME.fullmatch(table):
            raise ConfigError("table", table, "a table name: [catalog.]schema.name or name (letters, digits, _; "
                              "a part may be `back-quoted`)")
        return {**data, "format": "parquet"} if path is not None else data

    @model_validator(mode="after")
    def _modes_fit_the_format(self) -> "OutputConf":
        if self.table is not None and self.mode == "incremental" and self.format == "parquet":
            raise ConfigError("mode", "incremental", "overwrite, append, error, ignore for format parquet "
                              "(incremental MERGEs into the table: format delta or iceberg)")
        if self.delete_missing and not (self.table is not None and self.mode == "incremental"):
            raise ConfigError("delete_missing", True, "false (true deletes ids missing from the input: only "
                              "with output.table and output.mode incremental)")
        return self

    @field_validator("path")
    @classmethod
    def _resolve(cls, path: str | None) -> str | None:
        return None if path is None else resolve_path(path)

    @property
    def target(self) -> str:
        """What the job writes: the folder path or the table name."""
        return self.path if self.path is not None else self.table


_PART = r"(?:[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)"
TABLE_NAME = re.compile(rf"{_PART}(?:\.{_PART}){{0,2}}")


class SparkSection(Section):
    """``spark:``: the profile (conf/spark/<profile>.yml or a path; absent: $TEXTSPARK_SPARK_PROFILE, else local)
    and settings layered over it."""

    profile: str | None = None
    conf: Annotated[dict[str, Any], Allowed("a mapping of Spark settings")] = Field(default_factory=dict)


class IncrementalSection(Section):
    """``incremental:``: how ``output.mode: incremental`` treats the previous output's results."""

    retry_errors: bool = True


class MlflowSection(Section):
    """``mlflow:``: the experiment a job logs its run to (each job has its own default)."""

    experiment: Annotated[Name | None, Allowed("an experiment name")] = None
