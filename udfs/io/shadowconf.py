"""The shadow job's configuration (jobs/shadow.py) and the evaluate job's gate on its report."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from udfs.config import Allowed, Fraction, Section, validate
from udfs.errors import ConfigError
from udfs.io.sections import (JOB_EXPERIMENT, InputConf, Name, OutputConf, PositiveInt, SparkSection, is_remote,
                              overlaps, resolve_path)


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
        if self.output.table is not None and self.output.mode not in ("overwrite", "append", "error", "errorifexists",
                                                                       "ignore"):
            raise ConfigError("output.mode", self.output.mode, "overwrite, append, error, errorifexists, ignore (a "
                              "shadow job's diff table)")
        if self.output.table is None and self.output.mode not in ("overwrite", "error", "errorifexists", "ignore"):
            raise ConfigError("output.mode", self.output.mode, "overwrite, error, errorifexists, ignore")
        if self.output.path is not None and self.input.format != "table" and \
                overlaps(self.input.path, self.output.path):
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
    max_flip_rate: Fraction = 0.05

    @field_validator("shadow_report")
    @classmethod
    def _exists(cls, path: str) -> str:
        resolved = resolve_path(path)
        if not is_remote(resolved) and not Path(resolved).exists():
            raise ConfigError("shadow_report", path, "an existing shadow output folder or its manifest")
        return resolved
