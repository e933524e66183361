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

``gate: {shadow_report: <a shadow job's output folder or its manifest>, max_flip_rate: 0.05}`` (optional): the
alias moves only to the challenger that shadow report compared with the champion (jobs/shadow.py), and only
when its flip rate is at most ``max_flip_rate``; otherwise the decision is "kept" with the gate's reason
(exit 0, as any decision not to promote). Without a gate the decision is the evaluation's alone.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Annotated, Any, Mapping

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pydantic import Field, ValidationInfo, field_validator, model_validator  # noqa: E402

from udfs.io.cli import parse_args, run_cli  # noqa: E402
from udfs.io.shadowconf import GateSection  # noqa: E402
from udfs.io.sections import MlflowSection, SparkSection, read_yaml, resolve_path  # noqa: E402
from jobs.shadow import gate_problem, load_report  # noqa: E402
from jobs.train_classifier import TableInput, TrainJob, load_train_job, parse_train_job, read_table  # noqa: E402
from udfs.config import Allowed, Section, validate  # noqa: E402
from udfs.config import config_help  # noqa: E402
from udfs.io.tracking import job_run  # noqa: E402
from udfs.errors import ConfigError  # noqa: E402
from udfs.models.registry import resolve  # noqa: E402
from udfs.platform import get_spark, setup_environment  # noqa: E402
from udfs.training.data import prepare  # noqa: E402
from udfs.training.evaluation import EVALUATION_EXPERIMENT, Metric, UnseenLabels, compare_and_promote  # noqa: E402
from udfs.training.settings import Column, NullIsEmpty, Task  # noqa: E402
from udfs.training.train import dumps  # noqa: E402


class EvaluateOptions(Section):
    """What to evaluate and how to decide: the keys a config and an EvaluateJob share, in YAML order."""

    label_column: Column = "label"
    where: Annotated[str | None, Allowed("a SQL boolean expression, e.g. split = 'test'")] = None
    task: Task = "classify"
    model: Annotated[str, Field(min_length=1, pattern=r"^[^/@]+$"), Allowed("a registered model name, e.g. topics")]
    candidates: tuple[str, ...] = ()            # default: (models:/<model>@candidate,)
    alias: Annotated[str, Allowed("an alias name")] = "champion"
    metric: Metric = "macro_f1"
    margin: Annotated[float, Field(ge=0), Allowed("a number >= 0")] = 0.0
    promote: bool = True
    unseen_labels: UnseenLabels = "error"
    options: Annotated[dict[str, Any], NullIsEmpty, Allowed("a mapping of task keyword arguments")] = \
        Field(default_factory=dict)
    gate: Annotated[GateSection | None, Allowed("a mapping {shadow_report: <shadow output>, max_flip_rate: 0.05}")] = \
        None

    @model_validator(mode="before")
    @classmethod
    def _default_candidate(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "candidates" not in data and isinstance(data.get("model"), str):
            return {**data, "candidates": [f"models:/{data['model']}@candidate"]}
        return data

    @field_validator("candidates", mode="before")
    @classmethod
    def _references(cls, value: Any, info: ValidationInfo) -> Any:
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(c, str) for c in value):
            raise ConfigError("candidates", value,
                              f"a list of references to versions of {info.data.get('model')}")
        return tuple(value)


class EvaluateJob(EvaluateOptions):
    """A parsed evaluate job; also built directly (notebooks/02_train_evaluate.ipynb)."""

    data: TrainJob                     # where the rows come from (input/dataset), reusing the training reader
    holdout: bool = False              # use the held-out split of ``data.settings``
    experiment: str = EVALUATION_EXPERIMENT
    description: str = ""


class _Rows(Section):
    input: TableInput | None = None
    holdout_of: Annotated[str | None, Allowed("a training config file")] = None


class EvaluateConfig(EvaluateOptions, _Rows):  # pydantic puts the last base's fields first: input, holdout_of
    """The YAML of an evaluate job (conf/jobs/evaluate_*.yml): the rows, the options, spark and mlflow."""

    spark: Annotated[SparkSection | None, Allowed("a mapping")] = None
    mlflow: Annotated[MlflowSection, NullIsEmpty] = Field(default_factory=MlflowSection)

    @model_validator(mode="wrap")
    @classmethod
    def _one_source(cls, data: Any, handler) -> EvaluateConfig:
        conf = handler(data)
        if (conf.input is None) == (conf.holdout_of is None):
            raise ConfigError("input", data.get("input") if isinstance(data, Mapping) else None,
                              "exactly one of input or holdout_of")
        return conf


def parse_evaluate_job(data: dict[str, Any], *, source: str | None = None) -> EvaluateJob:
    conf = validate(EvaluateConfig, data, source=source,
                    what="a mapping with model, task and input or holdout_of")
    if conf.holdout_of is not None:
        train_job = load_train_job(resolve_path(conf.holdout_of))
        label_column, description = "label", f"held-out split of {conf.holdout_of}"
    else:
        label_column = conf.label_column
        train_job = parse_train_job({"input": conf.input, "label_column": label_column,
                                     "register": {"name": conf.model}}, source=source)
        description = f"{data['input']}" + (f" where {conf.where}" if conf.where else "")
    if conf.spark is not None and conf.spark.model_fields_set:
        train_job = train_job.model_copy(update={"spark": conf.spark})
    options = {key: getattr(conf, key) for key in EvaluateOptions.model_fields}
    return EvaluateJob(**{**options, "label_column": label_column}, data=train_job,
                       holdout=conf.holdout_of is not None,
                       experiment=conf.mlflow.experiment or EVALUATION_EXPERIMENT, description=description)


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
    """Evaluate and decide in one MLflow run from the job's start (``evaluate <model> <start>``), linked to
    every version it evaluated. A candidate that does not resolve fails before the run opens."""
    started = time.time()
    setup_environment()
    for reference in job.candidates:
        resolve(reference, task=job.task)
    report = load_report(job.gate.shadow_report) if job.gate is not None else None  # exit 3 before the run opens
    with job_run("evaluate", job.experiment, job.model, started=started) as tracked:
        spark = spark or get_spark(job.data.spark.profile, conf=job.data.spark.conf)
        df, text_column = evaluation_rows(spark, job)
        summary = compare_and_promote(
            df, name=job.model, candidates=list(job.candidates), task=job.task, alias=job.alias, metric=job.metric,
            margin=job.margin, promote=job.promote and report is None, text_column=text_column,
            label_column=job.label_column, options=job.options, unseen_labels=job.unseen_labels,
            experiment=job.experiment, data_description=job.description, run_id=tracked.run_id)
        tracked.link_models(f"{job.model}/{version}" for version in summary["evaluations"])
        if report is not None:
            _apply_gate(summary, job, report, tracked)
    return summary


def _apply_gate(summary: dict[str, Any], job: EvaluateJob, report: dict, tracked) -> None:
    """The gate's verdict on a decision taken with promotion off: the alias moves (with ``promote``) only when
    the evaluation would promote the report's challenger and the report's flip rate is within the limit. The
    decision is recorded again (run tags, ``decision.json``, the model's and the candidate's tags)."""
    from udfs.models.registry import client

    d = summary["decision"]
    problem = gate_problem(report, f"{d['model']}/{d['candidate_version']}", job.gate.max_flip_rate)
    summary["gate"] = {"shadow_report": job.gate.shadow_report, "champion": report.get("champion"),
                       "challenger": report.get("challenger"), "flip_rate": report.get("flip_rate"),
                       "max_flip_rate": job.gate.max_flip_rate, "passed": problem is None, "reason": problem}
    mlc = client()
    if d["promoted"] and problem is not None:
        d["reason"] = f"refused by the gate: {problem} (the evaluation alone: {d['reason']})"
    elif d["promoted"] and job.promote:
        mlc.set_registered_model_alias(d["model"], d["alias"], d["candidate_version"])
        d["applied"] = True
    tracked.set_tags({"textspark.decision": "promoted" if d["applied"] else "kept",
                      "textspark.reason": d["reason"][:5000], "textspark.gate": "passed" if problem is None else
                      f"refused: {problem}"[:5000]})
    tracked.log_metrics({"promoted": float(d["applied"]),
                         **({"gate.flip_rate": report["flip_rate"]} if report.get("flip_rate") is not None else {})})
    tracked.log_dict(summary, "decision.json")
    record = json.dumps({**d, "run_id": summary["run_id"], "gate": summary["gate"]}, default=str)
    mlc.set_registered_model_tag(d["model"], "textspark.last_decision", record)
    mlc.set_model_version_tag(d["model"], d["candidate_version"], "textspark.decision", record)


def print_summary(summary: dict[str, Any]) -> None:
    d = summary["decision"]
    print(f"\n{summary['model']}: {summary['metric']} on {summary['data']}")
    for version, e in summary["evaluations"].items():
        print(f"  v{version:<4} accuracy={e['accuracy']:.4f} macro_f1={e['macro_f1']:.4f} rows={e['counts']['rows']}")
    gate = summary.get("gate")
    if gate is not None:
        print(f"gate: {'passed' if gate['passed'] else 'refused'} -- shadow report {gate['shadow_report']} "
              f"({gate['champion']} vs {gate['challenger']}, flip rate {gate['flip_rate']}, "
              f"max {gate['max_flip_rate']})")
    print(f"decision: {'PROMOTED' if d['applied'] else 'kept'} -- {d['reason']} (run {summary['run_id']})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, epilog=config_help(EvaluateConfig))

    def report(summary: dict) -> None:
        print_summary(summary)
        print(dumps(summary["decision"]))

    return run_cli(lambda: run(parse_evaluate_job(read_yaml(args.conf), source=args.conf)), report, source=args.conf)


if __name__ == "__main__":
    sys.exit(main())
