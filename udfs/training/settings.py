"""What a training run does: task, method, data handling, hyper-parameters, where the version goes.

:class:`TrainOptions` holds the keys a training job sets at its top level (``conf/jobs/train_*.yml``),
:class:`TrainSettings` adds the registered name and the other keys the job gathers from ``register``,
``input`` and ``mlflow``. Both are :class:`udfs.config.Section` models: a bad value fails before any work,
naming its key (``method: got 'lora'; allowed: head, finetune``), also when built in Python.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping, get_args

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from udfs.config import Allowed, Section
from udfs.errors import ConfigError
from udfs.models.reference import LANGUAGES_RULE, checked_languages

Task = Literal["classify", "sentiment"]
Method = Literal["head", "finetune"]
KIND_OF_METHOD = {"head": "embedding_head", "finetune": "hf_classifier"}  # the registered kind each method makes
NullLabels = Literal["drop", "error"]
TASKS, METHODS, NULL_LABELS = get_args(Task), get_args(Method), get_args(NullLabels)
TRAINING_EXPERIMENT = "textspark-training"

NullIsEmpty = BeforeValidator(lambda value: {} if value is None else value)
"""A section left empty in YAML (``head:`` with nothing under it) is an empty mapping: all defaults."""

Column = Annotated[str, Allowed("a column name")]
NonNegative = Annotated[int | float, Field(ge=0), Allowed("a non-negative number")]


class HeadParams(Section):
    """``head:``: the softmax head fitted on the embeddings (udfs.models.backends.heads.fit_head)."""

    hidden: NonNegative = 256
    epochs: NonNegative = 40
    learning_rate: NonNegative = 1e-3
    weight_decay: NonNegative = 1e-4
    dropout: NonNegative = 0.2
    batch_size: NonNegative = 128
    class_weight: Annotated[Literal["balanced"] | None, Allowed("balanced, null")] = "balanced"


class FinetuneParams(Section):
    """``finetune:``: full fine-tuning of the encoder with a classification layer. ``predict_max_length``:
    the tokens a row is read with once registered (default ``max_length``); ``warmup``: share of the steps
    the learning rate ramps up over; ``frozen_layers``: the embeddings and that many of the encoder's lowest
    layers keep their weights; ``class_weight``, ``domain_repeats``, ``group_by_length`` and ``precision``
    (the forward pass in bf16 autocast; auto: where the hardware computes bf16 natively): see udfs.training.finetune."""

    epochs: NonNegative = 2
    learning_rate: NonNegative = 5e-5
    batch_size: NonNegative = 16
    max_length: NonNegative = 128               # tokens per training row
    predict_max_length: Annotated[Annotated[int, Field(ge=1)] | None, Allowed("null or a positive integer")] = None
    weight_decay: NonNegative = 0.01
    warmup: Annotated[float, Field(ge=0, lt=1), Allowed("a number >= 0 and < 1")] = 0.0  # share of steps
    class_weight: Annotated[Literal["balanced"] | None, Allowed("balanced, null")] = None  # within each domain
    group_by_length: bool = True                # batches of rows of similar length: less padding
    frozen_layers: Annotated[int, Field(ge=0), Allowed("a non-negative integer")] = 0  # + the embeddings when > 0
    precision: Annotated[Literal["auto", "bf16", "fp32"], Allowed("auto, bf16, fp32")] = "auto"
    domain_repeats: Annotated[dict[str, Annotated[int, Field(ge=1)]],
                              Allowed("a mapping of domain -> positive integer")] = Field(default_factory=dict)


HEAD_DEFAULTS = HeadParams().model_dump()
FINETUNE_DEFAULTS = FinetuneParams().model_dump()


def _params(section: type[Section]) -> Any:
    """The ``head:`` / ``finetune:`` field type: the section, empty when null."""
    return Annotated[section, NullIsEmpty, Allowed(f"a mapping with keys {', '.join(section.model_fields)}")]


HeadField, FinetuneField = _params(HeadParams), _params(FinetuneParams)


class TrainOptions(Section):
    """The training keys of a job config's top level, in their YAML order."""

    label_column: Column = "label"
    split_column: Annotated[str | None, Allowed("null or a column name")] = None
    # rows from several sources: max_rows, the subsample and the split apply per domain (udfs.training.data)
    domain_column: Annotated[str | None, Allowed("null or a column name")] = None
    balance_domains: bool = False               # head: every domain weighs the same in the loss
    task: Task = "classify"
    method: Method = "head"
    base_model: Annotated[str | None, Allowed("null or a model reference")] = None  # default: the catalog's embed
    test_fraction: Annotated[float, Field(gt=0, lt=1), Allowed("a number strictly between 0 and 1")] = 0.2
    seed: Annotated[int, Allowed("an integer")] = 0
    max_rows: Annotated[Annotated[int, Field(ge=4)] | None, Allowed("null or an integer >= 4")] = None
    drop_duplicates: bool = True
    null_labels: NullLabels = "drop"
    head: HeadField = Field(default_factory=HeadParams)
    finetune: FinetuneField = Field(default_factory=FinetuneParams)
    # sentiment: model label -> negative | neutral | positive
    label_map: Annotated[dict[str, str] | None, Allowed("a mapping of model label -> canonical label")] = None

    @field_validator("label_map", mode="before")
    @classmethod
    def _labels_as_strings(cls, value: Any) -> Any:
        """Labels are strings (``prepare`` casts the label column): YAML's ``0: negative`` means ``"0"``."""
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) and value else value


class RegisterSection(Section):
    """``register:``: the registered model the new version joins, its alias and description."""

    name: str | None = None                     # required: TrainSettings checks it
    alias: str | None = "candidate"             # moved to the new version
    champion_if_absent: bool = True             # also make it champion when the model has none
    description: str = ""
    # what the model reads (ISO 639 codes, or any), recorded on the version for the language guard; unset:
    # not recorded (the job's summary warns, and no row is checked)
    languages: Annotated[Any, AfterValidator(checked_languages), Allowed(LANGUAGES_RULE)] = None


class TrainSettings(TrainOptions, RegisterSection):
    """Everything :func:`udfs.training.train.train` needs; ``TrainSettings(name=..., ...)`` validates."""

    name: str                                   # registered model name
    text_column: Column = "text"
    experiment: str = TRAINING_EXPERIMENT

    @model_validator(mode="before")
    @classmethod
    def _registered_name(cls, data: Any) -> Any:
        name = data.get("name") if isinstance(data, Mapping) else None
        if not isinstance(name, str) or not name or "/" in name or "@" in name:
            raise ConfigError("register.name", name, "a registered model name without / or @")
        return data

    def head_params(self) -> dict[str, Any]:
        return self.head.model_dump()

    def finetune_params(self) -> dict[str, Any]:
        return self.finetune.model_dump()
