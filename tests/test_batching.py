import numpy as np

from udfs.models.backends.batching import token_budget_batches


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


def test_out_of_memory_halves_the_batch_until_it_fits():
    import torch

    from udfs.models.backends.batching import split_on_oom

    calls = []

    def run(idx):
        calls.append(len(idx))
        if len(idx) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [i * 10 for i in idx]

    parts = split_on_oom(run, np.arange(7))
    assert [(p[0].tolist(), [int(v) for v in p[1]]) for p in parts] == [
        ([0], [0]), ([1, 2], [10, 20]), ([3, 4], [30, 40]), ([5, 6], [50, 60])]
    assert calls == [7, 3, 1, 2, 4, 2, 2]


def test_other_errors_and_single_rows_are_not_retried():
    import pytest
    import torch

    from udfs.models.backends.batching import split_on_oom

    with pytest.raises(ValueError):
        split_on_oom(lambda idx: (_ for _ in ()).throw(ValueError("bad")), np.arange(4))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        split_on_oom(lambda idx: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("out of memory")), np.arange(1))


def test_encoder_gives_identical_vectors_when_batches_run_out_of_memory(tmp_path, monkeypatch):
    import torch

    from tests.tiny_models import build_tiny_encoder
    from udfs.models.backends.hf import Encoder

    folder = build_tiny_encoder(tmp_path / "enc")
    enc = Encoder(folder, max_tokens=64, token_budget=4096, max_batch_size=64)
    texts = [f"text number {i} " * (i % 4 + 1) for i in range(9)]
    expected = enc.embed(texts)
    forward = enc.model.forward

    def small_memory(*args, input_ids=None, **kwargs):
        if input_ids.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return forward(*args, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(enc.model, "forward", small_memory)
    np.testing.assert_allclose(enc.embed(texts), expected, atol=1e-5)


def test_auto_precision_follows_the_hardware(monkeypatch):
    from udfs.runtime import device

    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert device.auto_precision("cpu") == "bf16"
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2"})
    assert device.auto_precision("cpu") == "fp32"
