"""classify(): supervised heads, zero-shot by embedding similarity and by NLI, multi-label, bad input,
SQL, config errors. Expected values come from the same registered models run directly on the driver."""
import numpy as np
import pytest

from tests.helpers import assert_frame_equal, load_direct
from tests.inputs import BAD_INPUTS, BAD_REASONS
from tests.tiny_models import CORPUS, build_tiny_nli, random_head_layers
from udfs import classify, register_sql_functions
from udfs.errors import ConfigError, ModelReferenceError
from udfs.models.backends.heads import forward
from udfs.models.registry import register_folder, resolve
from udfs.tasks.classify import _embedding_scores, classify_plan
from udfs.text import NULL_INPUT
from udfs.training.head import register_head

TOPICS = ["business", "politics", "sport"]


@pytest.fixture(scope="module")
def tiny_head(tiny_encoder):
    """A head with fixed random weights on the tiny encoder: models:/tiny-head/<v>."""
    layers = random_head_layers(0, [32, 8, 3])
    version, _ = register_head("tiny-head", task="classify", base_model=tiny_encoder, layers=layers, labels=TOPICS)
    return f"models:/tiny-head/{version}"


@pytest.fixture(scope="module")
def tiny_nli(workdir):
    folder = build_tiny_nli(workdir / "tiny-nli")
    register_folder("tiny-nli", task="classify", kind="hf_classifier", weights=folder,
                    params={"nli": True, "max_tokens": 64})
    return "models:/tiny-nli@champion"


def test_supervised_head_equals_the_model_run_directly(spark, tiny_head):
    texts = ["The match ended in a draw.", "Shares rose after strong profits.", "Parliament debated the budget."]
    df = spark.createDataFrame(list(enumerate(texts)), "id int, text string")
    out = df.withColumn("c", classify("text", model=tiny_head))
    m = load_direct(tiny_head)
    proba = forward(m.layers, m.encoder.embed(texts))
    rows = []
    for i, t in enumerate(texts):
        j = int(proba[i].argmax())
        rows.append((i, t, (TOPICS[j], float(proba[i, j]), dict(zip(TOPICS, map(float, proba[i]))), [TOPICS[j]],
                            tiny_head.removeprefix("models:/"), None)))
    expected = spark.createDataFrame(rows, "id int, text string, c struct<label:string,score:float,"
                                           "scores:map<string,float>,labels:array<string>,model:string,error:string>")
    assert_frame_equal(out, expected, atol=1e-5)


def test_supervised_multi_label_lists_every_label_over_the_threshold(spark, tiny_head):
    texts = ["The match ended in a draw.", "Shares rose after strong profits."]
    rows = spark.createDataFrame(list(enumerate(texts)), "id int, text string") \
        .select("id", classify("text", model=tiny_head, multi_label=True, threshold=0.2).alias("c")) \
        .orderBy("id").collect()
    for r in rows:
        expected = sorted((label for label, s in r.c.scores.items() if s >= 0.2), key=lambda x: -r.c.scores[x])
        assert r.c.labels == expected and r.c.label == max(r.c.scores, key=r.c.scores.get)


def test_zero_shot_by_embedding_similarity(spark, tiny_encoder):
    texts = ["The match ended in a draw after a late goal.", "Shares rose after the company reported profits."]
    descriptions = {"sport": "football matches and goals"}
    out = spark.createDataFrame(list(enumerate(texts)), "id int, text string") \
        .select("id", classify("text", labels=TOPICS, descriptions=descriptions, model=tiny_encoder,
                               hypothesis_template="News about {}.").alias("c")).orderBy("id").collect()
    enc = load_direct(tiny_encoder)
    label_vectors = enc.embed(["News about business.", "News about politics.", "football matches and goals"])
    sim = enc.embed(texts) @ label_vectors.T
    expected = np.exp(sim / 0.05) / np.exp(sim / 0.05).sum(axis=1, keepdims=True)
    for r, e in zip(out, expected):
        np.testing.assert_allclose([r.c.scores[k] for k in TOPICS], e, atol=1e-4)
        assert r.c.label == TOPICS[int(e.argmax())] and r.c.labels == [r.c.label]
        assert r.c.model == f"tiny-encoder/{resolve(tiny_encoder).version}"
    multi = spark.createDataFrame([(texts[0],)], "text string") \
        .select(classify("text", labels=TOPICS, model=tiny_encoder, hypothesis_template="News about {}.",
                         multi_label=True, threshold=0.0).alias("c")).first().c
    np.testing.assert_allclose([multi.scores[k] for k in TOPICS],
                               np.clip(enc.embed([texts[0]]) @ enc.embed([f"News about {t}." for t in TOPICS]).T, 0, 1)[0],
                               atol=1e-4)  # multi-label embedding scores are the cosine similarities


