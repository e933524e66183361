"""Score a table with a task's champion and a challenger version in one pass; write how their answers differ.

    python -m jobs.shadow --conf shadow.yml
    textspark shadow --conf shadow.yml

Config keys: ``input`` (as the analyze job's; ``id_column`` required), ``task`` (classify | sentiment |
embed), ``settings`` (the task's keys, e.g. ``labels`` for zero-shot classify), ``champion`` (default: the
task's catalog default, its @champion), ``challenger`` (required), ``sample: {rows: N, seed: S}`` (score N rows,
the same ones for the same seed), ``output: {path: ...}``, ``experiment``, ``spark``.

The output folder holds the diff table (udfs.training.shadow: id, language where the models are
language-guarded, both result structs, ``flipped``, ``score_delta``), ``_shadow_confusion.png`` (champion label
x challenger label) and ``_textspark_manifest.json`` with the summary (flip rate overall, per champion label
and per language, the confusion matrix; for embed the drift), committed atomically (jobs/output.py). The
summary, the figure and the manifest are logged to the job's MLflow run, and the challenger version gets the
tag ``textspark.shadow`` (the run, the report, the flip rate). ``jobs/evaluate.py``'s ``gate`` reads the report.
Clustering models are not shadowed (see udfs/training/shadow.py).
"""
from __future__ import annotations

import io
import json
import os
import sys
import time

if __package__ in (None, ""):  # spark-submit jobs/shadow.py: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jobs.cli import config_help  # noqa: E402
from jobs.common import (InputError, check_input, job_spark, manifest_json, parse_args, preflight,  # noqa: E402
                         read_input, run_cli)
from jobs.config import ShadowConf, parse_shadow, read_yaml  # noqa: E402
from jobs.output import MANIFEST, Output  # noqa: E402
from jobs.storage import join  # noqa: E402
from jobs.tracking import JobRun, job_run, used_models  # noqa: E402
from udfs.errors import ConfigError  # noqa: E402
from udfs.platform import setup_environment  # noqa: E402
from udfs.runtime.parallelism import inference_partitions  # noqa: E402
from udfs.training.shadow import OVERLAP_K, plan_shadow, shadow, summary as diff_summary  # noqa: E402

PLOT = "_shadow_confusion.png"
SHADOW_TAG = "textspark.shadow"


def load_shadow_job(path: str | os.PathLike) -> ShadowConf:
    return parse_shadow(read_yaml(path), source=str(path))


def run(conf: ShadowConf, *, spark=None) -> dict:
    """Run the job; returns the summary it prints (also the manifest). Config errors (a model reference
    that does not resolve included) raise before Spark starts."""
    started = time.time()
    setup_environment()
    planned = plan_shadow(conf.task, conf.champion, conf.challenger, conf.settings)
    preflight(t.plan for t in planned)
    check_input(conf.input, source=conf.source)
    champion, challenger = (t.plan.model for t in planned[:2])
    with Output(conf.output, source=conf.source) as output:
        if output.skip:
            return {"output": conf.output.path, "skipped": True}
        spark = spark or job_spark(conf.spark.profile, conf=conf.spark.conf)
        if output.bind(spark).skip:
            return {"output": conf.output.path, "skipped": True}
        with job_run("shadow", conf.experiment, conf.output.path, started=started,
                     models=used_models(t.plan for t in planned),
                     tags={"textspark.champion": champion.label, "textspark.challenger": challenger.label}) as tracked:
            summary, figure = _run_batch(conf, planned, output, spark, tracked.run_id, started)
            output.close()
            _log_run(tracked, conf, summary, figure)
    return summary


