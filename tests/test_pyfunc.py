"""A registered version as a plain MLflow model: it reads the right column, and it loads where textspark is
not installed (it carries the udfs package as MLflow code)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

TEXTS = ["the match and the goal", "shares and profits"]

NOT_INSTALLED = """
import importlib.util, json, sys
import mlflow.pyfunc, pandas as pd
assert importlib.util.find_spec("udfs") is None, "textspark is importable: the test proves nothing"
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.DataFrame({"id": [7, 8], "text": json.loads(sys.argv[2])}))
print("RESULT " + json.dumps([list(map(float, v)) for v in out]))
"""


def test_predict_reads_the_text_column_or_the_only_string_column(tiny_encoder):
    model = mlflow.pyfunc.load_model(tiny_encoder)
    expected = model.predict(TEXTS)
    np.testing.assert_array_equal(model.predict(pd.DataFrame({"id": [1, 2], "text": TEXTS})), expected)  # not id
    np.testing.assert_array_equal(model.predict(pd.DataFrame({"n": [1, 2], "body": TEXTS})), expected)
    with pytest.raises(ValueError, match=r"a 'text' column, or exactly one string column; got columns "
                                         r"\['title', 'body'\] \(2 of them strings\)"):
        model.predict(pd.DataFrame({"title": TEXTS, "body": TEXTS}))


@pytest.mark.slow  # a second Python process
def test_a_registered_version_loads_where_textspark_is_not_installed(tiny_encoder, tmp_path):
    expected = mlflow.pyfunc.load_model(tiny_encoder).predict(TEXTS)
    site = sysconfig.get_paths()["purelib"]
    # -S: no site module, so no .pth file runs (textspark's editable install is one); the venv's packages
    # stay importable through PYTHONPATH. The working folder is not the checkout.
    env = {**os.environ, "PYTHONPATH": site}
    out = subprocess.run([sys.executable, "-S", "-c", NOT_INSTALLED, tiny_encoder, json.dumps(TEXTS)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, out.stderr[-3000:]
    np.testing.assert_allclose(json.loads(line.removeprefix("RESULT ")), expected, atol=1e-6)


# ---- mlflow.pyfunc.spark_udf: the result type every task kind documents ---------------------------------
SPARK_TEXTS = ["the match and the goal", "shares and profits rose", "a film at the festival"]


@pytest.fixture(scope="module")
def task_models(tiny_encoder, workdir) -> dict[str, str]:
    """A tiny random model per task kind (a merging label_map for sentiment), registered as new versions."""
    from tests.tiny_models import STAR_LABELS, build_tiny_classifier, build_tiny_stars
    from tests.tiny_seq2seq import build_tiny_marian, build_tiny_t5
    from udfs.models.registry import register_folder

    stars = {"1 stars": "negative", "2 stars": "negative", "3 stars": "neutral", "4 stars": "positive",
             "5 stars": "positive"}
    entries = {
        "sentiment": ("hf_classifier", build_tiny_stars(workdir / "pyfunc-stars"),
                      {"labels": STAR_LABELS, "label_map": stars, "max_tokens": 64}),
        "classify": ("hf_classifier", build_tiny_classifier(workdir / "pyfunc-topics", ["business", "sport", "film"]),
                     {"max_tokens": 64}),
        "summarize": ("hf_seq2seq", build_tiny_t5(workdir / "pyfunc-t5"),
                      {"num_beams": 2, "max_new_tokens": 8, "prefix": "summarize: ", "max_input_tokens": 48}),
        "translate": ("hf_seq2seq", build_tiny_marian(workdir / "pyfunc-marian"),
                      {"pairs": ["en-pt"], "num_beams": 1, "max_new_tokens": 6}),
    }
    refs = {"embed": tiny_encoder}
    for task, (kind, folder, params) in entries.items():
        register_folder(f"pyfunc-{task}", task=task, kind=kind, weights=folder, params=params)
        refs[task] = f"models:/pyfunc-{task}@champion"
    return refs


def _textspark_value(task: str, model: str):
    """The textspark UDF's result for ``task``: the field spark_udf's result leads with."""
    from udfs import classify, detect_language, embed, sentiment, summarize, translate

    return {"embed": lambda: embed("text", model=model),
            "sentiment": lambda: sentiment("text", model=model)["label"],
            "classify": lambda: classify("text", model=model)["label"],
            "language": lambda: detect_language("text", model=model)["language"],
            "summarize": lambda: summarize("text", model=model)["summary"],
            "translate": lambda: translate("text", target="pt", source="en", model=model)["translation"]}[task]()


def _spark_udf_equals_predict_and_textspark(spark, task: str, model: str) -> None:
    """spark_udf with no result_type and with the documented one, on a 3-row DataFrame, equals the loaded
    model's predict on the same texts (whole rows, schema included), and its leading field equals the
    textspark UDF's."""
    from tests.helpers import assert_frame_equal
    from udfs.models.pyfunc import RESULT_TYPES

    predicted = mlflow.pyfunc.load_model(model).predict(pd.DataFrame({"id": [0, 1, 2], "text": SPARK_TEXTS}))
    if isinstance(predicted, pd.DataFrame):  # sentiment, classify, language: a struct per row
        rows = [tuple(r) for r in predicted.itertuples(index=False)]
        leading = [r[0] for r in rows]
    else:
        rows = [list(map(float, v)) for v in predicted] if task == "embed" else list(predicted)
        leading = rows
    df = spark.createDataFrame(list(enumerate(SPARK_TEXTS)), "id int, text string")
    inferred = mlflow.pyfunc.spark_udf(spark, model)  # no result_type: from the version's signature
    documented = mlflow.pyfunc.spark_udf(spark, model, result_type=RESULT_TYPES[task])
    out = df.select("id", inferred("text").alias("inferred"), documented("text").alias("documented"),
                    _textspark_value(task, model).alias("textspark"))
    result_type = RESULT_TYPES[task]
    expected = spark.createDataFrame(
        [(i, r, r, lead) for i, (r, lead) in enumerate(zip(rows, leading))],
        f"id int, inferred {result_type}, documented {result_type}, "
        f"textspark {'array<float>' if task == 'embed' else 'string'}")
    assert_frame_equal(out, expected, atol=1e-5)


