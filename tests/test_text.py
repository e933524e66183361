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
