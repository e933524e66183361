"""Token-budget batching: sort rows by length, cut batches whose padded size fits a budget."""
from __future__ import annotations

from typing import Iterator, Sequence

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
