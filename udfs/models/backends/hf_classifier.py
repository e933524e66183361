"""Hugging Face sequence classifiers (AutoModelForSequenceClassification): supervised and NLI zero-shot.

A supervised model scores each text over its own labels (``config.id2label``, or ``params.labels``).
An NLI model (labels include "entailment") scores (text, hypothesis) pairs: zero-shot classification asks,
for each candidate label, whether the text entails ``hypothesis_template.format(label)``. Batched like the
encoders: in shapes fixed per length bucket (``fixed_shapes``, the default: a row's scores do not depend on its
batch), a batch that runs out of memory halved and retried.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from udfs.models.backends.batching import Batch, as_bool, default_token_budget, run_batches
from udfs.models.backends.heads import rows_from_proba, softmax
from udfs.models.backends.hf import _autocast

CHARS_PER_TOKEN_CAP = 16


class SequenceClassifier:
    def __init__(self, weights: Path, *, device: str = "cpu", precision: str = "fp32", max_tokens: int = 256,
                 token_budget: int | None = None, max_batch_size: int = 64, labels: Sequence[str] | None = None,
                 fixed_shapes: bool = True, **_: Any):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(weights))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(weights)).eval().to(device)
        self.device, self.precision = device, precision
        limit = getattr(self.model.config, "max_position_embeddings", max_tokens) or max_tokens
        self.max_tokens = int(min(max_tokens, limit))
        self.token_budget = int(token_budget or default_token_budget(device, 8192))  # 512 on the CPU
        self.max_batch_size = int(max_batch_size)
        self.fixed_shapes = as_bool(fixed_shapes, "fixed_shapes")
        id2label = self.model.config.id2label
        self.labels = [str(x) for x in labels] if labels else [str(id2label[i]) for i in range(len(id2label))]
        if len(self.labels) != self.model.config.num_labels:
            raise ValueError(f"params.labels has {len(self.labels)} names; the model has "
                             f"{self.model.config.num_labels} outputs")
        lower = [x.lower() for x in self.labels]
        self.entailment = next((i for i, x in enumerate(lower) if x.startswith("entail")), None)
        self.contradiction = next((i for i, x in enumerate(lower) if x.startswith("contradict")), None)
        self._torch = torch

    @property
    def is_nli(self) -> bool:
        return self.entailment is not None

    def logits(self, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """(n, num_labels) float32 logits for texts (or text/pair pairs), in input order."""
        cap = self.max_tokens * CHARS_PER_TOKEN_CAP
        enc = self.tokenizer([t[:cap] for t in texts], pairs, truncation=True, max_length=self.max_tokens,
                             padding=False)
        keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
        out = np.zeros((len(texts), self.model.config.num_labels), dtype=np.float32)

        def run(batch: Batch):
            features = [{k: enc[k][i] for k in keys} for i in batch.idx]
            features += [features[0]] * (batch.rows - len(features))  # dummy rows fill a fixed shape
            padding = {"padding": "max_length", "max_length": batch.width} if batch.width else {}
            return self._forward(self.tokenizer.pad(features, return_tensors="pt", **padding))

        for rows, logits in run_batches([len(x) for x in enc["input_ids"]], run, token_budget=self.token_budget,
                                        max_batch_size=self.max_batch_size, fixed_shapes=self.fixed_shapes,
                                        max_width=self.max_tokens):
            out[rows] = logits[:len(rows)]
        return out

    def _forward(self, batch) -> np.ndarray:
        torch = self._torch
        inputs = {k: v.to(self.device) for k, v in batch.items()}
        with torch.inference_mode(), _autocast(torch, self.device, self.precision):
            return self.model(**inputs).logits.float().cpu().numpy()

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return softmax(self.logits(texts))

    def zero_shot(self, texts: list[str], hypotheses: list[str], *, multi_label: bool = False) -> np.ndarray:
        """(n, len(hypotheses)): single-label, softmax of the entailment logits across hypotheses;
        multi-label, per hypothesis P(entailment) against contradiction (or all other classes)."""
        if not self.is_nli:
            raise ValueError(f"zero-shot needs an NLI model (an 'entailment' label); this model's labels: "
                             f"{', '.join(self.labels)}")
        n, k = len(texts), len(hypotheses)
        logits = self.logits([t for t in texts for _ in range(k)], [h for _ in range(n) for h in hypotheses])
        logits = logits.reshape(n, k, -1)
        if not multi_label:
            return softmax(logits[:, :, self.entailment])
        other = [self.contradiction] if self.contradiction is not None else \
            [i for i in range(logits.shape[2]) if i != self.entailment]
        ent = logits[:, :, self.entailment]
        rest = np.log(np.exp(logits[:, :, other]).sum(axis=2))
        return 1.0 / (1.0 + np.exp(rest - ent))

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        return rows_from_proba(self.predict_proba(texts), self.labels)


def load_classifier(folder: Path, *, device: str, precision: str, **params: Any) -> SequenceClassifier:
    return SequenceClassifier(folder / "weights", device=device, precision=precision, **params)