def _run_batch(conf: ShadowConf, planned, output: Output, spark, run_id: str, started: float):
    from pyspark.sql import functions as F

    df = read_input(spark, conf.input, source=conf.source)
    key = conf.input.id_column
    for name, col in (("input.text_column", conf.input.text_column), ("input.id_column", key)):
        if col not in df.columns:
            raise ConfigError(name, col, df.columns, source=conf.source)
    if conf.sample is not None:  # the same rows for the same seed, whatever the input's partitioning
        df = df.orderBy(F.xxhash64(F.col(f"`{key}`"), F.lit(conf.sample.seed))).limit(conf.sample.rows)
    input_rows = df.count()
    diff = shadow(df, task=conf.task, champion=conf.champion, challenger=conf.challenger,
                  text_column=conf.input.text_column, id_column=key, planned=planned,
                  partitions=inference_partitions(spark, df, None))
    with output.staging() as stage:
        scoring = time.time()  # one Spark job: read, both versions (one stage), write
        diff.write.mode("error").parquet(stage)
        inference_seconds = round(time.time() - scoring, 1)
        found = diff_summary(spark.read.parquet(stage), conf.task, key=key,
                             seed=conf.sample.seed if conf.sample else 0)
        if found["rows"] != input_rows:
            raise InputError("output.path", conf.output.path, f"this run wrote {found['rows']} rows for {input_rows} "
                             "input rows; nothing was committed", source=conf.source)
        champion, challenger = (t.plan.model for t in planned[:2])
        language = next((t.plan.model.label for t in planned[2:]), None)
        figure = confusion_figure(found["confusion"], champion.label, challenger.label) if found["confusion"] else None
        if figure is not None:
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=100)
            output.storage.write(join(stage, PLOT), buffer.getvalue())
        summary = {"job": "shadow", "output": conf.output.path, "champion": champion.label,
                   "challenger": challenger.label, "language_model": language,
                   "settings": dict(conf.settings), **found, "input_rows": input_rows,
                   "input": {"path": conf.input.path, "format": conf.input.format,
                             "text_column": conf.input.text_column, "id_column": key},
                   "sample": conf.sample.model_dump() if conf.sample else None,
                   "plot": PLOT if figure is not None else None, "run_id": run_id,
                   "seconds": round(time.time() - started, 1), "inference_seconds": inference_seconds,
                   "write_id": output.run_id, "recovered": output.recovered}
        if language is None:
            summary["per_language_note"] = "no per-language counts: neither version is language-guarded"
        output.commit(manifest_json(**summary))
    return summary, figure


def confusion_figure(confusion: dict, champion: str, challenger: str):
    """Counts of rows per champion label (rows) x challenger label (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, counts = confusion["labels"], confusion["counts"]
    fig, ax = plt.subplots(figsize=(1.8 + 0.9 * len(labels), 1.4 + 0.8 * len(labels)))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(f"challenger {challenger}")
    ax.set_ylabel(f"champion {champion}")
    top = max((max(row) for row in counts), default=0)
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            ax.text(j, i, str(n), ha="center", va="center", color="white" if n > top / 2 else "black")
    fig.tight_layout()
    return fig


def metrics(summary: dict) -> dict[str, float]:
    """The summary's numbers as MLflow metrics (None left out)."""
    found = {k: summary[k] for k in ("rows", "compared", "flipped", "flip_rate")}
    for group in ("per_class", "per_language"):
        for name, g in (summary.get(group) or {}).items():
            found[f"flip_rate.{group.removeprefix('per_')}.{name}"] = g.get("flip_rate")
            found[f"cosine_mean.{group.removeprefix('per_')}.{name}"] = g.get("cosine_mean")
    drift = summary.get("drift") or {}
    found.update({f"cosine_{k}": v for k, v in (drift.get("cosine") or {}).items()})
    found[f"neighbour_overlap_at_{OVERLAP_K}"] = drift.get(f"neighbour_overlap_at_{OVERLAP_K}")
    return {k: v for k, v in found.items() if v is not None}


