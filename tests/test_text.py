import pandas as pd
import pytest

from tests.helpers import assert_frame_equal
from udfs.models.registry import resolve
from udfs.runtime import driver
from udfs.text import EMPTY_INPUT, NOT_TEXT, NULL_INPUT, NeedsLetters, clean_texts


def test_clean_texts_bad_input_matrix():
    texts = pd.Series([None, "", "   \t\n", "ok", "a\x00b", "\x01\x02", "emoji 😀 𝄞", "שלום עולם", "x\ud800y", 5],
                      index=range(10, 20))
    clean, reason = clean_texts(texts)
    assert clean.tolist() == [None, None, None, "ok", "a b", None, "emoji 😀 𝄞", "שלום עולם", "x y", None]
    assert reason.tolist() == [NULL_INPUT, EMPTY_INPUT, EMPTY_INPUT, None, None, EMPTY_INPUT, None, None, None,
                               NOT_TEXT]


def test_clean_texts_keeps_huge_text_whole():
    clean, reason = clean_texts(pd.Series(["word " * 20_000]))
    assert len(clean[0]) == 100_000 and reason[0] is None


def test_the_shared_bad_inputs_get_the_shared_reasons():
    """tests/inputs.py's BAD_REASONS, which every task's bad-input test expects, are clean_texts' reasons."""
    from tests.inputs import BAD_INPUTS, BAD_REASONS

    clean, reason = clean_texts(pd.Series(BAD_INPUTS))
    assert reason.tolist() == BAD_REASONS
    assert [c is None for c in clean] == [r is not None for r in BAD_REASONS]


def test_rows_of_only_invisible_characters_are_empty_input():
    from tests.inputs import INVISIBLE_INPUTS

    clean, reason = clean_texts(pd.Series(INVISIBLE_INPUTS))
    assert clean.tolist() == [None] * len(INVISIBLE_INPUTS)
    assert reason.tolist() == [EMPTY_INPUT] * len(INVISIBLE_INPUTS)


def test_format_characters_inside_visible_text_and_emoji_only_rows_reach_the_model_as_given():
    from tests.inputs import EMOJI_ONLY, KEPT_FORMAT

    clean, reason = clean_texts(pd.Series(KEPT_FORMAT + EMOJI_ONLY))
    assert clean.tolist() == KEPT_FORMAT + EMOJI_ONLY
    assert reason.tolist() == [None] * len(KEPT_FORMAT + EMOJI_ONLY)


def test_arrow_texts_decodes_row_by_row_only_where_it_must():
    import pyarrow as pa

    from udfs.text import arrow_texts

    bad = pa.array([b"ok", b"abc\xed\xa0\x80def", None, b"\xc3", "é😀".encode()], pa.binary()).view(pa.string())
    with pytest.raises(pa.ArrowException):
        bad.to_pandas()  # what pandas UDFs do to the whole batch
    for arr in (bad, bad.cast(pa.large_binary()).view(pa.large_string())):
        clean, reason = clean_texts(arrow_texts(arr))
        assert clean.tolist() == ["ok", None, None, None, "é😀"]
        assert reason.tolist() == [None, "invalid UTF-8 at byte 3", NULL_INPUT, "invalid UTF-8 at byte 0", None]
    for arr in (pa.array([7, None]), pa.array([["a"], None]), pa.array([{"body": "x"}, None]), pa.array([b"x", None])):
        assert clean_texts(arrow_texts(arr))[1].tolist() == [NOT_TEXT, NULL_INPUT]


def test_needs_letters_is_a_screen_for_tasks_that_read_words():
    from tests.inputs import EMOJI_ONLY

    rule = NeedsLetters("no letters")
    assert [rule(t) for t in EMOJI_ONLY + ["12345", "..."]] == ["no letters"] * (len(EMOJI_ONLY) + 2)
    assert [rule(t) for t in ["ok 😀", "東京", "שלום", "ß"]] == [None] * 4


def test_a_task_screen_withholds_rows_with_its_reason(spark, tiny_encoder):
    """``driver.plan(screen=...)``: the task's own rule runs after the shared hygiene; refused rows never
    reach predict, the others get exactly predict's result."""
    def predict(model, texts, options):
        return {"n": [len(t) for t in texts], "seen": [" | ".join(texts)] * len(texts)}

    p = driver.plan("embed", predict, [("n", "int"), ("seen", "string")], model=tiny_encoder,
                    screen=NeedsLetters("no letters to read"))
    rows = [(1, "ok 😀"), (2, "😀😀"), (3, None), (4, "\u200b"), (5, "123"), (6, "fine")]
    out = spark.createDataFrame(rows, "id int, text string").coalesce(1) \
        .select("id", driver.make_udf(p)("text").alias("r"))
    label = f"tiny-encoder/{resolve(tiny_encoder).version}"
    reasons = {2: "no letters to read", 3: NULL_INPUT, 4: EMPTY_INPUT, 5: "no letters to read"}
    expected = spark.createDataFrame(
        [(i, (len(t), "ok 😀 | fine", label, None) if i in (1, 6) else (None, None, label, reasons[i]))
         for i, t in rows], "id int, r struct<n: int, seen: string, model: string, error: string>")
    assert_frame_equal(out, expected)


def test_emoji_only_rows_per_task(spark, tiny_encoder):
    """embed, classify and summarize see emoji-only rows (summarize returns such a row as its own summary);
    detect_language gives a reason (no letters, no language)."""
    from tests.helpers import load_direct, register_catalog_entry
    from tests.inputs import EMOJI_ONLY
    from udfs import classify, detect_language, embed, summarize
    from udfs.tasks.classify import classify_plan
    from udfs.tasks.embed import embed_plan
    from udfs.tasks.language import language_plan
    from udfs.tasks.summarize import summarize_plan

    lid = register_catalog_entry("textspark-lid176")
    labels = ["happy", "sad"]
    df = spark.createDataFrame(list(enumerate(EMOJI_ONLY)), "id int, text string")
    out = df.select("id", embed("text", model=tiny_encoder, with_error=True).alias("embed"),
                    classify("text", labels=labels, model=tiny_encoder).alias("classify"),
                    summarize("text", model=tiny_encoder).alias("summarize"),
                    detect_language("text", model=lid).alias("language"))
    plans = {"embed": (embed_plan(model=tiny_encoder), tiny_encoder),
             "classify": (classify_plan(labels=labels, model=tiny_encoder), tiny_encoder),
             "summarize": (summarize_plan(model=tiny_encoder), tiny_encoder),
             "language": (language_plan(model=lid), lid)}
    columns = {}
    for name, (p, reference) in plans.items():  # each task's predict on the registered model, run directly
        values = p.predict(load_direct(reference), EMOJI_ONLY, p.options)
        errors = values.get("error", [None] * len(EMOJI_ONLY))
        columns[name] = [tuple(_plain(values[f][i]) for f, _ in p.fields) + (p.model.label, errors[i])
                         for i in range(len(EMOJI_ONLY))]
    expected = spark.createDataFrame([(i, *[columns[n][i] for n in plans]) for i in range(len(EMOJI_ONLY))],
                                     out.schema)
    assert_frame_equal(out, expected)
    got = {r.id: r for r in out.collect()}
    assert [got[i].summarize.summary for i in range(len(EMOJI_ONLY))] == EMOJI_ONLY
    assert {got[i].language.error for i in got} == {"no letters to identify a language"}
    assert all(got[i].embed.error is None and got[i].classify.label in labels for i in got)


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else value
