"""Score a table with a task's champion and a challenger version in one pass; write how their answers differ.

    python -m jobs.shadow --conf shadow.yml
    textspark shadow --conf shadow.yml

    python -m jobs.shadow --conf shadow.yml --plan   # the estimated time from the recorded costs; runs nothing

Config keys: ``input`` (as the analyze job's; ``id_column`` required), ``task`` (classify | sentiment |
embed | cluster), ``settings`` (the task's keys, e.g. ``labels`` for zero-shot classify; for cluster
``embedding_column`` and ``split_share``), ``champion`` (default: the task's catalog default, its @champion;
required for cluster), ``challenger`` (required), ``sample: {rows: N, seed: S}`` (score N rows, the same ones
for the same seed), ``output: {path: ...}`` (or ``{table: ...}``: the diff rows with provenance in a catalog
table, the manifest in its ``textspark.manifest`` property, the figure in the run only), ``experiment``, ``spark``.

The output folder holds the diff table (udfs.training.shadow: id, language where the models are
language-guarded, both result structs, ``flipped``, ``score_delta``), a figure (``_shadow_confusion.png``:
champion label x challenger label; cluster: ``_shadow_clusters.png``, champion cluster x challenger cluster in
the order of the matching) and ``_textspark_manifest.json`` with the summary (flip rate overall, per champion
label and per language, the confusion matrix; for embed the drift; for cluster the contingency table, the
matching, the clusters that split or merge), each model's cost and the job's wall split
(udfs/runtime/costs.py), committed atomically (udfs/io/commit.py). The costs go to the cost store ``--plan``
reads. The job's MLflow run gets the cost metrics, the summary's ``shadow.*`` metrics, the report
(``shadow_report.json``) and the figure; the ``shadow.*`` metrics are logged with the challenger's logged
model id too (they show on that model's page, which the challenger version links to), and the challenger
version and its logged model get the tag ``textspark.shadow`` (the run, the report, the flip rate, the
``runs:/`` URIs of the report and the figure). ``jobs/evaluate.py``'s ``gate`` reads the report.
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
import time

if __package__ in (None, ""):  # spark-submit jobs/shadow.py: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from typing import Literal  # noqa: E402

from udfs.config import config_help  # noqa: E402
from udfs.io.inputs import check_input, preflight, read_input  # noqa: E402
from udfs.io.cli import job_spark, parse_args, run_cli  # noqa: E402
from udfs.io.summary import manifest_json, plan_lines  # noqa: E402
from udfs.io.shadowconf import ShadowConf  # noqa: E402
from udfs.io.sections import read_yaml  # noqa: E402
from udfs.io.commit import MANIFEST  # noqa: E402
from udfs.io.output import Output  # noqa: E402
from udfs.io.storage import join  # noqa: E402
from udfs.io.tables import MANIFEST_PROPERTY, PROVENANCE, TableOutput  # noqa: E402
from udfs import metastore  # noqa: E402
from udfs.io.tracking import JobRun, job_run, logged_model_id, used_models  # noqa: E402
from udfs.config import validate  # noqa: E402
from udfs.errors import ConfigError, InputError  # noqa: E402
from udfs.platform import setup_environment  # noqa: E402
from udfs.runtime import costs  # noqa: E402
from udfs.runtime.parallelism import cluster_parallelism, inference_partitions  # noqa: E402
from udfs.runtime.progress import progress  # noqa: E402
from udfs.training.plots import contingency_figure  # noqa: E402
from udfs.training.shadow import LANGUAGE, OVERLAP_K, plan_shadow, shadow, summary as diff_summary  # noqa: E402
from udfs.training.shadow_clusters import ClusterPlan  # noqa: E402

PLOTS = {"confusion": "_shadow_confusion.png", "clusters": "_shadow_clusters.png"}  # in the output folder
SHADOW_TAG = "textspark.shadow"
METRIC_PREFIX = "shadow."


class ShadowJobConf(ShadowConf):
    """udfs.io.shadowconf.ShadowConf with ``task: cluster`` too (two registered clusterings)."""

    task: Literal["classify", "cluster", "embed", "sentiment"]


def parse_shadow_job(data: dict, *, source: str | None = None) -> ShadowJobConf:
    conf = validate(ShadowJobConf, data, source=source, what="a mapping with input, task, challenger, output")
    conf._source = source
    return conf


def load_shadow_job(path: str | os.PathLike) -> ShadowJobConf:
    return parse_shadow_job(read_yaml(path), source=str(path))


def plans(planned) -> dict:
    """column -> UdfPlan of every model the rows go through: ``champion``, ``challenger`` and ``language``
    (the language guard's), or for ``cluster`` the embedding model(s) and ``language`` (udfs.training.shadow_clusters).
    The names the costs and ``--plan`` use."""
    if isinstance(planned, ClusterPlan):
        return dict(planned.plans)
    return {"language" if t.column == LANGUAGE else t.column: t.plan for t in planned}


def versions(planned) -> tuple[str, str, str | None]:
    """(champion, challenger, language model) as ``name/version``."""
    if isinstance(planned, ClusterPlan):
        language = planned.plans.get("language")
        return planned.champion.label, planned.challenger.label, language.model.label if language else None
    language = next((t.plan.model.label for t in planned[2:]), None)
    return planned[0].plan.model.label, planned[1].plan.model.label, language


def run(conf: ShadowConf, *, spark=None) -> dict:
    """Run the job; returns the summary it prints (also the manifest). Config errors (a model reference
    that does not resolve included) raise before Spark starts."""
    started = time.time()
    setup_environment()
    planned = plan_shadow(conf.task, conf.champion, conf.challenger, conf.settings)
    preflight(plans(planned).values())
    check_input(conf.input, source=conf.source)
    champion, challenger, _ = versions(planned)
    models = used_models(plans(planned).values()) + ([champion, challenger] if conf.task == "cluster" else [])
    tags = {"textspark.champion": champion, "textspark.challenger": challenger}
    if conf.output.table is not None:  # a catalog table (udfs/io/tables.py): the engine's commit
        asked = time.time()
        spark = spark or job_spark(conf.spark.profile, conf=conf.spark.conf)
        clock = {"started": started, "asked": asked, "ready": time.time()}
        with metastore.holding(spark, f"writing table {conf.output.table}"):
            table = TableOutput(conf.output, spark, source=conf.source)
            if table.skip:
                return {"output": conf.output.table, "skipped": True}
            with job_run("shadow", conf.experiment, conf.output.table, started=started, models=models,
                         tags=tags) as tracked:
                summary, figures = _run_batch(conf, planned, _TableSink(table, tracked.run_id), spark,
                                              tracked.run_id, clock)
                _log_run(tracked, conf, summary, figures)
        costs.record("shadow", summary)
        return summary
    with Output(conf.output, source=conf.source) as output:
        if output.skip:
            return {"output": conf.output.path, "skipped": True}
        asked = time.time()
        spark = spark or job_spark(conf.spark.profile, conf=conf.spark.conf)
        clock = {"started": started, "asked": asked, "ready": time.time()}  # the wall split (udfs/runtime/costs.py)
        if output.bind(spark).skip:
            return {"output": conf.output.path, "skipped": True}
        with job_run("shadow", conf.experiment, conf.output.path, started=started, models=models,
                     tags=tags) as tracked:
            summary, figures = _run_batch(conf, planned, _FolderSink(output), spark, tracked.run_id, clock)
            output.close()
            _log_run(tracked, conf, summary, figures)
    costs.record("shadow", summary)  # the cost store --plan reads
    return summary


class _FolderSink:
    """The diff table, the figure and the manifest into the output folder (staged, committed atomically)."""

    def __init__(self, output: Output):
        self.output = output

    def __enter__(self):
        self._staging = self.output.staging()
        self.stage = self._staging.__enter__()
        return self

    def __exit__(self, *exc):
        return self._staging.__exit__(*exc)

    def write(self, diff, spark):
        diff.write.mode("error").parquet(self.stage)
        return spark.read.parquet(self.stage)

    def figure(self, name: str, png: bytes) -> None:
        self.output.storage.write(join(self.stage, PLOTS[name]), png)

    def extra(self) -> dict:
        return {"write_id": self.output.run_id, "recovered": self.output.recovered}

    def commit(self, summary: dict) -> None:
        self.output.commit(manifest_json(**summary))


class _TableSink:
    """The diff table into a catalog table (its rows stamped with the run id and the time they were scored),
    the manifest into its ``textspark.manifest`` property; the figure goes to the MLflow run only."""

    def __init__(self, table: TableOutput, run_id: str):
        self.table, self.run_id = table, run_id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, diff, spark):
        out = self.table.with_provenance(diff, self.run_id)
        if self.table.conf.mode == "append":  # an existing table's columns must be this diff's
            self.table.check_schema(out)
        self.table.write(out)
        return self.table.rows_of(self.run_id).drop(*PROVENANCE)

    def figure(self, name: str, png: bytes) -> None:
        pass

    def extra(self) -> dict:
        return {"table": {"name": self.table.name, "format": self.table.format}, "output_rows": self.table.count()}

    def commit(self, summary: dict) -> None:
        self.table.set_manifest(summary)


def plan(conf: ShadowConf) -> str:
    """``--plan``: the estimated time from the recorded costs (udfs.io.summary.plan_lines) of the models the rows go
    through (the sample's rows at most); loads no model, and starts no Spark session for a local Parquet input."""
    setup_environment()
    planned = plan_shadow(conf.task, conf.champion, conf.challenger, conf.settings)
    return plan_lines("shadow", conf, list(plans(planned).items()),
                      lambda: job_spark(conf.spark.profile, conf=conf.spark.conf),
                      max_rows=conf.sample.rows if conf.sample else None)


def _run_batch(conf: ShadowConf, planned, sink, spark, run_id: str, clock: dict):
    from pyspark.sql import functions as F

    df = read_input(spark, conf.input, source=conf.source)
    key = conf.input.id_column
    needed = [("input.text_column", conf.input.text_column), ("input.id_column", key)]
    if conf.task == "cluster" and conf.settings.get("embedding_column"):
        needed.append(("settings.embedding_column", conf.settings["embedding_column"]))
    for name, col in needed:
        if col not in df.columns:
            raise ConfigError(name, col, df.columns, source=conf.source)
    if conf.sample is not None:  # the same rows for the same seed, whatever the input's partitioning
        df = df.orderBy(F.xxhash64(F.col(f"`{key}`"), F.lit(conf.sample.seed))).limit(conf.sample.rows)
    input_rows = df.count()
    partitions = inference_partitions(spark, df, None)
    cluster = isinstance(planned, ClusterPlan)
    meter = progress(spark, plans(planned) if cluster else planned, costs=True)
    counted = planned.counted(meter.tasks) if cluster else meter.tasks
    chunked = cluster and any(c.chunk_words for c in (planned.champion, planned.challenger))
    meter.total_rows = {name: None if chunked and name != "language" else input_rows for name in meter.names}
    where = conf.output.path or conf.output.table
    with sink:
        scoring = time.time()  # the Spark job(s) that read, run both versions and write
        with meter:  # cluster: one job scores and matches the clusters (udfs.training.shadow_clusters), one writes
            diff = shadow(df, task=conf.task, champion=conf.champion, challenger=conf.challenger,
                          text_column=conf.input.text_column, id_column=key, planned=counted, partitions=partitions)
            written = sink.write(diff, spark)
        scored = time.time()
        found = diff_summary(written, conf.task, key=key,
                             seed=conf.sample.seed if conf.sample else 0,
                             **({"split_share": planned.split_share} if cluster else {}))
        if found["rows"] != input_rows:
            raise InputError("output.path" if conf.output.path else "output.table", where,
                             f"this run wrote {found['rows']} rows for {input_rows} "
                             "input rows; nothing was committed", source=conf.source)
        champion, challenger, language = versions(planned)
        figures = _figures(found, champion, challenger)
        for name, figure in figures.items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=100)
            sink.figure(name, buffer.getvalue())
        summary = {"job": "shadow", "output": where, "champion": champion,
                   "challenger": challenger, "challenger_model_id": challenger_model_id(challenger),
                   "language_model": language,
                   "settings": dict(conf.settings), **found, "input_rows": input_rows,
                   "input": {"path": conf.input.path, "format": conf.input.format,
                             "text_column": conf.input.text_column, "id_column": key},
                   "sample": conf.sample.model_dump() if conf.sample else None,
                   "plot": PLOTS[next(iter(figures))] if figures else None, "run_id": run_id,
                   "seconds": round(time.time() - clock["started"], 1),
                   "inference_seconds": round(scored - scoring, 1), "inference_partitions": partitions,
                   **sink.extra()}
        if language is None:
            summary["per_language_note"] = ("no per-language counts: neither clustering centers per language"
                                            if cluster else "no per-language counts: neither version is "
                                            "language-guarded")
        summary["costs"] = meter.costs()  # per model: loads, compute, rows (none over Spark Connect)
        cores, now = cluster_parallelism(spark), time.time()
        parts = {"setup": clock["asked"] - clock["started"], "spark_start": clock["ready"] - clock["asked"],
                 "read": scoring - clock["ready"], "stage": scored - scoring, "commit": now - scored}
        summary["wall"] = costs.account(parts, now - clock["started"], summary["costs"],
                                        min(cores or partitions or 1, partitions or cores or 1), cores)
        sink.commit(summary)
    return summary, figures


def _figures(found: dict, champion: str, challenger: str) -> dict:
    """name -> matplotlib figure: the confusion matrix (classify, sentiment) or the clusters' contingency table,
    its columns in the order of the matching (cluster)."""
    if found.get("confusion"):
        c = found["confusion"]
        return {"confusion": contingency_figure(c["counts"], c["labels"], c["labels"], f"champion {champion}",
                                                f"challenger {challenger}")}
    if found.get("contingency") and found["contingency"]["counts"]:
        t = found["contingency"]
        partner = {int(c): h for c, h in found["matching"].items()}
        order = sorted(range(len(t["challenger"])), key=lambda j: (
            [partner.get(c) for c in t["champion"]].index(t["challenger"][j])
            if t["challenger"][j] in partner.values() else len(t["champion"]) + j))
        counts = [[row[j] for j in order] for row in t["counts"]]
        title = f"{len(found['splits'])} split(s), {len(found['merges'])} merge(s)"
        return {"clusters": contingency_figure(counts, [str(c) for c in t["champion"]],
                                               [str(t["challenger"][j]) for j in order],
                                               f"champion {champion} cluster", f"challenger {challenger} cluster",
                                               title=title)}
    return {}


def metrics(summary: dict) -> dict[str, float]:
    """The summary's numbers as MLflow metrics, ``shadow.<name>`` (None left out): logged to the job's run and,
    with its ``model_id``, to the challenger's logged model (its page in the MLflow UI)."""
    found = {k: summary[k] for k in ("rows", "compared", "flipped", "flip_rate")}
    for group in ("per_class", "per_language"):
        for name, g in (summary.get(group) or {}).items():
            name = re.sub(r"[^\w\-. /]", "_", str(name))
            found[f"flip_rate.{group.removeprefix('per_')}.{name}"] = g.get("flip_rate")
            found[f"cosine_mean.{group.removeprefix('per_')}.{name}"] = g.get("cosine_mean")
    drift = summary.get("drift") or {}
    found.update({f"cosine_{k}": v for k, v in (drift.get("cosine") or {}).items()})
    found[f"neighbour_overlap_at_{OVERLAP_K}"] = drift.get(f"neighbour_overlap_at_{OVERLAP_K}")
    if summary["task"] == "cluster":
        found.update(splits=len(summary["splits"]), merges=len(summary["merges"]))
    return {f"{METRIC_PREFIX}{k}": v for k, v in found.items() if v is not None}


ARTIFACTS = {"confusion": "shadow_confusion.png", "clusters": "shadow_clusters.png"}  # in the run
REPORT = "shadow_report.json"


def _log_run(tracked: JobRun, conf: ShadowConf, summary: dict, figures: dict) -> None:
    """The run gets the parameters, the cost and shadow metrics, the report and the figures; the challenger's
    logged model gets the shadow metrics (model_id) and, like the challenger version, the tag
    ``textspark.shadow`` that points at the run's report and figures."""
    from udfs.models.registry import client

    tracked.log_params({"task": conf.task, "champion": summary["champion"], "challenger": summary["challenger"],
                        "input": conf.input.path, "output": summary["output"],
                        "sample": json.dumps(summary["sample"])})
    name, version = summary["challenger"].rsplit("/", 1)
    model_id = summary["challenger_model_id"]
    tracked.log_metrics(costs.metrics(summary))  # cost.<column>.<figure>, wall.<part>: the run's own
    tracked.log_metrics(metrics(summary), model_id=model_id)
    tracked.log_dict(summary, REPORT)
    for key, figure in figures.items():
        tracked.log_figure(figure, ARTIFACTS[key])
    artifacts = [REPORT, *(ARTIFACTS[k] for k in figures)]
    report = join(conf.output.path, MANIFEST) if conf.output.path else f"{conf.output.table} ({MANIFEST_PROPERTY})"
    tag = json.dumps({"run_id": tracked.run_id, "report": report,
                      "champion": summary["champion"], "flip_rate": summary["flip_rate"], "rows": summary["rows"],
                      "model_id": model_id, "metrics": f"{METRIC_PREFIX}*",
                      "artifacts": [f"runs:/{tracked.run_id}/{a}" for a in artifacts],
                      **({"splits": len(summary["splits"]), "merges": len(summary["merges"])}
                         if summary["task"] == "cluster" else {})})
    client().set_model_version_tag(name, version, SHADOW_TAG, tag)
    if model_id:
        client().set_logged_model_tags(model_id, {SHADOW_TAG: tag})


def challenger_model_id(label: str) -> str | None:
    """The logged model (``m-...``) the challenger version ``name/version`` was registered from, or None."""
    from udfs.models.registry import client

    name, version = label.rsplit("/", 1)
    return logged_model_id(client().get_model_version(name, version))


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
    cluster = summary["task"] == "cluster"
    if summary["flip_rate"] is not None:
        print(f"  flip rate {summary['flip_rate']:.4f} ({summary['flipped']} of {summary['compared']} rows with "
              f"both {'clusters' if cluster else 'labels'})")
        for group in ("per_class", "per_language"):
            for name, g in (summary.get(group) or {}).items():
                rate = "-" if g["flip_rate"] is None else f"{g['flip_rate']:.4f}"
                what = "cluster" if cluster and group == "per_class" else group.removeprefix("per_")
                print(f"  {what} {name:<14} flip rate {rate} ({g['flipped']} of {g['compared']})")
    if summary.get("drift"):
        d = summary["drift"]
        shown = {k: "-" if v is None else f"{v:.4f}" for k, v in d["cosine"].items()}
        overlap = d[f"neighbour_overlap_at_{OVERLAP_K}"]
        print(f"  cosine similarity mean {shown['mean']} p50 {shown['p50']} p90 {shown['p90']}; neighbour overlap@"
              f"{OVERLAP_K} {'-' if overlap is None else f'{overlap:.4f}'} ({d['overlap_rows']} rows)")
    if cluster:
        pairs = ", ".join(f"{c}->{h}" for c, h in summary["matching"].items()) or "none"
        print(f"  clusters matched (champion->challenger): {pairs}")
        for s in summary["splits"]:
            into = ", ".join(f"{h} ({n})" for h, n in s["into"].items())
            print(f"  split: champion cluster {s['champion']} ({s['rows']} rows) -> challenger clusters {into}")
        for m in summary["merges"]:
            sources = ", ".join(f"{c} ({n})" for c, n in m["from"].items())
            print(f"  merge: champion clusters {sources} -> challenger cluster {m['challenger']} ({m['rows']} rows)")
        if not summary["splits"] and not summary["merges"]:
            print(f"  no cluster splits (share {summary['split_share']}) or merges")
    for line in costs.lines(summary):  # each model's cost, the job's wall split
        print(line)
    if summary.get("table"):
        print(f"manifest: table {summary['output']} property {MANIFEST_PROPERTY} (the figure: in the MLflow run)")
        return
    plot = f"  plot: {summary['output']}/{summary['plot']}" if summary["plot"] else ""
    print(f"manifest: {summary['output']}/{MANIFEST}{plot}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, epilog=config_help(ShadowJobConf), plan=True)
    if args.plan:  # the estimate from recorded costs: nothing runs
        return run_cli(lambda: plan(load_shadow_job(args.conf)), print, source=args.conf)
    return run_cli(lambda: run(load_shadow_job(args.conf)), print_summary, source=args.conf)


if __name__ == "__main__":
    sys.exit(main())
