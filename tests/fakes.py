"""Call-recording fakes: real code under test around a fake whose every call is recorded and whose outputs
are deterministic, so a test can state the calls it expects as literal values."""
from __future__ import annotations

from udfs.models.backends.seq2seq import Seq2Seq


class WordTokenizer:
    """One token per whitespace-separated word; ``add_special_tokens`` appends one end-of-text token.

    Covers what Seq2Seq's chunking asks of a Hugging Face tokenizer: ``tok(texts or text, ...)["input_ids"]``
    (with ``truncation`` / ``max_length``) and ``tok.decode(ids)``."""

    END = "</s>"

    def __init__(self):
        self.vocab: dict[str, int] = {self.END: 0}
        self.words: list[str] = [self.END]

    def _id(self, word: str) -> int:
        if word not in self.vocab:
            self.vocab[word] = len(self.words)
            self.words.append(word)
        return self.vocab[word]

    def _encode(self, text: str, add_special_tokens: bool, max_length: int | None) -> list[int]:
        ids = [self._id(w) for w in text.split()] + ([0] if add_special_tokens else [])
        return ids[:max_length] if max_length else ids

    def __call__(self, texts, *, add_special_tokens: bool = True, truncation: bool = False,
                 max_length: int | None = None, **_):
        limit = max_length if truncation else None
        if isinstance(texts, str):
            return {"input_ids": self._encode(texts, add_special_tokens, limit)}
        return {"input_ids": [self._encode(t, add_special_tokens, limit) for t in texts]}

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids if i != 0)


class RecordingSeq2Seq(Seq2Seq):
    """Seq2Seq's own ``summarize`` and ``chunks`` over a WordTokenizer, with ``generate`` faked: it records
    ``(prefix, texts)`` per call in ``calls`` and answers call N's input i with ``"Call N piece i."``
    (four words, one sentence), so the map-reduce rounds show in the calls and in the final summaries."""

    def __init__(self, *, max_input_tokens: int, reduce_rounds: int, prefix: str = "summarize: "):
        # no weights: only what summarize() and chunks() read
        self.tokenizer = WordTokenizer()
        self.max_input_tokens, self.reduce_rounds, self.prefix = max_input_tokens, reduce_rounds, prefix
        self.calls: list[tuple[str, list[str]]] = []

    def generate(self, texts: list[str], *, prefix: str = "", forced_bos_token_id: int | None = None) -> list[str]:
        self.calls.append((prefix, list(texts)))
        return [f"Call {len(self.calls)} piece {i}." for i in range(len(texts))]
