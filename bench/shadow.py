"""Shadow scoring's cost (issue 30): two sentiment versions that share an encoder, scored in one pass, vs one
version alone.

    .venv/bin/python bench/shadow.py [--rows 2000] [--repeats 2]

The user's registry (MLFLOW_TRACKING_URI, default sqlite:///~/.local/share/textspark/mlflow.db, as
`make run` fills it): the champion is the catalog's sentiment default, a head on multilingual-e5-small
(models:/textspark-sentiment-multilingual@champion, language-guarded: de en es fr it pt); the challenger is a
second embedding_head version on the same encoder, ``bench-shadow-challenger`` (trained here on 400 tweets,
~1 min, when that model has no version yet: alias ``candidate`` only, no other model's aliases are touched).

One process, one SparkSession (conf/spark/local.yml: local[2], one torch thread per Python worker), real
tweets (udfs.io.datasets.tweets(), duplicates dropped, shuffled) cut into disjoint slices: an encoder remembers
the vectors of its last texts, so no text is timed twice, and each variant is first run on a small slice of
its own (Python workers started, every model loaded in them). Timed: a write to the ``noop`` sink (every
row's result computed once) of --rows cached rows in 2 partitions, the lazy frame built before the clock:
  alone    the sentiment UDF with the champion: select(id, sentiment(text, model=champion))
  shadow   udfs.shadow(champion, challenger): one mapInArrow stage (the encoder's pass shared, the language
           guard's detection run once, as the diff's ``language`` column)
run alternately (alone, shadow, alone, shadow, ... --repeats times each). Prints seconds and rows/s per run,
and shadow / alone on the best run of each (target <= 1.3; the median's ratio is printed too). Then the jobs
end to end, once each, on a parquet of --rows fresh tweets: jobs.analyze with the one sentiment task
(the champion) and jobs.shadow (champion vs challenger), wall time of ``run(conf, spark=...)`` and their
ratio (informative). On a miss, where the time goes: the champion without its language guard
(languages: any), the language model alone and the shadow pass without the guard, each on fresh rows.
Exit 1 when the target is missed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHAMPION = "models:/textspark-sentiment-multilingual@champion"
ENCODER = "models:/textspark-e5-small@champion"
CHALLENGER_NAME = "bench-shadow-challenger"
TARGET = 1.3
TRAIN_ROWS, WARM_ROWS = 400, 64
EXPERIMENT = "textspark-bench-shadow"


def user_registry() -> Path:
    """The user's registry (as bench/costs.py finds it): $XDG_DATA_HOME or ~/.local/share, textspark/mlflow.db."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "textspark" / "mlflow.db"


def challenger(spark, rows) -> str:
    """``models:/bench-shadow-challenger/N``: its latest version, trained on ``rows`` when it has none."""
    from udfs.models.registry import client
    from udfs.training.settings import TrainSettings
    from udfs.training.train import train

    found = [int(v.version) for v in client().search_model_versions(f"name='{CHALLENGER_NAME}'")]
    if found:
        return f"models:/{CHALLENGER_NAME}/{max(found)}"
    print(f"{CHALLENGER_NAME}: absent, training a head on {ENCODER} with {len(rows)} tweets", flush=True)
    started = time.perf_counter()
    s = TrainSettings(name=CHALLENGER_NAME, task="sentiment", base_model=ENCODER, test_fraction=0.2, seed=7,
                      head={"hidden": 256, "epochs": 40, "learning_rate": 0.001},
                      languages=["de", "en", "es", "fr", "it", "pt"], alias="candidate", champion_if_absent=False,
                      description="bench/shadow.py: the challenger of the shadow benchmark (a head on "
                                  "multilingual-e5-small trained on a few hundred tweets)")
    result = train(spark.createDataFrame(rows[["text", "label"]]), s)
    print(f"  version {result.version} in {time.perf_counter() - started:.0f} s (held-out macro F1 "
          f"{result.metrics['macro_f1']:.3f})", flush=True)
    return f"models:/{CHALLENGER_NAME}/{result.version}"


