"""Incremental analysis against a full run, on a table that grows and changes: folders and catalog tables.

    .venv/bin/python bench/incremental.py [--rows 2000] [--new 0.05] [--edited 0.02] [--paths inproc,outside,sail]

The analyze job (jobs/analyze.py) with the real default models of sentiment, zero-shot classify (both on the
multilingual e5 encoder, one shared pass), language (fastText) and translate (Bergamot, to pt) on ``--rows``
real texts (tweets with one BBC article in ten, bench/common.corpus). Day 1 is analyzed with
``output.mode: incremental``; day 2 is day 1 with ``--edited`` of the texts replaced by other real texts and
``--new`` more rows (defaults: 2,000 rows, 40 edited, 100 new: issue 27's case). Three timed runs:
  full       day 2, mode overwrite (every row computed): the baseline
  incr       day 2, mode incremental over day 1's output
  unchanged  day 2 again, mode incremental over incr's output
Prints both ratios to the full run, the computed / reused counts, and checks that incr's output equals the
full run's (every column; floats within 1e-6; the provenance columns of a table aside).

Paths, each timed against its own full run:
- folder, in one process (``--paths inproc``, the default): one SparkSession (conf/spark/local.yml), wall time of jobs.analyze.run
  (MLflow logging included) after a warm-up job on 200 rows (JVM, Python workers, model caches): what a
  notebook or a long-lived driver pays;
- folder, one process per run (``--paths outside``): ``python -m jobs.analyze --conf ... --quiet`` timed from outside,
  JVM start and model loads included: what a scheduled spark-submit pays;
- a Delta table through Sail (``--paths sail``; pysail 0.7.2, tests/sail.py, its server venv with torch and the
  other worker packages: a few GB, built once): one Connect session, ``output.table`` with ``format: delta``,
  the incremental runs one MERGE INTO each; prints the MERGE's row counts from the table's Delta log.
``--precision`` sets every task's precision (default: each task's own, bf16 for the transformers: batch
shapes are fixed per length bucket, so bf16 results do not depend on the batch a row was in).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import bench_registry, corpus  # noqa: E402

TASKS = [{"task": "sentiment", "column": "sentiment"},
         {"task": "classify", "labels": ["business", "entertainment", "politics", "sport", "tech"], "column": "topic"},
         {"task": "language", "column": "lang"},
         {"task": "translate", "target": "pt", "source": "auto", "column": "text_pt"}]


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


def job(folder: Path, name: str, table: Path, output: dict) -> str:
    conf = {"spark": {"profile": "local"}, "input": {"path": str(table), "text_column": "text", "id_column": "id"},
            "tasks": TASKS, "output": output}
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(conf))
    return str(path)


def timed(spark, conf_path: str) -> tuple[float, dict]:
    from jobs.analyze import run
    from udfs.io.jobconf import load_job

    start = time.perf_counter()
    summary = run(load_job(conf_path), spark=spark)
    return time.perf_counter() - start, summary


def timed_outside(conf_path: str) -> tuple[float, dict]:
    """``python -m jobs.analyze`` in a process of its own; its wall time and its manifest's incremental counts."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jobs.analyze", "--conf", conf_path, "--quiet"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    out = Path(yaml.safe_load(Path(conf_path).read_text())["output"]["path"])
    return wall, json.loads((out / "_textspark_manifest.json").read_text())


def three_runs(run, folder: Path, output) -> dict:
    """Day 1 (incremental, untimed), then full / incr / unchanged timed by ``run``; ``output(name, mode)`` is
    the job's output: section. Returns their times and summaries."""
    day1, day2 = folder / "day1.parquet", folder / "day2.parquet"
    run(job(folder, "day1", day1, output("out", "incremental")))
    t_full, _ = run(job(folder, "full", day2, output("full", "overwrite")))
    t_incr, incr = run(job(folder, "incr", day2, output("out", "incremental")))
    t_same, same = run(job(folder, "same", day2, output("out", "incremental")))
    return {"full": t_full, "incr": t_incr, "same": t_same, "incr_summary": incr, "same_summary": same}


def report(path: str, runs: dict) -> None:
    print(f"\n== {path}")
    for label, key in (("incremental", "incr_summary"), ("unchanged", "same_summary")):
        for column, c in runs[key]["incremental"]["tasks"].items():
            print(f"  {label:<11} {column:<10} computed {c['computed']:>5} {c['computed_because']}  reused {c['reused']}")
    print(f"  full run (overwrite)      {runs['full']:7.1f} s")
    print(f"  incremental re-run        {runs['incr']:7.1f} s   ratio {runs['incr'] / runs['full']:.3f}  (target <= 0.25)")
    print(f"  unchanged re-run          {runs['same']:7.1f} s   ratio {runs['same'] / runs['full']:.3f}  (target <= 0.15)")


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


def same_rows(incr: pd.DataFrame, full: pd.DataFrame, drop=()) -> str:
    worst = compare(incr.drop(columns=[c for c in drop if c in incr.columns]),
                    full.drop(columns=[c for c in drop if c in full.columns]))
    return f"{ {c: float(f'{d:.1e}') for c, d in worst.items() if d} or 0}"


