"""Bad bytes and bad column types are a row's or a config's problem, never a failed job with 0 rows out.

Spark strings may hold any bytes: ``CAST(unhex(...) AS STRING)`` written to Parquet and read back gives a
string that is not UTF-8, on which pandas' conversion fails the whole Arrow batch. textspark hands the text
column to its workers as Arrow and decodes it row by row where it must.
"""
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from udfs.io.jobconf import TaskConf
from tests.helpers import assert_frame_equal, load_direct, register_catalog_entry
from udfs import detect_language, embed
from udfs.errors import ConfigError
from udfs.models.registry import resolve
from udfs.runtime import driver
from udfs.tasks import pipeline
from udfs.tasks.embed import embed_plan
from udfs.tasks.language import language_plan
from udfs.tasks.pipeline import apply_tasks, plan_tasks

VALID = {1: "The match ended in a draw.", 3: "Shares rose after strong profits.", 6: "Le match s'est terminé."}
# 'abc' + ED A0 80 (a UTF-16 surrogate, which UTF-8 forbids) + 'def'; C3 alone: a truncated sequence.
ROWS_SQL = """
    SELECT 1 AS id, 'The match ended in a draw.' AS text, 'a' AS note
    UNION ALL SELECT 2, CAST(unhex('616263EDA080646566') AS STRING), 'b'
    UNION ALL SELECT 3, 'Shares rose after strong profits.', 'c'
    UNION ALL SELECT 4, CAST(NULL AS STRING), 'd'
    UNION ALL SELECT 5, CAST(unhex('C3') AS STRING), 'e'
    UNION ALL SELECT 6, 'Le match s''est terminé.', 'f'
"""
REASONS = {2: "invalid UTF-8 at byte 3", 4: "null input", 5: "invalid UTF-8 at byte 0"}


@pytest.fixture(scope="module")
def bad_table(spark, tmp_path_factory) -> str:
    """One Parquet file (one Arrow batch) written by Spark, two of whose strings are not UTF-8."""
    path = str(tmp_path_factory.mktemp("bad_bytes") / "docs.parquet")
    spark.sql(ROWS_SQL).coalesce(1).write.parquet(path)
    return path


@pytest.fixture(scope="module")
def lid(mlflow_registry) -> str:
    return register_catalog_entry("textspark-lid176")


def _expected_results(spark, reference: str, p: driver.UdfPlan, ddl: str):
    """id + the task's result fields per row: the registered model run directly on the valid rows, None and
    the reason on the others."""
    ids = sorted(VALID)
    values = p.predict(load_direct(reference), [VALID[i] for i in ids], p.options)
    names = [name for name, _ in p.fields]
    rows = [(i, *[None] * len(names), REASONS[i]) for i in REASONS]
    for j, i in enumerate(ids):
        fields = [values[n][j] for n in names]
        rows.append((i, *[v.tolist() if hasattr(v, "tolist") else v for v in fields], None))
    return spark.createDataFrame(rows, f"id int, {ddl}, error string")


def test_the_table_really_holds_invalid_utf8(spark, bad_table):
    hexes = dict(spark.read.parquet(bad_table).select("id", F.hex("text")).collect())
    assert (hexes[2], hexes[5]) == ("616263EDA080646566", "C3")


def test_public_api_gives_the_bad_row_a_reason_and_the_others_results(spark, bad_table, tiny_encoder, lid):
    source = spark.read.parquet(bad_table)
    out = source.select("id", "text", "note", embed("text", model=tiny_encoder).alias("v"),
                        embed("text", model=tiny_encoder, with_error=True).alias("e"),
                        detect_language("text").alias("l"))
    emb = _expected_results(spark, tiny_encoder, embed_plan(model=tiny_encoder), "embedding array<float>")
    lang = _expected_results(spark, lid, language_plan(model=lid), "language string, confidence float")
    e_label, l_label = f"tiny-encoder/{resolve(tiny_encoder).version}", f"textspark-lid176/{resolve(lid).version}"
    expected = source.join(emb, "id").join(lang.withColumnRenamed("error", "lerr"), "id").select(
        "id", "text", "note", F.col("embedding").alias("v"),
        F.struct("embedding", F.lit(e_label).alias("model"), "error").alias("e"),
        F.struct("language", "confidence", F.lit(l_label).alias("model"), F.col("lerr").alias("error")).alias("l"))
    assert_frame_equal(out, expected, atol=1e-5)
    # the text column keeps its bytes: what comes out is what went in
    assertDataFrameEqual(out.select("id", F.hex("text")), source.select("id", F.hex("text")))


def test_fail_on_error_stops_at_the_invalid_row(spark, bad_table, tiny_encoder):
    with pytest.raises(Exception, match="invalid UTF-8 at byte 3"):
        spark.read.parquet(bad_table).select(embed("text", model=tiny_encoder, fail_on_error=True)).collect()


@pytest.fixture
def stage_without_profile(monkeypatch):
    """apply_tasks' GPU path (one mapInArrow stage) in local mode, which refuses task resource profiles:
    the same stage, run without the profile."""
    from pyspark.sql.classic.dataframe import DataFrame

    original = DataFrame.mapInArrow
    calls = []

    def map_in_arrow(self, func, schema, barrier=False, profile=None):
        calls.append(profile)
        return original(self, func, schema, barrier=barrier)

    monkeypatch.setattr(DataFrame, "mapInArrow", map_in_arrow)
    return calls