def _log_run(tracked: JobRun, conf: ShadowConf, summary: dict, figure) -> None:
    from udfs.models.registry import client

    tracked.log_params({"task": conf.task, "champion": summary["champion"], "challenger": summary["challenger"],
                        "input": conf.input.path, "output": conf.output.path,
                        "sample": json.dumps(summary["sample"])})
    tracked.log_metrics(metrics(summary))
    tracked.log_dict(summary, "shadow_report.json")
    if figure is not None:
        tracked.log_figure(figure, "shadow_confusion.png")
    name, version = summary["challenger"].rsplit("/", 1)
    client().set_model_version_tag(name, version, SHADOW_TAG, json.dumps(
        {"run_id": tracked.run_id, "report": join(conf.output.path, MANIFEST), "champion": summary["champion"],
         "flip_rate": summary["flip_rate"], "rows": summary["rows"]}))


def load_report(path: str, *, key: str = "gate.shadow_report", source: str | None = None) -> dict:
    """The shadow report at ``path`` (a shadow output folder, or its manifest); InputError when it is none."""
    file = join(path, MANIFEST) if os.path.isdir(path) else path
    try:
        with open(file) as fh:
            report = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(key, path, f"a shadow job's output or its {MANIFEST} ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]})", source=source) from None
    if not isinstance(report, dict) or report.get("job") != "shadow":
        raise InputError(key, path, f"a shadow job's output or its {MANIFEST} (this manifest is not a shadow "
                         "job's)", source=source)
    return report


def gate_problem(report: dict, candidate: str, max_flip_rate: float) -> str | None:
    """Why the report forbids promoting ``candidate`` (``name/version``), or None when it allows it."""
    where = report.get("output")
    if report.get("challenger") != candidate:
        return f"the shadow report ({where}) is for {report.get('challenger')}, not for {candidate}"
    rate = report.get("flip_rate")
    if rate is None:
        return (f"the shadow report ({where}) has no flip rate (task {report.get('task')}, "
                f"{report.get('compared')} rows compared)")
    if rate > max_flip_rate:
        return (f"flip rate {rate:.4f} ({report['flipped']} of {report['compared']} rows) against "
                f"{report['champion']} in the shadow report ({where}) is above max_flip_rate {max_flip_rate}")
    return None


def print_summary(summary: dict) -> None:
    if summary.get("skipped"):
        print(f"\n{summary['output']} exists and output.mode is ignore: nothing written")
        return
    print(f"\nshadow {summary['task']}: champion {summary['champion']} vs challenger {summary['challenger']} on "
          f"{summary['rows']} rows -> {summary['output']} in {summary['seconds']} s")
    if summary["flip_rate"] is not None:
        print(f"  flip rate {summary['flip_rate']:.4f} ({summary['flipped']} of {summary['compared']} rows with "
              f"both labels)")
        for group in ("per_class", "per_language"):
            for name, g in (summary.get(group) or {}).items():
                rate = "-" if g["flip_rate"] is None else f"{g['flip_rate']:.4f}"
                print(f"  {group.removeprefix('per_')} {name:<14} flip rate {rate} ({g['flipped']} of {g['compared']})")
    if summary.get("drift"):
        d = summary["drift"]
        shown = {k: "-" if v is None else f"{v:.4f}" for k, v in d["cosine"].items()}
        overlap = d[f"neighbour_overlap_at_{OVERLAP_K}"]
        print(f"  cosine similarity mean {shown['mean']} p50 {shown['p50']} p90 {shown['p90']}; neighbour overlap@"
              f"{OVERLAP_K} {'-' if overlap is None else f'{overlap:.4f}'} ({d['overlap_rows']} rows)")
    plot = f"  plot: {summary['output']}/{PLOT}" if summary["plot"] else ""
    print(f"manifest: {summary['output']}/{MANIFEST}{plot}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, epilog=config_help(ShadowConf))
    return run_cli(lambda: run(load_shadow_job(args.conf)), print_summary, source=args.conf)


if __name__ == "__main__":
    sys.exit(main())
