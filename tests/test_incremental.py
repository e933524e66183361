"""Incremental analysis (udfs.tasks.incremental): a row's result for a task is reused only when its id, its
text and the task's model version and options are unchanged; rows removed from the input leave."""
from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from tests.helpers import assert_frame_equal
from tests.tiny_models import build_tiny_encoder
from udfs.errors import ConfigError, InputError
from udfs.models.registry import register_folder
from udfs.tasks.incremental import TASK_KEYS, TEXT_HASH, Incremental, analyze, as_tasks, check_ids
from udfs.tasks.pipeline import plan_tasks

DAY1 = [(1, "Shares rose after strong profits. The bank was pleased."), (2, "The match ended in a draw."),
        (3, None), (4, "Parliament debated the budget. The vote was close. It passed."), (5, "   "),
        (6, "The band played their new album live.")]
# day 2: row 2 removed, rows 4 and 6 edited, rows 7 and 8 new; rows 1, 3 and 5 unchanged
DAY2 = [(1, DAY1[0][1]), (3, None), (4, "Parliament debated the budget. The vote failed."), (5, "   "),
        (6, "The band cancelled the tour."), (7, "Scientists built a faster network."), (8, "Oil prices fell.")]
SENTINEL = [9.0] * 32


@pytest.fixture(scope="module")
def encoder(workdir, mlflow_registry):
    """Its own registered name, so moving its alias does not touch the session's tiny encoder."""
    register_folder("tiny-inc", task="embed", kind="hf_encoder", weights=build_tiny_encoder(workdir / "inc-0"),
                    params={"max_tokens": 64, "pooling": "mean", "normalize": True, "token_budget": 256})
    return "models:/tiny-inc@champion"


def tasks(encoder, max_sentences=2):
    return [{"task": "embed", "column": "vec", "model": encoder},
            {"task": "summarize", "column": "summary", "model": encoder, "max_sentences": max_sentences}]


def table(spark, rows):
    return spark.createDataFrame(rows, "id int, text string")


def run(spark, rows, previous, task_list, tmp_path, name):
    """One incremental run over ``rows``, written to ``tmp_path/name`` and read back; (output, counts)."""
    df = table(spark, rows)
    inc = Incremental(df, plan_tasks(as_tasks(task_list)), previous, text_column="text", id_column="id")
    counts = inc.counts()
    inc.output(counts).write.parquet(str(tmp_path / name))  # as the job: a task with nothing to compute skips
    return spark.read.parquet(str(tmp_path / name)), counts


def per_task(counts, column):
    t = counts["tasks"][column]
    return t["reused"], t["computed_because"]


def test_first_run_computes_every_row_and_equals_the_plain_tasks(spark, encoder, tmp_path):
    from udfs import embed, summarize

    out, counts = run(spark, DAY1, None, tasks(encoder), tmp_path, "day1")
    assert counts["full_recompute"] == "no previous output" and counts["rows"] == 6
    assert per_task(counts, "vec") == (0, {"new": 6, "text_changed": 0, "model_changed": 0, "retry": 0})
    df = table(spark, DAY1)
    plain = df.select("id", "text", embed("text", model=encoder, with_error=True).alias("e"),
                      summarize("text", model=encoder, max_sentences=2).alias("summary")) \
              .select("id", "text", F.col("e.embedding").alias("vec"), F.col("e.error").alias("vec_error"), "summary",
                      F.sha2("text", 256).alias(TEXT_HASH))
    assert_frame_equal(out.drop(TASK_KEYS), plain, atol=1e-6)
    keys = {tuple(sorted(r[0].items())) for r in out.select(TASK_KEYS).collect()}
    assert len(keys) == 1 and [k for k, _ in next(iter(keys))] == ["summary", "vec"]


