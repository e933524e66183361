"""What a Spark task costs before its first row, and what textspark removed from it.

    .venv/bin/python bench/fixed_cost.py [--rows 1000] [--partitions 200]

One process, one SparkSession (conf/spark/local.yml: local[2], Python workers reused), real tweets, the
registered MiniLM embed UDF (auto precision). The same rows run as 2 partitions (one task per core) and as
--partitions partitions; the fixed cost per task is the core time each extra task adds:
(wall(many) - wall(2)) x 2 cores / (many - 2). Timed: a write to the ``noop`` sink, models already loaded in
both Python workers. Rows:
  embed                  textspark's UDF as shipped: after a model load the worker freezes its long-lived
                         objects out of the garbage collector's view (udfs.models.model_cache)
  identity Arrow UDF     Spark's own floor: an Arrow UDF that returns its input, in the same workers
  ... gc unfrozen        the same two after ``gc.unfreeze()`` in every worker: what they cost before, when
                         Spark's daemon ran a full ``gc.collect()`` over torch, transformers and the model
                         after every task
Then, in this process: the UDF's pickled size and unpickling time, a warm model-cache lookup
(``worker_model``), and one full ``gc.collect()`` with the model loaded, frozen and not.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_registry, corpus  # noqa: E402


def _pid_udf(action: str):
    """An Arrow UDF that runs ``action`` on the worker (gc unfreeze / freeze, or nothing) and returns its pid."""
    import pyarrow as pa
    from pyspark.sql.functions import arrow_udf

    def worker_gc(texts: pa.Array) -> pa.Array:
        import gc as worker_gc_module

        if action == "unfreeze":
            worker_gc_module.unfreeze()
        elif action == "freeze":
            worker_gc_module.collect()
            worker_gc_module.freeze()
        return pa.array([str(os.getpid())] * len(texts))

    worker_gc.__annotations__ = {"texts": pa.Array, "return": pa.Array}  # resolved hints (this module's are strings)
    return arrow_udf(worker_gc, "string")


def _identity_udf():
    import pyarrow as pa
    from pyspark.sql.functions import arrow_udf

    def identity(texts: pa.Array) -> pa.Array:
        return texts

    identity.__annotations__ = {"texts": pa.Array, "return": pa.Array}
    return arrow_udf(identity, "string")


def in_process(ref: str) -> None:
    """The pieces of a task's start that textspark controls, timed in this process."""
    from pyspark.serializers import CloudPickleSerializer

    from udfs.models import model_cache
    from udfs.runtime import driver, worker
    from udfs.tasks.embed import embed_plan

    plan = embed_plan(model=ref, precision="auto")
    udf = driver.make_udf(plan, only="embedding")
    ser = CloudPickleSerializer()
    blob = ser.dumps((udf.func, udf.returnType))
    start = time.perf_counter()
    for _ in range(100):
        ser.loads(blob)
    unpickle = (time.perf_counter() - start) / 100
    worker.worker_model(plan)  # loads (and freezes) once
    start = time.perf_counter()
    for _ in range(100):
        worker.worker_model(plan)
    lookup = (time.perf_counter() - start) / 100
    start = time.perf_counter()
    gc.collect()
    frozen = time.perf_counter() - start
    objects = gc.get_freeze_count()
    gc.unfreeze()
    start = time.perf_counter()
    gc.collect()
    unfrozen = time.perf_counter() - start
    model_cache.clear()
    print(f"\nin this process: the embed UDF pickles to {len(blob):,} bytes, unpickled in {unpickle * 1e3:.2f} ms; "
          f"a warm worker_model() lookup {lookup * 1e3:.3f} ms;\n  one gc.collect() with torch + the model loaded: "
          f"{unfrozen * 1e3:.0f} ms over {objects:,} long-lived objects, {frozen * 1e3:.1f} ms once they are frozen")


def measure(spark, ref: str, rows: int, partitions: int) -> tuple[int, dict]:
    """Python workers seen, and per variant: ({partitions: wall seconds}, fixed cost per task, every worker reached)."""
    from udfs import embed

    data = corpus(rows + 64, article_share=0.0)
    warm = spark.createDataFrame(data.head(64)).repartition(2)
    frames = {n: spark.createDataFrame(data.iloc[64:]).repartition(n).cache() for n in (2, partitions)}
    for frame in frames.values():
        frame.count()

    def timed(column, n: int) -> float:
        start = time.perf_counter()
        frames[n].select(column).write.format("noop").mode("overwrite").save()
        return time.perf_counter() - start

    def worker_gc(action: str) -> set[str]:
        pids = spark.createDataFrame(data.head(64)).repartition(16).select(_pid_udf(action)("text").alias("p"))
        return {r.p for r in pids.collect()}

    warm.select(embed("text", model=ref)).write.format("noop").mode("overwrite").save()  # both workers load it
    workers = worker_gc("none")
    results = {}
    for label, action in (("", "freeze"), (", gc unfrozen", "unfreeze")):
        touched = worker_gc(action)
        for name, column in (("embed", embed("text", model=ref)), ("identity Arrow UDF", _identity_udf()("text"))):
            walls = {n: timed(column, n) for n in (2, partitions)}
            per_task = (walls[partitions] - walls[2]) * 2 / (partitions - 2)
            results[name + label] = (walls, per_task, touched == workers)
    worker_gc("freeze")  # as textspark leaves them
    return len(workers), results


def report(workers: int, results: dict, rows: int, partitions: int) -> None:
    print(f"\nfixed cost per Spark task: {rows} tweets, local[2], {workers} Python workers; per task = "
          f"(wall({partitions} partitions) - wall(2)) x 2 cores / {partitions - 2}")
    for name, (walls, per_task, all_workers) in results.items():
        note = "" if all_workers else "  (not every worker was reached: read with care)"
        print(f"  {name:<32} 2 partitions {walls[2]:6.1f} s   {partitions} partitions "
              f"{walls[partitions]:6.1f} s   per task {per_task:6.3f} s{note}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=200)
    args = parser.parse_args(argv)
    catalog = bench_registry("embed")
    from udfs.models.registry import resolve
    from udfs.platform import get_spark

    ref = resolve(catalog.default_reference("embed"), task="embed").uri
    spark = get_spark("local")
    report(*measure(spark, ref, args.rows, args.partitions), args.rows, args.partitions)
    in_process(ref)
    spark.stop()


if __name__ == "__main__":
    main()
