"""Registry values are data, never paths: what a version's tags say is checked on the driver before any model
runs, a version whose files are gone fails there in one line, and a registry that cannot be read fails in one
line within a bounded time. Tampering happens on a model of its own (``trust-encoder``), restored after each test."""
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
import yaml

from tests.tiny_models import build_tiny_encoder
from udfs.errors import ModelReferenceError
from udfs import platform as textspark_platform
from udfs.models import loading, model_cache
from udfs.models.reference import ResolvedModel, parse_reference
from udfs.models.registry import client, register_folder, resolve

ROOT = Path(__file__).resolve().parents[1]
REF = "models:/trust-encoder@champion"
HEX = "0123456789abcdef" * 4
FINGERPRINT_ALLOWED = ("64 lowercase hex characters (the sha256 textspark registers), or none (a version "
                       "registered before fingerprints)")


@pytest.fixture(scope="module")
def version(tmp_path_factory, mlflow_registry) -> str:
    """A tiny encoder registered on its own, so that tampering with its tags touches no other test's model."""
    folder = build_tiny_encoder(tmp_path_factory.mktemp("trust-encoder"), seed=11)
    v, _ = register_folder("trust-encoder", task="embed", kind="hf_encoder", weights=folder,
                           params={"max_tokens": 64, "pooling": "mean", "normalize": True})
    return v


@contextmanager
def tag(version: str, key: str, value: str | None):
    """The version's tag ``key`` set to ``value`` (None: removed) for the block, then restored."""
    mlc = client()
    before = mlc.get_model_version("trust-encoder", version).tags.get(key)
    try:
        if value is None:
            mlc.delete_model_version_tag("trust-encoder", version, key)
        else:
            mlc.set_model_version_tag("trust-encoder", version, key, value)
        yield
    finally:
        if before is None:
            mlc.delete_model_version_tag("trust-encoder", version, key)
        else:
            mlc.set_model_version_tag("trust-encoder", version, key, before)


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the model cache holding a sentinel file."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "sentinel").write_text("keep me")
    return folder


def _survives(folder: Path) -> None:
    assert sorted(os.listdir(folder)) == ["sentinel"] and (folder / "sentinel").read_text() == "keep me"


def _as_tag_values(outside: Path) -> list[str]:
    """The outside folder as an absolute path and as a ``../`` path from the cache root."""
    return [str(outside), os.path.relpath(outside, loading.cache_root())]


def test_a_fingerprint_naming_an_outside_folder_fails_resolve_in_one_line_and_deletes_nothing(version, outside):
    for value in _as_tag_values(outside):
        with tag(version, "textspark.fingerprint", value):
            with pytest.raises(ModelReferenceError) as err:
                resolve(REF, task="embed")
        assert str(err.value) == (f"model: trust-encoder/{version} (from {REF!r}): tag textspark.fingerprint: "
                                  f"got {value!r}; allowed: {FINGERPRINT_ALLOWED}")
        _survives(outside)


def test_a_model_version_built_any_other_way_cannot_name_a_folder_outside_the_cache(version, outside):
    model_cache.clear()
    good = resolve(REF)
    for value in _as_tag_values(outside):
        bad = ResolvedModel(name=good.name, version=good.version, task=good.task, kind=good.kind, params=good.params,
                            fingerprint=value, tracking_uri=good.tracking_uri, registry_uri=good.registry_uri)
        with pytest.raises(ModelReferenceError) as err:
            loading.local_folder(bad)
        assert str(err.value) == (f"model: trust-encoder/{version}: fingerprint {value!r} is not a cache folder "
                                  f"name; allowed: {FINGERPRINT_ALLOWED}")
        _survives(outside)
    model_cache.clear()


def test_a_cache_entry_that_links_outside_the_cache_root_is_refused(version, outside, tmp_path, monkeypatch):
    """Defence in depth: the resolved real path must stay under the cache root (a planted symbolic link)."""
    monkeypatch.setenv("TEXTSPARK_CACHE", str(tmp_path / "cache"))
    model_cache.clear()
    model = resolve(REF)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / model.fingerprint).symlink_to(outside)
    with pytest.raises(ModelReferenceError) as err:
        loading.local_folder(model)
    link = str(tmp_path / "cache" / model.fingerprint)
    assert str(err.value) == (f"model: trust-encoder/{version}: cache folder {link!r} resolves to {str(outside)!r}, "
                              f"outside the cache root {str(tmp_path / 'cache')!r}")
    _survives(outside)
    model_cache.clear()


