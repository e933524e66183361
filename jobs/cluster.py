"""Find the themes in a text table: embeddings -> distributed k-means -> named clusters, versioned in MLflow.

    spark-submit jobs/cluster.py --conf conf/jobs/cluster_sample.yml
    python -m jobs.cluster --conf conf/jobs/cluster_sample.yml

mode: fit (default) embeds the texts (or reads embedding_column), identifies each row's language (the
catalog's defaults.language), centers the embeddings per language where the table holds several
(center_languages), fits k-means (k, or the most stable k in k_range), registers the clustering as
models:/<name>@<alias> and logs an MLflow run. mode: assign puts new rows into the clusters of a registered
clustering (model: models:/<name>@<alias>) without refitting, centered as the fitted rows were.
Both write <output.path>/assignments (every input row: id, cluster, distance, error, model versions),
<output.path>/clusters (cluster, name, size, keywords, examples, example_ids), _projection.png and
_textspark_manifest.json, staged next to the output and committed together (udfs/io/commit.py). The manifest
and the MLflow run also get each model's cost and the job's wall split (udfs/runtime/costs.py), which go to
the cost store ``--plan`` reads (``python -m jobs.cluster --conf ... --plan``: the estimate; nothing runs).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):  # spark-submit jobs/cluster.py: make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from udfs.io.inputs import check_input, preflight, read_input  # noqa: E402
from udfs.io.cli import job_spark, parse_args, run_cli  # noqa: E402
from udfs.io.summary import manifest_json, plan_lines  # noqa: E402
from udfs.io.jobconf import JobConf, parse_job  # noqa: E402
from udfs.io.sections import read_yaml  # noqa: E402
from udfs.io.commit import MANIFEST  # noqa: E402
from udfs.io.output import Output  # noqa: E402
from udfs.io.storage import join  # noqa: E402
from udfs.config import config_help  # noqa: E402
from udfs.io.tracking import JobRun, job_run, used_models  # noqa: E402
from udfs.clustering import describe  # noqa: E402
from udfs.clustering.config import KEYS, ClusterConf, parse_cluster_conf  # noqa: E402
from udfs.clustering.features import prepare  # noqa: E402
from udfs.clustering.fit import ClusteringError, fit  # noqa: E402
from udfs.clustering.languages import language_plan_for  # noqa: E402
from udfs.clustering.metrics import label_scores  # noqa: E402
from udfs.clustering.model import Clustering, assign, load_registered, register  # noqa: E402
from udfs.clustering.plot import projection_png, projection_sample  # noqa: E402
from udfs.errors import ConfigError, ModelReferenceError  # noqa: E402
from udfs.platform import setup_environment  # noqa: E402
from udfs.runtime import costs  # noqa: E402
from udfs.runtime.parallelism import cluster_parallelism  # noqa: E402
from udfs.runtime.progress import is_connect, progress  # noqa: E402
from udfs.tasks.embed import embed_plan  # noqa: E402


def parse_cluster_job(data: dict, *, source: str | None = None) -> tuple[JobConf, ClusterConf]:
    """Validate a cluster job mapping: the shared input/output/spark/mlflow keys plus the cluster keys."""
    conf = parse_job(data, source=source, tasks_required=False, extra_keys=KEYS)
    if conf.tasks:
        raise ConfigError("tasks", data.get("tasks"), "no tasks in a cluster job (use jobs/analyze.py)", source=source)
    if not conf.input.id_column:
        raise ConfigError("input.id_column", None, "the column that identifies a row (assignments are keyed by it)",
                          source=source)
    if conf.output.table is not None:  # its output is a folder of tables, a plot and a manifest
        raise ConfigError("output.table", conf.output.table, "output.path (a cluster job writes a folder)",
                          source=source)
    return conf, parse_cluster_conf(data, source=source)


def load_cluster_job(path: str | os.PathLike) -> tuple[JobConf, ClusterConf]:
    return parse_cluster_job(read_yaml(path), source=str(path))


def _embed_plan(cc: ClusterConf, model: str | None):
    """The embed UDF plan (resolves the model to one version on the driver), or None for an input column."""
    if cc.embedding_column:
        return None
    key = "model" if cc.mode == "assign" else "embedding_model"
    try:
        return embed_plan(model=model, device=cc.device, precision=cc.precision, fail_on_error=cc.fail_on_error)
    except ModelReferenceError as exc:
        raise ConfigError(key, model or "(catalog default)", str(exc)) from None


def _language_plan(cc: ClusterConf, clustering: Clustering | None):
    """(the ``detect_language`` plan that gives each row its language, or None; a note when there is none).

    fit: the catalog's ``defaults.language``; where it is missing or not registered, ``center_languages:
    true`` is an error and otherwise the rows go without languages (no centering, English stop words only).
    assign: the very version the clustering was centered with, where it was; none needed otherwise.
    """
    from udfs.models.catalog import load_catalog

    if clustering is not None:
        if clustering.centering is None:
            return None, None
        reference = clustering.centering.language_model
        try:
            return language_plan_for(reference), None
        except ModelReferenceError as exc:
            raise ConfigError("model", cc.model, f"a clustering whose language model ({reference}) is "
                              f"registered: {exc}") from None
    try:
        reference = load_catalog().default_reference("language")
        return language_plan_for(reference), None
    except (ConfigError, ModelReferenceError) as exc:
        why = f"{exc}" if isinstance(exc, ModelReferenceError) else f"catalog {exc}"
        if cc.center_languages is True:
            raise ConfigError("center_languages", True, f"auto or false where the catalog's language model "
                              f"(defaults.language) cannot be used: {why}") from None
        return None, f"rows' languages not identified (no centering, English stop words only): {why}"


def run(conf: JobConf, cc: ClusterConf, *, spark=None) -> dict:
    """Run the job; returns its summary. Config and model-reference errors raise before Spark work (and before
    the job's MLflow run opens)."""
    job_start = time.time()
    setup_environment()
    clustering = resolved = None
    if cc.mode == "assign":
        try:
            clustering, resolved = load_registered(cc.model)
        except ModelReferenceError as exc:
            raise ConfigError("model", cc.model, str(exc), source=conf.source) from None
        if clustering.embedding_model is None and not cc.embedding_column:
            raise ConfigError("embedding_column", None, f"the column of vectors {cc.model} was fitted on "
                              f"({clustering.embedding_column!r}): it was not fitted on texts", source=conf.source)
        plan = _embed_plan(cc, clustering.embedding_model)
    else:
        plan = _embed_plan(cc, cc.embedding_model)
    language_plan, language_note = _language_plan(cc, clustering)
    preflight([plan, language_plan])  # every backend installed: one line, exit 3, before Spark starts
    check_input(conf.input, source=conf.source)  # a local input and output are checked before Spark starts
    # the output's lease and the MLflow run (open from here to the end of the job, dated from its start)
    with Output(conf.output, source=conf.source) as output, ExitStack() as stack:
        if output.skip:
            return {"mode": cc.mode, "output": conf.output.path, "rows": 0, "skipped": True}
        asked = time.time()
        spark = spark or job_spark(conf.spark.profile, conf=conf.spark.conf)
        clock = {"setup": asked - job_start, "spark_start": time.time() - asked}  # the wall split (costs.account)
        if output.bind(spark).skip:
            return {"mode": cc.mode, "output": conf.output.path, "rows": 0, "skipped": True}
        models = [*used_models([plan, language_plan]), *([resolved.label] if resolved else [])]
        tracked = stack.enter_context(job_run("cluster", conf.experiment, conf.output.path, started=job_start,
                                              models=models))
        started = time.time()
        df = read_input(spark, conf.input, source=conf.source)
        for key, col in (("input.text_column", conf.input.text_column), ("input.id_column", conf.input.id_column),
                         ("label_column", cc.label_column), ("embedding_column", cc.embedding_column)):
            if col is not None and col not in df.columns:
                raise ConfigError(key, col, df.columns, source=conf.source)
        output.check_ids(df, conf.input.id_column, table="assignments")

        from pyspark import StorageLevel

        chunk_words = clustering.chunk_words if clustering else cc.chunk_words
        embedding = f"embedding ({chunk_words}-word windows)" if chunk_words else "embedding"
        meter = progress(spark, {name: p for name, p in ((embedding, plan), ("language", language_plan)) if p},
                         costs=True)
        prepared = prepare(df, id_column=conf.input.id_column, text_column=conf.input.text_column,
                           label_column=cc.label_column, embedding_column=cc.embedding_column,
                           embed_plan=meter.tasks.get(embedding),
                           dim=clustering.embedding_dim if clustering else None,
                           distance=clustering.distance if clustering else cc.distance,
                           chunk_words=clustering.chunk_words if clustering else cc.chunk_words,
                           max_chunks=clustering.max_chunks if clustering else cc.max_chunks,
                           language_plan=meter.tasks.get("language")).persist(StorageLevel.MEMORY_AND_DISK)
        assigned = None
        try:
            inferring = time.time()
            clock["read"] = inferring - asked - clock["spark_start"]
            if meter.names:  # score every row now (cached), with live progress lines unless quiet; timed
                rows = df.count()
                meter.total_rows = {embedding: None if chunk_words else rows, "language": rows}
                with meter:
                    prepared.count()
            clock["stage"] = time.time() - inferring
            task_costs = {"embedding" if name == embedding else name: c for name, c in meter.costs().items()}
            embedding_label = plan.model.label if plan else None
            if cc.mode == "fit":
                result = fit(prepared, cc, embedding_model=plan.model.uri if plan else None,
                             language_model=language_plan.model.uri if language_plan else None)
                clustering = result.clustering
            assigned = assign(prepared, clustering).persist(StorageLevel.MEMORY_AND_DISK)
            sizes = describe.sizes(assigned)
            keywords = (describe.keywords(assigned, cc.keywords,
                                          stop_words=describe.stop_words_for(result.stop_word_languages))
                        if cc.mode == "fit" else clustering.keywords)
            names = describe.names(clustering.k, keywords)
            examples = describe.representatives(assigned, cc.examples)
            scores = label_scores(assigned) if cc.label_column else {}
            vectors, labels = projection_sample(assigned, cc.projection_size, seed=cc.seed)
            summary = {
                "mode": cc.mode, "output": conf.output.path, "input": conf.input.path, "k": clustering.k,
                "distance": clustering.distance, "embedding_model": embedding_label,
                "embedding_column": cc.embedding_column,
                "lexical_weight": clustering.lexical_weight, "lexical_dims": clustering.lexical_dims,
                "language_centering": clustering.centering.summary() if clustering.centering else None,
                "language_model": language_plan.model.label if language_plan else None,
                "sizes": {str(c): sizes.get(c, 0) for c in range(clustering.k)},
                "keywords": {str(c): w for c, w in sorted(keywords.items())},
                "names": {str(c): name for c, name in names.items()}, **scores,
            }
            if cc.mode == "fit":
                clustering.keywords, clustering.sizes = keywords, sizes
                summary.update(silhouette=result.silhouette, k_range=list(cc.k_range) if cc.k_range else None,
                               k_selection=cc.k_selection if cc.k_range else None,
                               candidates={str(k): s for k, s in result.candidates.items()},
                               rows_distinct=result.distinct, lexical_note=result.lexical_note,
                               center_languages=cc.center_languages, languages=result.languages,
                               centering_note=language_note or result.centering_note,
                               stop_word_languages=result.stop_word_languages)
            elif clustering.centering is not None:
                summary.update(centering_note=f"centered per language as fitted: {clustering.centering.describe()}")
            with tempfile.TemporaryDirectory(prefix="textspark-cluster-") as tmp:
                png = projection_png(vectors, labels, clustering.centroids, Path(tmp) / "projection.png",
                                     title=f"{conf.input.path.rsplit('/', 1)[-1]}: {len(vectors)} sampled rows, "
                                           f"k={clustering.k}", distance=clustering.distance, names=names)
                run_id = _log_run(tracked, conf, cc, clustering, summary, png)
                summary["model"] = clustering.label if cc.mode == "fit" else resolved.label
                summary["model_uri"] = f"models:/{summary['model']}"
                summary["run_id"] = run_id
                clock["fit"] = time.time() - inferring - clock["stage"]
                with output.staging():
                    _write_outputs(spark, output, conf, assigned, clustering, keywords, sizes, examples, summary, png)
                    summary.update(seconds=round(time.time() - started, 1), write_id=output.run_id,
                                   recovered=output.recovered, costs=task_costs)
                    cores, now = cluster_parallelism(spark), time.time()
                    clock["commit"] = now - inferring - clock["stage"] - clock["fit"]
                    summary["wall"] = costs.account(clock, now - job_start, task_costs, cores or 1, cores)
                    output.commit(manifest_json(**summary))
                tracked.log_metrics(costs.metrics(summary))  # cost.<model>.<figure>, wall.<part>
        finally:
            if assigned is not None:
                assigned.unpersist()
            prepared.unpersist()
        costs.record("cluster", summary)  # the cost store --plan reads
        return summary


def plan(conf: JobConf, cc: ClusterConf) -> str:
    """``--plan``: the estimated time from the recorded costs (udfs.io.summary.plan_lines): the embedding model's
    and the language model's; the fit is among the fixed costs (a fit with k_range takes longer on more rows)."""
    setup_environment()
    clustering = load_registered(cc.model)[0] if cc.mode == "assign" else None
    plan_ = _embed_plan(cc, clustering.embedding_model if clustering else cc.embedding_model)
    language_plan = _language_plan(cc, clustering)[0]
    return plan_lines("cluster", conf, [("embedding", plan_), ("language", language_plan)],
                      lambda: job_spark(conf.spark.profile, conf=conf.spark.conf))


def _log_run(tracked: JobRun, conf: JobConf, cc: ClusterConf, clustering: Clustering, summary: dict,
             png: Path) -> str:
    """Log into the job's run; a fit also registers the clustering inside it (sets ``clustering.label``)."""
    params = {"mode": cc.mode, "input": conf.input.path, "output": conf.output.path, "distance": clustering.distance,
              "embedding_model": summary["embedding_model"], "embedding_column": cc.embedding_column}
    if cc.mode == "fit":
        params.update(k=cc.k, k_range=cc.k_range, seed=cc.seed, max_iter=cc.max_iter, sample_size=cc.sample_size,
                      label_column=cc.label_column, name=cc.name, n_init=cc.n_init, chunk_words=clustering.chunk_words,
                      max_chunks=clustering.max_chunks, lexical_weight=cc.lexical_weight,
                      lexical_weight_used=clustering.lexical_weight, lexical_dims=clustering.lexical_dims,
                      lexical_decision=summary.get("lexical_note"), k_selection=cc.k_selection,
                      center_languages=cc.center_languages, language_centering=summary.get("centering_note"),
                      languages=summary.get("languages"), stop_word_languages=summary.get("stop_word_languages"))
    else:
        params.update(model=cc.model, language_centering=summary.get("centering_note"))
    params.update(language_model=summary.get("language_model"))
    tracked.log_params(params)
    metrics = {"k": clustering.k, **{f"size.{c}": n for c, n in summary["sizes"].items()}}
    for key in ("silhouette", "nmi", "purity"):
        if summary.get(key) is not None:
            metrics[key] = summary[key]
    metrics.update({f"{cc.k_selection}.k{k}": s for k, s in (summary.get("candidates") or {}).items() if s is not None})
    metrics["rows_assigned"] = sum(summary["sizes"].values())
    tracked.log_metrics(metrics)
    tracked.log_artifact(str(png))
    tracked.log_dict({"keywords": summary["keywords"], "sizes": summary["sizes"]}, "clusters.json")
    if cc.mode == "fit":  # register_folder reopens the run by id to log the model into it, and ends it
        register(clustering, name=cc.name, alias=cc.alias, run_id=tracked.run_id,
                 description=f"k-means (k={clustering.k}, {clustering.distance}) on {conf.input.path}")
        tracked.running()  # the job goes on: the outputs are written next
        tracked.set_tags({"textspark.model": clustering.label})
    return tracked.run_id


def _write_outputs(spark, output: Output, conf: JobConf, assigned, clustering: Clustering, keywords, sizes,
                   examples, summary: dict, png: Path) -> None:
    """assignments, clusters and the plot into the output's staging folder (committed together by run)."""
    from pyspark.sql import functions as F

    out = assigned.select(F.col("_id").alias(conf.input.id_column), "cluster", "distance", "error",
                          F.lit(summary["model"]).alias("model"),
                          F.lit(summary["embedding_model"]).cast("string").alias("embedding_model"))
    if conf.output.partitions:
        out = out.repartition(conf.output.partitions)
    clusters = spark.createDataFrame(describe.cluster_table(clustering.k, sizes, keywords, examples),
                                     describe.CLUSTERS_SCHEMA).coalesce(1)
    output.check_append(out, table="assignments")
    output.check_append(clusters, table="clusters")
    out.write.mode("error").format(conf.output.format).save(join(output.stage, "assignments"))
    clusters.write.mode("error").format(conf.output.format).save(join(output.stage, "clusters"))
    written = spark.read.format(conf.output.format).load(join(output.stage, "assignments"))  # this run's rows
    counts = written.agg(F.count(F.lit(1)).alias("rows"), F.count("cluster").alias("assigned")).first()
    summary.update(rows=int(counts["rows"]), rows_assigned=int(counts["assigned"]),
                   null_with_reason=int(counts["rows"] - counts["assigned"]))
    output.add_existing(("assignments", "clusters"))
    output.storage.write(join(output.stage, "_projection.png"), png.read_bytes())


def print_summary(summary: dict) -> None:
    if summary.get("skipped"):
        print(f"\n{summary['output']} exists and output.mode is ignore: nothing written")
        return
    print(f"\n{summary['mode']}: {summary['rows']} rows -> {summary['output']} in {summary['seconds']} s; "
          f"k={summary['k']} ({summary['distance']}), clustering {summary['model']}, "
          f"embeddings {summary['embedding_model'] or summary['embedding_column']}"
          + (f" + TF-IDF/LSA({summary['lexical_dims']}) at weight {summary['lexical_weight']}"
             if summary.get("lexical_dims") else ""))
    if summary.get("centering_note"):
        print(f"  {summary['centering_note']}")
    if summary.get("languages") is not None:
        print(f"  languages of the fitted rows: {summary['languages']}; stop words of: "
              f"{', '.join(['en'] + [c for c in summary.get('stop_word_languages') or [] if c != 'en'])}")
    if summary.get("lexical_note"):
        print(f"  {summary['lexical_note']}")
    if summary.get("silhouette") is not None:
        print(f"  silhouette={summary['silhouette']:.3f}" + (
            f"  k by {summary['k_selection']}: {summary['candidates']}" if summary.get("candidates") else ""))
    if summary.get("nmi") is not None:
        print(f"  vs labels: NMI={summary['nmi']:.3f} purity={summary['purity']:.3f}")
    print(f"  rows without a cluster (null with reason): {summary['null_with_reason']}")
    for c, words in summary["keywords"].items():
        print(f"  cluster {c:>3} {summary['names'].get(c, '')!r:<32} size={summary['sizes'].get(c, 0):<6} "
              f"{', '.join(words[:8])}")
    for line in costs.lines(summary):  # each model's cost, the job's wall split
        print(line)
    print(f"manifest: {summary['output']}/{MANIFEST}  plot: {summary['output']}/_projection.png")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, epilog=config_help(JobConf, ClusterConf, exclude=("tasks",)), plan=True)
    try:
        if args.plan:  # the estimate from recorded costs: nothing runs
            return run_cli(lambda: plan(*load_cluster_job(args.conf)), print, source=args.conf)
        return run_cli(lambda: run(*load_cluster_job(args.conf)), print_summary, source=args.conf,
                       input_errors=(ClusteringError,))
    finally:
        _stop_local_connect()


def _stop_local_connect() -> None:
    """Stop the local Spark Connect server this process started (SPARK_REMOTE=local[N]) before it exits: over
    Connect each fitted MLlib model is a server-side object, and freeing one at interpreter exit hangs the
    process (pyspark 4.3); a stopped session frees nothing. Other sessions are their owner's."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and is_connect(active) and os.environ.get("SPARK_REMOTE", "").startswith("local"):
        active.stop()


if __name__ == "__main__":
    sys.exit(main())
