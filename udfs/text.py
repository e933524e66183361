"""Input hygiene shared by every task: what never reaches a model, and why."""
from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

NULL_INPUT = "null input"
EMPTY_INPUT = "empty input (no visible characters)"
NOT_TEXT = "input is not a string"

# C0/C1 control characters (NUL included) except tab/newline/carriage return, plus lone UTF-16 surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]+")


def _ignorable_class() -> str:
    """A regex class of Unicode's default-ignorable characters: every format character (category Cf: soft
    hyphen, ZWSP, ZWNJ/ZWJ, LRM/RLM and the other bidi controls, word joiner, BOM, tag characters, ...) plus
    the non-Cf ones: combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian and
    Unicode variation selectors."""
    planes = [*range(0x20000), *range(0xE0000, 0xE1000)]  # the planes that hold format characters
    points = {c for c in planes if unicodedata.category(chr(c)) == "Cf"}
    for a, b in [(0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x3164, 0x3164),
                 (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0100, 0xE01EF)]:
        points.update(range(a, b + 1))
    ranges: list[list[int]] = []
    for c in sorted(points):  # consecutive code points as one range
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "".join(re.escape(chr(a)) + (f"-{re.escape(chr(b))}" if b > a else "") for a, b in ranges)


# A row that is nothing but these (whitespace, default-ignorable characters) has nothing a model can read.
_INVISIBLE = re.compile(rf"[\s{_ignorable_class()}]*")


_LETTER = re.compile(r"[^\W\d_]")  # a letter of any script


class NeedsLetters:
    """A task's screen (``udfs.runtime.driver.plan(screen=...)``): a row with no letter of any script (emoji,
    digits, punctuation only) gets ``reason`` instead of reaching the task's model."""

    def __init__(self, reason: str):
        self.reason = reason

    def __call__(self, text: str) -> str | None:
        return None if _LETTER.search(text) else self.reason


class InvalidUtf8:
    """Stands for a row whose bytes are not UTF-8 (Spark strings may hold any bytes); its reason names where."""

    __slots__ = ("reason",)

    def __init__(self, error: UnicodeDecodeError):
        self.reason = f"invalid UTF-8 at byte {error.start}"


class _NotText:
    """Stands for a non-null value of a column that is not a string column."""

    reason = NOT_TEXT


def arrow_texts(arr) -> pd.Series:
    """An Arrow column as the Series ``clean_texts`` takes, without failing on bad bytes.

    A string column becomes str (None for null) per row; a row whose bytes are not valid UTF-8 (which
    pandas' own conversion fails the whole batch on) is decoded alone and becomes an ``InvalidUtf8``; a
    column of any other type becomes a not-a-string marker per non-null row.
    """
    import pyarrow as pa

    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        try:
            return arr.to_pandas()
        except pa.ArrowException:  # some row is not UTF-8: decode row by row
            binary = arr.view(pa.large_binary() if pa.types.is_large_string(arr.type) else pa.binary())
            return pd.Series([_decode(b) for b in binary.to_pylist()], dtype=object)
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    return pd.Series(np.where(nulls, None, _NotText()), dtype=object)


def _decode(data: bytes | None) -> str | InvalidUtf8 | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidUtf8(exc)


def _reason_for(value) -> str:
    return getattr(value, "reason", NOT_TEXT)


def clean_texts(texts: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return (clean, reason): ``clean`` holds the text a model may see (None where it must not),
    ``reason`` why a row was withheld (None where it was not).

    Control characters, NUL bytes and lone surrogates become spaces; a row with nothing visible left
    (only whitespace and default-ignorable characters such as ZWSP, BOM, word joiner, soft hyphen,
    LRM/RLM) is withheld. A row with something visible goes to the model with its format characters
    (ZWJ in emoji sequences, ZWNJ in Persian words) as they were. Right-to-left scripts, emoji and other
    non-BMP characters pass unchanged. Non-strings get ``NOT_TEXT``, undecodable bytes (``arrow_texts``)
    their ``InvalidUtf8`` reason.
    """
    texts = texts.reset_index(drop=True)
    is_str = texts.map(lambda t: isinstance(t, str), na_action=None).astype(bool)
    reason = pd.Series(np.where(texts.isna(), NULL_INPUT, None), dtype=object)
    odd = np.flatnonzero(~is_str.to_numpy() & reason.isna().to_numpy())
    reason.iloc[odd] = [_reason_for(t) for t in texts.iloc[odd]]
    clean = texts.where(is_str, None).astype(object)
    ok = is_str.to_numpy()
    if ok.any():
        cleaned = clean[ok].str.replace(_CONTROL, " ", regex=True)
        blank = cleaned.map(lambda t: _INVISIBLE.fullmatch(t) is not None).to_numpy(dtype=bool)
        clean[ok] = cleaned.where(~blank, None)
        idx = np.flatnonzero(ok)[blank]
        reason.iloc[idx] = EMPTY_INPUT
    return clean, reason
