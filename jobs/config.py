"""Job configuration: read YAML, validate every section before Spark starts, name the key on error.

Each section is a typed model validated by ``udfs.config`` (the project's one mechanism): input, output,
tasks, inference, spark and mlflow here; the cluster, train and evaluate jobs add their own sections and read
``spark`` / ``mlflow`` through the same models.

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
from pydantic import Field, PrivateAttr, create_model, field_validator, model_validator

from udfs.config import Allowed, Section, validate
from udfs.errors import ConfigError
from udfs.runtime.scheduling import InferenceResources
from udfs.tasks.table import COMMON_KEYS, TASK_DEFS

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
    if _is_remote(path) or path.startswith("/"):
        return path
    return os.path.abspath(path)


def _overlap(a: str, b: str) -> bool:
    """The same path, or one inside the other (local paths compared after resolving links)."""
    def norm(p: str) -> str:
        p = "/" + p.removeprefix("file:").lstrip("/") if p.startswith("file:/") else p
        return (os.path.realpath(p) if p.startswith("/") else p.rstrip("/")) + "/"

    x, y = norm(a), norm(b)
    return x.startswith(y) or y.startswith(x)


def _is_remote(path: str) -> bool:
    """A URI with a scheme (``s3a://``, ``hdfs://``, ``dbfs:/``, ``file:/``): Hadoop's FileSystem reads it."""
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", path) is not None


class StreamConf(Section):
    """``input.stream:``: read the input with Structured Streaming and append to the output (jobs/stream.py).

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
            if not _is_remote(data["path"]) and not Path(data["path"]).exists():
                raise ConfigError("path", given, "an existing file or folder")
        return data

    @field_validator("options")
    @classmethod
    def _as_strings(cls, options: dict[str, Any]) -> dict[str, str]:
        return {str(k): str(v) for k, v in options.items()}


class OutputConf(Section):
    """``output:``: where the result goes and how an existing one is treated: a folder (``path``, Parquet,
    committed atomically: jobs/output.py) or a catalog table (``table``: ``[catalog.]schema.name``, written
    through the session's catalog: jobs/tables.py); exactly one of them.

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


class TaskConf(Section):
    """One ``tasks[i]`` entry: the task, its output column, and its settings (model, device, precision,
    fail_on_error and the task's own keys), which the task's plan validates when it resolves the model."""

    task: str
    column: Annotated[Name, Allowed("an output column name")]
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat_yaml(cls, data: Any) -> Any:
        """The YAML entry is flat (``{task, column, model, labels, ...}``): check its keys for the task."""
        if not isinstance(data, dict) or "settings" in data:
            return data
        name = data.get("task")
        if name not in TASK_DEFS:
            raise ConfigError("task", name, sorted(TASK_DEFS))
        tdef = TASK_DEFS[name]
        allowed = COMMON_KEYS + tdef.extra_keys
        for key, value in data.items():
            if key not in allowed:
                raise ConfigError(key, value, f"keys {', '.join(allowed)}")
        for key in tdef.required_keys:
            if key not in data:
                raise ConfigError(key, None, f"required for task {name}")
        fail = data.get("fail_on_error", False)
        if not isinstance(fail, bool):
            raise ConfigError("fail_on_error", fail, "true, false")
        settings = {k: v for k, v in data.items() if k not in ("task", "column")}
        return {"task": name, "column": data.get("column", name), "settings": settings}


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


Tasks = Annotated[list[TaskConf], Field(min_length=1), Allowed("a non-empty list of {task: ..., column: ...}")]


class JobConf(Section):
    """A job's shared sections; ``source`` is the YAML file and ``raw`` the mapping it was parsed from."""

    input: Annotated[InputConf, Allowed("a mapping")]
    output: Annotated[OutputConf, Allowed("a mapping")]
    tasks: Tasks = Field(default_factory=list)
    spark: SparkSection = Field(default_factory=SparkSection)
    mlflow: MlflowSection = Field(default_factory=MlflowSection)
    fail_on_error: bool | None = None
    inference: InferenceResources = Field(default_factory=InferenceResources)
    incremental: IncrementalSection = Field(default_factory=IncrementalSection)
    _source: str | None = PrivateAttr(default=None)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _job_wide_fail_on_error(cls, data: Any) -> Any:
        """A top-level ``fail_on_error`` is each task's default."""
        fail = data.get("fail_on_error") if isinstance(data, dict) else None
        if isinstance(fail, bool) and isinstance(data.get("tasks"), list):
            data = {**data, "tasks": [{"fail_on_error": fail, **t} if isinstance(t, dict) else t
                                      for t in data["tasks"]]}
        return data

    @model_validator(mode="before")
    @classmethod
    def _stream_appends(cls, data: Any) -> Any:
        """A stream appends: ``output.mode`` defaults to append when ``input.stream`` is set."""
        if isinstance(data, dict) and isinstance(data.get("input"), dict) and data["input"].get("stream") is not None \
                and isinstance(data.get("output"), dict) and "mode" not in data["output"]:
            data = {**data, "output": {**data["output"], "mode": "append"}}
        return data

    @model_validator(mode="after")
    def _modes_fit_the_input(self) -> "JobConf":
        if self.output.mode == "incremental" and self.input.id_column is None:
            raise ConfigError("input.id_column", None, "a column name (output.mode incremental keys rows by id)")
        if self.input.stream is not None and self.output.mode != "append":
            raise ConfigError("output.mode", self.output.mode, "append (input.stream appends each micro-batch)")
        if self.output.path is not None and self.input.format != "table" \
                and _overlap(self.input.path, self.output.path):
            raise ConfigError("output.path", self.output.path, f"a folder that is neither input.path "
                              f"({self.input.path}), nor inside it, nor holding it (the commit replaces the folder)")
        return self

    @field_validator("tasks")
    @classmethod
    def _distinct_columns(cls, tasks: list[TaskConf]) -> list[TaskConf]:
        seen: set[str] = set()
        for i, t in enumerate(tasks):
            if t.column in seen:
                raise ConfigError(f"tasks[{i}].column", t.column, "a name no other task uses")
            seen.add(t.column)
        return tasks

    @property
    def source(self) -> str | None:
        return self._source

    @property
    def raw(self) -> dict[str, Any]:
        return self._raw

    @property
    def experiment(self) -> str:
        return self.mlflow.experiment or JOB_EXPERIMENT


def parse_job(data: dict[str, Any], *, source: str | None = None, tasks_required: bool = True,
              extra_keys: tuple[str, ...] = ()) -> JobConf:
    """Validate a job config mapping (as read from YAML, or built in a test/notebook).

    ``extra_keys``: top-level keys a particular job adds (it validates their values itself)."""
    if isinstance(data, dict) and data.get("tasks") is None:
        if tasks_required:
            raise ConfigError("tasks", None, "a non-empty list of {task: ..., column: ...}", source=source)
        data = {k: v for k, v in data.items() if k != "tasks"}
    conf = validate(_job_model(tuple(extra_keys)), data, source=source, what="a mapping with input, tasks, output")
    conf._source, conf._raw = source, data
    return conf


_JOB_MODELS: dict[tuple[str, ...], type[JobConf]] = {(): JobConf}


def _job_model(extra_keys: tuple[str, ...]) -> type[JobConf]:
    """JobConf, or a subclass that also accepts a job's own top-level keys (validated by that job)."""
    if extra_keys not in _JOB_MODELS:
        _JOB_MODELS[extra_keys] = create_model("JobConf", __base__=JobConf,
                                               **{key: (Any, None) for key in extra_keys})
    return _JOB_MODELS[extra_keys]


def load_job(path: str | os.PathLike, **kwargs) -> JobConf:
    return parse_job(read_yaml(path), source=str(path), **kwargs)


# ---- the shadow job (jobs/shadow.py) and the evaluate job's gate on its report ----

class SampleSection(Section):
    """``sample:``: score ``rows`` rows of the input (the same rows for the same ``seed``) instead of all."""

    rows: PositiveInt
    seed: Annotated[int, Allowed("an integer")] = 0


class ShadowConf(Section):
    """A shadow job (jobs/shadow.py): ``input`` (as analyze's, with an ``id_column``), the ``task`` and its
    ``settings`` (e.g. ``labels`` for zero-shot classify), the ``champion`` (default: the task's catalog default,
    its @champion) and the ``challenger`` (required) model references, an optional ``sample``, the ``output``
    folder of the diff table and the MLflow ``experiment``."""

    input: Annotated[InputConf, Allowed("a mapping")]
    task: Literal["classify", "embed", "sentiment"]
    settings: Annotated[dict[str, Any], Allowed("a mapping of the task's keys (labels, label_map, languages, ...)")] = \
        Field(default_factory=dict)
    champion: Annotated[Name | None, Allowed("a model reference (models:/name@alias, models:/name/N or a name); "
                                             "default: the task's catalog default")] = None
    challenger: Annotated[Name, Allowed("a model reference (models:/name@alias, models:/name/N or a name)")]
    sample: Annotated[SampleSection | None, Allowed("a mapping {rows: N, seed: S}")] = None
    output: Annotated[OutputConf, Allowed("a mapping")]
    experiment: Annotated[Name, Allowed("an experiment name")] = JOB_EXPERIMENT
    spark: SparkSection = Field(default_factory=SparkSection)
    _source: str | None = PrivateAttr(default=None)

    @field_validator("settings")
    @classmethod
    def _no_model_keys(cls, settings: dict[str, Any]) -> dict[str, Any]:
        for key in ("task", "column", "model"):
            if key in settings:
                raise ConfigError(f"settings.{key}", settings[key], "the task's own keys (task is task:, the models "
                                  "are champion: and challenger:, the columns are named champion and challenger)")
        return settings

    @model_validator(mode="after")
    def _keyed_batch_input(self) -> "ShadowConf":
        if self.input.id_column is None:
            raise ConfigError("input.id_column", None, "a column name (the diff table is keyed by it)")
        if self.input.stream is not None:
            raise ConfigError("input.stream", "(a stream)", "no stream: a shadow job scores a table once")
        if self.output.table is not None:
            raise ConfigError("output.table", self.output.table, "output.path (a shadow job writes a folder)")
        if self.output.mode not in ("overwrite", "error", "errorifexists", "ignore"):
            raise ConfigError("output.mode", self.output.mode, "overwrite, error, errorifexists, ignore")
        if self.input.format != "table" and _overlap(self.input.path, self.output.path):
            raise ConfigError("output.path", self.output.path, f"a folder that is neither input.path "
                              f"({self.input.path}), nor inside it, nor holding it (the commit replaces the folder)")
        return self

    @property
    def source(self) -> str | None:
        return self._source


def parse_shadow(data: dict[str, Any], *, source: str | None = None) -> ShadowConf:
    conf = validate(ShadowConf, data, source=source, what="a mapping with input, task, challenger, output")
    conf._source = source
    return conf


class GateSection(Section):
    """The evaluate job's ``gate:``: @champion moves only to the challenger of the shadow report at
    ``shadow_report`` (a shadow job's output folder, or its ``_textspark_manifest.json``), and only when that
    report's flip rate is at most ``max_flip_rate``."""

    shadow_report: Annotated[Name, Allowed("a shadow job's output folder or its _textspark_manifest.json")]
    max_flip_rate: Annotated[float, Field(ge=0, le=1), Allowed("a number between 0 and 1")] = 0.05

    @field_validator("shadow_report")
    @classmethod
    def _exists(cls, path: str) -> str:
        resolved = resolve_path(path)
        if not _is_remote(resolved) and not Path(resolved).exists():
            raise ConfigError("shadow_report", path, "an existing shadow output folder or its manifest")
        return resolved