def test_an_analyze_job_with_an_outside_fingerprint_exits_2_in_one_line_and_deletes_nothing(version, outside, tmp_path):
    table = tmp_path / "in.parquet"
    pd.DataFrame({"id": [1, 2], "text": ["Shares rose.", "The match ended in a draw."]}).to_parquet(table)
    out = tmp_path / "out"
    conf = tmp_path / "job.yml"
    conf.write_text(yaml.safe_dump({"input": {"path": str(table), "text_column": "text", "id_column": "id"},
                                    "tasks": [{"task": "embed", "column": "embedding", "model": REF}],
                                    "output": {"path": str(out), "mode": "overwrite"}}))
    with tag(version, "textspark.fingerprint", str(outside)):
        proc = subprocess.run([sys.executable, "-m", "jobs.analyze", "--conf", str(conf)], cwd=ROOT, env=os.environ,
                              capture_output=True, text=True, timeout=600)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", (
        f"configuration error: {conf}: tasks[0].model: got {REF!r}; allowed: model: trust-encoder/{version} "
        f"(from {REF!r}): tag textspark.fingerprint: got {str(outside)!r}; allowed: {FINGERPRINT_ALLOWED}\n"))
    _survives(outside)
    assert sorted(os.listdir(tmp_path)) == ["in.parquet", "job.yml", "outside"]  # no output, no staging folder


@pytest.mark.parametrize("key, value, allowed", [
    ("textspark.fingerprint", HEX.upper(), FINGERPRINT_ALLOWED),
    ("textspark.fingerprint", HEX[:63], FINGERPRINT_ALLOWED),
    ("textspark.kind", "pickle", "bergamot, embedding_head, fasttext_lid, hf_classifier, hf_encoder, hf_seq2seq, "
                                 "kmeans_centroids, lingua_hybrid_lid, lingua_lid"),
    ("textspark.task", "../embed", "classify, cluster, embed, language, sentiment, summarize, translate"),
    ("textspark.params", "[1, 2]", "a JSON object"),
    ("textspark.params", "{not json", "a JSON object"),
])
def test_tag_values_textspark_never_writes_fail_resolve_in_one_line(version, key, value, allowed):
    with tag(version, key, value):
        with pytest.raises(ModelReferenceError) as err:
            resolve(REF)
    assert str(err.value) == (f"model: trust-encoder/{version} (from {REF!r}): tag {key}: got {value!r}; "
                              f"allowed: {allowed}")


def test_a_long_tag_value_is_cut_in_the_message(version):
    with tag(version, "textspark.fingerprint", "/x" * 300):
        with pytest.raises(ModelReferenceError) as err:
            resolve(REF)
    assert str(err.value) == (f"model: trust-encoder/{version} (from {REF!r}): tag textspark.fingerprint: "
                              f"got {'/x' * 100 + '...'!r}; allowed: {FINGERPRINT_ALLOWED}")


