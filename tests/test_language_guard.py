"""The language guard (udfs.runtime.guard): a task whose model records the languages it reads gives rows in
other languages a null and the reason, checked with the catalog's language model; ``languages: any`` turns
it off; the job's summary counts the rows skipped per language; the incremental key includes the guard."""
from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from jobs import analyze
from udfs.io.jobconf import parse_job
from tests.helpers import assert_frame_equal
from tests.tiny_models import build_tiny_encoder
from udfs import embed
from udfs.errors import ConfigError
from udfs.models.registry import register_folder
from udfs.tasks.incremental import as_tasks, task_key
from udfs.tasks.pipeline import plan_tasks

ROWS = [(1, "The government announced a new budget for schools and hospitals this week."),
        (2, "El gobierno anunció un nuevo presupuesto para escuelas y hospitales esta semana."),
        (3, "Die Regierung hat diese Woche einen neuen Haushalt für Schulen und Krankenhäuser angekündigt."),
        (4, None),
        (5, "Shares of the carmaker fell sharply after the quarterly results were published.")]


@pytest.fixture(scope="module")
def english_encoder(workdir, real_catalog):
    """A tiny encoder registered as reading English only; the real language model (textspark-lid176) checks."""
    register_folder("tiny-en", task="embed", kind="hf_encoder", weights=build_tiny_encoder(workdir / "tiny-en"),
                    params={"max_tokens": 64, "pooling": "mean", "normalize": True, "token_budget": 256},
                    languages=["en"])
    return "models:/tiny-en@champion"


def test_rows_in_a_language_the_model_does_not_read_get_a_null_and_the_reason(spark, english_encoder):
    df = spark.createDataFrame(ROWS, "id int, text string")
    guarded = df.select("id", embed("text", model=english_encoder, with_error=True).alias("e"))
    free = df.select("id", embed("text", model=english_encoder, with_error=True, languages="any").alias("e"))
    got = {r["id"]: (r["e"]["embedding"] is None, r["e"]["error"]) for r in guarded.collect()}
    assert got == {1: (False, None),
                   2: (True, "language es is not read by tiny-en/1 (reads: en)"),
                   3: (True, "language de is not read by tiny-en/1 (reads: en)"),
                   4: (True, "null input"),
                   5: (False, None)}
    assert {r["id"]: r["e"]["error"] for r in free.collect()} == {1: None, 2: None, 3: None, 4: "null input", 5: None}
    # the rows it reads get exactly the vectors they get without the guard
    assert_frame_equal(guarded.filter("id IN (1, 5)").select("id", "e.embedding"),
                       free.filter("id IN (1, 5)").select("id", "e.embedding"), atol=0)
    widened = df.select("id", embed("text", model=english_encoder, with_error=True, languages=["en", "es"]).alias("e"))
    assert {r["id"]: r["e"]["error"] for r in widened.collect()}[2] is None


def test_the_job_counts_rows_skipped_per_language(spark, english_encoder, tmp_path, capsys):
    path = tmp_path / "in.parquet"
    spark.createDataFrame(ROWS, "id int, text string").toPandas().to_parquet(path)
    conf = parse_job({"input": {"path": str(path), "id_column": "id"},
                      "tasks": [{"task": "embed", "column": "vec", "model": english_encoder},
                                {"task": "embed", "column": "raw", "model": english_encoder, "languages": "any"},
                                {"task": "language", "column": "lang"}],
                      "output": {"path": str(tmp_path / "out")}})
    summary = analyze.run(conf, spark=spark)
    vec, raw, _ = summary["tasks"]
    assert summary["rows_per_language"] == {"column": "lang", "counts": {"de": 1, "en": 2, "es": 1}}
    assert (vec["reads"], vec["skipped_for_language"], vec["null_with_reason"]) == (["en"], {"de": 1, "es": 1}, 3)
    assert (raw["reads"], raw["skipped_for_language"], raw["null_with_reason"]) == (None, {}, 1)
    analyze.print_summary(summary)
    printed = capsys.readouterr().out
    assert "rows in a language tiny-en/1 does not read (reads: en): de 1, es 1" in printed
    assert "  rows per language (lang): en 2, de 1, es 1" in printed.splitlines()
    out = spark.read.parquet(str(tmp_path / "out"))
    assert out.filter(F.col("vec").isNull()).count() == 3 and out.filter(F.col("raw").isNull()).count() == 1


def test_the_guard_is_part_of_the_incremental_key_and_a_task_setting(english_encoder, tiny_encoder):
    guarded, free = plan_tasks(as_tasks([{"task": "embed", "column": "a", "model": english_encoder},
                                         {"task": "embed", "column": "b", "model": english_encoder,
                                          "languages": "any"}]))
    assert guarded.plan.guard.key() == {"detector": guarded.plan.guard.detector.label, "reads": ["en"]}
    assert free.plan.guard is None and task_key(guarded) != task_key(free)
    unrecorded, = plan_tasks(as_tasks([{"task": "embed", "column": "a", "model": tiny_encoder}]))
    assert unrecorded.plan.guard is None  # the version records no languages: not checked (the summary warns)
    with pytest.raises(ConfigError, match=r"tasks\[0\].languages: got \['english'\]; allowed: any, or ISO 639"):
        plan_tasks(as_tasks([{"task": "embed", "model": english_encoder, "languages": ["english"]}]))
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.languages: got 'any'; allowed: keys task, column, model"):
        parse_job({"input": {"path": "/tmp"}, "output": {"path": "/tmp/x-out"},
                   "tasks": [{"task": "translate", "target": "pt", "languages": "any"}]})
