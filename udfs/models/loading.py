"""Worker side: fetch a resolved model version through MLflow and build it by its kind, once per worker.

The per-host cache ($TEXTSPARK_CACHE/<fingerprint>) is verified before a process first uses a folder: each
download writes a manifest (size + sha256 of every file) into the folder before it is renamed into place,
and a folder that no longer matches it (a truncated or edited weight file, a missing or extra file) is
downloaded again, with a warning naming the folder and the first bad file. A version's folder is always a
direct child of the cache root, real paths resolved (``cache_folder``): no registry value names another one.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from udfs.errors import ModelLoadError, ModelReferenceError
from udfs.models import model_cache
from udfs.models.content import (FORMAT_VERSION, MANIFEST, check_folder, fingerprint,  # noqa: F401 - re-exported
                                 matches_fingerprint, write_manifest)
from udfs.models.kinds import builder
from udfs.models.reference import ResolvedModel
from udfs.platform import first_line

log = logging.getLogger(__name__)


def cache_root() -> Path:
    return Path(os.environ.get("TEXTSPARK_CACHE") or Path.home() / ".cache" / "textspark" / "models")


def local_folder(model: ResolvedModel) -> Path:
    """The version's ``textspark/`` folder on this host, downloaded through MLflow on first use.

    Cached per host under $TEXTSPARK_CACHE by the version's content fingerprint (so two registries that
    both have a "version 1" never collide); a download lands in a temp folder and is renamed into place.
    Verified once per process (the verdict lives in ``model_cache``): a folder that fails is replaced.
    """
    target = cache_folder(model)
    return model_cache.get(("folder", str(target)), lambda: _checked(model, target), count=False)


def cache_folder(model: ResolvedModel) -> Path:
    """Where this host caches the version: ``cache_root() / model.cache_name()``, which must still be a direct
    child of the cache root once real paths are resolved (a link planted in the cache is refused too)."""
    root = cache_root()
    target = root / model.cache_name()
    real = target.resolve()
    if real.parent != root.resolve():
        raise ModelReferenceError(f"model: {model.label}: cache folder {str(target)!r} resolves to {str(real)!r}, "
                                  f"outside the cache root {str(root)!r}")
    return target


def holds(model: ResolvedModel) -> bool:
    """Whether this host's cache holds the version, whole at a glance: its manifest names every file at its
    recorded size (no hashing; a process still verifies the folder fully before its first use)."""
    if not model.fingerprint:  # <name>-<version> may be another registry's version 1: ask the registry
        return False
    folder = cache_folder(model)
    return folder.is_dir() and check_folder(folder, model.fingerprint, hashes=False) is None


def _checked(model: ResolvedModel, target: Path) -> Path:
    if target.is_dir() and check_folder(target, model.fingerprint) is None:  # the usual case: no lock
        return target
    with file_lock(target.parent / f".{target.name}.lock"):  # one download per host; others wait, then check
        if not target.is_dir():
            _download(model, target)
        elif (problem := check_folder(target, model.fingerprint)) is not None:
            log.warning("model cache %s: %s; downloading %s/%s again", target, problem, model.name, model.version)
            _download(model, target)
    return target


def _download(model: ResolvedModel, target: Path) -> None:
    """Download into a temp folder beside ``target``, write its manifest there, then rename it into place
    (a stale ``target`` is first moved into the temp folder, and removed with it)."""
    import mlflow

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        mlflow.set_tracking_uri(model.tracking_uri)
        mlflow.set_registry_uri(model.registry_uri)
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{model.uri}/artifacts/textspark",
                                                        dst_path=str(tmp)))
        write_manifest(path)
        if target.exists():
            os.replace(target, tmp / "stale")
        try:
            os.replace(path, target)
        except OSError:  # placed meanwhile by a process the lock does not reach (a cache shared between hosts)
            if check_folder(target, model.fingerprint) is not None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes on this host (advisory, on ``path``; none where fcntl is absent)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ---- building -----------------------------------------------------------------------------------

def build(folder: Path, *, device: str, precision: str, options: dict[str, Any] | None = None) -> Any:
    """Construct the in-memory model for a ``textspark/`` folder by its kind (udfs.models.kinds)."""
    meta = json.loads((folder / "textspark.json").read_text())
    make = builder(meta.get("kind"))  # a registered builder: the only code a folder can lead to
    if not isinstance(meta.get("params", {}), dict):
        raise ValueError(f"textspark.json params: got {meta['params']!r:.80}; allowed: a JSON object")
    params = {**meta.get("params", {}), **(options or {})}
    params.pop("precision", None)  # a plan-level setting (resolved per worker), passed explicitly
    return make(folder, device=device, precision=precision, **params)


def load(model: ResolvedModel, *, device: str, precision: str = "fp32") -> Any:
    """The worker's shared instance of ``model`` on ``device`` (loaded once per Python worker, kept while the
    bounded cache holds it: udfs.models.model_cache)."""
    key = (model.name, model.version, model.fingerprint, device, precision)
    return model_cache.get(key, lambda: _build(model, device=device, precision=precision),
                           label=f"{model.label} ({model.kind}, {device}, {precision})",
                           size=lambda: folder_bytes(cache_folder(model)))


def folder_bytes(folder: Path) -> int:
    """The bytes of every file under ``folder`` (a version's size on disk: the cache's bound by bytes)."""
    try:
        return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    except OSError:  # unknown: counts as nothing against the bound
        return 0


def _build(model: ResolvedModel, *, device: str, precision: str) -> Any:
    """``build`` of the version's local folder; a failure names the version (ModelLoadError): the job prints
    it as its one line (udfs.io.cli.worker_error), not a backend's message alone."""
    folder = local_folder(model)  # its ModelReferenceError already names the version
    try:
        return build(folder, device=device, precision=precision)
    except Exception as exc:  # noqa: BLE001 - any backend's failure: transformers, torch, fastText, a native engine
        raise ModelLoadError(f"{model.label} (kind {model.kind}) did not load on {device}: "
                             f"{type(exc).__name__}: {first_line(exc)}") from exc
