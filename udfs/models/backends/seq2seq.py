"""Hugging Face encoder-decoder models (T5, BART, Pegasus, Marian, M2M100, NLLB) for summarize and translate.

Generation is batched like the encoders: rows are tokenized once and run in batches whose padded size
(input plus ``max_new_tokens``, times the beam count) fits a token budget, in shapes fixed per input length
bucket (``fixed_shapes``, the default; udfs.models.backends.batching) so a row's output does not depend on
its batch (a batch that runs out of memory is halved and retried); results are written back in input order.
Beam count, lengths and length penalty come from the registered params (the catalog).

* summarize: a document longer than the model's input is cut at sentence boundaries into chunks that fit,
  each chunk is summarized, the chunk summaries are joined and summarized again (map-reduce), up to
  ``reduce_rounds`` times.
* translate: rows are cut into sentence-aligned segments, every segment of the batch is translated in one
  length-sorted pass, and the segments are rejoined with the row's line breaks. Language codes are mapped to
  what each family needs: a task prefix (T5), a ``>>xx<<`` target token (multilingual Marian; both through
  ``prefix``), ``src_lang`` + a forced first token (M2M100: ``__pt__``; NLLB: ``por_Latn``; a code that is
  not one of the model's language tokens is refused, not passed on as an ordinary word).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from udfs.models.backends.batching import Batch, as_bool, pad_batch, run_batches
from udfs.sentences import rejoin, segments, split_sentences

# English names (T5's translation prefixes) and NLLB/FLORES-200 codes for common ISO 639-1 codes;
# a catalog entry may extend or override either with params.language_names / params.languages.
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "ro": "Romanian", "pt": "Portuguese",
                  "es": "Spanish", "it": "Italian", "nl": "Dutch"}
NLLB_CODES = {"en": "eng_Latn", "pt": "por_Latn", "es": "spa_Latn", "fr": "fra_Latn", "de": "deu_Latn",
              "it": "ita_Latn", "nl": "nld_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "zh": "zho_Hans",
              "ja": "jpn_Jpan", "ar": "arb_Arab", "he": "heb_Hebr", "hi": "hin_Deva", "tr": "tur_Latn",
              "pl": "pol_Latn", "uk": "ukr_Cyrl", "ko": "kor_Hang", "sv": "swe_Latn", "id": "ind_Latn"}
CHARS_PER_TOKEN_CAP = 16


class Seq2Seq:
    def __init__(self, weights: Path, *, device: str = "cpu", precision: str = "fp32", num_beams: int = 4,
                 max_new_tokens: int = 128, min_new_tokens: int = 0, length_penalty: float = 1.0,
                 no_repeat_ngram_size: int = 0, max_input_tokens: int | None = None, prefix: str = "",
                 pairs: list[str] | None = None, languages: dict[str, str] | None = None,
                 language_names: dict[str, str] | None = None, segment_words: int = 60, reduce_rounds: int = 2,
                 token_budget: int = 4096, max_batch_size: int = 32, fixed_shapes: bool = True, **_: Any):
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(weights))
        self.model = AutoModelForSeq2SeqLM.from_pretrained(str(weights)).eval().to(device)
        if precision in ("bf16", "fp16") and device != "cpu":
            self.model = self.model.to(torch.bfloat16 if precision == "bf16" else torch.float16)
        self.device = device
        config = self.model.config
        self.family = "nllb" if "Nllb" in type(self.tokenizer).__name__ else config.model_type
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 512
        tok_limit = self.tokenizer.model_max_length if (self.tokenizer.model_max_length or 0) < 10**6 else limit
        self.max_input_tokens = int(min(max_input_tokens or tok_limit, tok_limit, limit))
        self.generate_kwargs = {"num_beams": int(num_beams), "max_new_tokens": int(max_new_tokens),
                                "min_new_tokens": int(min_new_tokens), "length_penalty": float(length_penalty),
                                "no_repeat_ngram_size": int(no_repeat_ngram_size),
                                "early_stopping": int(num_beams) > 1, "do_sample": False}
        self.prefix, self.segment_words, self.reduce_rounds = prefix, int(segment_words), int(reduce_rounds)
        self.token_budget, self.max_batch_size = int(token_budget), int(max_batch_size)
        self.fixed_shapes = as_bool(fixed_shapes, "fixed_shapes")
        self.languages = {**(NLLB_CODES if self.family == "nllb" else {}), **(languages or {})}
        self.language_names = {**LANGUAGE_NAMES, **(language_names or {})}
        self._pairs = tuple(pairs or ())
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    # ---- languages ------------------------------------------------------------------------------

    @property
    def pairs(self) -> tuple[str, ...]:
        """Supported ``src-tgt`` pairs: the catalog's ``pairs``, else every pair of a multilingual model's
        ``languages`` (M2M100 / NLLB)."""
        if self._pairs:
            return self._pairs
        if self.family in ("m2m_100", "nllb"):
            codes = sorted(self.languages) if self.languages else []
            return tuple(f"{a}-{b}" for a in codes for b in codes if a != b)
        return ()

    def _language_setup(self, source: str, target: str) -> tuple[str, int | None]:
        """(text prefix, forced first decoder token) for a pair, per family."""
        names = {"source": source, "target": target, "source_name": self.language_names.get(source, source),
                 "target_name": self.language_names.get(target, target)}
        prefix = self.prefix.format(**names)
        if self.family in ("m2m_100", "nllb"):
            src_code, tgt_code = self.languages.get(source, source), self.languages.get(target, target)
            for iso, code in ((source, src_code), (target, tgt_code)):
                if not self._is_language_code(code):  # else NLLB silently uses the ordinary token "fi"
                    raise ValueError(f"language {iso!r} maps to {code!r}, not one of this {self.family} model's "
                                     "language codes; map it in the catalog entry's params.languages "
                                     "(NLLB: a FLORES-200 code, e.g. {fi: fin_Latn})")
            self.tokenizer.src_lang = src_code
            if hasattr(self.tokenizer, "get_lang_id") and self.family == "m2m_100":
                return prefix, self.tokenizer.get_lang_id(tgt_code)
            return prefix, self.tokenizer.convert_tokens_to_ids(tgt_code)
        return prefix, None

    def _is_language_code(self, code: str) -> bool:
        """``code`` names one of a multilingual model's languages: an M2M100 ``__xx__`` token, an NLLB
        special token such as ``por_Latn``."""
        if self.family == "m2m_100" and hasattr(self.tokenizer, "lang_code_to_token"):
            return code in self.tokenizer.lang_code_to_token  # what get_lang_id / src_lang look codes up in
        return code in set(self.tokenizer.all_special_tokens)

    # ---- generation -----------------------------------------------------------------------------

    def _ids(self, texts: list[str], prefix: str = "", *, truncate: bool = True) -> list[list[int]]:
        cap = self.max_input_tokens * CHARS_PER_TOKEN_CAP
        enc = self.tokenizer([prefix + t[:cap] if truncate else prefix + t for t in texts], truncation=truncate,
                             max_length=self.max_input_tokens if truncate else None, padding=False,
                             return_attention_mask=False)
        return enc["input_ids"]

    def generate(self, texts: list[str], *, prefix: str = "", forced_bos_token_id: int | None = None) -> list[str]:
        """One output per input, in input order; inputs longer than the model's limit are truncated."""
        if not texts:
            return []
        ids = self._ids(texts, prefix)
        out: list[str] = [""] * len(texts)
        beams = max(1, self.generate_kwargs["num_beams"])

        def run(batch: Batch):
            return self._forward(ids, batch, forced_bos_token_id)

        for rows, texts_out in run_batches([len(x) for x in ids], run, token_budget=max(1, self.token_budget // beams),
                                           max_batch_size=self.max_batch_size, fixed_shapes=self.fixed_shapes,
                                           max_width=self.max_input_tokens,
                                           extra_tokens=self.generate_kwargs["max_new_tokens"]):
            for i, text in zip(rows, texts_out):
                out[i] = text
        return out

    def _forward(self, ids: list[list[int]], batch: Batch, forced_bos_token_id: int | None) -> list[str]:
        """Generated texts for ``batch`` (dummy rows included) of the token id lists ``ids``."""
        torch = self._torch
        input_ids, mask = pad_batch([ids[i] for i in batch.idx], self.pad_id, rows=batch.rows, width=batch.width)
        kwargs = dict(self.generate_kwargs)
        if forced_bos_token_id is not None:
            kwargs["forced_bos_token_id"] = int(forced_bos_token_id)
        with torch.inference_mode():
            generated = self.model.generate(input_ids=torch.from_numpy(input_ids).to(self.device),
                                            attention_mask=torch.from_numpy(mask).to(self.device), **kwargs)
        return [t.strip() for t in self.tokenizer.batch_decode(generated, skip_special_tokens=True)]

    # ---- chunking -------------------------------------------------------------------------------

    def chunks(self, text: str, prefix: str = "") -> list[str]:
        """``text`` cut at sentence boundaries into pieces whose tokens (with ``prefix`` and the special
        tokens) fit the model's input; a sentence too long on its own is cut by tokens."""
        budget = self.max_input_tokens - len(self._ids([""], prefix, truncate=False)[0])
        if budget < 4:
            raise ValueError(f"prefix {prefix!r} leaves no room in a {self.max_input_tokens}-token input")
        sentences = split_sentences(text)
        counts = [len(x) for x in self.tokenizer(sentences, add_special_tokens=False)["input_ids"]] if sentences else []
        if sum(counts) + len(counts) <= budget:
            return [" ".join(sentences)] if sentences else [text]
        pieces, current, used = [], [], 0
        for sentence, n in zip(sentences, counts):
            if n > budget:  # a single enormous sentence: cut by tokens
                if current:
                    pieces.append(" ".join(current))
                    current, used = [], 0
                ids = self.tokenizer(sentence, add_special_tokens=False)["input_ids"]
                pieces += [self.tokenizer.decode(ids[i:i + budget]) for i in range(0, len(ids), budget)]
                continue
            if current and used + n + 1 > budget:
                pieces.append(" ".join(current))
                current, used = [], 0
            current.append(sentence)
            used += n + 1
        if current:
            pieces.append(" ".join(current))
        return pieces

    # ---- tasks ----------------------------------------------------------------------------------

    def summarize(self, texts: list[str]) -> tuple[list[str], list[int]]:
        """(summaries, number of chunks in the first pass) per text, in input order (map-reduce)."""
        prefix = self.prefix
        current = list(texts)
        todo = list(range(len(texts)))
        summaries: list[str | None] = [None] * len(texts)
        first_chunks = [1] * len(texts)
        for round_ in range(self.reduce_rounds + 1):
            per_doc = [self.chunks(current[i], prefix) for i in todo]
            if round_ == 0:
                for i, ch in zip(todo, per_doc):
                    first_chunks[i] = len(ch)
            last = round_ == self.reduce_rounds
            flat = [c for ch in per_doc for c in (ch if len(ch) == 1 or not last else [" ".join(ch)])]
            outputs = iter(self.generate(flat, prefix=prefix))
            still = []
            for i, ch in zip(todo, per_doc):
                if len(ch) == 1 or last:  # fits (or out of rounds: the joined chunk summaries, truncated)
                    summaries[i] = next(outputs)
                else:
                    current[i] = " ".join(next(outputs) for _ in ch)
                    still.append(i)
            todo = still
            if not todo:
                break
        return [s or "" for s in summaries], first_chunks

    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        pair = f"{source}-{target}"
        if pair not in self.pairs:
            raise ValueError(f"unsupported language pair {source}->{target}; supported: {', '.join(self.pairs)}")
        prefix, forced = self._language_setup(source, target)
        rows = []
        for text in texts:
            pieces = []
            for segment, sep in segments(text, max_words=self.segment_words):
                parts = self.chunks(segment, prefix) if segment else [""]
                pieces += [(p, " ") for p in parts[:-1]] + [(parts[-1], sep)]
            rows.append(pieces)
        unique = sorted({s for r in rows for s, _ in r if s})
        done = dict(zip(unique, self.generate(unique, prefix=prefix, forced_bos_token_id=forced)))
        return [rejoin([(done[s] if s else s, sep) for s, sep in r]) for r in rows]

    def predict(self, texts: list[str]) -> list[str]:
        """The pyfunc face: translate with the first declared pair, else summarize."""
        if self.pairs:
            source, target = self.pairs[0].split("-")
            return self.translate(texts, source, target)
        return self.summarize(texts)[0]


def load_seq2seq(folder: Path, *, device: str, precision: str, **params: Any) -> Seq2Seq:
    return Seq2Seq(folder / "weights", device=device, precision=precision, **params)
