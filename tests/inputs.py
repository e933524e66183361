"""Input rows the tests share: the bad-input matrix every task must survive, and learnable labeled texts.

Test files import these from here, never from one another.
"""
from __future__ import annotations

from udfs.text import EMPTY_INPUT, NULL_INPUT

# Every task keeps every one of these rows: a result, or a null result with a reason (BAD_REASONS).
BAD_INPUTS = [
    None,                           # null
    "",                             # empty
    "   ",                          # blank
    "word " * 20_000,               # 100,000 characters
    "emoji 😀 and music 𝄞",          # outside the Basic Multilingual Plane
    "ctrl\x01\x02chars\x7f",        # control characters inside text
    "nul\x00byte",                  # a NUL byte
    "lone \ud800 surrogate",        # not encodable as UTF-8 (Parquet cannot hold it; Python can)
    "שלום עולם مرحبا بالعالم",        # right-to-left scripts
    "\x00\x01",                     # control characters only
]
# The reason udfs.text.clean_texts gives each BAD_INPUTS row (None: the row reaches the model).
BAD_REASONS = [NULL_INPUT, EMPTY_INPUT, EMPTY_INPUT, None, None, None, None, None, None, EMPTY_INPUT]

# Rows of nothing visible (whitespace and format characters such as ZWSP, BOM, word joiner, soft hyphen,
# LRM/RLM, ZWJ, variation selectors): EMPTY_INPUT for every task. Not in BAD_INPUTS, whose length some
# tests count on.
INVISIBLE_INPUTS = ["\u200b", "\ufeff", "\u2060", "\u00ad", "\u200e\u200f", "\u3000", " \u200b\ufeff \u2060\t",
                    "\u200d", "\ufe0f", "\U000e0041\U000e007f", "\u3164"]
# Rows with something visible whose format characters matter: they reach the model exactly as given.
KEPT_FORMAT = ["👩\u200d💻 at work", "می\u200cخواهم", "\ufeffhello", "co\u00adoperate", "\u200fשלום"]
# Emoji (and digits, punctuation) without a letter: sentiment, classify, embed and summarize see them;
# detect_language gives a reason.
EMOJI_ONLY = ["😀", "👍🏽👍🏽", "❤️", "👩\u200d💻", "🇵🇹 2:1 !!!"]

# Labeled texts whose words give their class away (learnable even on a tiny random encoder).
VOCAB = {
    "sport": ["match", "goal", "team", "striker", "league", "coach"],
    "business": ["shares", "profits", "market", "company", "prices", "bank"],
    "politics": ["minister", "parliament", "election", "policy", "vote", "party"],
}


def labeled_rows(per_class: int = 12) -> list[tuple[int, str, str]]:
    """(id, text, label) rows, ``per_class`` per VOCAB class, built from that class's words."""
    rows = []
    for label, words in VOCAB.items():
        for i in range(per_class):
            text = f"the {words[i % 6]} and the {words[(i * 5 + 1) % 6]} {words[(i + 2) % 6]} today number {i}"
            rows.append((len(rows), text, label))
    return rows