@pytest.mark.parametrize("staged", [False, True], ids=["cpu-stage", "gpu-stage"])
def test_apply_tasks_gives_the_bad_row_a_reason_with_and_without_a_gpu_profile(spark, bad_table, tiny_encoder, lid,
                                                                               staged, stage_without_profile):
    planned = plan_tasks([TaskConf(task="embed", column="embedding", settings={"model": tiny_encoder}),
                          TaskConf(task="language", column="lang", settings={"model": lid})])
    source = spark.read.parquet(bad_table)
    out = apply_tasks(source, "text", planned, profile="gpu-profile" if staged else None, partitions=2)
    assert stage_without_profile == (["gpu-profile"] if staged else [None])  # one mapInArrow stage either way
    emb = _expected_results(spark, tiny_encoder, planned[0].plan, "embedding array<float>")
    lang = _expected_results(spark, lid, planned[1].plan, "language string, confidence float")
    l_label = f"textspark-lid176/{resolve(lid).version}"
    expected = source.join(emb, "id").join(lang.withColumnRenamed("error", "lerr"), "id").select(
        "id", "text", "note", "embedding", F.col("error").alias("embedding_error"),
        F.struct("language", "confidence", F.lit(l_label).alias("model"), F.col("lerr").alias("error")).alias("lang"))
    assert_frame_equal(out, expected, atol=1e-5)
    assertDataFrameEqual(out.select("id", F.hex("text"), "note"), source.select("id", F.hex("text"), "note"))


# ---- the text column's type, and output names, are checked before inference ------------------------------

@pytest.mark.parametrize("sql, found", [
    ("SELECT 1 AS id, 7 AS text", "int"),
    ("SELECT 1 AS id, array('a', 'b') AS text", "array<string>"),
    ("SELECT 1 AS id, CAST('abc' AS BINARY) AS text", "binary"),
    ("SELECT 1 AS id, named_struct('body', 'x') AS text", "struct<body:string>"),
])
def test_a_text_column_that_is_not_a_string_is_a_config_error(spark, tiny_encoder, monkeypatch, sql, found):
    planned = plan_tasks([TaskConf(task="embed", column="embedding", settings={"model": tiny_encoder})])
    monkeypatch.setattr(driver, "make_udf", lambda *a, **k: pytest.fail("a UDF was built before the check"))
    with pytest.raises(ConfigError) as err:
        apply_tasks(spark.sql(sql), "text", planned)
    assert str(err.value) == f"input.text_column: got 'text'; allowed: a string column ('text' is {found})"


ALLOWED = "allowed: a name that is not an input column ({}) nor another task's output, compared case-insensitively"


@pytest.mark.parametrize("tasks, inputs, message", [
    ([("embed", "v"), ("embed", "v_error")], "id, text",
     f"tasks[1].column: got 'v_error'; {ALLOWED.format('id, text')}; 'v_error' is written by tasks[0] (embed)"),
    ([("embed", "w"), ("embed", "v")], "id, text, v_error",
     f"tasks[1].column: got 'v'; {ALLOWED.format('id, text, v_error')}; embed also writes 'v_error', which is "
     "input column 'v_error'"),
    ([("embed", "text")], "id, text",
     f"tasks[0].column: got 'text'; {ALLOWED.format('id, text')}; 'text' is input column 'text'"),
    ([("embed", "Vec")], "id, text, vec",  # Spark resolves names case-insensitively: the write would fail
     f"tasks[0].column: got 'Vec'; {ALLOWED.format('id, text, vec')}; 'Vec' is input column 'vec'"),
    ([("embed", "v"), ("embed", "V")], "id, text",
     f"tasks[1].column: got 'V'; {ALLOWED.format('id, text')}; 'V' is written by tasks[0] (embed)"),
])
def test_an_output_column_that_clashes_names_the_task(spark, tiny_encoder, tasks, inputs, message):
    planned = plan_tasks([TaskConf(task=t, column=c, settings={"model": tiny_encoder}) for t, c in tasks])
    df = spark.sql("SELECT " + ", ".join(f"'x' AS {c}" for c in inputs.split(", ")))
    with pytest.raises(ConfigError) as err:
        pipeline.apply_tasks(df, "text", planned)
    assert str(err.value) == message


def test_the_public_api_gives_non_string_columns_a_reason_per_row(spark, tiny_encoder):
    """A factory gets a Column of unknown type: a number, array or struct column gets a reason per row
    (a null stays a null input) instead of a failed batch."""
    df = spark.sql("SELECT * FROM VALUES (1, named_struct('body', 'x'), array('a')), (2, NULL, NULL) AS t(id, s, a)")
    out = df.select("id", *[embed(c, model=tiny_encoder, with_error=True).error.alias(f"{c}_reason")
                            for c in ("id", "s", "a")])
    expected = spark.createDataFrame([(1, "input is not a string", "input is not a string", "input is not a string"),
                                      (2, "input is not a string", "null input", "null input")],
                                     "id int, id_reason string, s_reason string, a_reason string")
    assert_frame_equal(out, expected)
