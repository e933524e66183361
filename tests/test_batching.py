import numpy as np
import pytest

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
    import torch

    from udfs.models.backends.batching import split_on_oom

    with pytest.raises(ValueError):
        split_on_oom(lambda idx: (_ for _ in ()).throw(ValueError("bad")), np.arange(4))
    with pytest.raises(torch.cuda.OutOfMemoryError):
        split_on_oom(lambda idx: (_ for _ in ()).throw(torch.cuda.OutOfMemoryError("out of memory")), np.arange(1))


def fail_above(monkeypatch, owner, name: str, rows: int = 2) -> list[int]:
    """Make ``owner.<name>`` raise CUDA out-of-memory for batches of more than ``rows`` rows (as a GPU with
    little memory would); returns the batch sizes refused, so a test can check the halving really ran."""
    import torch

    original, refused = getattr(owner, name), []

    def small_memory(*args, input_ids=None, **kwargs):
        if input_ids.shape[0] > rows:
            refused.append(int(input_ids.shape[0]))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return original(*args, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(owner, name, small_memory)
    return refused


TEXTS = [f"text number {i} " * (i % 4 + 1) for i in range(9)]


def test_encoder_gives_identical_vectors_when_batches_run_out_of_memory(tmp_path, monkeypatch):
    from tests.tiny_models import build_tiny_encoder
    from udfs.models.backends.hf import Encoder

    enc = Encoder(build_tiny_encoder(tmp_path / "enc"), max_tokens=64, token_budget=4096, max_batch_size=64)
    expected = enc.embed(TEXTS)
    enc.forget()  # else the same texts come from the encoder's memory of its last calls
    refused = fail_above(monkeypatch, enc.model, "forward")
    np.testing.assert_allclose(enc.embed(TEXTS), expected, atol=1e-5)
    assert refused


def test_tasks_on_one_encoder_share_its_forward_pass(tmp_path, monkeypatch):
    """A head registered with a copy of an encoder and the encoder itself are one object per worker (keyed
    by the weights' content), and embed() remembers its last calls: the second task on a batch runs no
    forward pass, and gets the same vectors."""
    import shutil

    from tests.tiny_models import build_tiny_encoder
    from udfs.models.backends.hf import shared_encoder
    from udfs.models.loading import write_manifest

    base = tmp_path / "base"
    weights = build_tiny_encoder(base / "weights")
    shutil.copytree(weights, tmp_path / "head" / "weights" / "encoder")  # a head's copy, as training stages it
    write_manifest(base), write_manifest(tmp_path / "head")  # what the per-host cache records for each
    a = shared_encoder(weights, device="cpu", precision="fp32", max_tokens=64)
    b = shared_encoder(tmp_path / "head" / "weights" / "encoder", device="cpu", precision="fp32", max_tokens=64)
    other = shared_encoder(weights, device="cpu", precision="fp32", max_tokens=32)
    assert a is b and a is not other
    first = a.embed(TEXTS)
    calls = []
    monkeypatch.setattr(a.model, "forward", lambda *args, **kw: calls.append(1))
    np.testing.assert_array_equal(b.embed(TEXTS), first)
    assert calls == []


def test_sequence_classifier_gives_identical_scores_when_batches_run_out_of_memory(tmp_path, monkeypatch):
    from tests.tiny_models import build_tiny_nli
    from udfs.models.backends.hf_classifier import SequenceClassifier

    clf = SequenceClassifier(build_tiny_nli(tmp_path / "nli"), max_tokens=64, token_budget=8192, max_batch_size=64)
    hypotheses = ["This is about sport.", "This is about money."]
    expected = clf.predict_proba(TEXTS), clf.zero_shot(TEXTS, hypotheses)
    refused = fail_above(monkeypatch, clf.model, "forward")
    np.testing.assert_allclose(clf.predict_proba(TEXTS), expected[0], atol=1e-5)
    np.testing.assert_allclose(clf.zero_shot(TEXTS, hypotheses), expected[1], atol=1e-5)
    assert refused


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_seq2seq_generates_identical_text_when_batches_run_out_of_memory(tmp_path, monkeypatch, family):
    from tests.tiny_seq2seq import build_tiny_bart, build_tiny_t5
    from udfs.models.backends.seq2seq import Seq2Seq

    folder = {"t5": build_tiny_t5, "bart": build_tiny_bart}[family](tmp_path / family)
    model = Seq2Seq(folder, num_beams=2, max_new_tokens=8, token_budget=4096, max_batch_size=32)
    expected = model.generate(TEXTS), model.summarize(TEXTS)
    refused = fail_above(monkeypatch, model.model, "generate")
    assert (model.generate(TEXTS), model.summarize(TEXTS)) == expected
    assert refused


def test_auto_precision_follows_the_hardware(monkeypatch):
    from udfs.runtime import device

    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert device.auto_precision("cpu") == "bf16"
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2"})
    assert device.auto_precision("cpu") == "fp32"