def sail_path(folder: Path) -> None:
    """The Delta table path: a Sail server (its venv with the model worker packages), one Connect session."""
    from udfs.io.tables import PROVENANCE
    from tests.sail import MODEL_WORKER_PACKAGES, SailServer, connect_session, default_venv_folder, sail_venv
    from udfs.models.catalog import load_catalog
    from udfs.models.loading import local_folder
    from udfs.models.registry import resolve
    from udfs.tasks.incremental import BOOKKEEPING

    catalog = load_catalog()
    for task in ("embed", "sentiment", "language", "translate"):  # Sail's worker has no mlflow: into the cache
        local_folder(resolve(catalog.default_reference(task)))
    started = time.perf_counter()
    venv = sail_venv(default_venv_folder().with_name("sail-venv-models"), extra=MODEL_WORKER_PACKAGES)
    server = SailServer(venv, folder)
    server.start()
    print(f"Sail venv ready in {time.perf_counter() - started:.0f} s; server at {server.url}")
    try:
        with connect_session(server.url, warehouse=folder / "warehouse") as sail:
            sail.sql("CREATE DATABASE IF NOT EXISTS bench").collect()
            table = lambda name, mode: {"table": f"bench.{name}", "format": "delta", "mode": mode}  # noqa: E731
            timed(sail, job(folder, "warm", folder / "warm.parquet", table("warm", "overwrite")))
            runs = three_runs(lambda conf: timed(sail, conf), folder, table)
            report("Delta table through Sail, one Connect session", runs)
            location = next(r[1] for r in sail.sql("DESCRIBE TABLE EXTENDED bench.out").collect() if r[0] == "Location")
            log = sorted(Path(location.removeprefix("file://")).joinpath("_delta_log").glob("*.json"))
            ops = [a["commitInfo"] for p in log for a in map(json.loads, p.read_text().splitlines()) if "commitInfo" in a]
            for op in ops:
                counts = {k: v for k, v in (op.get("operationMetrics") or {}).items()
                          if k in ("numTargetRowsUpdated", "numTargetRowsInserted", "numTargetRowsDeleted")}
                print(f"  table history: {op['operation']} {counts or ''}")
            incr = sail.table("bench.out").toPandas()
            full = sail.table("bench.full").toPandas()
            print(f"  table output == its full run's: every row and column but {', '.join(PROVENANCE)}; max abs "
                  f"float difference per column {same_rows(incr, full, PROVENANCE)} (target <= 1e-6)")
            if (folder / "full-inproc").exists():
                folder_full = pd.read_parquet(folder / "full-inproc").drop(columns=list(BOOKKEEPING), errors="ignore")
                print(f"  table output == the folder path's full run: max abs float difference per column "
                      f"{same_rows(incr.drop(columns=list(BOOKKEEPING), errors='ignore'), folder_full, PROVENANCE)}")
    finally:
        server.stop()


def in_process_path(folder: Path) -> None:
    """The folder path in one process: a warm-up, then the three runs on one SparkSession."""
    from udfs.platform import get_spark
    from udfs.tasks.incremental import BOOKKEEPING

    spark = get_spark("local")
    in_process = lambda name, mode: {"path": str(folder / f"{name}-inproc"), "mode": mode}  # noqa: E731
    timed(spark, job(folder, "warm", folder / "warm.parquet", in_process("warm", "overwrite")))
    runs = three_runs(lambda conf: timed(spark, conf), folder, in_process)
    report("folder, one process (warm JVM and model caches)", runs)
    incr_rows = pd.read_parquet(folder / "out-inproc").drop(columns=list(BOOKKEEPING))
    print(f"  incremental output == full run's: every row and column; max abs float difference per column "
          f"{same_rows(incr_rows, pd.read_parquet(folder / 'full-inproc'))} (target <= 1e-6)")
    spark.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--new", type=float, default=0.05)
    parser.add_argument("--edited", type=float, default=0.02)
    parser.add_argument("--precision", default=None, help="every task's precision (default: each task's own)")
    parser.add_argument("--paths", default="inproc", help="comma-separated: inproc (the folder path in one "
                        "process), outside (one process per run), sail (a Delta table through Sail)")
    parser.add_argument("--tasks", default="sentiment,classify,language,translate",
                        help="comma-separated, of: sentiment, classify, language, translate (Sail 0.7.2's server "
                        "crashed with a segfault in its native library running the transformer tasks: see docs)")
    args = parser.parse_args(argv)
    TASKS[:] = [t for t in TASKS if t["task"] in args.tasks.split(",")]
    if args.precision:
        for t in TASKS:
            t["precision"] = args.precision
    for task in ("embed", "sentiment", "language", "translate"):  # classify with labels: zero-shot on embed
        bench_registry(task)
    folder = Path(tempfile.mkdtemp(prefix="textspark-incremental-"))
    day1 = corpus(args.rows, seed=0, article_share=0.1)
    day2 = day_two(day1, args.new, args.edited)
    for name, table in (("day1", day1), ("day2", day2), ("warm", day1.head(200))):
        table.to_parquet(folder / f"{name}.parquet", index=False)
    print(f"{args.rows} rows day 1; day 2: {len(day2)} rows ({int(args.rows * args.edited)} edited, "
          f"{len(day2) - args.rows} new); tasks: {', '.join(t['task'] for t in TASKS)}")

    paths = set(args.paths.split(","))
    if paths - {"inproc", "outside", "sail"}:
        parser.error(f"--paths: got {args.paths!r}; allowed: inproc, outside, sail, comma-separated")
    if "inproc" in paths:
        in_process_path(folder)
    if "outside" in paths:
        outside = lambda name, mode: {"path": str(folder / f"{name}-outside"), "mode": mode}  # noqa: E731
        runs = three_runs(timed_outside, folder, outside)
        report("folder, one process per run (python -m jobs.analyze, timed from outside)", runs)
    if "sail" in paths:
        sail_path(folder)


if __name__ == "__main__":
    main()
