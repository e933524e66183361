"""Sentence splitting and length-bounded segments, shared by summarize and translate (no model, no NLTK).

Rules: a sentence ends at ``.``, ``!``, ``?``, ``…`` or their CJK/Arabic/Devanagari forms followed by space
(or at a line break); common abbreviations (``Mr.``, ``e.g.``, single capitals) and decimals do not end
one. A "sentence" longer than ``max_words`` words (text with no punctuation, a single enormous sentence)
is cut into windows of ``max_words`` words (and ``max_words * 12`` characters, for scripts written without
spaces), so every piece has a bounded size.
"""
from __future__ import annotations

import re

# Sentence-final punctuation, optionally followed by closing quotes/brackets.
_END = r"[.!?…。！？؟।]+[\"'”’)\]]*"
_BOUNDARY = re.compile(rf"(?<=\S)({_END})(\s+|(?<=[。！？])(?=\S))|(\s*\n\s*)")
_ABBREV = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "ltd", "co", "no",
    "fig", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k",
    "sra", "dra", "av",
}
MAX_WORDS = 60
CHARS_PER_WORD = 12  # and at most max_words * 12 characters (scripts written without spaces)


def split_sentences(text: str, *, max_words: int = MAX_WORDS) -> list[str]:
    """Sentences of ``text`` in order, stripped, none empty, none longer than ``max_words`` words."""
    return [s for s, _ in split_with_separators(text, max_words=max_words) if s]


def split_with_separators(text: str, *, max_words: int = MAX_WORDS) -> list[tuple[str, str]]:
    """(sentence, whitespace that followed it) pairs: ``"".join(s + sep)`` rebuilds ``text`` up to
    whitespace inside over-long sentences (which are cut at word boundaries and rejoined with one space)."""
    pieces: list[tuple[str, str]] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        if m.group(1) is not None:
            end = m.end(1)
            if _is_abbreviation(text, m.start(1)):
                continue
            sep = m.group(2)
        else:
            end = m.start(3)
            sep = m.group(3)
        pieces.append((text[start:end], sep))
        start = m.end()
    pieces.append((text[start:], ""))
    out: list[tuple[str, str]] = []
    lead = re.match(r"\s*", text).group(0)
    if lead and pieces:
        out.append(("", lead))
        pieces[0] = (pieces[0][0].lstrip(), pieces[0][1])
    for sentence, sep in pieces:
        stripped = sentence.strip()
        if not stripped:
            if out:
                out[-1] = (out[-1][0], out[-1][1] + sentence + sep)
            elif sep:
                out.append(("", sentence + sep))
            continue
        words = stripped.split()
        max_chars = max_words * CHARS_PER_WORD
        if len(words) <= max_words and len(stripped) <= max_chars:
            out.append((stripped, sep))
            continue
        windows = [w[i:i + max_chars] for k in range(0, len(words), max_words)
                   for w in [" ".join(words[k:k + max_words])] for i in range(0, len(w), max_chars)]
        out.extend((w, " ") for w in windows[:-1])
        out.append((windows[-1], sep))
    return out


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the punctuation at ``dot`` closes an abbreviation or a decimal rather than a sentence."""
    if text[dot] != ".":
        return False
    word = re.search(r"([\w.]+)$", text[max(0, dot - 24):dot])
    if not word:
        return False
    token = word.group(1).lower()
    if token in _ABBREV:
        return True
    return len(token) == 1 and token.isalpha() and text[dot - 1].isupper()  # initials: "J. Smith"


def segments(text: str, *, max_words: int, sentence_max_words: int = MAX_WORDS) -> list[tuple[str, str]]:
    """Consecutive sentences packed into segments of at most ``max_words`` words (a sentence is never split
    unless it alone exceeds ``sentence_max_words``); (segment, separator) pairs, rejoinable like
    :func:`split_with_separators`. Line breaks always end a segment so layout survives a round trip."""
    out: list[tuple[str, str]] = []
    current: list[str] = []
    count = 0
    for sentence, sep in split_with_separators(text, max_words=min(max_words, sentence_max_words)):
        if not sentence:
            if current:
                out.append((" ".join(current), sep))
                current, count = [], 0
            else:
                out.append(("", sep))
            continue
        n = len(sentence.split())
        if current and count + n > max_words:
            out.append((" ".join(current), " "))
            current, count = [], 0
        current.append(sentence)
        count += n
        if "\n" in sep:
            out.append((" ".join(current), sep))
            current, count = [], 0
    if current:
        out.append((" ".join(current), ""))
    return out


def rejoin(pieces: list[tuple[str, str]]) -> str:
    return "".join(s + sep for s, sep in pieces).strip()
