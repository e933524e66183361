"""Token-budget batching: sort rows by length, cut batches whose padded size fits a budget, halve a batch
that runs out of accelerator memory. Every backend that runs batches on a device goes through
:func:`run_batches`, so results are the same (written back at the same indexes) whether or not a batch
had to be split."""
from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np


def token_budget_batches(lengths: Sequence[int], *, token_budget: int, max_batch_size: int) -> Iterator[np.ndarray]:
    """Yield arrays of row indexes, longest rows first, each batch with ``rows * longest <= token_budget``
    (a single row longer than the budget forms its own batch) and at most ``max_batch_size`` rows.

    Callers write each batch's results back at these indexes, which restores the input order.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    start, n = 0, len(order)
    while start < n:
        longest = max(int(lengths[order[start]]), 1)
        size = max(1, min(max_batch_size, token_budget // longest, n - start))
        yield order[start:start + size]
        start += size


def pad_batch(batch_ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists to the batch's longest: (input_ids, attention_mask), int64."""
    width = max(len(x) for x in batch_ids)
    input_ids = np.full((len(batch_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch_ids), width), dtype=np.int64)
    for row, x in enumerate(batch_ids):
        input_ids[row, :len(x)] = x
        mask[row, :len(x)] = 1
    return input_ids, mask


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA (or other accelerator) out-of-memory, as raised by torch."""
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def split_on_oom(run: Callable[[np.ndarray], Any], idx: np.ndarray) -> list[tuple[np.ndarray, Any]]:
    """``[(idx, run(idx))]``; on out-of-memory, halve the batch and retry each half (recursively).

    A single row that still does not fit re-raises, so the runtime gives that row (only) a reason.
    """
    try:
        return [(idx, run(idx))]
    except Exception as exc:
        if len(idx) <= 1 or not is_out_of_memory(exc):
            raise
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    half = len(idx) // 2
    return split_on_oom(run, idx[:half]) + split_on_oom(run, idx[half:])


def run_batches(lengths: Sequence[int], run: Callable[[np.ndarray], Any], *, token_budget: int,
                max_batch_size: int) -> Iterator[tuple[np.ndarray, Any]]:
    """``(rows, run(rows))`` for every token-budget batch of ``lengths`` (see :func:`token_budget_batches`),
    each batch halved and retried on out-of-memory (:func:`split_on_oom`); the caller writes each result
    back at ``rows``."""
    for idx in token_budget_batches(lengths, token_budget=token_budget, max_batch_size=max_batch_size):
        yield from split_on_oom(run, idx)
