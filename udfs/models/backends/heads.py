"""A classification head on frozen sentence embeddings: fit on the driver (torch), serve with numpy.

A registered ``embedding_head`` version is self-contained: ``weights/encoder/`` holds the encoder (Hugging
Face layout, loaded by :class:`udfs.models.backends.hf.Encoder`) and ``weights/head.npz`` the head's layers as
plain arrays (``W0, b0, W1, b1, ...``; ReLU between layers, softmax at the end), so a worker needs no
pickle and no training code. ``params.labels`` lists the class names in output order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from udfs.models.backends.hf import shared_encoder

HEAD_FILE = "head.npz"
ENCODER_DIR = "encoder"
# Rows per matrix product: BLAS picks its kernels by shape, so (n, d) @ (d, k) gives a row other bits for
# another n (OpenBLAS, measured: any n for k = 3 or 5 classes, n = 1 for wider products). In chunks of a fixed
# number of rows a row's result does not depend on how many rows came with it (measured: nor on its position).
CHUNK_ROWS = 64


def forward(layers: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """Class probabilities (n, k) for embeddings ``x`` (n, d); a row's do not depend on the other rows."""
    h = np.asarray(x, dtype=np.float32)
    for i, (w, b) in enumerate(layers):
        h = matmul_in_chunks(h, w) + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return softmax(h)


def matmul_in_chunks(x: np.ndarray, w: np.ndarray, rows: int = CHUNK_ROWS) -> np.ndarray:
    """``x @ w``, ``rows`` rows of ``x`` at a time (the last chunk filled with zero rows), so each row's result
    is the same bits however many rows ``x`` has."""
    padded = np.zeros((-(-len(x) // rows) * rows, x.shape[1]), dtype=np.result_type(x, w))
    padded[:len(x)] = x
    out = [padded[i:i + rows] @ w for i in range(0, len(padded), rows)]
    return np.concatenate(out)[:len(x)] if out else np.zeros((0, w.shape[1]), dtype=padded.dtype)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def save_head(path: Path, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
    arrays = {}
    for i, (w, b) in enumerate(layers):
        arrays[f"W{i}"], arrays[f"b{i}"] = np.asarray(w, np.float32), np.asarray(b, np.float32)
    np.savez(path, **arrays)


def load_head(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    with np.load(path, allow_pickle=False) as arrays:
        n = len([k for k in arrays.files if k.startswith("W")])
        return [(arrays[f"W{i}"], arrays[f"b{i}"]) for i in range(n)]


def fit_head(x: np.ndarray, y: np.ndarray, n_classes: int, *, hidden: int = 256, epochs: int = 40,
             learning_rate: float = 1e-3, weight_decay: float = 1e-4, dropout: float = 0.2, batch_size: int = 128,
             class_weight: str | None = "balanced", seed: int = 0,
             sample_weight: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit a softmax head (``hidden=0``: linear; else one ReLU hidden layer) on ``x`` -> class index ``y``.

    Deterministic for a given seed (CPU). ``class_weight="balanced"`` weighs the loss by inverse class
    frequency, which favours macro-F1 on skewed labels. ``sample_weight`` (one per row, e.g.
    :func:`domain_weights`) multiplies each row's loss (on top of ``class_weight``).
    """
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    d = x.shape[1]
    if hidden:
        net = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Dropout(dropout),
                                  torch.nn.Linear(hidden, n_classes))
    else:
        net = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(d, n_classes))
    counts = np.bincount(y, minlength=n_classes).astype(np.float32)
    weight = None
    if class_weight == "balanced":
        weight = torch.tensor(len(y) / (n_classes * np.maximum(counts, 1.0)), dtype=torch.float32)
    elif class_weight is not None:
        raise ValueError(f"class_weight: got {class_weight!r}; allowed: balanced, null")
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
    wt = None if sample_weight is None else torch.tensor(sample_weight, dtype=torch.float32)
    opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    net.train()
    for _ in range(int(epochs)):
        perm = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), batch_size):
            idx = perm[start:start + batch_size]
            opt.zero_grad()
            if wt is None:
                loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx], weight=weight)
            else:  # the weighted mean, as cross_entropy takes it with class weights
                rows = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx], weight=weight, reduction="none")
                scale = wt[idx] * (weight[yt[idx]] if weight is not None else 1.0)
                loss = (rows * wt[idx]).sum() / scale.sum()
            loss.backward()
            opt.step()
    net.eval()
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears]


def domain_weights(y: np.ndarray, domains: np.ndarray, *, class_weight: str | None = "balanced") -> np.ndarray:
    """Row weights (mean 1) under which every domain weighs the same in the loss and, with
    ``class_weight="balanced"``, every class of a domain weighs the same within it; pass them to
    :func:`fit_head` with ``class_weight=None``."""
    y, domains = np.asarray(y), np.asarray(domains)
    keys = list(zip(domains, y)) if class_weight == "balanced" else [(d, 0) for d in domains]
    per_domain = {d: len({k for k in keys if k[0] == d}) for d in set(domains.tolist())}
    counts: dict = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    w = np.array([1.0 / (len(per_domain) * per_domain[k[0]] * counts[k]) for k in keys])
    return (w * len(y)).astype(np.float32)


class HeadClassifier:
    """Encoder (frozen) + head: ``predict_proba(texts)`` -> (n, len(labels)) in ``labels`` order.

    The device work is the encoder's (:meth:`Encoder.embed`, which halves a batch on out-of-memory); the
    head is a few numpy matrix products on the CPU."""

    def __init__(self, folder: Path, *, device: str = "cpu", precision: str = "fp32", labels: Sequence[str] = (),
                 **params: Any):
        self.layers = load_head(folder / "weights" / HEAD_FILE)
        self.labels = [str(label) for label in labels]
        if len(self.labels) != self.layers[-1][1].shape[0]:
            raise ValueError(f"params.labels has {len(self.labels)} names but the head has "
                             f"{self.layers[-1][1].shape[0]} outputs")
        self.encoder = shared_encoder(folder / "weights" / ENCODER_DIR, device=device, precision=precision, **params)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return forward(self.layers, self.encoder.embed(texts))

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Plain dicts for ``mlflow.pyfunc``: label, score, scores."""
        return rows_from_proba(self.predict_proba(texts), self.labels)


def rows_from_proba(proba: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
    top = proba.argmax(axis=1)
    return [{"label": labels[j], "score": float(p[j]), "scores": dict(zip(labels, map(float, p)))}
            for p, j in zip(proba, top)]


def load_head_classifier(folder: Path, *, device: str, precision: str, **params: Any) -> HeadClassifier:
    return HeadClassifier(folder, device=device, precision=precision, **params)
