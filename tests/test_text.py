import pandas as pd

from udfs.text import EMPTY_INPUT, NOT_TEXT, NULL_INPUT, clean_texts


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
