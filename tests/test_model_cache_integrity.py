"""The per-host model cache is verified before a process first uses a folder, and downloaded again when
it no longer matches what was downloaded (a truncated weight file, a missing or an extra file)."""
import json
import logging
import os
import shutil

import numpy as np
import pytest

from tests.tiny_models import build_tiny_encoder
from udfs.models import loading, model_cache
from udfs.models.registry import register_folder, resolve

TEXTS = ["The match ended in a draw.", "Shares rose after the company reported strong profits."]


@pytest.fixture(scope="module")
def registered(tmp_path_factory, mlflow_registry):
    """A tiny encoder registered on its own (its reference)."""
    folder = build_tiny_encoder(tmp_path_factory.mktemp("cache-encoder"), seed=5)
    register_folder("cache-encoder", task="embed", kind="hf_encoder", weights=folder,
                    params={"max_tokens": 64, "pooling": "mean", "normalize": True})
    return "models:/cache-encoder@champion"


@pytest.fixture
def cached(registered, tmp_path, monkeypatch):
    """The encoder downloaded into a fresh per-host cache by a fresh process: (model, folder, vectors)."""
    monkeypatch.setenv("TEXTSPARK_CACHE", str(tmp_path / "cache"))
    model_cache.clear()
    model = resolve(registered)
    vectors = loading.load(model, device="cpu").embed(TEXTS)
    yield model, loading.local_folder(model), vectors
    model_cache.clear()


def _reload(model):
    """A fresh process's view: no verdicts, no loaded models; the folder, the model and its vectors."""
    model_cache.clear()
    folder = loading.local_folder(model)
    return folder, loading.load(model, device="cpu").embed(TEXTS)


def _manifest(folder):
    return json.loads((folder / loading.MANIFEST).read_text())["files"]


def test_a_download_writes_the_manifest_inside_the_folder_before_it_is_renamed_into_place(cached, monkeypatch):
    model, folder, _ = cached
    files = _manifest(folder)
    assert "weights/model.safetensors" in files and "textspark.json" in files
    assert files["weights/model.safetensors"][0] == (folder / "weights/model.safetensors").stat().st_size
    assert not list(folder.parent.glob(".download-*")) and not list(folder.glob("*.tmp"))
    seen = []
    real_replace = os.replace

    def replace(src, dst):  # the folder that is renamed into place already holds its manifest
        if str(dst) == str(folder):
            seen.append((loading.MANIFEST in os.listdir(src), _manifest(type(folder)(src)) == files))
        return real_replace(src, dst)

    shutil.rmtree(folder)
    monkeypatch.setattr(loading.os, "replace", replace)
    _reload(model)
    assert seen == [(True, True)]


@pytest.mark.parametrize("damage, named", [
    (lambda f: (f / "weights/model.safetensors").write_bytes((f / "weights/model.safetensors").read_bytes()[:1000]),
     "weights/model.safetensors has 1000 bytes"),
    (lambda f: (f / "weights/vocab.txt").unlink(), "missing file weights/vocab.txt"),
    (lambda f: (f / "weights/adapter_config.json").write_text("{}"), "unexpected file weights/adapter_config.json"),
    (lambda f: (f / "weights/config.json").write_text(
        (f / "weights/config.json").read_text().replace('"hidden_act": "gelu"', '"hidden_act": "relu"')),
     "weights/config.json does not match its sha256"),
])
def test_a_damaged_cache_folder_is_downloaded_again_with_a_warning(cached, caplog, damage, named):
    model, folder, vectors = cached
    damage(folder)
    with caplog.at_level(logging.WARNING, logger="udfs.models.loading"):
        again, new_vectors = _reload(model)
    assert again == folder
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"model cache {folder}: {named}")
    assert warning.endswith(f"; downloading cache-encoder/{model.version} again")
    assert loading.check_folder(folder) is None
    np.testing.assert_array_equal(new_vectors, vectors)
    assert not list(folder.parent.glob(".download-*"))


