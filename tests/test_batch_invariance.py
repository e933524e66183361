"""A row's result is a function of its text, the model version, the options and the precision alone, bit for
bit, whatever else is in its batch (issue 25: an incremental re-run and a full run differed on one row).

Matmul and attention kernels reduce in an order that can depend on the shape they run in, so every backend
runs a row in a shape fixed by its own length bucket (udfs.models.backends.batching.fixed_shape_batches),
whatever its neighbours, and an embedding head multiplies in fixed chunks of rows. These tests call the
models directly on the same texts in several orders and groupings, and run the analyze path over two
partitionings and as an incremental re-run, comparing everything with no tolerance.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_frame_equal
from tests.tiny_models import CORPUS, build_tiny_encoder, build_tiny_nli, random_head_layers

WORDS = " ".join(CORPUS[:12]).split()


def texts(n: int = 60, seed: int = 0) -> list[str]:
    """``n`` texts of 1 to 50 words (3 to ~64 tokens: every width bucket of a 64-token model)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 51)))) for _ in range(n)]


def groupings(n: int) -> dict[str, list[np.ndarray]]:
    """Ways to hand ``n`` rows to a model: all at once in three orders, in calls of 7 rows, one by one."""
    rng = np.random.default_rng(1)
    everything = np.arange(n)
    return {"reversed": [everything[::-1]], "shuffled": [rng.permutation(n)],
            "calls of 7": np.array_split(rng.permutation(n), -(-n // 7)),
            "one by one": [np.array([i]) for i in range(n)]}


def assert_batch_invariant(compute, items: list) -> None:
    """``compute(items)`` equals, bit for bit, the same items computed in every grouping of ``groupings``."""
    expected = np.asarray(compute(items))
    for name, calls in groupings(len(items)).items():
        got = np.zeros_like(expected)
        for idx in calls:
            got[idx] = compute([items[i] for i in idx])
        differing = int((got != expected).reshape(len(items), -1).any(axis=1).sum())
        assert differing == 0, f"{name}: {differing} of {len(items)} rows differ from the rows computed together"


def test_fixed_shape_batches_give_each_row_a_shape_decided_by_its_own_length():
    from udfs.models.backends.batching import fixed_shape_batches

    lengths = [5, 50, 3, 20, 20, 1, 64, 7, 17]
    batches = list(fixed_shape_batches(lengths, token_budget=64, max_batch_size=3))
    assert [(b.idx.tolist(), b.rows, b.width) for b in batches] == [
        ([1], 1, 64), ([6], 1, 64), ([3, 4], 2, 32), ([8], 2, 32), ([0, 2], 2, 16), ([5, 7], 2, 16)]
    alone = [next(fixed_shape_batches([n], token_budget=64, max_batch_size=3)) for n in lengths]
    shape = {i: (b.rows, b.width) for b in batches for i in b.idx.tolist()}
    assert [shape[i] for i in range(len(lengths))] == [(b.rows, b.width) for b in alone]
    longest = next(fixed_shape_batches([97], token_budget=512, max_batch_size=8, max_width=100))
    assert (longest.idx.tolist(), longest.rows, longest.width) == ([0], 4, 100)  # not past the model's limit


def test_rows_per_shape_are_the_largest_power_of_two_the_budget_holds():
    from udfs.models.backends.batching import rows_for_width

    assert [rows_for_width(w, token_budget=512, max_batch_size=128) for w in (16, 32, 48, 80, 144, 256, 600)] == [
        32, 16, 8, 4, 2, 2, 1]
    assert rows_for_width(16, token_budget=4096, max_batch_size=100) == 64
    assert rows_for_width(16, token_budget=512, max_batch_size=128, extra_tokens=112) == 4  # generation


def test_out_of_memory_halves_a_fixed_shape_and_keeps_its_width():
    import torch

    from udfs.models.backends.batching import Batch, split_on_oom

    shapes = []

    def run(batch):
        shapes.append((batch.idx.tolist(), batch.rows, batch.width))
        if batch.rows > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return batch.idx * 10

    parts = split_on_oom(run, Batch(np.arange(5), 8, 32))
    assert [(idx.tolist(), out.tolist()) for idx, out in parts] == [([0, 1], [0, 10]), ([2, 3], [20, 30]), ([4], [40])]
    assert shapes == [([0, 1, 2, 3, 4], 8, 32), ([0, 1, 2, 3], 4, 32), ([0, 1], 2, 32), ([2, 3], 2, 32),
                      ([4], 4, 32), ([4], 2, 32)]


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory):
    return build_tiny_encoder(tmp_path_factory.mktemp("invariance") / "encoder")


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_encoder_vectors_do_not_depend_on_the_batch(encoder_folder, precision):
    from udfs.models.backends.hf import Encoder

    enc = Encoder(encoder_folder, precision=precision, max_tokens=64, token_budget=256)

    def embed(rows):
        enc.forget()  # the encoder remembers its last calls: encode every grouping afresh
        return enc.embed(rows)

    assert_batch_invariant(embed, texts())


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_sequence_classifier_scores_do_not_depend_on_the_batch(tmp_path, precision):
    from udfs.models.backends.hf_classifier import SequenceClassifier

    clf = SequenceClassifier(build_tiny_nli(tmp_path / "nli"), precision=precision, max_tokens=64, token_budget=512)
    items = texts(40)
    assert_batch_invariant(clf.logits, items)
    assert_batch_invariant(lambda rows: clf.zero_shot(rows, ["This is about sport.", "This is about money."]),
                           items)


def test_head_probabilities_do_not_depend_on_the_rows_beside_them():
    from udfs.models.backends.heads import forward

    layers = random_head_layers(3, [384, 16, 5])  # MiniLM's width; a product with 5 columns varies with rows
    vectors = list(np.random.default_rng(4).normal(size=(150, 384)).astype(np.float32))
    assert_batch_invariant(lambda rows: forward(layers, np.stack(rows)), vectors)


def test_a_head_classifier_on_an_encoder_does_not_depend_on_the_batch(encoder_folder, tmp_path):
    import shutil

    from udfs.models.backends.heads import HEAD_FILE, ENCODER_DIR, HeadClassifier, save_head

    folder = tmp_path / "head"
    shutil.copytree(encoder_folder, folder / "weights" / ENCODER_DIR)
    save_head(folder / "weights" / HEAD_FILE, random_head_layers(5, [32, 8, 3]))
    head = HeadClassifier(folder, precision="bf16", labels=["a", "b", "c"], max_tokens=64, token_budget=256)

    def proba(rows):
        head.encoder.forget()
        return head.predict_proba(rows)

    assert_batch_invariant(proba, texts(40))


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_seq2seq_beam_scores_do_not_depend_on_the_batch(tmp_path, monkeypatch, family):
    """Generated text, and the beam score that chose it (recorded per input row), are the same in every
    batch: a tiny random model's text rarely flips, its scores show the shape's last bits."""
    from tests.tiny_seq2seq import build_tiny_bart, build_tiny_t5
    from udfs.models.backends.seq2seq import Seq2Seq

    folder = {"t5": build_tiny_t5, "bart": build_tiny_bart}[family](tmp_path / family)
    model = Seq2Seq(folder, num_beams=2, max_new_tokens=8, token_budget=1024, max_batch_size=32)
    original, scores = model.model.generate, {}  # a row's input ids -> every beam score it got

    def recording(*args, input_ids=None, attention_mask=None, **kwargs):
        out = original(*args, input_ids=input_ids, attention_mask=attention_mask, return_dict_in_generate=True,
                       output_scores=True, **kwargs)
        for ids, mask, score in zip(input_ids, attention_mask, out.sequences_scores):
            scores.setdefault(tuple(ids[mask.bool()].tolist()), set()).add(float(score))
        return out.sequences

    monkeypatch.setattr(model.model, "generate", recording)
    assert_batch_invariant(lambda rows: np.array(model.generate(rows), dtype=object), texts(60))
    assert {len(s) for s in scores.values()} == {1}, "a row got another beam score in another batch"


def test_a_batch_retried_row_by_row_gives_the_same_bits(tiny_encoder):
    """udfs.runtime.worker.run_batch retries a failed batch row by row: each row alone gets the bits it gets
    in a batch."""
    from udfs.models.loading import build, local_folder
    from udfs.models.registry import resolve
    from udfs.runtime import driver
    from udfs.runtime.worker import run_batch

    def predict(model, rows, options):
        if len(rows) > 1 and any("poison" in t for t in rows):
            raise ValueError("poison pill")
        return {"embedding": model.embed(rows)}

    model = build(local_folder(resolve(tiny_encoder)), device="cpu", precision="bf16")
    p = driver.plan("embed", predict, [("embedding", "array<float>")], model=tiny_encoder, precision="bf16")
    items = texts(30)
    clean = run_batch(p, model, pd.Series(items))
    model.forget()
    retried = run_batch(p, model, pd.Series(items + ["poison"]))
    assert retried["error"].isna().all()  # the retry ran, one row at a time, and every row succeeded
    assert np.array_equal(np.stack(retried["embedding"][:-1]), np.stack(clean["embedding"]))


def test_a_batch_halved_on_out_of_memory_runs_in_halves_of_its_fixed_shape(encoder_folder, monkeypatch):
    """Out-of-memory halving changes the shape (GPU only): the halves run in (rows / 2, width), padded with
    dummy rows like any batch, so they are fixed shapes too, and on this CPU give the same bits."""
    import torch

    from udfs.models.backends.hf import Encoder

    enc = Encoder(encoder_folder, precision="bf16", max_tokens=64, token_budget=256)
    items = [t for t in texts(80) if 17 <= len(enc.tokenize([t])[0]) <= 32]  # one width bucket: 32 tokens
    expected = enc.embed(items)
    enc.forget()
    original, shapes = enc.model.forward, []

    def small_memory(*args, input_ids=None, **kwargs):
        shapes.append(tuple(input_ids.shape))
        if input_ids.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return original(*args, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(enc.model, "forward", small_memory)
    assert np.array_equal(enc.embed(items), expected)
    assert set(shapes) == {(8, 32), (4, 32), (2, 32)}  # 256 tokens / 32 = 8 rows, halved twice


@pytest.fixture(scope="module")
def analyze_rows():
    return [(i, t) for i, t in enumerate(texts(200, seed=7))]


def embed_task(encoder: str) -> list[dict]:
    return [{"task": "embed", "column": "vec", "model": encoder, "precision": "bf16"}]


def test_two_partitionings_give_identical_embeddings(spark, tiny_encoder, analyze_rows):
    from udfs import analyze

    df = spark.createDataFrame(analyze_rows, "id int, text string")
    shuffled = spark.createDataFrame(analyze_rows[::-1], "id int, text string").repartition(3)
    one = analyze(df.coalesce(1), embed_task(tiny_encoder)).select("id", "vec")
    other = analyze(shuffled, embed_task(tiny_encoder)).select("id", "vec")
    assert_frame_equal(other, one, atol=0.0)


def test_an_incremental_run_equals_a_full_run_exactly(spark, tiny_encoder, analyze_rows, tmp_path):
    from udfs import analyze

    full = analyze(spark.createDataFrame(analyze_rows, "id int, text string"), embed_task(tiny_encoder),
                   id_column="id")
    day1 = analyze(spark.createDataFrame(analyze_rows[:150], "id int, text string"), embed_task(tiny_encoder),
                   id_column="id")
    day1.write.parquet(str(tmp_path / "day1"))
    day2 = analyze(spark.createDataFrame(analyze_rows, "id int, text string"), embed_task(tiny_encoder),
                   previous=spark.read.parquet(str(tmp_path / "day1")), id_column="id")
    assert_frame_equal(day2.select("id", "vec"), full.select("id", "vec"), atol=0.0)
