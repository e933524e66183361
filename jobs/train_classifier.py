"""Train a classifier from a labeled table and register it as a new model version in MLflow.

    spark-submit jobs/train_classifier.py --conf conf/jobs/train_topics.yml
    python -m jobs.train_classifier --conf conf/jobs/train_sentiment.yml

Config (see conf/jobs/train_*.yml): ``input`` (like the analyze job's, or ``{dataset: tweets | bbc_news |
drug_reviews}`` for the real labeled text shipped by installed packages, or ``{datasets: [{dataset: ...},
...]}`` for several of them, each row's source in a ``domain`` column: ``domain_column``,
``balance_domains``), ``label_column``,
``split_column``, ``task`` (classify | sentiment), ``method`` (head | finetune), ``base_model``, data
settings (``test_fraction``, ``seed``, ``max_rows``, ``drop_duplicates``, ``null_labels``), ``head:`` /
``finetune:`` hyper-parameters, ``register: {name, alias, champion_if_absent, description}``.
The new version gets ``register.alias`` (default candidate); `jobs/evaluate.py` promotes it.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Annotated, Any, Literal, Mapping

if __package__ in (None, ""):  # spark-submit jobs/train_classifier.py: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pandas as pd  # noqa: E402
from pydantic import BeforeValidator, Field, PrivateAttr, model_validator  # noqa: E402

from udfs.io import datasets  # noqa: E402
from udfs.io.cli import parse_args, run_cli  # noqa: E402
from udfs.io.inputs import read_input  # noqa: E402
from udfs.io.sections import InputConf, MlflowSection, SparkSection, read_yaml  # noqa: E402
from udfs.config import Allowed, Section, validate  # noqa: E402
from udfs.platform import get_spark, setup_environment  # noqa: E402
from udfs.training.settings import (TRAINING_EXPERIMENT, Column, NullIsEmpty, RegisterSection,  # noqa: E402
                                    TrainOptions, TrainSettings)
from udfs.config import config_help  # noqa: E402
from udfs.io.tracking import job_run  # noqa: E402
from udfs.models.registry import resolve  # noqa: E402
from udfs.training.train import base_reference, dumps, result_summary, train  # noqa: E402

INPUT_ALLOWED = "a mapping: {path, format, text_column}, {dataset} or {datasets: [{dataset}, ...]}"


class DatasetInput(Section):
    """``input: {dataset: ...}``: real labeled text shipped by installed packages or by textspark itself
    (udfs/io/datasets.py)."""

    dataset: Literal["tweets", "bbc_news", "drug_reviews", "rotten_tomatoes", "handwritten_reviews"]
    split: str | None = None                    # the reader's split, e.g. test (drug_reviews)
    text_column: Column = "text"


class DatasetsInput(Section):
    """``input: {datasets: [...]}``: several packaged datasets in one table; ``domain`` names each row's
    (``tweets``, ``drug_reviews:train``)."""

    datasets: Annotated[list[DatasetInput], Field(min_length=1), Allowed("a list of {dataset, split}")]
    text_column: Column = "text"


def _file_or_dataset(value: Any) -> Any:
    if isinstance(value, (DatasetInput, DatasetsInput)):
        return value
    if isinstance(value, Mapping) and "datasets" in value:
        return validate(DatasetsInput, value, key="input")
    if isinstance(value, Mapping) and "dataset" in value:
        return validate(DatasetInput, value, key="input")
    return validate(InputConf, value, key="input", what=INPUT_ALLOWED)


TableInput = Annotated[InputConf | DatasetInput | DatasetsInput, BeforeValidator(_file_or_dataset),
                       Allowed(INPUT_ALLOWED)]
"""A labeled table: a file or catalog table read like the analyze job's input, or a packaged dataset."""


# A field named register "shadows" ABCMeta.register, a method of the model's class, never of its instances.
warnings.filterwarnings("ignore", message='Field name "register" in "TrainJob" shadows', category=UserWarning)


class _InputFirst(Section):
    input: TableInput


class TrainJob(TrainOptions, _InputFirst):  # pydantic puts the last base's fields first: input, then the rest
    """A training job config: ``input``, the training keys (TrainOptions), ``register``, ``spark``,
    ``mlflow``; ``settings`` gathers what udfs.training.train.train gets."""

    register: Annotated[RegisterSection, NullIsEmpty,
                        Allowed(f"a mapping with {', '.join(RegisterSection.model_fields)}")] = \
        Field(default_factory=RegisterSection)
    spark: Annotated[SparkSection, NullIsEmpty] = Field(default_factory=SparkSection)
    mlflow: Annotated[MlflowSection, NullIsEmpty] = Field(default_factory=MlflowSection)
    _settings: TrainSettings = PrivateAttr()

    @model_validator(mode="after")
    def _gather_settings(self) -> TrainJob:
        self._settings = TrainSettings(
            **{key: getattr(self, key) for key in TrainOptions.model_fields}, **dict(self.register),
            text_column=self.input.text_column, experiment=self.mlflow.experiment or TRAINING_EXPERIMENT)
        return self

    @property
    def settings(self) -> TrainSettings:
        return self._settings


def parse_train_job(data: dict[str, Any], *, source: str | None = None, name: str | None = None,
                    task: str | None = None, label_map: Mapping[str, str] | None = None) -> TrainJob:
    """Validate a training config. Catalog builds: ``name`` / ``task`` override ``register.name`` / ``task``,
    ``label_map`` applies when the config sets none."""
    if isinstance(data, Mapping):
        register = data.get("register") or {}
        data = {**data, **({"task": task} if task else {}),
                **({"register": {**register, "name": name}} if name and isinstance(register, Mapping) else {}),
                **({"label_map": label_map} if label_map and not data.get("label_map") else {})}
    return validate(TrainJob, data, source=source, what="a mapping with input, label_column, register")


def load_train_job(path, **overrides) -> TrainJob:
    return parse_train_job(read_yaml(path), source=str(path), **overrides)


def read_table(spark, job: TrainJob):
    if isinstance(job.input, InputConf):
        return read_input(spark, job.input)
    if isinstance(job.input, DatasetsInput):
        parts = [_dataset(one).assign(domain=one.dataset + (f":{one.split}" if one.split else ""))
                 for one in job.input.datasets]
        return spark.createDataFrame(pd.concat([p[["id", "text", "label", "domain"]] for p in parts],
                                               ignore_index=True))
    return spark.createDataFrame(_dataset(job.input))


def _dataset(one: DatasetInput):
    reader = getattr(datasets, one.dataset)
    pdf = reader(one.split) if one.split is not None else reader()
    return pdf.astype({c: str for c in ("id", "text", "label") if c in pdf.columns})


def run(job: TrainJob, *, spark=None):
    """Train and register, in one MLflow run from the job's start (``train <name> <start>``); returns the
    udfs.training.train.TrainResult. A base model that does not resolve fails before the run opens."""
    started = time.time()
    setup_environment()
    base = resolve(base_reference(job.settings))
    with job_run("train", job.settings.experiment, job.settings.name, started=started, models=[base.label],
                 tags={"textspark.job": "train_classifier"}) as tracked:
        spark = spark or get_spark(job.spark.profile, conf=job.spark.conf)
        return train(read_table(spark, job), job.settings, run_id=tracked.run_id)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, epilog=config_help(TrainJob))
    return run_cli(lambda: run(load_train_job(args.conf)), lambda result: print(dumps(result_summary(result))),
                   source=args.conf)


if __name__ == "__main__":
    sys.exit(main())
