"""embed(): values equal to the model run directly, nulls with reasons, SQL, load once per worker."""
import os

import numpy as np
import pytest
from pyspark.sql import functions as F

from tests.helpers import assert_frame_equal, load_direct
from tests.inputs import BAD_INPUTS, BAD_REASONS
from udfs import embed, register_sql_functions
from udfs.models.registry import resolve
from udfs.runtime import driver
from udfs.tasks.embed import embed_plan


@pytest.fixture(scope="module")
def direct(tiny_encoder):
    """The same registered model, run in-process on the driver: the expected values."""
    return load_direct(tiny_encoder)


def test_embed_equals_direct_model_in_input_order(spark, tiny_encoder, direct):
    texts = ["The match ended in a draw.", "Shares rose.", "A phone was released today with a new chip " * 5]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id int, text string")
    out = df.withColumn("v", embed("text", model=tiny_encoder))
    vectors = direct.embed(texts)
    expected = spark.createDataFrame([(i, t, vectors[i].tolist()) for i, t in enumerate(texts)],
                                     "id int, text string, v array<float>")
    assert_frame_equal(out, expected, atol=1e-5)
    norms = np.linalg.norm(np.array([r.v for r in out.collect()]), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def test_bad_inputs_keep_every_row_with_a_reason(spark, tiny_encoder):
    df = spark.createDataFrame([(i, t) for i, t in enumerate(BAD_INPUTS)], "id int, text string")
    out = df.select("id", embed("text", model=tiny_encoder, with_error=True).alias("e")).orderBy("id").collect()
    assert len(out) == len(BAD_INPUTS)
    assert [r.e.error for r in out] == BAD_REASONS
    for r in out:
        assert (r.e.embedding is None) == (r.e.error is not None)
        assert r.e.embedding is None or len(r.e.embedding) == 32
        assert r.e.model == f"tiny-encoder/{resolve(tiny_encoder).version}"


def test_a_row_the_model_cannot_process_gets_a_reason_and_the_rest_succeed(spark, tiny_encoder):
    def predict(model, texts, options):
        if any("poison" in t for t in texts):
            raise ValueError("poison pill")
        return {"embedding": model.embed(texts)}

    p = driver.plan("embed", predict, [("embedding", "array<float>")], model=tiny_encoder)
    df = spark.createDataFrame([(1, "fine"), (2, "poison here"), (3, "also fine")], "id int, text string")
    rows = df.select("id", driver.make_udf(p)("text").alias("e")).orderBy("id").collect()
    assert [(r.id, r.e.error, r.e.embedding is None) for r in rows] == [
        (1, None, False), (2, "ValueError: poison pill", True), (3, None, False)]

    strict = driver.plan("embed", predict, [("embedding", "array<float>")], model=tiny_encoder, fail_on_error=True)
    with pytest.raises(Exception, match="poison pill"):
        df.select(driver.make_udf(strict)("text")).collect()


def test_sql_registration(spark, tiny_encoder, direct):
    assert register_sql_functions(spark, ["embed"], models={"embed": tiny_encoder}) == ["embed"]
    spark.createDataFrame([("hello world",), (None,)], "text string").createOrReplaceTempView("docs")
    rows = spark.sql("SELECT text, size(embed(text)) AS dim, embed(text) AS v FROM docs ORDER BY text").collect()
    assert [(r.text, r.dim) for r in rows] == [(None, None), ("hello world", 32)]
    np.testing.assert_allclose(rows[1].v, direct.embed(["hello world"])[0], atol=1e-5)


def test_model_loads_once_per_worker_not_per_batch(spark, tiny_encoder):
    """Like Spark's predict_batch_udf tests: report which model object served each batch."""
    def predict(model, texts, options):
        n = len(texts)
        return {"pid": [os.getpid()] * n, "model_id": [id(model)] * n, "batch": [n] * n}

    p = driver.plan("embed", predict, [("pid", "int"), ("model_id", "long"), ("batch", "int")], model=tiny_encoder)
    df = spark.range(0, 3000, numPartitions=6).select(F.concat(F.lit("row "), F.col("id").cast("string")).alias("text"))
    out = df.select(driver.make_udf(p)("text").alias("r")).select("r.*")
    stats = out.groupBy("pid").agg(F.countDistinct("model_id").alias("models"), F.count("*").alias("rows"),
                                   F.max("batch").alias("largest")).collect()
    assert sum(r.rows for r in stats) == 3000
    assert all(r.models == 1 for r in stats)      # one model object per worker process...
    assert all(r.largest <= 64 for r in stats)    # ...serving many Arrow batches of <= 64 rows
    assert sum(r.rows for r in stats) / 64 > 2 * len(stats)


def test_settings_fail_early_naming_the_key(tiny_encoder):
    from udfs.errors import ConfigError, ModelReferenceError

    with pytest.raises(ConfigError, match=r"precision: got 'int3'; allowed: auto, fp32, bf16, fp16"):
        embed_plan(model=tiny_encoder, precision="int3")
    with pytest.raises(ConfigError, match=r"device: got 'gpu'"):
        embed_plan(model=tiny_encoder, device="gpu")
    with pytest.raises(ModelReferenceError, match="no alias 'staging'"):
        embed("text", model="models:/tiny-encoder@staging")


def test_udfs_in_one_select_run_in_one_worker_on_the_same_batch(spark, tiny_encoder):
    """Scalar Arrow UDFs of one select share a Python worker and its batches: tasks on one encoder can share
    its forward pass there (an iterator UDF would run in a worker of its own)."""
    def predict(model, texts, options):
        return {"pid": [os.getpid()] * len(texts), "batch": [hash(tuple(texts))] * len(texts)}

    fields = [("pid", "int"), ("batch", "long")]
    a, b = (driver.plan("embed", predict, fields, model=tiny_encoder, options={"udf": name}) for name in "ab")
    df = spark.range(0, 400, numPartitions=4).select(F.concat(F.lit("row "), F.col("id").cast("string")).alias("text"))
    rows = df.select(driver.make_udf(a)("text").alias("a"), driver.make_udf(b)("text").alias("b")).collect()
    assert len(rows) == 400
    assert all(r.a.pid == r.b.pid and r.a.batch == r.b.batch for r in rows)


def test_prefix_param_is_put_before_every_text_and_keys_the_shared_encoder(tmp_path):
    """e5's ``prefix: "query: "``: the encoder embeds prefix + text, and an encoder with another prefix is
    another shared encoder (its remembered vectors are not reused)."""
    from tests.tiny_models import build_tiny_encoder
    from udfs.models.backends.hf import Encoder, shared_encoder

    folder = build_tiny_encoder(tmp_path / "enc")
    texts = ["the service was quick", "a late train", "café au lait"]
    plain = Encoder(folder, max_tokens=64)
    prefixed = Encoder(folder, max_tokens=64, prefix="query: ")
    np.testing.assert_array_equal(prefixed.embed(texts), plain.embed(["query: " + t for t in texts]))
    assert not np.array_equal(prefixed.embed(texts), plain.embed(texts))
    a = shared_encoder(folder, device="cpu", precision="fp32", max_tokens=64, prefix="query: ")
    b = shared_encoder(folder, device="cpu", precision="fp32", max_tokens=64, prefix="")
    assert a is not b and (a.prefix, b.prefix) == ("query: ", "")


def test_the_encoder_reuses_each_remembered_row_not_only_a_whole_batch(tmp_path):
    """Tasks on one batch whose language guards withhold different rows ask for different subsets of the same
    texts: each row already embedded is reused (one forward pass per batch), with the same bits."""
    from tests.tiny_models import build_tiny_encoder
    from udfs.models.backends.hf import Encoder

    texts = ["the service was quick", "a late train", "café au lait", "the service was quick", "no signal"]
    enc = Encoder(build_tiny_encoder(tmp_path / "enc"), max_tokens=64)
    calls = []
    forward = enc._forward
    enc._forward = lambda ids, batch: calls.append(len(batch.idx)) or forward(ids, batch)
    first = enc.embed(texts)
    assert sum(calls) == 4  # the repeated text once
    subset = enc.embed([texts[4], texts[1], "brand new row"])
    assert sum(calls) == 5  # only the new row
    np.testing.assert_array_equal(subset[:2], first[[4, 1]])
    enc.forget()
    np.testing.assert_array_equal(enc.embed(texts), first)  # encoded afresh: the same bits
