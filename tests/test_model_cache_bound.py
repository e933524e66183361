"""The per-worker model cache is bounded (least recently used first out, by count and by bytes), says one line
per eviction, and keeps values derived from a model only as long as the model."""
import gc
import logging

import pytest

from udfs.errors import ConfigError
from udfs.models import model_cache

LOGGER = "udfs.models.model_cache"
# conf/jobs/sample.yml's models (embed and summarize share e5; the language guard and translate's source
# detection use lid176): what the default bound keeps resident
SAMPLE_JOB = ["textspark-e5-small/1", "textspark-sentiment-multilingual/1", "topics/1", "textspark-lid176/1",
              "textspark-bergamot-enpt/1"]


class Fake:
    """A loaded model stand-in (weakly referenceable, like every backend's model)."""

    def __init__(self, name):
        self.name = name


@pytest.fixture
def cache(monkeypatch):
    """An empty cache with no bound set in the environment; ``load(name, size)`` goes through it and records
    each loader call in ``calls``."""
    monkeypatch.delenv(model_cache.MODELS_ENV, raising=False)
    monkeypatch.delenv(model_cache.BYTES_ENV, raising=False)
    model_cache.clear()
    calls = []

    def load(name, size=0):
        return model_cache.get(("fake", name), lambda: calls.append(name) or Fake(name), label=name,
                               size=lambda: size)

    yield load, calls
    model_cache.clear()


def _evictions(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_the_default_bound_keeps_the_sample_jobs_models_resident(cache, caplog):
    load, calls = cache
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(3):  # three partitions' worth of batches, each task in the job's order
            for name in SAMPLE_JOB:
                load(name)
    assert calls == SAMPLE_JOB
    assert model_cache.resident() == SAMPLE_JOB
    assert _evictions(caplog) == []
    assert model_cache.limits() == (8, None)


def test_past_the_bound_the_least_recently_used_model_goes_first(cache, caplog, monkeypatch):
    load, calls = cache
    monkeypatch.setenv(model_cache.MODELS_ENV, "2")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        a, b = load("a"), load("b")
        assert load("a") is a  # a hit: a is now the most recently used
        load("c")
        assert model_cache.resident() == ["a", "c"]
        load("b")  # evicted: loaded again, and it evicts a (c was used after a)
        load("c")
    assert calls == ["a", "b", "c", "b"]
    assert model_cache.resident() == ["b", "c"]
    assert _evictions(caplog) == [
        "textspark model cache: evicted b (least recently used): 3 models, over the bound of 2 "
        "(TEXTSPARK_MODEL_CACHE_MODELS)",
        "textspark model cache: evicted a (least recently used): 3 models, over the bound of 2 "
        "(TEXTSPARK_MODEL_CACHE_MODELS)",
    ]
    assert b is not load("b")  # the evicted instance is gone: a new one was built


def test_the_bound_by_bytes_evicts_until_the_models_fit_and_keeps_the_one_just_loaded(cache, caplog, monkeypatch):
    load, calls = cache
    monkeypatch.setenv(model_cache.BYTES_ENV, "1k")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load("small", 300)
        load("medium", 400)
        load("large", 500)  # 1200 bytes: small goes, 900 stay
        assert model_cache.resident() == ["medium", "large"]
        load("huge", 2000)  # over the bound on its own: every other model goes, it stays
    assert model_cache.resident() == ["huge"]
    assert _evictions(caplog) == [
        "textspark model cache: evicted small, 300 bytes (least recently used): 1200 bytes of models, "
        "over the bound of 1024 (TEXTSPARK_MODEL_CACHE_BYTES)",
        "textspark model cache: evicted medium, 400 bytes (least recently used): 2900 bytes of models, "
        "over the bound of 1024 (TEXTSPARK_MODEL_CACHE_BYTES)",
        "textspark model cache: evicted large, 500 bytes (least recently used): 2500 bytes of models, "
        "over the bound of 1024 (TEXTSPARK_MODEL_CACHE_BYTES)",
    ]
    assert calls == ["small", "medium", "large", "huge"]


def test_folder_verdicts_are_not_models_and_never_evicted(cache, monkeypatch):
    load, calls = cache
    monkeypatch.setenv(model_cache.MODELS_ENV, "1")
    before = model_cache.load_count()
    verdicts = [model_cache.get(("folder", str(i)), lambda i=i: f"/cache/{i}", count=False) for i in range(3)]
    load("a")
    load("b")
    assert model_cache.load_count() - before == 2
    assert model_cache.resident() == ["b"]
    assert [model_cache.get(("folder", str(i)), lambda: "reloaded", count=False) for i in range(3)] == verdicts


def test_a_derived_value_lives_as_long_as_its_model(cache, monkeypatch):
    load, _ = cache
    monkeypatch.setenv(model_cache.MODELS_ENV, "1")
    computed = []
    a = load("a")
    vectors = model_cache.derived(a, "labels", lambda: computed.append("a") or ["a-vectors"])
    assert model_cache.derived(a, "labels", lambda: computed.append("again") or None) is vectors
    assert model_cache.resident() == ["a"]  # derived values count against nothing
    load("b")  # evicts a; once nothing else holds a, its derived value is gone with it
    del a
    gc.collect()
    assert computed == ["a"]
    assert len(model_cache._derived) == 0


def test_an_eviction_returns_the_frozen_model_to_the_collector(cache, monkeypatch):
    load, _ = cache
    monkeypatch.setenv(model_cache.MODELS_ENV, "1")
    load("a")
    assert gc.get_freeze_count() > 0  # every load freezes the survivors
    unfrozen = []
    monkeypatch.setattr(model_cache.gc, "unfreeze", lambda: unfrozen.append(True))
    load("b")
    assert unfrozen == [True]


@pytest.mark.parametrize("name, value, allowed", [
    (model_cache.MODELS_ENV, "0", "a positive number of models"),
    (model_cache.MODELS_ENV, "many", "a positive number of models"),
    (model_cache.BYTES_ENV, "4 gigs", "a positive size: bytes, or a number with k, m, g or t (4g)"),
])
def test_a_bad_bound_fails_before_the_load_naming_the_setting(cache, monkeypatch, name, value, allowed):
    load, calls = cache
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load("a")
    assert str(err.value) == f"{name}: got {value!r}; allowed: {allowed}"
    assert calls == []


@pytest.mark.parametrize("value, limit", [("4g", 4 << 30), ("512m", 512 << 20), ("2048", 2048), ("16KB", 16 << 10)])
def test_sizes_read_as_spark_writes_them(monkeypatch, value, limit):
    monkeypatch.setenv(model_cache.BYTES_ENV, value)
    assert model_cache.limits().bytes == limit
