"""The atomic commit of an output folder: a crash at any moment leaves the previous complete output or the new one.

A run writes everything (data, plot, manifest) into ``<parent>/_textspark_staging/<name>-<run id>/`` on the
output's own filesystem, then commits it in place of ``<path>``:

- local disk and HDFS (a folder rename is atomic): the manifest is written last into staging; then staging
  and ``<path>`` are swapped in one step (Linux ``renameat2(RENAME_EXCHANGE)``), or where that is not
  available ``<path>`` -> ``<...>.previous``, staging -> ``<path>``; then the previous output is deleted.
- object stores (a rename copies file by file): a commit record holding the manifest is written first;
  ``<path>/_textspark_manifest.json`` is deleted, the old files move to ``<...>.previous`` and the new ones
  to ``<path>`` one file at a time, and the manifest is written last. A folder holding the manifest is
  complete; readers should read only such folders.

:func:`recover` finishes what a crash interrupted: it restores a ``.previous`` where ``<path>`` is missing,
completes a commit whose record exists, and removes stale staging.
"""
from __future__ import annotations

import json
import re
import time
import uuid

from udfs.io.storage import join, split

MANIFEST = "_textspark_manifest.json"
STAGING = "_textspark_staging"
_RUN_ID = r"\d{8}T\d{6}-[0-9a-f]{8}"


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


class Commit:
    """The places one run uses next to ``path``: its staging folder, the retired output, the commit record."""

    def __init__(self, storage, path: str, run_id: str):
        self.storage, self.path, self.run_id = storage, path.rstrip("/"), run_id
        parent, name = split(self.path)
        self.root = join(parent, STAGING)
        self.stage = join(self.root, f"{name}-{run_id}")
        self.previous = f"{self.stage}.previous"
        self.record = f"{self.stage}.commit.json"

    def commit(self, manifest: str) -> None:
        """Put the staged output (plus ``manifest``) in place of ``path``."""
        s = self.storage
        if s.atomic_rename:
            s.write(join(self.stage, MANIFEST), manifest.encode())
            if not s.exists(self.path):
                s.mkdirs(split(self.path)[0])
                s.rename(self.stage, self.path)
            elif s.exchange(self.stage, self.path):
                s.delete(self.stage)  # holds the previous output now
            else:
                s.rename(self.path, self.previous)
                s.rename(self.stage, self.path)
                s.delete(self.previous)
        else:
            self._record("retire", manifest)
            self._finish("retire", manifest)
        s.rmdir(self.root)

    def _record(self, step: str, manifest: str) -> None:
        self.storage.write(self.record, json.dumps({"step": step, "manifest": manifest}).encode())

    def _finish(self, step: str, manifest: str) -> None:
        """The object-store commit from ``step`` on; every step can be repeated after a crash."""
        s = self.storage
        if step == "retire":
            s.delete(join(self.path, MANIFEST))  # from here on readers see no committed output at path
            move_files(s, self.path, self.previous)
            self._record("install", manifest)
        move_files(s, self.stage, self.path)
        s.write(join(self.path, MANIFEST), manifest.encode())
        s.delete(self.previous)
        s.delete(self.record)

    def recover(self) -> str | None:
        s = self.storage
        done = None
        if s.exists(self.record):
            record = json.loads(s.read(self.record))
            self._finish(record["step"], record["manifest"])
            done = f"completed the interrupted commit of run {self.run_id}"
        elif s.exists(self.previous):
            if s.exists(self.path):
                s.delete(self.previous)
            else:
                s.rename(self.previous, self.path)
                done = f"restored the previous output (run {self.run_id} was interrupted mid-commit)"
        s.delete(self.stage)
        return done


def move_files(s, src: str, dst: str) -> None:
    """Move every file of ``src`` into ``dst``, one file at a time; repeatable after a crash (a file that is
    already at ``dst``, e.g. copied before the crash, is deleted from ``src``)."""
    if not s.exists(src):
        return
    for rel in list(s.files(src)):
        target = join(dst, rel)
        if s.exists(target):
            s.delete(join(src, rel))
        else:
            s.mkdirs(split(target)[0])
            s.rename(join(src, rel), target)
    s.delete(src)


def recover(storage, path: str) -> list[str]:
    """Finish or undo what crashed runs left next to ``path``; returns what was done."""
    parent, name = split(path.rstrip("/"))
    root = join(parent, STAGING)
    pattern = re.compile(rf"{re.escape(name)}-({_RUN_ID})(\.previous|\.commit\.json)?")
    runs = sorted({m.group(1) for m in map(pattern.fullmatch, storage.list(root)) if m})
    done = [d for d in (Commit(storage, path, run).recover() for run in runs) if d]
    storage.rmdir(root)
    return done
