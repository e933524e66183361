import numpy as np

from udfs.batching import token_budget_batches


def test_batches_cover_every_row_once_longest_first_within_budget():
    lengths = [5, 50, 3, 20, 20, 1, 64, 7]
    batches = list(token_budget_batches(lengths, token_budget=64, max_batch_size=3))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 64
    assert [b.tolist() for b in batches] == [[6], [1], [3, 4, 7], [0, 2, 5]]


def test_exact_batches():
    batches = [b.tolist() for b in token_budget_batches([10, 10, 10, 10, 2], token_budget=25, max_batch_size=8)]
    assert batches == [[0, 1], [2, 3], [4]]


def test_row_longer_than_budget_is_its_own_batch_and_empty_input_yields_nothing():
    assert [b.tolist() for b in token_budget_batches([100, 1], token_budget=10, max_batch_size=4)] == [[0], [1]]
    assert list(token_budget_batches([], token_budget=10, max_batch_size=4)) == []