def slices(rows: int, count: int):
    """``take(n)``: the next ``n`` rows of the real tweets (distinct texts, shuffled), never the same row
    twice; ``count`` timed slices of ``rows`` rows, the training rows and 5 warm-up slices must fit."""
    from udfs.io.datasets import tweets

    texts = tweets().drop_duplicates("text").sample(frac=1.0, random_state=30).reset_index(drop=True)
    need = TRAIN_ROWS + 5 * WARM_ROWS + count * rows
    if need > len(texts):
        sys.exit(f"--rows {rows}: needs {need:,} distinct tweets, the corpus has {len(texts):,}")
    start = 0

    def take(n):
        nonlocal start
        part = texts.iloc[start:start + n]
        if len(part) < n:
            raise RuntimeError(f"the tweets ran out ({len(texts):,} distinct texts)")
        start += n
        return part

    return take


def measure(spark, label: str, build, frame) -> float:
    """Seconds of a noop write of ``build(df)`` on ``frame``'s rows (cached, 2 partitions; built before the clock)."""
    df = spark.createDataFrame(frame[["id", "text"]]).repartition(2).cache()
    df.count()
    out = build(df)
    start = time.perf_counter()
    out.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - start
    df.unpersist()
    print(f"  {label:<34} {len(frame):>6,} rows {seconds:7.1f} s {len(frame) / seconds:7.1f} rows/s", flush=True)
    return seconds


