"""Hugging Face transformer encoders: tokenize once, batches of fixed shapes per length bucket, pooled vectors.

One encoder per worker for every model that uses the same weights (``shared_encoder``): the ``embed`` task's
encoder, zero-shot ``classify`` on it, and an embedding head registered with a copy of it (sentiment, topics)
hold one copy, and :meth:`Encoder.embed` remembers the vectors of the last texts it embedded, so tasks running
together on the same texts (the analyze job runs every task in one stage) pay one forward pass per batch.

A row's vector depends on its text, the weights, the params and the precision only, bit for bit: with
``fixed_shapes`` (the default) every row runs in a shape its own length decides
(udfs.models.backends.batching), whatever else is in its batch.
"""
from __future__ import annotations

import hashlib
import json
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from udfs.models.backends.batching import Batch, as_bool, default_token_budget, pad_batch, run_batches
from udfs.vectors import unit_rows

# Characters kept per token of budget before tokenizing: a 100,000-character row costs a few ms, not seconds.
CHARS_PER_TOKEN_CAP = 16


class Encoder:
    """AutoModel + pooling (mean or CLS) + optional L2 normalisation, batched by a token budget.

    ``fixed_shapes``: run every row in a (rows, width) shape fixed by its length bucket, so its vector does
    not depend on its batch (default); False: batches padded to their longest row (about 10% faster on this
    project's CPU, but a row's last bits depend on its neighbours). ``token_budget``: padded tokens per
    forward pass (default 512 on the CPU, 4096 on an accelerator). ``prefix``: put before every text (and every
    zero-shot label prompt) before tokenizing, for models trained with one (e5: ``"query: "``)."""

    def __init__(self, weights: Path, *, device: str = "cpu", precision: str = "fp32", max_tokens: int = 256,
                 pooling: str = "mean", normalize: bool = True, token_budget: int | None = None,
                 max_batch_size: int = 128, fixed_shapes: bool = True, prefix: str = "", **_: Any):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(weights))
        self.model = AutoModel.from_pretrained(str(weights)).eval().to(device)
        self.device, self.precision = device, precision
        limit = getattr(self.model.config, "max_position_embeddings", max_tokens) or max_tokens
        self.max_tokens = int(min(max_tokens, limit))
        self.pooling, self.normalize = pooling, normalize
        self.prefix = str(prefix or "")
        self.token_budget = int(token_budget or default_token_budget(device, 4096))
        self.max_batch_size = int(max_batch_size)
        self.fixed_shapes = as_bool(fixed_shapes, "fixed_shapes")
        self.dim = int(self.model.config.hidden_size)
        self.pad_id = self.tokenizer.pad_token_id or 0
        self._torch = torch
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()  # text -> vector, the last RECENT_ROWS texts

    def forget(self) -> None:
        """Drop the remembered vectors (the next embed() encodes again)."""
        self._recent.clear()

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        cap = self.max_tokens * CHARS_PER_TOKEN_CAP
        enc = self.tokenizer([self.prefix + t[:cap] for t in texts], truncation=True, max_length=self.max_tokens,
                             padding=False, return_attention_mask=False, return_token_type_ids=False)
        return enc["input_ids"]

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows in input order. A text among the last ``RECENT_ROWS`` this encoder
        embedded (another task on the same batch, even one whose language guard withheld other rows; a
        repeated text) is not encoded again: a row's vector depends on its text alone (fixed shapes), so
        reusing it changes no bit."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            found = self._recent.get(text)
            if found is None:
                missing.setdefault(text, []).append(i)
            else:
                self._recent.move_to_end(text)
                out[i] = found
        if missing:
            new = list(missing)
            ids = self.tokenize(new)
            vectors = np.zeros((len(new), self.dim), dtype=np.float32)
            for rows, batch in run_batches([len(x) for x in ids], lambda batch: self._forward(ids, batch),
                                           token_budget=self.token_budget, max_batch_size=self.max_batch_size,
                                           fixed_shapes=self.fixed_shapes, max_width=self.max_tokens):
                vectors[rows] = batch[:len(rows)]
            for text, vector in zip(new, vectors):
                out[missing[text]] = vector
                self._recent[text] = vector.copy()  # not a view: evicted rows free their batch
            while len(self._recent) > RECENT_ROWS:
                self._recent.popitem(last=False)
        return out

    def embed_windows(self, texts: list[str], words: int, max_windows: int = 16, *,
                      renormalize: bool = True) -> np.ndarray:
        """(len(texts), dim): a text longer than ``words`` words is the mean of its windows of ``words``
        words (the first ``max_windows`` of them) instead of being cut at the model's token limit; a shorter
        text is embedded as it is. All windows of all texts go through one token-budget batching. With
        ``renormalize`` (and an encoder that normalises), the means are L2-normalised again."""
        windows = []
        for text in texts:
            split = text.split()
            windows.append([" ".join(split[i:i + words]) for i in range(0, len(split), words)][:max_windows]
                           if len(split) > words else [text])
        flat = self.embed([w for ws in windows for w in ws])
        bounds = np.cumsum([0] + [len(ws) for ws in windows])
        out = np.stack([flat[a:b].astype(np.float64).mean(0) for a, b in zip(bounds[:-1], bounds[1:])])
        if renormalize and self.normalize:
            out = unit_rows(out)
        return out.astype(np.float32)

    def _forward(self, ids: list[list[int]], batch: Batch) -> np.ndarray:
        """Vectors for ``batch`` (dummy rows included) of the token id lists ``ids``."""
        torch = self._torch
        input_ids, mask = pad_batch([ids[i] for i in batch.idx], self.pad_id, rows=batch.rows, width=batch.width)
        input_t = torch.from_numpy(input_ids).to(self.device)
        mask_t = torch.from_numpy(mask).to(self.device)
        with torch.inference_mode(), _autocast(torch, self.device, self.precision):
            hidden = self.model(input_ids=input_t, attention_mask=mask_t).last_hidden_state
        hidden = hidden.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            m = mask_t.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy()


