"""Evaluate registered versions on a labeled table; promote the alias only when a candidate measurably wins.

    spark-submit jobs/evaluate.py --conf conf/jobs/evaluate_topics.yml
    python -m jobs.evaluate --conf conf/jobs/evaluate_sentiment.yml

Config keys: ``model`` (registered name), ``candidates`` (references to its versions, default
``[models:/<model>@candidate]``), ``task`` (classify | sentiment), ``alias`` (default champion), ``metric``
(macro_f1 | accuracy | weighted_f1), ``margin`` (the candidate must beat the champion by more than this),
``promote`` (false: decide and record, move nothing), ``unseen_labels`` (error | drop), ``options`` (task
keyword arguments, e.g. label_map). The rows: either ``holdout_of: <training config>`` (exactly the held-out
split that training used), or ``input`` (like the analyze job's, or ``{dataset: ...}``) with
``label_column`` and an optional SQL ``where`` filter.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jobs.common import parse_args, run_cli  # noqa: E402
from jobs.config import read_yaml, reject_unknown_keys, resolve_path  # noqa: E402
from jobs.train_classifier import TrainJob, load_train_job, parse_train_job, read_table  # noqa: E402
from udfs.errors import ConfigError  # noqa: E402
from udfs.training.evaluation import EVALUATION_EXPERIMENT, METRICS, UNSEEN, compare_and_promote  # noqa: E402
from udfs.training.core import dumps  # noqa: E402
from udfs.training.core import prepare
from udfs.platform import get_spark, setup_environment

TOP_KEYS = ("input", "holdout_of", "label_column", "where", "task", "model", "candidates", "alias", "metric",
            "margin", "promote", "unseen_labels", "options", "spark", "mlflow")


@dataclass(frozen=True)
class EvaluateJob:
    model: str
    task: str
    candidates: tuple[str, ...]
    data: TrainJob                     # where the rows come from (input/dataset), reusing the training reader
    holdout: bool = False              # use the held-out split of ``data.settings``
    label_column: str = "label"
    where: str | None = None
    alias: str = "champion"
    metric: str = "macro_f1"
    margin: float = 0.0
    promote: bool = True
    unseen_labels: str = "error"
    options: dict[str, Any] = field(default_factory=dict)
    experiment: str = EVALUATION_EXPERIMENT
    description: str = ""


def parse_evaluate_job(data: dict[str, Any], *, source: str | None = None) -> EvaluateJob:
    if not isinstance(data, dict):
        raise ConfigError("(top level)", data, "a mapping with model, task and input or holdout_of", source=source)
    reject_unknown_keys(data, TOP_KEYS, "(top level)", source)
    model = data.get("model")
    if not isinstance(model, str) or not model or "/" in model or "@" in model:
        raise ConfigError("model", model, "a registered model name, e.g. topics", source=source)
    task = data.get("task", "classify")
    if task not in ("classify", "sentiment"):
        raise ConfigError("task", task, "classify, sentiment", source=source)
    candidates = data.get("candidates", [f"models:/{model}@candidate"])
    if isinstance(candidates, str):
        candidates = [candidates]
    if not isinstance(candidates, list) or not candidates or not all(isinstance(c, str) for c in candidates):
        raise ConfigError("candidates", candidates, f"a list of references to versions of {model}", source=source)
    metric = data.get("metric", "macro_f1")
    if metric not in METRICS:
        raise ConfigError("metric", metric, METRICS, source=source)
    margin = data.get("margin", 0.0)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0:
        raise ConfigError("margin", margin, "a number >= 0", source=source)
    promote = data.get("promote", True)
    if not isinstance(promote, bool):
        raise ConfigError("promote", promote, "true, false", source=source)
    unseen = data.get("unseen_labels", "error")
    if unseen not in UNSEEN:
        raise ConfigError("unseen_labels", unseen, UNSEEN, source=source)
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError("options", options, "a mapping of task keyword arguments", source=source)
    where = data.get("where")
    if where is not None and not isinstance(where, str):
        raise ConfigError("where", where, "a SQL boolean expression, e.g. split = 'test'", source=source)
    if ("holdout_of" in data) == ("input" in data):
        raise ConfigError("input", data.get("input"), "exactly one of input or holdout_of", source=source)
    if "holdout_of" in data:
        train_job = load_train_job(resolve_path(str(data["holdout_of"])))
        holdout, label_column, description = True, "label", f"held-out split of {data['holdout_of']}"
    else:
        label_column = data.get("label_column", "label")
        train_job = parse_train_job({"input": data["input"], "label_column": label_column,
                                     "register": {"name": model}}, source=source)
        holdout = False
        description = f"{data['input']}" + (f" where {where}" if where else "")
    spark = data.get("spark") or {}
    if spark:
        train_job = replace(train_job, spark_profile=str(spark.get("profile", "local")),
                            spark_conf=dict(spark.get("conf") or {}))
    return EvaluateJob(model=model, task=task, candidates=tuple(candidates), data=train_job, holdout=holdout,
                       label_column=label_column, where=where, alias=str(data.get("alias", "champion")),
                       metric=metric, margin=float(margin), promote=promote, unseen_labels=unseen, options=options,
                       experiment=str((data.get("mlflow") or {}).get("experiment", EVALUATION_EXPERIMENT)),
                       description=description)


def evaluation_rows(spark, job: EvaluateJob):
    """The labeled rows: the training config's held-out split, or the input (filtered by ``where``)."""
    df = read_table(spark, job.data)
    if job.holdout:
        from pyspark.sql import functions as F


        return prepare(df, job.data.settings).df.filter(F.col("split") == "test").select("text", "label"), "text"
    if job.where:
        df = df.where(job.where)
    return df, job.data.settings.text_column


def run(job: EvaluateJob, *, spark=None) -> dict[str, Any]:
    setup_environment()
    spark = spark or get_spark(job.data.spark_profile, conf=job.data.spark_conf)
    df, text_column = evaluation_rows(spark, job)
    return compare_and_promote(df, name=job.model, candidates=list(job.candidates), task=job.task, alias=job.alias,
                               metric=job.metric, margin=job.margin, promote=job.promote, text_column=text_column,
                               label_column=job.label_column, options=job.options, unseen_labels=job.unseen_labels,
                               experiment=job.experiment, data_description=job.description)


def print_summary(summary: dict[str, Any]) -> None:
    d = summary["decision"]
    print(f"\n{summary['model']}: {summary['metric']} on {summary['data']}")
    for version, e in summary["evaluations"].items():
        print(f"  v{version:<4} accuracy={e['accuracy']:.4f} macro_f1={e['macro_f1']:.4f} rows={e['counts']['rows']}")
    print(f"decision: {'PROMOTED' if d['applied'] else 'kept'} -- {d['reason']} (run {summary['run_id']})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)

    def report(summary: dict) -> None:
        print_summary(summary)
        print(dumps(summary["decision"]))

    return run_cli(lambda: run(parse_evaluate_job(read_yaml(args.conf), source=args.conf)), report)


if __name__ == "__main__":
    sys.exit(main())