@pytest.mark.parametrize("task", ["embed", "sentiment", "classify", "summarize", "translate"])
def test_spark_udf_gives_the_documented_result_type_and_predicts_what_textspark_does(spark, task_models, task):
    _spark_udf_equals_predict_and_textspark(spark, task, task_models[task])


@pytest.mark.real  # the shipped language model (lid.176)
def test_spark_udf_on_the_language_model(spark):
    from tests.helpers import register_catalog_entry

    _spark_udf_equals_predict_and_textspark(spark, "language", register_catalog_entry("textspark-lid176"))


def test_predict_gives_no_result_for_rows_without_text(tiny_encoder, task_models):
    """Per task, the documented value for a row without a result: a NaN vector, None label and {} scores."""
    texts = pd.DataFrame({"text": [SPARK_TEXTS[0], None, "  "]})
    vectors = mlflow.pyfunc.load_model(tiny_encoder).predict(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 32)
    assert np.isfinite(vectors[0]).all() and np.isnan(vectors[1:]).all()
    labelled = mlflow.pyfunc.load_model(task_models["sentiment"]).predict(texts)
    assert list(labelled.columns) == ["label", "score", "scores"]
    assert labelled["label"].tolist()[1:] == [None, None] and labelled["scores"].tolist()[1:] == [{}, {}]
    assert labelled["label"][0] in ("negative", "neutral", "positive") and np.isnan(labelled["score"][1:]).all()
    assert mlflow.pyfunc.load_model(task_models["translate"]).predict(texts).tolist()[1:] == [None, None]


def test_spark_udf_gives_null_for_rows_without_text(spark, task_models):
    """A null, an empty and a blank row give null string fields through spark_udf, in a batch with rows that
    have text (MLflow casts string results with ``str``: they were the text 'None' / 'nan') and in one without;
    score is null and scores {} there, and rows with text keep predict's values."""
    from tests.helpers import assert_frame_equal
    from udfs.models.pyfunc import RESULT_TYPES

    tasks = ["sentiment", "classify", "summarize", "translate"]
    mixed = [(0, SPARK_TEXTS[0]), (1, None), (2, ""), (3, "   "), (4, SPARK_TEXTS[1])]
    missing = [(5, None), (6, "")]
    # one partition (one Arrow batch) each: a batch mixing rows with and without text, and one without any
    df = spark.createDataFrame(mixed, "id int, text string").coalesce(1) \
        .union(spark.createDataFrame(missing, "id int, text string").coalesce(1))
    out = df.select("id", *[mlflow.pyfunc.spark_udf(spark, task_models[t])("text").alias(t) for t in tasks])

    predicted = {t: mlflow.pyfunc.load_model(task_models[t]).predict(pd.DataFrame({"text": [SPARK_TEXTS[0],
                                                                                            SPARK_TEXTS[1]]}))
                 for t in tasks}
    no_result = {"sentiment": (None, None, {}), "classify": (None, None, {}), "summarize": None, "translate": None}

    def value(task: str, k: int):
        found = predicted[task]
        return list(found.itertuples(index=False))[k] if isinstance(found, pd.DataFrame) else list(found)[k]

    with_text = {0: 0, 4: 1}  # id -> row of predict's result
    rows = [(i, *[value(t, with_text[i]) if i in with_text else no_result[t] for t in tasks])
            for i, _ in mixed + missing]
    expected = spark.createDataFrame(rows, "id int, " + ", ".join(f"{t} {RESULT_TYPES[t]}" for t in tasks))
    assert_frame_equal(out, expected, atol=1e-5)
    assert all(isinstance(v, str) and v for t in ("summarize", "translate") for v in predicted[t])  # not None
