"""udfs/runtime/parallelism.py and the analyze job: a table stored as one file is scored on every core, an input
already spread is not shuffled again, the output is the same rows, and the job reports rows/s per task."""
from pathlib import Path

import pandas as pd
import pytest

from jobs import analyze
from udfs.io.jobconf import parse_job
from tests.helpers import assert_frame_equal
from udfs.platform import load_spark_profile
from udfs.runtime.parallelism import inference_partitions, parallelism_from_conf, spread_to

ROWS = 200
WORDS = "markets rose after the match while the film festival opened and shares fell".split()


@pytest.mark.parametrize("conf, slots", [
    ({"spark.master": "local[2,4]"}, 2),
    ({"spark.master": "local[3]"}, 3),
    ({"spark.master": "local"}, 1),
    ({"spark.master": "local[*]"}, 16),
    ({"spark.master": "local[*, 4]"}, 16),
    ({"spark.master": "local-cluster[2,3,1024]"}, 6),
    ({"spark.master": "local[2]", "spark.default.parallelism": "7"}, 7),  # the setting wins
    ({"spark.master": "yarn", "spark.executor.instances": "3", "spark.executor.cores": "4"}, 12),
    ({"spark.master": "k8s://https://api:6443", "spark.executor.instances": "5"}, 5),
    ({"spark.master": "spark://host:7077"}, None),  # standalone without instances: unknown
    ({}, None),  # a Connect server that shows nothing
])
def test_cluster_parallelism_from_its_settings(conf, slots):
    assert parallelism_from_conf(conf, local_cores=16) == slots


@pytest.mark.parametrize("sizes, slots, expected", [
    ([2000], 2, 2),              # one file: spread over both cores
    ([2000], 16, 16),
    ([200], 16, 3),              # at most one partition per 64 rows
    ([100], 2, None),            # too few rows to be worth a second model copy
    ([1000, 1000], 2, None),     # already even: no shuffle
    ([250] * 8, 2, None),        # more partitions than cores, evenly busy
    ([700, 700, 600], 2, 2),     # three files on two cores: one core would score two of them
    ([1900, 100], 2, 2),         # two partitions, one holding nearly everything
    ([1040, 960], 2, None),      # within 10% of an even split
    ([], 2, None),               # an empty table
    ([2000], None, None),        # parallelism unknown: the layout is kept
])
def test_spread_to(sizes, slots, expected):
    assert spread_to(sizes, slots) == expected


@pytest.fixture(scope="module")
def one_file(tmp_path_factory) -> Path:
    """200 rows in one Parquet file (one row group): Spark reads it as one partition."""
    path = tmp_path_factory.mktemp("one-file") / "docs.parquet"
    texts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(3 + i % 9)) + f" {i}" for i in range(ROWS)]
    pd.DataFrame({"id": range(ROWS), "text": texts}).to_parquet(path, index=False)
    return path


def job(table, out, **overrides):
    data = {"input": {"path": str(table), "text_column": "text", "id_column": "id"},
            "tasks": [{"task": "embed", "column": "embedding", "model": "models:/tiny-encoder@champion"}],
            "output": {"path": str(out)}}
    return parse_job({**data, **overrides}, source="test")


def part_rows(folder: Path) -> list[int]:
    return [len(pd.read_parquet(f)) for f in sorted(folder.glob("part-*.parquet"))]


def test_a_one_file_table_is_scored_on_every_core_with_the_same_output(spark, tiny_encoder, one_file, tmp_path):
    df = spark.read.parquet(str(one_file))
    assert df.rdd.getNumPartitions() == 1
    assert inference_partitions(spark, df, None) == 2  # the session is local[2,4]
    assert inference_partitions(spark, df, 5) == 5     # inference.partitions wins

    summary = analyze.run(job(one_file, tmp_path / "spread"), spark=spark)
    assert part_rows(tmp_path / "spread") == [100, 100]  # two inference tasks of 100 rows each (today: [200])
    assert (summary["rows"], summary["inference_partitions"]) == (ROWS, 2)

    one = analyze.run(job(one_file, tmp_path / "one", inference={"partitions": 1}), spark=spark)
    assert part_rows(tmp_path / "one") == [200] and one["inference_partitions"] == 1
    written = spark.read.parquet(str(tmp_path / "spread"))
    assert_frame_equal(written, spark.read.parquet(str(tmp_path / "one")), atol=1e-6)  # every row, as before
    assert_frame_equal(written.select("id", "text"), df)


def test_an_input_already_spread_is_not_shuffled_again(spark, tiny_encoder, one_file, tmp_path):
    from udfs.tasks.pipeline import apply_tasks, plan_tasks

    pd.read_parquet(one_file).iloc[:100].to_parquet(tmp_path / "a.parquet")
    pd.read_parquet(one_file).iloc[100:].to_parquet(tmp_path / "b.parquet")
    spark.conf.set("spark.sql.files.openCostInBytes", 1 << 30)  # one partition per file, whatever its size
    try:
        df = spark.read.parquet(str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"))
        assert inference_partitions(spark, df, None) is None
        planned = plan_tasks(job(one_file, tmp_path / "x").tasks)
        out = apply_tasks(df, "text", planned, partitions=inference_partitions(spark, df, None))
        assert "Exchange" not in out._jdf.queryExecution().executedPlan().toString()
        assert out.rdd.getNumPartitions() == 2
    finally:
        spark.conf.unset("spark.sql.files.openCostInBytes")


def test_the_job_prints_rows_done_and_rows_per_second_per_task(capsys):
    summary = {"output": "/o", "mode": "overwrite", "rows": 2000, "output_rows": 2000, "seconds": 61.0,
               "inference_seconds": 50.0, "inference_partitions": 2,
               "tasks": [{"column": "embedding", "task": "embed", "model": "textspark-minilm/1", "null_with_reason": 0},
                         {"column": "sentiment", "task": "sentiment", "model": "textspark-sentiment/1",
                          "null_with_reason": 3}]}
    analyze.print_summary(summary)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3:-1] == [
        "  embedding    2000 rows done (2000 with a result) at 40.0 rows/s: 50.0 s of reading, inference on 2 "
        "partitions, shared by the 2 tasks that run together, and writing",
        "  sentiment    2000 rows done (1997 with a result) at 40.0 rows/s: 50.0 s of reading, inference on 2 "
        "partitions, shared by the 2 tasks that run together, and writing"]


def test_the_shipped_profiles_show_spark_progress_bars():
    for profile in ("local", "gpu"):
        assert load_spark_profile(profile)["conf"]["spark.ui.showConsoleProgress"] == "true", profile
