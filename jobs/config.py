"""Job configuration: read YAML, validate everything before Spark starts, name the key on error."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from udfs.errors import ConfigError
from udfs.platform import PROJECT_ROOT
from udfs.runtime.scheduling import InferenceResources, parse_inference
from udfs.tasks.table import COMMON_KEYS, TASK_DEFS

INPUT_FORMATS = ("parquet", "csv", "json", "table")
OUTPUT_FORMATS = ("parquet",)
WRITE_MODES = ("overwrite", "error", "errorifexists", "append", "ignore")


@dataclass(frozen=True)
class InputConf:
    path: str
    format: str = "parquet"
    text_column: str = "text"
    id_column: str | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputConf:
    path: str
    format: str = "parquet"
    mode: str = "overwrite"
    partitions: int | None = None


@dataclass(frozen=True)
class TaskConf:
    task: str
    column: str
    settings: dict[str, Any]  # model, device, precision, fail_on_error and the task's own keys


@dataclass(frozen=True)
class JobConf:
    input: InputConf
    output: OutputConf
    tasks: tuple[TaskConf, ...] = ()
    spark_profile: str = "local"
    spark_conf: dict[str, Any] = field(default_factory=dict)
    experiment: str = "textspark-jobs"
    inference: InferenceResources = field(default_factory=InferenceResources)
    source: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--conf", str(path), "a path to an existing YAML file, e.g. conf/jobs/sample.yml")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ConfigError("--conf", str(path), "a YAML mapping with input, tasks, output")
    return data


def resolve_path(path: str) -> str:
    """Relative local paths are relative to the project root; URIs (s3a://, dbfs:/, ...) pass unchanged."""
    if "://" in path or path.startswith(("dbfs:", "/")):
        return path
    return str(PROJECT_ROOT / path)


def _mapping(data: dict, key: str, src: str | None, required: bool = True) -> dict:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, value, "a mapping", source=src)
    return value


def reject_unknown_keys(section: dict, allowed: tuple[str, ...], prefix: str, src: str | None) -> None:
    """A key of ``section`` not in ``allowed``: ConfigError naming ``prefix.key``, its value and the allowed keys."""
    for key in section:
        if key not in allowed:
            raise ConfigError(f"{prefix}.{key}", section[key], f"keys {', '.join(allowed)}", source=src)


def parse_input(data: dict, src: str | None) -> InputConf:
    section = _mapping(data, "input", src)
    reject_unknown_keys(section, ("path", "table", "format", "text_column", "id_column", "options"), "input", src)
    fmt = section.get("format", "table" if "table" in section else "parquet")
    if fmt not in INPUT_FORMATS:
        raise ConfigError("input.format", fmt, INPUT_FORMATS, source=src)
    where = section.get("table") if fmt == "table" else section.get("path")
    if not isinstance(where, str) or not where:
        key = "input.table" if fmt == "table" else "input.path"
        raise ConfigError(key, where, "a table name" if fmt == "table" else "a file or folder path", source=src)
    if fmt != "table":
        where = resolve_path(where)
        if "://" not in where and not where.startswith("dbfs:") and not Path(where).exists():
            raise ConfigError("input.path", section["path"], "an existing file or folder", source=src)
    text_column = section.get("text_column", "text")
    if not isinstance(text_column, str) or not text_column:
        raise ConfigError("input.text_column", text_column, "a column name", source=src)
    id_column = section.get("id_column")
    if id_column is not None and not isinstance(id_column, str):
        raise ConfigError("input.id_column", id_column, "a column name", source=src)
    options = section.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError("input.options", options, "a mapping of reader options", source=src)
    return InputConf(path=where, format=fmt, text_column=text_column, id_column=id_column,
                     options={str(k): str(v) for k, v in options.items()})


