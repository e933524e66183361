"""Several tasks on the same texts: together in the analyze job's one stage vs each alone, and vs the same
tasks as separate UDFs in one ``select`` (what a user writes by hand).

    .venv/bin/python bench/multitask.py [--rows 2000] [--sentiment default | MODEL]

One process, one SparkSession (conf/spark/local.yml: local[2], one torch thread per Python worker), real
tweets (bench/common.corpus, no articles), the registered MiniLM (embed), the sentiment head on MiniLM
(models:/textspark-sentiment-head@champion, holding a copy of the encoder; trained from
conf/jobs/train_sentiment.yml when absent: ~3 min) and zero-shot classify with labels on MiniLM: three tasks
on one encoder. Timed: a write to the ``noop`` sink, so each row's tasks run
exactly once; every variant runs once on 64 rows first (Python workers started, models loaded in them), and
each variant gets texts of its own (an encoder remembers its last few batches).
  alone        each task by itself through udfs.tasks.pipeline.apply_tasks (the job's path)
  together     the three through apply_tasks (one mapInArrow stage: one worker holds every model; tasks on
               the same encoder share its forward pass)
  udfs         the three public UDFs in one select (scalar Arrow UDFs: Spark evaluates them in one Python
               worker, batch by batch, so they share the encoder's pass too)
Prints seconds and the ratio of together / udfs to the slowest task alone (target <= 1.3).
``--sentiment`` names another sentiment model: ``default``, the catalog's (the fine-tuned MiniLM, an encoder of
its own: what sharing the pass saves is then paid; built when absent, ~9 min), or a reference; set
MLFLOW_TRACKING_URI to the registry that holds it (without it the bench uses a throw-away registry).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_registry, corpus  # noqa: E402

LABELS = ["business", "entertainment", "politics", "sport", "tech"]
TASKS = {"embed": {"task": "embed", "column": "embedding"},
         "sentiment": {"task": "sentiment", "column": "sentiment"},
         "zero-shot": {"task": "classify", "labels": LABELS, "column": "zero_shot"}}


HEAD = "models:/textspark-sentiment-head@champion"


def ensure_head() -> None:
    """Train the head (conf/jobs/train_sentiment.yml) into the registry when it holds none."""
    from udfs.io.sections import resolve_path
    from jobs.train_classifier import load_train_job, run
    from udfs.errors import ModelReferenceError
    from udfs.models.registry import resolve

    try:
        resolve(HEAD)
    except ModelReferenceError:
        print(f"{HEAD}: absent, training it from conf/jobs/train_sentiment.yml", flush=True)
        run(load_train_job(resolve_path("conf/jobs/train_sentiment.yml")))


def measure(spark, rows: int, sentiment_model: str | None = None) -> dict[str, float]:
    """Seconds for each task alone, the three together in the job's stage, and as three UDFs in one select."""
    from udfs import classify, embed, sentiment
    from udfs.tasks.incremental import as_tasks
    from udfs.tasks.pipeline import apply_tasks, plan_tasks

    tasks = {**TASKS, "sentiment": {**TASKS["sentiment"], "model": sentiment_model}} if sentiment_model else TASKS
    variants = len(TASKS) + 2
    texts = corpus((rows + 64) * variants, article_share=0.0)  # each variant its own texts: an encoder
    chunks = iter(texts[i::variants] for i in range(variants))  # remembers its last batches' vectors

    def job_path(frame, names):
        return apply_tasks(frame, "text", plan_tasks(as_tasks([tasks[n] for n in names])))

    def udf_path(frame, _):
        return frame.select("id", embed("text").alias("e"), sentiment("text", model=sentiment_model).alias("s"),
                            classify("text", labels=LABELS).alias("z"))

    def timed(build, names) -> float:
        chunk = next(chunks)
        warm = spark.createDataFrame(chunk.head(64)).repartition(2)
        df = spark.createDataFrame(chunk.iloc[64:]).repartition(2).cache()
        df.count()
        build(warm, names).write.format("noop").mode("overwrite").save()
        start = time.perf_counter()
        build(df, names).write.format("noop").mode("overwrite").save()
        return time.perf_counter() - start

    seconds = {name: timed(job_path, [name]) for name in TASKS}
    seconds["together"] = timed(job_path, list(TASKS))
    seconds["udfs"] = timed(udf_path, list(TASKS))
    return seconds


def report(seconds: dict[str, float], rows: int) -> None:
    slowest = max(seconds[name] for name in TASKS)
    print(f"\nembed + sentiment + zero-shot classify, {rows} tweets, local[2]")
    for name in TASKS:
        print(f"  {name:<12} alone     {seconds[name]:6.1f} s")
    together, udfs = seconds["together"], seconds["udfs"]
    print(f"  together (job, one stage)  {together:6.1f} s  = {together / slowest:.2f} x the slowest alone "
          f"(target <= 1.3; sum of alone: {sum(seconds[n] for n in TASKS) / slowest:.2f} x)")
    print(f"  three UDFs in one select   {udfs:6.1f} s  = {udfs / slowest:.2f} x the slowest alone")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--sentiment", default=HEAD,
                        help=f"sentiment model reference, or 'default' for the catalog's (default: {HEAD})")
    args = parser.parse_args(argv)
    bench_registry("embed")
    if args.sentiment == "default":
        bench_registry("sentiment")  # the catalog's default, fine-tuned on first use
    elif args.sentiment == HEAD:
        ensure_head()
    from udfs.platform import get_spark

    spark = get_spark("local")
    print(f"sentiment model: {args.sentiment}")
    report(measure(spark, args.rows, None if args.sentiment == "default" else args.sentiment), args.rows)
    spark.stop()


if __name__ == "__main__":
    main()
