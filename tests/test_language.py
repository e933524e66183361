"""detect_language(): the real fastText lid.176 (a 0.9 MB model, so every test here is real and fast)."""
import pytest

from tests.helpers import assert_frame_equal, load_direct, register_catalog_entry
from tests.inputs import BAD_INPUTS, BAD_REASONS
from udfs import detect_language
from udfs.errors import ConfigError
from udfs.models.registry import resolve
from udfs.tasks.language import language_plan

pytestmark = pytest.mark.real

SAMPLES = [  # (text, expected ISO 639-1 code)
    ("Quarterly profits at US media giant TimeWarner jumped 76% for the three months to December.", "en"),
    ("O tempo está bom hoje e o trem chegou na hora certa.", "pt"),
    ("Le gouvernement a annoncé une nouvelle politique pour les écoles publiques.", "fr"),
    ("Die Regierung hat heute eine neue Schulpolitik angekündigt.", "de"),
    ("El partido terminó en empate después de un gol en el último minuto.", "es"),
    ("שלום עולם, מה שלומך היום?", "he"),
    ("東京は日本の首都です。", "ja"),
    ("Line one of an English note.\nLine two: the weather is fine and the train was on time.", "en"),
]


@pytest.fixture(scope="module")
def lid(mlflow_registry) -> str:
    return register_catalog_entry("textspark-lid176")


@pytest.fixture(scope="module")
def direct(lid):
    return load_direct(lid)


def test_detects_real_sentences_with_the_registered_model(spark, lid, direct):
    df = spark.createDataFrame([(i, t) for i, (t, _) in enumerate(SAMPLES)], "id int, text string")
    out = df.select("id", detect_language("text").alias("l"))
    model = f"textspark-lid176/{resolve(lid).version}"
    # confidences: the registered model run directly, on the text with its line breaks as spaces
    confidences = [direct.detect([t.replace("\n", " ")])[0][0][1] for t, _ in SAMPLES]
    assert all(c > 0.5 for c in confidences)
    expected = spark.createDataFrame(
        [(i, (code, c, model, None)) for i, ((_, code), c) in enumerate(zip(SAMPLES, confidences))],
        "id int, l struct<language:string,confidence:float,model:string,error:string>")
    assert_frame_equal(out, expected, atol=1e-6)


def test_real_tweets_are_english(spark, lid):
    from udfs.io.datasets import tweets

    texts = tweets()["text"].head(40).tolist()
    df = spark.createDataFrame([(t,) for t in texts], "text string")
    langs = [r.language for r in df.select(detect_language("text").alias("l")).select("l.*").collect()]
    assert len(langs) == 40 and langs.count("en") >= 36  # informal tweets: a few misfires are expected


def test_bad_inputs_keep_every_row_with_a_reason(spark, lid):
    rows = BAD_INPUTS + ["12345 !!! 😀😀", "Hello friends. Olá amigos, tudo bem com vocês hoje?"]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(rows)], "id int, text string")
    out = df.select("id", detect_language("text").alias("l")).orderBy("id").collect()
    assert len(out) == len(rows)
    no_letters = "no letters to identify a language"
    assert [r.l.error for r in out] == BAD_REASONS + [no_letters, None]
    langs = [r.l.language for r in out]
    assert langs[3] == "en" and langs[4] == "en"      # 100k chars ("word " * 20000); emoji + English
    assert langs[8] in ("he", "ar", "fa")             # Hebrew + Arabic script: lid.176 says fa; any is fair
    assert langs[11] == "pt"                          # mixed row: the longer Portuguese part dominates
    for r in out:
        assert (r.l.language is None) == (r.l.error is not None)


def test_min_confidence_withholds_unclear_rows(spark, lid):
    df = spark.createDataFrame([(1, "ok"), (2, "The weather is fine and the train was on time.")], "id int, text string")
    out = df.select("id", detect_language("text", min_confidence=0.9).alias("l")).orderBy("id").collect()
    assert out[0].l.language is None and out[0].l.error.startswith("language unclear: best guess")
    assert out[0].l.confidence < 0.9
    assert (out[1].l.language, out[1].l.error) == ("en", None)


def test_config_errors_name_the_key(lid):
    with pytest.raises(ConfigError, match=r"min_confidence: got 2; allowed: a number between 0 and 1"):
        language_plan(min_confidence=2)
    from udfs.errors import ModelReferenceError

    with pytest.raises(ModelReferenceError, match="task 'language' needs a model registered for 'language'"):
        register_catalog_entry("textspark-minilm")
        language_plan(model="models:/textspark-minilm@champion")