# Texts whose vectors an encoder remembers: more than one Arrow batch (10,000 rows by default), so the tasks of
# a job sharing this encoder on one batch, and a zero-shot task's label prompts, pay one forward pass; 16,384 x
# 384 float32 is 25 MB.
RECENT_ROWS = 16_384
ENCODER_KEYS = ("max_tokens", "pooling", "normalize", "token_budget", "max_batch_size", "fixed_shapes", "prefix")
_ENCODERS: "weakref.WeakValueDictionary[tuple, Encoder]" = weakref.WeakValueDictionary()


def shared_encoder(weights: Path, *, device: str, precision: str, **params: Any) -> Encoder:
    """This worker's encoder for ``weights`` (by content), ``device``, ``precision`` and the encoder's own
    params, built on first use; alive while a loaded model holds it."""
    settings = tuple(sorted((k, str(v)) for k, v in params.items() if k in ENCODER_KEYS))
    key = (content_key(weights), device, precision, settings)
    found = _ENCODERS.get(key)
    if found is None:
        found = Encoder(weights, device=device, precision=precision, **params)
        _ENCODERS[key] = found
    return found


def content_key(weights: Path) -> str:
    """The sha256 of ``weights``' files (relative path + content hash) as the per-host cache's manifest
    records them (udfs.models.loading), so a head's copy of an encoder has its base's key; a folder outside
    the cache is keyed by its path (not shared)."""
    from udfs.models.content import MANIFEST

    weights = weights.resolve()
    for folder in (weights, *weights.parents):
        manifest = folder / MANIFEST
        if manifest.is_file():
            files = json.loads(manifest.read_text()).get("files", {})
            prefix = str(weights.relative_to(folder))
            prefix = "" if prefix == "." else prefix + "/"
            inside = sorted((name[len(prefix):], entry[1]) for name, entry in files.items()
                            if name.startswith(prefix))
            return hashlib.sha256(json.dumps(inside).encode()).hexdigest()
    return str(weights)


def load_encoder(folder: Path, *, device: str, precision: str, **params: Any) -> Encoder:
    return shared_encoder(folder / "weights", device=device, precision=precision, **params)


def _autocast(torch, device: str, precision: str):
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=device.split(":")[0], dtype=dtype)
    import contextlib

    return contextlib.nullcontext()
