"""Pieces the benchmarks share: the mixed real corpus, useful-FLOP counting, measured matmul peaks."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from udfs.io.datasets import bbc_news, tweets


def corpus(rows: int, seed: int = 0, article_share: float = 0.5) -> pd.DataFrame:
    """``rows`` real texts in random order: ``article_share`` of them BBC articles (long: most are cut at
    256 tokens), the rest tweets (short: ~30 tokens)."""
    if not 0.0 <= article_share <= 1.0:
        raise ValueError(f"article_share: got {article_share!r}; allowed: 0.0 to 1.0")
    articles = int(round(rows * article_share))
    tw = tweets().sample(rows - articles, random_state=seed)["text"]
    bbc = bbc_news().sample(articles, random_state=seed)["text"]
    texts = pd.concat([tw, bbc]).sample(frac=1.0, random_state=seed).tolist()
    return pd.DataFrame({"id": range(len(texts)), "text": texts})


def matmul_flops(dtype_name: str, threads: int = 2, n: int = 2048, reps: int = 6, device: str = "cpu") -> float:
    """Measured dense matmul FLOP/s on ``device`` (``threads`` CPU threads when on the CPU)."""
    import torch

    if device == "cpu":
        torch.set_num_threads(threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    a @ b
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def useful_flops(weights: Path, texts: list[str]) -> float:
    """2 x non-embedding parameters x real tokens + attention (QK^T and AV: 4 x layers x len^2 x hidden)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    cfg = AutoConfig.from_pretrained(str(weights))
    model = AutoModel.from_pretrained(str(weights))
    embedding = sum(p.numel() for n, p in model.named_parameters() if n.startswith("embeddings."))
    dense = sum(p.numel() for p in model.parameters()) - embedding
    lengths = np.array([len(x) for x in AutoTokenizer.from_pretrained(str(weights))(
        texts, truncation=True, max_length=256)["input_ids"]], dtype=np.float64)
    return float(2 * dense * lengths.sum() + 4 * cfg.num_hidden_layers * cfg.hidden_size * (lengths ** 2).sum())


def bench_registry(task: str):
    """A throw-away MLflow registry (unless MLFLOW_TRACKING_URI is set) holding ``task``'s default catalog
    model; returns the catalog. Quality benches use it so they never touch the project's registry."""
    import os
    import tempfile

    if "MLFLOW_TRACKING_URI" not in os.environ:
        tmp = tempfile.mkdtemp(prefix="textspark-bench-")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        os.environ.setdefault("TEXTSPARK_CACHE", f"{tmp}/cache")
    from jobs.register_models import register_entry
    from udfs.models.catalog import load_catalog
    from udfs.platform import setup_environment
    from udfs.models.reference import parse_reference

    setup_environment()
    catalog = load_catalog()
    register_entry(catalog[parse_reference(catalog.default_reference(task))[0]])  # idempotent
    return catalog
