"""A table stored as one file through the analyze job: the file's layout (one partition) vs the default spread.

    .venv/bin/python bench/parallelism.py [--rows 2000]

One process, one SparkSession (conf/spark/local.yml: local[2]), the registered MiniLM (embed, and zero-shot
classify with labels on it). Four one-file Parquet tables of ``--rows`` real texts each (tweets with one BBC
article in ten, bench/common.corpus; disjoint, so no run reuses another's vectors), after a warm-up job on
200 rows. Runs alternate: ``inference.partitions: 1`` (what a one-file table got before the job spread it),
the default, the default, ``partitions: 1``. Prints each run's wall time (jobs.analyze.run, MLflow logging
included) and rows/s, and the ratio of the means.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_registry, corpus  # noqa: E402

TASKS = [{"task": "embed"},
         {"task": "classify", "labels": ["business", "politics", "sport", "tech", "entertainment"], "column": "topic"}]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args(argv)
    bench_registry("embed")
    from jobs.analyze import run
    from udfs.io.jobconf import load_job
    from udfs.platform import get_spark

    spark = get_spark("local")
    folder = Path(tempfile.mkdtemp(prefix="textspark-parallelism-"))
    texts = corpus(200 + 4 * args.rows, seed=3, article_share=0.1)
    plan = [("warm", texts.iloc[:200], None)] + [
        (f"run{i}", texts.iloc[200 + i * args.rows: 200 + (i + 1) * args.rows], parts)
        for i, parts in enumerate((1, None, None, 1))]
    results = []
    for name, rows, partitions in plan:
        spark.createDataFrame(rows).coalesce(1).write.parquet(str(folder / f"{name}.parquet"))  # one file
        conf = {"input": {"path": str(folder / f"{name}.parquet"), "id_column": "id"}, "tasks": TASKS,
                "output": {"path": str(folder / f"out-{name}")}}
        if partitions:
            conf["inference"] = {"partitions": partitions}
        path = folder / f"{name}.yml"
        path.write_text(yaml.safe_dump(conf))
        start = time.perf_counter()
        summary = run(load_job(str(path)), spark=spark)
        seconds = time.perf_counter() - start
        if name != "warm":
            results.append((partitions or "default", summary["inference_partitions"], summary["rows"], seconds))
    print(f"\none-file tables of {args.rows} rows, tasks: embed + zero-shot classify, local[2]")
    for setting, used, rows, seconds in results:
        print(f"  inference.partitions {str(setting):<8} -> {used} partition(s): {seconds:6.1f} s  "
              f"{rows / seconds:6.1f} rows/s")
    rate = {k: [r / s for setting, _, r, s in results if (setting == 1) == (k == "one")] for k in ("one", "spread")}
    one, spread = (sum(v) / len(v) for v in (rate["one"], rate["spread"]))
    print(f"  spread / one partition: x{spread / one:.2f} rows/s ({spread:.1f} vs {one:.1f})")
    spark.stop()


if __name__ == "__main__":
    main()
