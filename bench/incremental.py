"""Incremental analysis against a full run, on a table that grows and changes.

    .venv/bin/python bench/incremental.py [--rows 5000] [--new 0.05] [--edited 0.02]

One process, one SparkSession (conf/spark/local.yml), the analyze job (jobs/analyze.py) with the real
default models of embed, zero-shot classify (MiniLM) and language (fastText) on ``--rows`` real texts (tweets
with one BBC article in ten, bench/common.corpus). Day 1 is analyzed with ``output.mode: incremental``; day 2
is day 1 with ``--edited`` of the texts replaced by other real texts and ``--new`` more rows. Timed (wall time
of jobs.analyze.run, MLflow logging included), after a warm-up job on 200 rows (JVM, Python workers, model
caches):
  full       day 2, mode overwrite (every row computed): the baseline
  incr       day 2, mode incremental over day 1's output
  unchanged  day 2 again, mode incremental over incr's output
Prints both ratios to the full run, the computed / reused counts, and checks that incr's output equals the
full run's (every column; embeddings and scores within 1e-6). Tasks run in fp32 by default (``--precision``):
in bf16 an embedding depends on the batch it was padded in (CPU bf16 kernels round differently per shape), so
two full runs over differently composed batches already differ by ~1e-3, incremental or not. The sentiment
default is left out: its registration trains a head (minutes); its cost per row is the encoder's, like
zero-shot classify's.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_registry, corpus  # noqa: E402

TASKS = [{"task": "embed", "column": "embedding"},
         {"task": "classify", "labels": ["business", "entertainment", "politics", "sport", "tech"], "column": "topic"},
         {"task": "language", "column": "lang"}]


def day_two(day1: pd.DataFrame, new: float, edited: float, seed: int = 1) -> pd.DataFrame:
    """Day 1 with ``edited`` of its texts replaced by other real texts and ``new`` more rows."""
    rng = np.random.default_rng(seed)
    extra = corpus(len(day1) + int(len(day1) * (new + edited)) + 10, seed=seed, article_share=0.1)
    extra = extra[~extra["text"].isin(set(day1["text"]))].reset_index(drop=True)
    n_new, n_edit = int(len(day1) * new), int(len(day1) * edited)
    day2 = day1.copy()
    edit_rows = rng.choice(len(day2), n_edit, replace=False)
    day2.loc[edit_rows, "text"] = extra["text"].iloc[:n_edit].to_numpy()
    added = pd.DataFrame({"id": range(len(day1), len(day1) + n_new), "text": extra["text"].iloc[n_edit:n_edit + n_new]})
    return pd.concat([day2, added], ignore_index=True)


def job(folder: Path, name: str, table: Path, out: Path, mode: str) -> str:
    conf = {"spark": {"profile": "local"}, "input": {"path": str(table), "text_column": "text", "id_column": "id"},
            "tasks": TASKS, "output": {"path": str(out), "mode": mode}}
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(conf))
    return str(path)


def timed(spark, conf_path: str) -> tuple[float, dict]:
    from jobs.analyze import run
    from jobs.config import load_job

    start = time.perf_counter()
    summary = run(load_job(conf_path), spark=spark)
    return time.perf_counter() - start, summary


def compare(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, float]:
    """Per column, the max abs difference of its float values; raises if anything else differs."""
    a, b = a.sort_values("id").reset_index(drop=True), b.sort_values("id").reset_index(drop=True)
    assert list(a.columns) == list(b.columns), (a.columns, b.columns)
    assert len(a) == len(b), (len(a), len(b))
    return {col: max([_diff(x, y, col) for x, y in zip(a[col], b[col])] or [0.0]) for col in a.columns}


def _diff(x, y, where: str) -> float:
    if isinstance(x, dict) or hasattr(x, "asDict"):
        x, y = dict(x), dict(y)
        assert x.keys() == y.keys(), where
        return max([_diff(x[k], y[k], f"{where}.{k}") for k in x] or [0.0])
    if isinstance(x, (list, np.ndarray)) and isinstance(y, (list, np.ndarray)):
        xa, ya = np.asarray(x, dtype=object), np.asarray(y, dtype=object)
        assert xa.shape == ya.shape, where
        return max([_diff(p, q, where) for p, q in zip(xa, ya)] or [0.0])
    if isinstance(x, float) or isinstance(y, float):
        if x is None or y is None or pd.isna(x) or pd.isna(y):
            assert (x is None or pd.isna(x)) and (y is None or pd.isna(y)), where
            return 0.0
        return abs(float(x) - float(y))
    assert x == y or (pd.isna(x) and pd.isna(y)), f"{where}: {x!r} != {y!r}"
    return 0.0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--new", type=float, default=0.05)
    parser.add_argument("--edited", type=float, default=0.02)
    parser.add_argument("--precision", default="fp32", help="every task's precision (default fp32: see below)")
    args = parser.parse_args(argv)
    for t in TASKS:
        t["precision"] = args.precision
    for task in ("embed", "language"):  # classify with labels: zero-shot on the embed default
        bench_registry(task)
    from udfs.platform import get_spark
    from udfs.tasks.incremental import BOOKKEEPING

    spark = get_spark("local")
    folder = Path(tempfile.mkdtemp(prefix="textspark-incremental-"))
    day1 = corpus(args.rows, seed=0, article_share=0.1)
    day2 = day_two(day1, args.new, args.edited)
    for name, table in (("day1", day1), ("day2", day2), ("warm", day1.head(200))):
        spark.createDataFrame(table).coalesce(1).write.parquet(str(folder / f"{name}.parquet"))
    timed(spark, job(folder, "warm", folder / "warm.parquet", folder / "warm-out", "overwrite"))
    timed(spark, job(folder, "day1", folder / "day1.parquet", folder / "out", "incremental"))
    t_full, _ = timed(spark, job(folder, "full", folder / "day2.parquet", folder / "full-out", "overwrite"))
    t_incr, incr = timed(spark, job(folder, "incr", folder / "day2.parquet", folder / "out", "incremental"))
    incr_rows = spark.read.parquet(str(folder / "out")).drop(*BOOKKEEPING).toPandas()
    t_same, same = timed(spark, job(folder, "same", folder / "day2.parquet", folder / "out", "incremental"))
    worst = compare(incr_rows, spark.read.parquet(str(folder / "full-out")).toPandas())
    print(f"\n{args.rows} rows day 1; day 2: {len(day2)} rows ({int(args.rows * args.edited)} edited, "
          f"{len(day2) - args.rows} new); tasks: {', '.join(t['task'] for t in TASKS)}")
    for label, counts in (("incremental", incr), ("unchanged", same)):
        for column, c in counts["incremental"]["tasks"].items():
            print(f"  {label:<11} {column:<10} computed {c['computed']:>5} {c['computed_because']}  reused {c['reused']}")
    print(f"full run (overwrite)      {t_full:7.1f} s")
    print(f"incremental re-run        {t_incr:7.1f} s   ratio {t_incr / t_full:.3f}  (target <= 0.15)")
    print(f"unchanged re-run          {t_same:7.1f} s   ratio {t_same / t_full:.3f}  (target <= 0.05)")
    print(f"incremental output == full run's: every row and column; max abs float difference per column "
          f"{ {c: float(f'{d:.1e}') for c, d in worst.items() if d} or 0} (target <= 1e-6)")
    spark.stop()


if __name__ == "__main__":
    main()
