"""Batching for the backends that run on a device: sort rows by length, cut batches that fit a token budget,
halve a batch that runs out of accelerator memory. Every such backend goes through :func:`run_batches`, so
results are written back at the same indexes whether or not a batch had to be split.

Fixed shapes (the default, ``fixed_shapes=True``): a row's result must not depend on the rows beside it
(issue 25), yet matmul and attention kernels reduce in an order that can depend on the shape they run in
(the padded width, and, for the small products of a classifier's head, the number of rows). So a row runs in
a shape that only its own length decides: its length rounded up to a multiple of :data:`WIDTH_STEP` tokens,
and the number of rows fixed per width (:func:`rows_for_width`: a power of two near ``token_budget // width``),
the last batch of a width filled with dummy rows (copies of its first row, whose results are dropped).
Measured on this project's CPU (torch's oneDNN/MKL, bf16 and fp32, 1 and 2 threads): in such a shape a row's
bits do not depend on its position or neighbours; in another width they do, in another row count they do in
fp32 for products of 1 to 3 rows, and in rows that are not a power of two the position can matter.
Without fixed shapes, batches are cut by :func:`token_budget_batches` and padded to their longest row
(cheaper by the padding, but a row's last bits depend on its batch).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

WIDTH_STEP = 16  # fixed shapes: widths are multiples of this many tokens (8 and 32 measured no faster)
# Padded tokens per forward pass on a CPU when a model's params name no token_budget: the fastest of 256 to
# 4096 on this project's CPU (1 thread, MiniLM, bf16), for fixed shapes and variable ones alike
# (bench/throughput.py --batch-shapes). Accelerators keep each backend's larger default.
CPU_TOKEN_BUDGET = 512


class Batch(NamedTuple):
    """Row indexes and the shape they run in: ``rows`` x ``width`` tokens, filled with dummy rows and padding;
    ``width`` None: as many rows as ``idx`` holds, padded to its longest (no fixed shape)."""

    idx: np.ndarray
    rows: int
    width: int | None = None


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


def default_token_budget(device: str, accelerator_budget: int) -> int:
    """The token budget of a model whose params name none: :data:`CPU_TOKEN_BUDGET` on the CPU, else
    ``accelerator_budget``."""
    return CPU_TOKEN_BUDGET if device == "cpu" else accelerator_budget


def bucket_width(length: int, step: int = WIDTH_STEP, max_width: int | None = None) -> int:
    """``length`` rounded up to a multiple of ``step`` (at least ``step``), but not past ``max_width`` (the
    model's input limit, which no row exceeds after truncation)."""
    width = max(1, -(-int(length) // step)) * step
    return max(int(length), min(width, max_width)) if max_width else width


def rows_for_width(width: int, *, token_budget: int, max_batch_size: int, extra_tokens: int = 0) -> int:
    """The fixed number of rows of a batch ``width`` tokens wide: the largest power of two the budget (and
    ``max_batch_size``) holds, at least one. A power of two: with 2 threads a row at position 4-5 of 6 rows
    or 8-9 of 10 got other fp32 logits than at the other positions (a tail kernel of the classifier's small
    products); in 4 to 64 rows, powers of two, no position did."""
    fits = max(1, min(max_batch_size, token_budget // (width + extra_tokens)))
    return 1 << (fits.bit_length() - 1)


def fixed_shape_batches(lengths: Sequence[int], *, token_budget: int, max_batch_size: int,
                        max_width: int | None = None, extra_tokens: int = 0,
                        step: int = WIDTH_STEP) -> Iterator[Batch]:
    """Yield a :class:`Batch` for every row, widest bucket first: rows of one width bucket
    (:func:`bucket_width`), in input order, in batches of :func:`rows_for_width` rows (the last one filled
    with dummy rows). A row's shape depends on its own length only. ``max_width``: the model's input limit;
    ``extra_tokens``: tokens each row adds beyond its input (generation), counted against the budget."""
    widths = np.array([bucket_width(n, step, max_width) for n in lengths], dtype=np.int64)
    for width in sorted(set(widths.tolist()), reverse=True):
        members = np.flatnonzero(widths == width)
        rows = rows_for_width(width, token_budget=token_budget, max_batch_size=max_batch_size,
                              extra_tokens=extra_tokens)
        for start in range(0, len(members), rows):
            yield Batch(members[start:start + rows], rows, width)


def pad_batch(batch_ids: Sequence[Sequence[int]], pad_id: int, *, rows: int | None = None,
              width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists to ``width`` (default: the batch's longest) and, with ``rows``, add dummy rows
    (copies of the first) up to ``rows``: (input_ids, attention_mask), int64."""
    batch_ids = list(batch_ids)
    batch_ids += [batch_ids[0]] * ((rows or 0) - len(batch_ids))
    width = width or max(len(x) for x in batch_ids)
    input_ids = np.full((len(batch_ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch_ids), width), dtype=np.int64)
    for row, x in enumerate(batch_ids):
        input_ids[row, :len(x)] = x
        mask[row, :len(x)] = 1
    return input_ids, mask


def as_bool(value: Any, key: str) -> bool:
    """A boolean param as a registered version stores it (true/false, also as text)."""
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError(f"params.{key}: got {value!r}; allowed: true, false")


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA (or other accelerator) out-of-memory, as raised by torch."""
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def split_on_oom(run: Callable[[Any], Any], batch: Batch | np.ndarray) -> list[tuple[np.ndarray, Any]]:
    """``[(rows, run(batch))]``; on out-of-memory, halve the batch and retry each half (recursively).

    ``batch``: a :class:`Batch` or an array of row indexes (``run`` gets halves of the same type). A fixed
    shape halves its shape: the halves run in ``ceil(rows / 2)`` rows of the same width (dummy rows filling
    them as usual), so a halved batch is a fixed shape too, but another one: on a GPU its rows' last bits may
    differ from the same rows in a full batch. A batch of one row that still does not fit re-raises, so the
    runtime gives that row (only) a reason.
    """
    idx = batch.idx if isinstance(batch, Batch) else batch
    try:
        return [(idx, run(batch))]
    except Exception as exc:
        if (batch.rows if isinstance(batch, Batch) else len(idx)) <= 1 or not is_out_of_memory(exc):
            raise
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return [part for half in _halves(batch) for part in split_on_oom(run, half)]


def _halves(batch: Batch | np.ndarray) -> list[Batch | np.ndarray]:
    """The non-empty halves of a batch: of its rows, or of a fixed shape's row count (same width)."""
    if not isinstance(batch, Batch):
        return [batch[:len(batch) // 2], batch[len(batch) // 2:]]
    if batch.width is None:
        half = len(batch.idx) // 2
        return [Batch(batch.idx[:half], half), Batch(batch.idx[half:], len(batch.idx) - half)]
    rows = -(-batch.rows // 2)
    return [Batch(part, rows, batch.width) for part in (batch.idx[:rows], batch.idx[rows:]) if len(part)]


def run_batches(lengths: Sequence[int], run: Callable[[Batch], Any], *, token_budget: int, max_batch_size: int,
                fixed_shapes: bool = True, max_width: int | None = None,
                extra_tokens: int = 0) -> Iterator[tuple[np.ndarray, Any]]:
    """``(rows, run(batch))`` for every batch of ``lengths``: fixed shapes (:func:`fixed_shape_batches`) or,
    with ``fixed_shapes=False``, token-budget batches padded to their longest (:func:`token_budget_batches`);
    each batch halved and retried on out-of-memory (:func:`split_on_oom`); the caller writes each result
    back at ``rows``, using only the first ``len(rows)`` results of a batch filled with dummy rows."""
    if fixed_shapes:
        batches: Iterator[Batch] = fixed_shape_batches(lengths, token_budget=token_budget,
                                                       max_batch_size=max_batch_size, max_width=max_width,
                                                       extra_tokens=extra_tokens)
    else:
        batches = (Batch(idx, len(idx)) for idx in token_budget_batches(
            [n + extra_tokens for n in lengths], token_budget=token_budget, max_batch_size=max_batch_size))
    for batch in batches:
        yield from split_on_oom(run, batch)