def test_second_run_reuses_unchanged_rows_drops_removed_ones_and_equals_a_full_run(spark, encoder, tmp_path):
    day1, _ = run(spark, DAY1, None, tasks(encoder), tmp_path, "day1")
    # a sentinel in the previous output shows which rows were reused rather than computed again
    doctored = day1.withColumn("vec", F.when(F.col("id").isin(1, 4), F.array(*[F.lit(x) for x in SENTINEL]))
                               .otherwise(F.col("vec")).cast("array<float>"))
    doctored.write.parquet(str(tmp_path / "doctored"))
    day2, counts = run(spark, DAY2, spark.read.parquet(str(tmp_path / "doctored")), tasks(encoder), tmp_path, "day2")
    assert counts["rows"] == 7 and counts["dropped"] == 1 and counts["full_recompute"] is None
    assert per_task(counts, "vec") == (3, {"new": 2, "text_changed": 2, "model_changed": 0, "retry": 0})
    assert per_task(counts, "summary") == (3, {"new": 2, "text_changed": 2, "model_changed": 0, "retry": 0})
    vectors = {r["id"]: r["vec"] for r in day2.collect()}
    assert vectors[1] == SENTINEL and vectors[4] != SENTINEL  # 1 reused; 4's text changed: computed
    full = analyze(table(spark, DAY2), tasks(encoder), id_column="id")
    assert_frame_equal(day2.filter("id != 1"), full.filter("id != 1"), atol=1e-6)
    assert day2.columns == full.columns == ["id", "text", "vec", "vec_error", "summary", TEXT_HASH, TASK_KEYS]


def test_an_unchanged_rerun_computes_nothing_and_writes_the_same_rows(spark, encoder, tmp_path):
    day1, _ = run(spark, DAY1, None, tasks(encoder), tmp_path, "day1")
    again, counts = run(spark, DAY1, day1, tasks(encoder), tmp_path, "again")
    assert counts["dropped"] == 0
    for column in ("vec", "summary"):
        assert per_task(counts, column) == (6, {"new": 0, "text_changed": 0, "model_changed": 0, "retry": 0})
    assert_frame_equal(again, day1, atol=0)


def test_changed_options_or_a_moved_alias_recompute_only_that_task(spark, encoder, workdir, tmp_path):
    day1, _ = run(spark, DAY1, None, tasks(encoder), tmp_path, "day1")
    _, counts = run(spark, DAY1, day1, tasks(encoder, max_sentences=1), tmp_path, "options")
    assert per_task(counts, "vec") == (6, {"new": 0, "text_changed": 0, "model_changed": 0, "retry": 0})
    assert per_task(counts, "summary") == (0, {"new": 0, "text_changed": 0, "model_changed": 6, "retry": 0})
    register_folder("tiny-inc", task="embed", kind="hf_encoder", weights=build_tiny_encoder(workdir / "inc-1", seed=1),
                    params={"max_tokens": 64, "pooling": "mean", "normalize": True, "token_budget": 256})
    moved = [{"task": "embed", "column": "vec", "model": encoder},
             {"task": "summarize", "column": "summary", "model": "models:/tiny-inc/1", "max_sentences": 2}]
    out, counts = run(spark, DAY1, day1, moved, tmp_path, "moved")
    assert per_task(counts, "vec") == (0, {"new": 0, "text_changed": 0, "model_changed": 6, "retry": 0})
    assert per_task(counts, "summary") == (6, {"new": 0, "text_changed": 0, "model_changed": 0, "retry": 0})
    assert {r[0] for r in out.select("summary.model").collect()} == {"tiny-inc/1"}


def test_a_previous_output_without_bookkeeping_is_recomputed_in_full(spark, encoder, tmp_path):
    plain = table(spark, DAY1).withColumn("vec", F.lit(None).cast("array<float>"))
    out, counts = run(spark, DAY1, plain, tasks(encoder), tmp_path, "full")
    assert counts["full_recompute"] == ("the previous output has no _textspark_text_hash, _textspark_task_keys "
                                        "column (not written incrementally)")
    assert per_task(counts, "vec") == (0, {"new": 6, "text_changed": 0, "model_changed": 0, "retry": 0})
    assert out.count() == 6


def test_ids_must_be_present_and_unique(spark):
    with pytest.raises(InputError, match=r"input.id_column: got 'id'; 2 rows have a null id"):
        check_ids(table(spark, [(1, "a"), (None, "b"), (None, "c")]), "id")
    with pytest.raises(InputError, match=r"3 duplicate ids \(e.g. 1, 2\)"):
        check_ids(table(spark, [(1, "a"), (1, "b"), (2, "c"), (2, "d"), (2, "e")]), "id")
    with pytest.raises(ConfigError, match="reusing a previous output needs row ids"):
        analyze(table(spark, DAY1), [{"task": "embed"}], previous=table(spark, DAY1))