def parse_output(data: dict, src: str | None) -> OutputConf:
    section = _mapping(data, "output", src)
    reject_unknown_keys(section, ("path", "format", "mode", "partitions"), "output", src)
    path = section.get("path")
    if not isinstance(path, str) or not path:
        raise ConfigError("output.path", path, "a folder path", source=src)
    fmt = section.get("format", "parquet")
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError("output.format", fmt, OUTPUT_FORMATS, source=src)
    mode = section.get("mode", "overwrite")
    if mode not in WRITE_MODES:
        raise ConfigError("output.mode", mode, WRITE_MODES, source=src)
    partitions = section.get("partitions")
    if partitions is not None and (not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1):
        raise ConfigError("output.partitions", partitions, "a positive integer", source=src)
    return OutputConf(path=resolve_path(path), format=fmt, mode=mode, partitions=partitions)


def parse_tasks(data: dict, src: str | None, *, required: bool = True) -> tuple[TaskConf, ...]:
    tasks = data.get("tasks")
    if tasks is None and not required:
        return ()
    if not isinstance(tasks, list) or not tasks:
        raise ConfigError("tasks", tasks, "a non-empty list of {task: ..., column: ...}", source=src)
    parsed, columns = [], set()
    for i, raw in enumerate(tasks):
        key = f"tasks[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(key, raw, "a mapping with task and column", source=src)
        name = raw.get("task")
        if name not in TASK_DEFS:
            raise ConfigError(f"{key}.task", name, sorted(TASK_DEFS), source=src)
        tdef = TASK_DEFS[name]
        allowed = COMMON_KEYS + tdef.extra_keys
        reject_unknown_keys(raw, allowed, key, src)
        for req in tdef.required_keys:
            if req not in raw:
                raise ConfigError(f"{key}.{req}", None, f"required for task {name}", source=src)
        column = raw.get("column", name)
        if not isinstance(column, str) or not column:
            raise ConfigError(f"{key}.column", column, "an output column name", source=src)
        if column in columns:
            raise ConfigError(f"{key}.column", column, "a name no other task uses", source=src)
        columns.add(column)
        fail = raw.get("fail_on_error", False)
        if not isinstance(fail, bool):
            raise ConfigError(f"{key}.fail_on_error", fail, "true, false", source=src)
        settings = {k: v for k, v in raw.items() if k not in ("task", "column")}
        parsed.append(TaskConf(task=name, column=column, settings=settings))
    return tuple(parsed)


def parse_job(data: dict[str, Any], *, source: str | None = None, tasks_required: bool = True,
              extra_keys: tuple[str, ...] = ()) -> JobConf:
    """Validate a job config mapping (as read from YAML, or built in a test/notebook).

    ``extra_keys``: top-level keys a particular job adds (it validates their values itself)."""
    if not isinstance(data, dict):
        raise ConfigError("(top level)", data, "a mapping with input, tasks, output", source=source)
    reject_unknown_keys(data, ("input", "tasks", "output", "spark", "mlflow", "fail_on_error", "inference") + tuple(extra_keys),
             "(top level)", source)
    spark = _mapping(data, "spark", source, required=False)
    reject_unknown_keys(spark, ("profile", "conf"), "spark", source)
    conf = spark.get("conf") or {}
    if not isinstance(conf, dict):
        raise ConfigError("spark.conf", conf, "a mapping of Spark settings", source=source)
    mlflow_section = _mapping(data, "mlflow", source, required=False)
    reject_unknown_keys(mlflow_section, ("experiment",), "mlflow", source)
    tasks = parse_tasks(data, source, required=tasks_required)
    if data.get("fail_on_error") is not None:
        if not isinstance(data["fail_on_error"], bool):
            raise ConfigError("fail_on_error", data["fail_on_error"], "true, false", source=source)
        tasks = tuple(TaskConf(t.task, t.column, {"fail_on_error": data["fail_on_error"], **t.settings})
                      for t in tasks)
    return JobConf(input=parse_input(data, source), output=parse_output(data, source), tasks=tasks,
                   spark_profile=str(spark.get("profile", "local")), spark_conf=dict(conf),
                   experiment=str(mlflow_section.get("experiment", "textspark-jobs")),
                   inference=parse_inference(data.get("inference"), source=source), source=source, raw=data)


def load_job(path: str | os.PathLike, **kwargs) -> JobConf:
    return parse_job(read_yaml(path), source=str(path), **kwargs)
