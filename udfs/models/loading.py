"""Worker side: fetch a resolved model version through MLflow and build it by its kind, once per worker.

The per-host cache ($TEXTSPARK_CACHE/<fingerprint>) is verified before a process first uses a folder: each
download writes a manifest (size + sha256 of every file) into the folder before it is renamed into place,
and a folder that no longer matches it (a truncated or edited weight file, a missing or extra file) is
downloaded again, with a warning naming the folder and the first bad file. A version's folder is always a
direct child of the cache root, real paths resolved (``cache_folder``): no registry value names another one.
"""
from __future__ import annotations

import hashlib
import importlib
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
from udfs.models.kinds import BUILDERS
from udfs.models.reference import ResolvedModel
from udfs.platform import first_line

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = ".textspark-manifest.json"


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


# ---- content: fingerprint (registration) and manifest (per-host cache) ------------------------------

def fingerprint(files_dir: Path | None, meta: dict[str, Any]) -> str:
    """sha256 over the metadata and every file (relative path + bytes) of ``files_dir``."""
    h = hashlib.sha256(json.dumps({"format": FORMAT_VERSION, **meta}, sort_keys=True, default=str).encode())
    if files_dir is not None:
        for path in _files(files_dir):
            h.update(str(path.relative_to(files_dir)).encode())
            _hash_file(path, h)
    return h.hexdigest()


def matches_fingerprint(folder: Path, fp: str) -> bool | None:
    """Whether a ``textspark/`` folder holds exactly what was registered with fingerprint ``fp`` (weights,
    metadata and extra files, nothing else); None where its format is not this code's (cannot tell).

    The metadata is read back from textspark.json, so parameters whose JSON form does not read back as
    written (a mapping with integer keys) give False for an intact folder: callers download it again.
    """
    try:
        meta = json.loads((folder / "textspark.json").read_text())
    except (OSError, ValueError):
        return False
    if meta.pop("format", None) != FORMAT_VERSION or not isinstance(meta.get("extra", {}), dict):
        return None
    meta.pop("name", None)
    extra = meta.get("extra", {})
    expected = {"textspark.json", *extra}
    top = {p.relative_to(folder).parts[0] for p in _files(folder) if not _is_manifest(folder, p)}
    weights = folder / "weights"
    if top - {"weights"} != expected or fingerprint(weights if weights.is_dir() else None, meta) != fp:
        return False
    return all((folder / name).read_text() == json.dumps(content, indent=2, default=str)
               for name, content in extra.items())


def write_manifest(folder: Path) -> None:
    """Record the size and sha256 of every file of ``folder`` in ``folder/MANIFEST`` (written atomically)."""
    files = {str(p.relative_to(folder)): [p.stat().st_size, _hash_file(p, hashlib.sha256()).hexdigest()]
             for p in _files(folder) if not _is_manifest(folder, p)}
    tmp = folder / f"{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"format": 1, "files": files}, indent=1, sort_keys=True))
    os.replace(tmp, folder / MANIFEST)


def check_folder(folder: Path, fp: str = "", *, hashes: bool = True) -> str | None:
    """Why ``folder`` cannot be trusted (naming the first bad file), or None when it matches its manifest
    (``hashes=False``: its file names and sizes; a folder without a manifest then fails).

    A folder written by an older textspark has no manifest: it is checked once against the version's
    fingerprint (exact), and given a manifest when it matches.
    """
    try:
        recorded = json.loads((folder / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        if not hashes:
            return "no manifest"
        if not fp:
            return "no manifest (written by an older textspark) and no fingerprint to check it against"
        if matches_fingerprint(folder, fp):
            try:
                write_manifest(folder)
            except OSError:  # a read-only cache: verified all the same, again in the next process
                pass
            return None
        return "no manifest (written by an older textspark), and its files do not match the fingerprint"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest {MANIFEST} ({type(exc).__name__})"
    found = {str(p.relative_to(folder)): p for p in _files(folder) if not _is_manifest(folder, p)}
    if missing := sorted(set(recorded) - set(found)):
        return f"missing file {missing[0]}"
    if extra := sorted(set(found) - set(recorded)):
        return f"unexpected file {extra[0]}"
    for name in sorted(recorded):  # sizes first: a truncated file costs no hashing
        if found[name].stat().st_size != recorded[name][0]:
            return f"{name} has {found[name].stat().st_size} bytes, {recorded[name][0]} expected"
    if not hashes:
        return None
    for name in sorted(recorded):
        if _hash_file(found[name], hashlib.sha256()).hexdigest() != recorded[name][1]:
            return f"{name} does not match its sha256"
    return None


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _is_manifest(folder: Path, path: Path) -> bool:
    """The manifest, or one being written (``<MANIFEST>.<pid>.tmp``)."""
    return path.parent == folder and path.name.startswith(MANIFEST)


def _hash_file(path: Path, h):
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h


# ---- building -----------------------------------------------------------------------------------

def build(folder: Path, *, device: str, precision: str, options: dict[str, Any] | None = None) -> Any:
    """Construct the in-memory model for a ``textspark/`` folder by its kind."""
    meta = json.loads((folder / "textspark.json").read_text())
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind not in BUILDERS:  # the only module names a folder can lead to
        raise ValueError(f"textspark.json kind: got {kind!r}; allowed: {', '.join(sorted(BUILDERS))}")
    if not isinstance(meta.get("params", {}), dict):
        raise ValueError(f"textspark.json params: got {meta['params']!r:.80}; allowed: a JSON object")
    params = {**meta.get("params", {}), **(options or {})}
    params.pop("precision", None)  # a plan-level setting (resolved per worker), passed explicitly
    module, _, attr = BUILDERS[kind].partition(":")
    return getattr(importlib.import_module(module), attr)(folder, device=device, precision=precision, **params)


def load(model: ResolvedModel, *, device: str, precision: str = "fp32") -> Any:
    """The worker's shared instance of ``model`` on ``device`` (loaded once per Python worker)."""
    key = (model.name, model.version, model.fingerprint, device, precision)
    return model_cache.get(key, lambda: _build(model, device=device, precision=precision))


def _build(model: ResolvedModel, *, device: str, precision: str) -> Any:
    """``build`` of the version's local folder; a failure names the version (ModelLoadError): the job prints
    it as its one line (jobs.common.worker_error), not a backend's message alone."""
    folder = local_folder(model)  # its ModelReferenceError already names the version
    try:
        return build(folder, device=device, precision=precision)
    except Exception as exc:  # noqa: BLE001 - any backend's failure: transformers, torch, fastText, a native engine
        raise ModelLoadError(f"{model.label} (kind {model.kind}) did not load on {device}: "
                             f"{type(exc).__name__}: {first_line(exc)}") from exc
