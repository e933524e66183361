"""docs/models.md "Your own model", step by step on a tiny random Hugging Face sentiment model: a local folder ->
a catalog entry of the user's own -> register_models --catalog -> the Python API and the analyze job."""
from __future__ import annotations

import numpy as np
import pytest

from jobs import analyze, register_models
from udfs.io.jobconf import parse_job
from tests.helpers import load_direct
from tests.tiny_models import build_tiny_classifier
from udfs import sentiment

CATALOG = """
models:
  my-sentiment:
    task: sentiment
    kind: hf_classifier
    source: {path: models/my-sentiment}
    alias: champion
    params:
      labels: [bad, okay, good]
      label_map: {bad: negative, okay: neutral, good: positive}
      max_tokens: 128
"""
TEXTS = ["great phone, love it", "the battery died after a day", "it is a phone"]
CANONICAL = {"bad": "negative", "okay": "neutral", "good": "positive"}


@pytest.fixture(scope="module")
def my_catalog(tmp_path_factory, mlflow_registry):
    folder = tmp_path_factory.mktemp("user")
    build_tiny_classifier(folder / "models" / "my-sentiment", ["bad", "okay", "good"], seed=3)
    (folder / "my_models.yml").write_text(CATALOG)
    return folder / "my_models.yml"


def test_register_a_catalog_of_your_own(my_catalog, capsys):
    assert register_models.main(["--catalog", str(my_catalog)]) == 0
    first = capsys.readouterr().out
    assert register_models.main(["--catalog", str(my_catalog)]) == 0  # idempotent: no new version
    version = first.split("version ")[1].split()[0]
    unrecorded = "reads not recorded (add languages: to the entry)"  # the docs' entry says no languages
    assert first.strip() == f"my-sentiment: registered new version {version} (@champion); task=sentiment; {unrecorded}"
    assert capsys.readouterr().out.strip() == f"my-sentiment: unchanged, kept version {version} (@champion); " \
                                              f"task=sentiment; {unrecorded}"


def test_use_it_from_python_and_from_a_job(spark, my_catalog, tmp_path):
    assert register_models.main(["--catalog", str(my_catalog)]) == 0
    reference = "models:/my-sentiment@champion"
    model = load_direct(reference)
    expected = [CANONICAL[row["label"]] for row in model.predict(TEXTS)]
    df = spark.createDataFrame(list(enumerate(TEXTS)), "id int, text string")
    rows = df.withColumn("s", sentiment("text", model=reference)).orderBy("id").collect()
    assert [r.s.label for r in rows] == expected
    assert {r.s.model.split("/")[0] for r in rows} == {"my-sentiment"} and all(r.s.error is None for r in rows)
    np.testing.assert_allclose([sum(r.s.scores.values()) for r in rows], 1.0, atol=1e-5)

    table = tmp_path / "reviews.parquet"
    df.toPandas().to_parquet(table)
    conf = parse_job({"input": {"path": str(table), "id_column": "id"},
                      "tasks": [{"task": "sentiment", "model": reference, "column": "s"}],
                      "output": {"path": str(tmp_path / "out")}})
    summary = analyze.run(conf, spark=spark)
    assert [t["model"] for t in summary["tasks"]] == [rows[0].s.model]
    written = spark.read.parquet(str(tmp_path / "out")).orderBy("id").collect()
    assert [r.s.label for r in written] == expected


def test_a_bad_catalog_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text(CATALOG.replace("kind: hf_classifier", "kind: onnx"))
    assert register_models.main(["--catalog", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"configuration error: {bad}: models.my-sentiment.kind: got 'onnx'; allowed: hf_encoder")
