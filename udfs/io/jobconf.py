"""The analyze job's configuration: its tasks and the shared sections (udfs/io/sections.py) in one model,
validated before Spark starts (:func:`load_job`, :func:`parse_job`)."""
from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import Field, PrivateAttr, create_model, field_validator, model_validator

from udfs.config import Allowed, Section, validate
from udfs.errors import ConfigError
from udfs.io.sections import (JOB_EXPERIMENT, IncrementalSection, InputConf, MlflowSection, Name, OutputConf,
                              SparkSection, overlaps, read_yaml)
from udfs.runtime.scheduling import InferenceResources
from udfs.tasks.table import COMMON_KEYS, TASK_DEFS


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
                and overlaps(self.input.path, self.output.path):
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