def jobs_end_to_end(spark, take, rows: int, champion: str, challenger_ref: str, work: Path) -> tuple[float, float]:
    """Wall seconds of jobs.analyze (sentiment, the champion) and of jobs.shadow, each on fresh rows."""
    from jobs import analyze, shadow as shadow_job
    from udfs.io.jobconf import parse_job
    from udfs.io.shadowconf import parse_shadow

    tables = {}
    for name in ("analyze", "shadow"):
        tables[name] = work / f"{name}.parquet"
        take(rows)[["id", "text"]].to_parquet(tables[name], index=False)
    source = {"text_column": "text", "id_column": "id"}
    one = parse_job({"spark": {"profile": "local"}, "input": {"path": str(tables["analyze"]), **source},
                     "tasks": [{"task": "sentiment", "column": "sentiment", "model": champion}],
                     "output": {"path": str(work / "out-analyze"), "mode": "overwrite"},
                     "mlflow": {"experiment": EXPERIMENT}})
    two = parse_shadow({"spark": {"profile": "local"}, "input": {"path": str(tables["shadow"]), **source},
                        "task": "sentiment", "champion": champion, "challenger": challenger_ref,
                        "output": {"path": str(work / "out-shadow"), "mode": "overwrite"}, "experiment": EXPERIMENT})
    start = time.perf_counter()
    a = analyze.run(one, spark=spark)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    s = shadow_job.run(two, spark=spark)
    both = time.perf_counter() - start
    print(f"  jobs.analyze (sentiment, champion)  {rows:>6,} rows {alone:7.1f} s {rows / alone:7.1f} rows/s "
          f"(job's own seconds {a.get('seconds')})")
    print(f"  jobs.shadow (champion, challenger)  {rows:>6,} rows {both:7.1f} s {rows / both:7.1f} rows/s "
          f"(inference {s.get('inference_seconds')} s; flip rate {s['flip_rate']:.4f}, {s['flipped']} of "
          f"{s['compared']} rows)")
    return alone, both


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{user_registry()}")
    os.environ["TEXTSPARK_QUIET"] = "1"  # no progress or model-load lines (the workers inherit it)
    work = Path(tempfile.mkdtemp(prefix="textspark-bench-shadow-"))
    os.environ.setdefault("TEXTSPARK_COSTS", str(work / "costs.jsonl"))  # the jobs' costs: not the user's store

    from udfs.io.cli import job_spark
    from udfs import detect_language, sentiment, shadow
    from udfs.errors import ModelReferenceError
    from udfs.models.registry import resolve
    from udfs.training.shadow import plan_shadow

    try:
        champion = f"models:/{resolve(CHAMPION).label}"
        resolve(ENCODER)
    except ModelReferenceError as exc:
        sys.exit(f"{exc}\nthe bench needs {CHAMPION} and {ENCODER} in {os.environ['MLFLOW_TRACKING_URI']} "
                 "(python -m jobs.register_models)")
    take = slices(args.rows, 2 * args.repeats + 2 + 3)
    spark = job_spark("local")
    challenger_ref = challenger(spark, take(TRAIN_ROWS))
    planned = plan_shadow("sentiment", champion, challenger_ref)
    tasks = ", ".join(f"{t.column}={t.plan.model.label}" for t in planned)
    print(f"bench/shadow.py: registry {os.environ['MLFLOW_TRACKING_URI']}; conf/spark/local.yml "
          f"({spark.sparkContext.master}); shadow stage tasks: {tasks}")

    variants = {
        "alone": lambda df: df.select("id", sentiment("text", model=champion).alias("s")),
        "shadow": lambda df: shadow(df, task="sentiment", champion=champion, challenger=challenger_ref,
                                    id_column="id", planned=planned),
    }
    print(f"\nwarm-up ({WARM_ROWS} rows each: workers started, models loaded)")
    for name, build in variants.items():
        measure(spark, f"{name} (warm-up)", build, take(WARM_ROWS))
    print("\ntimed, alternating, fresh rows each run")
    seconds = {name: [] for name in variants}
    for i in range(args.repeats):
        for name, build in variants.items():
            seconds[name].append(measure(spark, f"{name} #{i + 1}", build, take(args.rows)))
    best = {name: min(s) for name, s in seconds.items()}
    median = {name: statistics.median(s) for name, s in seconds.items()}
    ratio, median_ratio = best["shadow"] / best["alone"], median["shadow"] / median["alone"]
    print(f"\nsentiment, {args.rows:,} tweets, champion {champion} vs challenger {challenger_ref}")
    for name in variants:
        print(f"  {name:<8} best {best[name]:6.1f} s ({args.rows / best[name]:6.1f} rows/s), median "
              f"{median[name]:6.1f} s")
    print(f"  shadow / alone: {ratio:.2f} (best), {median_ratio:.2f} (median); target <= {TARGET}")

    print("\njobs end to end (one run each, fresh rows)")
    alone_job, shadow_job = jobs_end_to_end(spark, take, args.rows, champion, challenger_ref, work)
    print(f"  jobs.shadow / jobs.analyze: {shadow_job / alone_job:.2f} (informative)")

    met = ratio <= TARGET
    if not met:
        print(f"\ntarget missed by {ratio - TARGET:.2f} ({ratio:.2f} > {TARGET}); where the time goes:")
        unguarded = plan_shadow("sentiment", champion, challenger_ref, {"languages": "any"})
        detector = next(t.plan.model.uri for t in planned if t.column == "_language")
        for label, build in (
                ("alone, no language guard", lambda df: df.select(
                    "id", sentiment("text", model=champion, languages="any").alias("s"))),
                ("language model alone", lambda df: df.select(
                    "id", detect_language("text", model=detector).alias("l"))),
                ("shadow, no language guard", lambda df: shadow(
                    df, task="sentiment", champion=champion, challenger=challenger_ref, id_column="id",
                    planned=unguarded))):
            measure(spark, f"{label} (warm-up)", build, take(WARM_ROWS))
            measure(spark, label, build, take(args.rows))
    print("\ntarget met" if met else f"\ntarget missed: shadow / alone {ratio:.2f} > {TARGET}")
    spark.stop()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
