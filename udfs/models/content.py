"""What a registered version's folder holds: its fingerprint (registration) and its manifest (per-host cache).

``fingerprint`` is taken over the metadata and every weight file when a version is registered; a download
into the per-host cache writes a manifest (size + sha256 of every file) that ``check_folder`` verifies before
a process first uses the folder (udfs.models.loading). Backends read the manifest too (a head's copy of an
encoder is keyed by its content: udfs.models.backends.hf.content_key).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST = ".textspark-manifest.json"


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