def test_zero_shot_reads_a_long_text_as_the_mean_of_its_word_windows(spark, tiny_encoder):
    words = " ".join(CORPUS).split()
    long_text, short = " ".join(words[:130]), "Shares rose after the company reported profits."
    df = spark.createDataFrame([(0, long_text), (1, short)], "id int, text string")
    got = {}
    for chunk_words in (60, 0):
        got[chunk_words] = df.select("id", classify("text", labels=TOPICS, model=tiny_encoder, chunk_words=chunk_words,
                                                    max_chunks=2, hypothesis_template="{}").alias("c")) \
            .orderBy("id").collect()
    enc = load_direct(tiny_encoder)
    label_vectors = enc.embed(TOPICS)
    windows = enc.embed([" ".join(words[:60]), " ".join(words[60:120])])  # 3 windows of 130 words, 2 kept
    mean = windows.mean(0) / np.linalg.norm(windows.mean(0))
    for vector, windowed, cut in ((mean, got[60][0], got[0][0]), (enc.embed([short])[0], got[60][1], got[0][1])):
        sim = vector @ label_vectors.T
        np.testing.assert_allclose([windowed.c.scores[k] for k in TOPICS],
                                   np.exp(sim / 0.05) / np.exp(sim / 0.05).sum(), atol=1e-4)
    sim_cut = enc.embed([long_text])[0] @ label_vectors.T
    np.testing.assert_allclose([got[0][0].c.scores[k] for k in TOPICS],
                               np.exp(sim_cut / 0.05) / np.exp(sim_cut / 0.05).sum(), atol=1e-4)
    assert [r.c.scores for r in got[60]][1] == pytest.approx(got[0][1].c.scores)  # a short text: the same either way


def test_label_vectors_are_embedded_once_per_worker():
    class Fake:
        calls: list = []

        def embed(self, texts):
            self.calls.append(list(texts))
            return np.eye(3)[[len(t) % 3 for t in texts]].astype(np.float32)

    fake = Fake()
    prompts = [["a"], ["bb"], ["ccc"]]
    for _ in range(3):
        _embedding_scores(fake, ["x", "yy"], prompts, 0.05, False)
    assert fake.calls.count(["a", "bb", "ccc"]) == 1 and len(fake.calls) == 4


def test_zero_shot_by_nli_entailment(spark, tiny_nli):
    texts = ["The match ended in a draw.", "Shares rose."]
    out = spark.createDataFrame(list(enumerate(texts)), "id int, text string") \
        .select("id", classify("text", labels=TOPICS, model=tiny_nli).alias("c"),
                classify("text", labels=TOPICS, model=tiny_nli, multi_label=True, threshold=0.3).alias("m")) \
        .orderBy("id").collect()
    model = load_direct(tiny_nli)
    hypotheses = [f"This example is about {t}." for t in TOPICS]
    single = model.zero_shot(texts, hypotheses)
    multi = model.zero_shot(texts, hypotheses, multi_label=True)
    logits = model.logits([texts[0]] * 3, hypotheses)  # entailment vs contradiction for text 0, by hand
    np.testing.assert_allclose(multi[0], 1 / (1 + np.exp(logits[:, 2] - logits[:, 0])), atol=1e-5)
    for r, s, m in zip(out, single, multi):
        np.testing.assert_allclose([r.c.scores[k] for k in TOPICS], s, atol=1e-5)
        assert sum(r.c.scores.values()) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose([r.m.scores[k] for k in TOPICS], m, atol=1e-5)
        assert r.m.labels == [TOPICS[j] for j in np.argsort(-m, kind="stable") if m[j] >= 0.3]
    with pytest.raises(ConfigError, match=r"hypothesis_template: .* one template for the nli method"):
        classify("text", labels=TOPICS, model=tiny_nli, hypothesis_template=["a {}", "b {}"])


