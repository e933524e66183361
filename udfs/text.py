"""Input hygiene shared by every task: what never reaches a model, and why."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

NULL_INPUT = "null input"
EMPTY_INPUT = "empty input (no visible characters)"
NOT_TEXT = "input is not a string"

# C0/C1 control characters (NUL included) except tab/newline/carriage return, plus lone UTF-16 surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]+")


def clean_texts(texts: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return (clean, reason): ``clean`` holds the text a model may see (None where it must not),
    ``reason`` why a row was withheld (None where it was not).

    Control characters, NUL bytes and lone surrogates become spaces; a row with nothing visible left is
    withheld. Right-to-left scripts, emoji and other non-BMP characters pass unchanged.
    """
    texts = texts.reset_index(drop=True)
    is_str = texts.map(lambda t: isinstance(t, str), na_action=None).astype(bool)
    reason = pd.Series(np.where(texts.isna(), NULL_INPUT, np.where(is_str, None, NOT_TEXT)), dtype=object)
    clean = texts.where(is_str, None).astype(object)
    ok = is_str.to_numpy()
    if ok.any():
        cleaned = clean[ok].str.replace(_CONTROL, " ", regex=True)
        blank = cleaned.str.strip().str.len().eq(0).to_numpy()
        clean[ok] = cleaned.where(~blank, None)
        idx = np.flatnonzero(ok)[blank]
        reason.iloc[idx] = EMPTY_INPUT
    return clean, reason