def test_verification_runs_once_per_process_per_folder(cached, monkeypatch):
    model, folder, _ = cached
    calls = []
    real = loading.check_folder
    monkeypatch.setattr(loading, "check_folder", lambda *a: calls.append(a) or real(*a))
    for _ in range(3):
        loading.local_folder(model)
        loading.load(model, device="cpu")
    assert calls == []  # this process already verified (downloaded) it
    model_cache.clear()
    for _ in range(3):
        loading.local_folder(model)
    assert len(calls) == 1


def test_a_folder_from_an_older_textspark_is_checked_against_the_fingerprint_and_adopted(cached, caplog):
    model, folder, vectors = cached
    (folder / loading.MANIFEST).unlink()
    mtime = (folder / "weights/model.safetensors").stat().st_mtime_ns
    with caplog.at_level(logging.WARNING, logger="udfs.models.loading"):
        _, new_vectors = _reload(model)
    assert not caplog.records  # matched exactly: kept, not downloaded again
    assert (folder / "weights/model.safetensors").stat().st_mtime_ns == mtime
    assert _manifest(folder)["weights/model.safetensors"][0] == (folder / "weights/model.safetensors").stat().st_size
    np.testing.assert_array_equal(new_vectors, vectors)


def test_an_older_folder_that_does_not_match_the_fingerprint_is_downloaded_again(cached, caplog):
    model, folder, vectors = cached
    (folder / loading.MANIFEST).unlink()
    (folder / "weights/model.safetensors").write_bytes(b"\0" * 64)
    assert loading.matches_fingerprint(folder, model.fingerprint) is False
    with caplog.at_level(logging.WARNING, logger="udfs.models.loading"):
        _, new_vectors = _reload(model)
    assert "do not match the fingerprint" in caplog.text
    assert loading.check_folder(folder, model.fingerprint) is None
    np.testing.assert_array_equal(new_vectors, vectors)


def test_a_load_freezes_the_workers_objects_out_of_the_collectors_view():
    """Spark's daemon runs gc.collect() after every task: a loaded model's objects must not be walked again."""
    import gc

    gc.unfreeze()
    try:
        model_cache.get(("freeze-test", 1), lambda: [object() for _ in range(1000)])
        assert gc.get_freeze_count() > 1000
        gc.unfreeze()
        model_cache.get(("freeze-test", "folder"), lambda: "verdict", count=False)  # a cache verdict is no load
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        model_cache.clear()


def test_past_the_bound_a_worker_drops_its_least_recently_used_model_and_says_which(cached, tiny_encoder,
                                                                                      monkeypatch, caplog):
    """Two registered versions through loading.load with room for one: each load evicts the other (one
    warning line naming the version, its kind, device, precision and size on disk, and the bound), and an
    evicted version loads again, giving the same vectors."""
    model, folder, vectors = cached
    other = resolve(tiny_encoder)
    monkeypatch.setenv(model_cache.MODELS_ENV, "1")
    before = model_cache.load_count()
    with caplog.at_level(logging.WARNING, logger="udfs.models.model_cache"):
        loading.load(other, device="cpu")
        again = loading.load(model, device="cpu").embed(TEXTS)
    sizes = {m.name: sum(size for size, _ in _manifest(loading.local_folder(m)).values())
             + (loading.local_folder(m) / loading.MANIFEST).stat().st_size for m in (model, other)}
    assert [r.getMessage() for r in caplog.records if r.name == "udfs.models.model_cache"] == [
        f"textspark model cache: evicted cache-encoder/{model.version} (hf_encoder, cpu, fp32), "
        f"{sizes['cache-encoder']} bytes (least recently used): 2 models, over the bound of 1 "
        "(TEXTSPARK_MODEL_CACHE_MODELS)",
        f"textspark model cache: evicted tiny-encoder/{other.version} (hf_encoder, cpu, fp32), "
        f"{sizes['tiny-encoder']} bytes (least recently used): 2 models, over the bound of 1 "
        "(TEXTSPARK_MODEL_CACHE_MODELS)",
    ]
    assert model_cache.load_count() - before == 2
    assert model_cache.resident() == [f"cache-encoder/{model.version} (hf_encoder, cpu, fp32)"]
    np.testing.assert_array_equal(again, vectors)