@pytest.mark.parametrize("which", ["head", "embedding", "nli"])
def test_bad_inputs_keep_every_row_with_a_reason(spark, tiny_head, tiny_encoder, tiny_nli, which):
    kwargs = {"head": {"model": tiny_head}, "embedding": {"model": tiny_encoder, "labels": TOPICS},
              "nli": {"model": tiny_nli, "labels": TOPICS}}[which]
    df = spark.createDataFrame(list(enumerate(BAD_INPUTS)), "id int, text string")
    rows = df.select("id", classify("text", **kwargs).alias("c")).orderBy("id").collect()
    assert len(rows) == len(BAD_INPUTS)
    assert [r.c.error for r in rows] == BAD_REASONS
    for r in rows:
        assert (r.c.label is None) == (r.c.error is not None)
        assert r.c.label is None or (r.c.label in TOPICS and 0.0 <= r.c.score <= 1.0)


def test_sql_registration(spark, tiny_head, tiny_encoder):
    assert register_sql_functions(spark, ["classify"], models={"classify": tiny_encoder},
                                  options={"classify": {"labels": TOPICS}}) == ["classify"]
    spark.createDataFrame([("The match ended.",), (None,)], "text string").createOrReplaceTempView("classify_docs")
    rows = spark.sql("SELECT text, classify(text).label AS label, classify(text).error AS error "
                     "FROM classify_docs ORDER BY text").collect()
    assert rows[0].label is None and rows[0].error == NULL_INPUT
    assert rows[1].label in TOPICS and rows[1].error is None


def test_settings_fail_early_naming_the_key(tiny_head, tiny_encoder):
    with pytest.raises(ConfigError, match=r"labels: got \['a'\]; allowed: none for tiny-head/\d+, a trained "
                                          r"classifier with its own labels \(business, politics, sport\)"):
        classify_plan(model=tiny_head, labels=["a"])
    with pytest.raises(ConfigError, match=r"labels: got None; allowed: a non-empty list of labels: tiny-encoder"):
        classify_plan(model=tiny_encoder)
    with pytest.raises(ConfigError, match=r"method: got 'nli'; allowed: embedding for tiny-encoder"):
        classify_plan(model=tiny_encoder, labels=TOPICS, method="nli")
    with pytest.raises(ConfigError, match=r"threshold: got 1.5; allowed: a number between 0 and 1"):
        classify_plan(model=tiny_encoder, labels=TOPICS, threshold=1.5)
    with pytest.raises(ConfigError, match=r"labels: got \['a', 'a'\]; allowed: a non-empty list of distinct"):
        classify_plan(model=tiny_encoder, labels=["a", "a"])
    with pytest.raises(ConfigError, match=r"descriptions: got \['golf'\]; allowed: keys among labels"):
        classify_plan(model=tiny_encoder, labels=TOPICS, descriptions={"golf": "a sport"})
    with pytest.raises(ConfigError, match=r"chunk_words: got -5; allowed: an integer from 0 to 100000"):
        classify_plan(model=tiny_encoder, labels=TOPICS, chunk_words=-5)
    with pytest.raises(ConfigError, match=r"max_chunks: got 0; allowed: an integer from 1 to 100000"):
        classify_plan(model=tiny_encoder, labels=TOPICS, max_chunks=0)
    with pytest.raises(ConfigError, match=r"chunk_words: got 50; allowed: 0 or nothing for the supervised method"):
        classify_plan(model=tiny_head, chunk_words=50)
    with pytest.raises(ConfigError, match=r"hypothesis_template: got 'no placeholder'"):
        classify_plan(model=tiny_encoder, labels=TOPICS, hypothesis_template="no placeholder")
    with pytest.raises(ModelReferenceError, match=r"'tiny-head' has no alias 'production'. Aliases that exist: "
                                                  r"@candidate -> v\d+"):
        classify("text", model="models:/tiny-head@production")
