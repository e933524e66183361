"""Train a classifier from a labeled table and register it as a new model version in MLflow.

    spark-submit jobs/train_classifier.py --conf conf/jobs/train_topics.yml
    python -m jobs.train_classifier --conf conf/jobs/train_sentiment.yml

Config (see conf/jobs/train_*.yml): ``input`` (like the analyze job's, or ``{dataset: tweets | bbc_news |
drug_reviews}`` for the real labeled text shipped by installed packages), ``label_column``,
``split_column``, ``task`` (classify | sentiment), ``method`` (head | finetune), ``base_model``, data
settings (``test_fraction``, ``seed``, ``max_rows``, ``drop_duplicates``, ``null_labels``), ``head:`` /
``finetune:`` hyper-parameters, ``register: {name, alias, champion_if_absent, description}``.
The new version gets ``register.alias`` (default candidate); `jobs/evaluate.py` promotes it.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

if __package__ in (None, ""):  # spark-submit jobs/train_classifier.py: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jobs.common import parse_args, read_input, run_cli  # noqa: E402
from jobs.config import InputConf, parse_input, read_yaml, reject_unknown_keys  # noqa: E402
from udfs.errors import ConfigError  # noqa: E402
from udfs.training.core import TRAINING_EXPERIMENT, TrainSettings, dumps, result_summary, train  # noqa: E402
from jobs import datasets
from udfs.platform import get_spark, setup_environment

DATASETS = ("tweets", "bbc_news", "drug_reviews")
TOP_KEYS = ("input", "label_column", "split_column", "task", "method", "base_model", "test_fraction", "seed",
            "max_rows", "drop_duplicates", "null_labels", "head", "finetune", "label_map", "register", "spark",
            "mlflow")
REGISTER_KEYS = ("name", "alias", "champion_if_absent", "description")


@dataclass(frozen=True)
class TrainJob:
    settings: TrainSettings
    input: InputConf | None = None
    dataset: dict[str, Any] | None = None
    spark_profile: str = "local"
    spark_conf: dict[str, Any] = field(default_factory=dict)


def parse_train_job(data: dict[str, Any], *, source: str | None = None, name: str | None = None,
                    task: str | None = None) -> TrainJob:
    """Validate a training config; ``name`` / ``task`` override ``register.name`` / ``task`` (catalog builds)."""
    if not isinstance(data, dict):
        raise ConfigError("(top level)", data, "a mapping with input, label_column, register", source=source)
    reject_unknown_keys(data, TOP_KEYS, "(top level)", source)
    section = data.get("input")
    if not isinstance(section, dict):
        raise ConfigError("input", section, "a mapping: {path, format, text_column} or {dataset}", source=source)
    inp, dataset = None, None
    text_column = section.get("text_column", "text")
    if "dataset" in section:
        dataset = dict(section)
        if dataset["dataset"] not in DATASETS:
            raise ConfigError("input.dataset", dataset["dataset"], DATASETS, source=source)
        reject_unknown_keys(dataset, ("dataset", "split", "text_column"), "input", source)
    else:
        inp = parse_input({"input": section}, source)
        text_column = inp.text_column
    register = data.get("register") or {}
    if not isinstance(register, dict):
        raise ConfigError("register", register, f"a mapping with {', '.join(REGISTER_KEYS)}", source=source)
    reject_unknown_keys(register, REGISTER_KEYS, "register", source)
    label_map = data.get("label_map")
    if label_map is not None and not isinstance(label_map, dict):
        raise ConfigError("label_map", label_map, "a mapping of model label -> canonical label", source=source)
    spark = data.get("spark") or {}
    mlflow_section = data.get("mlflow") or {}
    try:
        settings = TrainSettings(
            name=name or register.get("name"), task=task or data.get("task", "classify"),
            method=data.get("method", "head"), base_model=data.get("base_model"), text_column=text_column,
            label_column=data.get("label_column", "label"), split_column=data.get("split_column"),
            test_fraction=data.get("test_fraction", 0.2), seed=data.get("seed", 0), max_rows=data.get("max_rows"),
            drop_duplicates=data.get("drop_duplicates", True), null_labels=data.get("null_labels", "drop"),
            head=data.get("head") or {}, finetune=data.get("finetune") or {},
            label_map={str(k): str(v) for k, v in label_map.items()} if label_map else None,
            alias=register.get("alias", "candidate"), champion_if_absent=register.get("champion_if_absent", True),
            description=str(register.get("description", "")),
            experiment=str(mlflow_section.get("experiment", TRAINING_EXPERIMENT)))
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.value, exc.allowed, source=source) from None
    return TrainJob(settings=settings, input=inp, dataset=dataset, spark_profile=str(spark.get("profile", "local")),
                    spark_conf=dict(spark.get("conf") or {}))


def load_train_job(path, **overrides) -> TrainJob:
    return parse_train_job(read_yaml(path), source=str(path), **overrides)


def read_table(spark, job: TrainJob):
    if job.dataset is None:
        return read_input(spark, job.input)

    reader = getattr(datasets, job.dataset["dataset"])
    pdf = reader(job.dataset["split"]) if "split" in job.dataset else reader()
    pdf = pdf.astype({c: str for c in ("id", "text", "label") if c in pdf.columns})
    return spark.createDataFrame(pdf)


def run(job: TrainJob, *, spark=None):
    """Train and register; returns the udfs.training.TrainResult."""
    setup_environment()
    spark = spark or get_spark(job.spark_profile, conf=job.spark_conf)
    return train(read_table(spark, job), job.settings)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    return run_cli(lambda: run(load_train_job(args.conf)), lambda result: print(dumps(result_summary(result))))


if __name__ == "__main__":
    sys.exit(main())