def test_a_version_without_a_fingerprint_is_cached_under_its_name_and_version(version, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTSPARK_CACHE", str(tmp_path / "cache"))
    model_cache.clear()
    with tag(version, "textspark.fingerprint", None):
        model = resolve(REF)
        folder = loading.local_folder(model)
    assert (model.fingerprint, folder) == ("", tmp_path / "cache" / f"trust-encoder-{version}")
    model_cache.clear()


@pytest.mark.parametrize("reference", ["..", ".hidden", "a b", "x" * 129, "models:/..@champion", "models:/-a/1",
                                       "models:/a%2F..@champion"])
def test_model_names_outside_the_allowed_pattern_are_refused(reference):
    with pytest.raises(ModelReferenceError) as err:
        parse_reference(reference)
    assert str(err.value).endswith("a model name is a letter or digit, then up to 127 letters, digits, '.', '_' "
                                   "or '-'")


def test_registering_a_name_outside_the_pattern_is_refused(tmp_path):
    from udfs.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        register_folder("my model", task="embed", kind="hf_encoder", weights=None, params={})
    assert str(err.value) == ("name: got 'my model'; allowed: a letter or digit, then up to 127 letters, digits, "
                              "'.', '_' or '-'")


@contextmanager
def moved_away(folder: Path):
    aside = folder.with_name(folder.name + ".aside")
    folder.rename(aside)
    try:
        yield
    finally:
        aside.rename(folder)


def _artifacts(version: str) -> tuple[str, Path]:
    """The version's ``textspark/`` artifact location (URI) and local folder."""
    uri = client().get_model_version_download_uri("trust-encoder", version) + "/artifacts/textspark"
    return uri, Path(urlparse(uri).path)


def test_a_version_whose_files_are_gone_fails_on_the_driver_in_one_line(version, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTSPARK_CACHE", str(tmp_path / "empty-cache"))
    model_cache.clear()
    uri, folder = _artifacts(version)
    with moved_away(folder):
        with pytest.raises(ModelReferenceError) as err:
            resolve(REF, task="embed")
    assert str(err.value) == (
        f"model: trust-encoder/{version} (from {REF!r}): its files are not in the artifact store: no textspark.json "
        f"under {uri}; register the model again (python -m jobs.register_models) or point the alias at a version "
        "whose files exist")
    assert not (tmp_path / "empty-cache").exists()


def test_a_version_cached_and_verified_on_this_host_needs_no_artifact_listing(version, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTSPARK_CACHE", str(tmp_path / "cache"))
    model_cache.clear()
    folder = loading.local_folder(resolve(REF))
    _, artifacts = _artifacts(version)
    with moved_away(artifacts):
        assert resolve(REF).fingerprint == folder.name  # served from the cache: the store is not asked
        (folder / "weights" / "vocab.txt").write_text("truncated")  # a damaged copy no longer counts
        with pytest.raises(ModelReferenceError, match="its files are not in the artifact store"):
            resolve(REF)
    model_cache.clear()


@pytest.fixture
def other_registry(tmp_path, monkeypatch):
    """MLflow pointed at ``uri`` for the test (set with the returned function), then back at the session's."""
    import mlflow

    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()

    def point(uri: str) -> str:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        return uri

    yield point
    mlflow.set_tracking_uri(saved[0])
    mlflow.set_registry_uri(saved[1])


@pytest.fixture
def locked(tmp_path, other_registry, monkeypatch):
    """A sqlite registry with its tables, held under an exclusive lock by another connection; its URI."""
    uri = other_registry(f"sqlite:///{tmp_path / 'locked.db'}")
    client().search_registered_models(max_results=1)  # creates the tables
    monkeypatch.setattr(textspark_platform, "SQLITE_WAIT_S", 1, raising=False)
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    yield uri
    holder.rollback()
    holder.close()


def test_a_locked_sqlite_registry_fails_resolve_in_one_line_within_the_wait(locked):
    started = time.monotonic()
    with pytest.raises(ModelReferenceError) as err:
        resolve("models:/tiny-encoder@champion")
    assert time.monotonic() - started < 5
    assert str(err.value) == (f"model: got 'models:/tiny-encoder@champion'; the MLflow registry {locked} cannot be "
                              "read: database is locked (waited 1 s: another process holds a write lock on it; "
                              "retry when it is done)")


def test_an_analyze_job_on_a_locked_registry_exits_2_in_one_line(locked, tmp_path, capsys):
    from jobs import analyze

    pd.DataFrame({"text": ["Shares rose."]}).to_parquet(tmp_path / "in.parquet")
    conf = tmp_path / "job.yml"
    conf.write_text(yaml.safe_dump({"input": {"path": str(tmp_path / "in.parquet"), "text_column": "text"},
                                    "tasks": [{"task": "embed", "column": "embedding",
                                               "model": "models:/tiny-encoder@champion"}],
                                    "output": {"path": str(tmp_path / "out"), "mode": "overwrite"}}))
    assert analyze.main(["--conf", str(conf)]) == 2
    captured = capsys.readouterr()
    ref = "models:/tiny-encoder@champion"
    assert (captured.out, captured.err) == ("", (
        f"configuration error: {conf}: tasks[0].model: got {ref!r}; allowed: model: got {ref!r}; the MLflow "
        f"registry {locked} cannot be read: database is locked (waited 1 s: another process holds a write lock on "
        "it; retry when it is done)\n"))
    assert sorted(os.listdir(tmp_path)) == ["in.parquet", "job.yml", "locked.db"]


def test_an_unreachable_registry_server_fails_resolve_in_one_line(other_registry, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = other_registry("http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(ModelReferenceError) as err:
        resolve("models:/tiny-encoder@champion")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"model: got 'models:/tiny-encoder@champion'; the MLflow registry {uri} cannot be "
                              f"read: API request to {uri}/api/2.0/mlflow/")
    assert "Connection refused" in message


def test_textspark_json_with_an_unknown_kind_is_refused_before_any_import(tmp_path):
    folder = tmp_path / "textspark"
    folder.mkdir()
    (folder / "textspark.json").write_text('{"format": 1, "kind": ["os:system"], "params": {}}')
    with pytest.raises(ValueError) as err:
        loading.build(folder, device="cpu", precision="fp32")
    assert str(err.value) == ("textspark.json kind: got ['os:system']; allowed: bergamot, embedding_head, "
                              "fasttext_lid, hf_classifier, hf_encoder, hf_seq2seq, kmeans_centroids, "
                              "lingua_hybrid_lid, lingua_lid")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/../../x", ""])
def test_file_names_in_a_versions_params_stay_inside_its_weights(tmp_path, name):
    """fasttext_lid's ``file`` and bergamot's ``pairs`` name files inside the registered weights folder."""
    from udfs.models.backends import inside
    from udfs.models.backends.fasttext_lid import LanguageDetector

    weights = tmp_path / "weights"
    (weights / "sub").mkdir(parents=True)
    with pytest.raises(ValueError) as err:
        LanguageDetector(weights, file=name)
    assert str(err.value) == f"file: got {name!r}; allowed: a name inside the registered weights folder"
    assert inside(weights, "sub", "pairs.en-pt") == (weights / "sub").resolve()


def test_a_model_reference_error_in_any_job_is_one_line_exit_2(capsys):
    """evaluate and train name models directly (not through a task): their command line prints one line too."""
    from udfs.io.cli import run_cli

    def execute():
        raise ModelReferenceError("model: got 'models:/gone@champion'; no registered model 'gone'.\nRegistered: x")

    assert run_cli(execute, print, source="evaluate.yml") == 2
    assert capsys.readouterr().err == ("configuration error: evaluate.yml: model: got 'models:/gone@champion'; no "
                                       "registered model 'gone'. Registered: x\n")
