"""A stream's output folder holds only committed files: Spark's metadata logs (the file sink's
``_spark_metadata``, a file source's ``<checkpoint>/sources/0``) read as Spark reads them, the committed files
listed (:func:`committed_files`) and the rest removed (:func:`remove_uncommitted`)."""
from __future__ import annotations

import json
import re
from urllib.parse import unquote, urlsplit

from udfs.errors import InputError
from udfs.io.storage import hidden, join, storage_for

SINK_LOG = "_spark_metadata"  # the file sink's log, in the output folder


# -- the output folder: committed files only ------------------------------------------------------------------

def prepare_output(path: str, spark, *, source: str | None = None,
                   what: tuple[str, str] | None = None) -> list[str]:
    """Before the query: refuse a folder (``what``: a table's key and name) of data files no stream committed;
    delete a crashed run's files."""
    storage = storage_for(path, spark)
    if not storage.exists(join(path, SINK_LOG)):
        data = [rel for rel in storage.files(path) if not hidden(rel)] if storage.is_dir(path) else []
        if data:
            files = "1 data file" if len(data) == 1 else f"{len(data)} data files"
            key, value = what or ("output.path", path)
            new = "table" if what else "folder"
            raise InputError(key, value, f"it holds {files} no stream committed (no {SINK_LOG}): Spark "
                             "readers of a stream's output see only the files its log lists, so these rows would "
                             f"vanish for them; write the stream to a new {new}", source=source)
        return []
    return remove_uncommitted(path, spark)


def committed_files(path: str, spark=None) -> list[str]:
    """The data files of a stream's output folder that a micro-batch committed, as Spark's readers see them:
    what ``pd.read_parquet(committed_files(path))`` reads while a stream writes, or after a crash before the
    next run removed the rest. Local folders give plain paths, others the URIs in the log.

    Spark's file sink logs each batch's files in ``<path>/_spark_metadata/<batch id>`` and, every
    ``spark.sql.streaming.fileSink.log.compactInterval`` batches (10), all files up to it in
    ``<batch id>.compact``; this reads the latest compact file and the batches after it, as Spark does."""
    storage = storage_for(path, spark)
    if not storage.exists(join(path, SINK_LOG)):
        raise ValueError(f"{path}: no {SINK_LOG} folder: not the output of a stream")
    local = urlsplit(path).scheme in ("", "file")
    return [plain(uri) if local else uri for uri in sink_files(storage, path)]


def remove_uncommitted(path: str, spark=None) -> list[str]:
    """Delete the data files of a stream's output folder that no micro-batch committed; the files removed.
    Only while no query writes the folder: a file of a running batch is not committed yet."""
    storage = storage_for(path, spark)
    if not storage.exists(join(path, SINK_LOG)):
        return []
    committed = sink_files(storage, path)
    paths = {plain(uri) for uri in committed}
    names = {uri.rsplit("/", 1)[-1] for uri in committed}  # a folder moved since: its log names other paths
    removed = []
    for rel in storage.files(path):
        full = join(path, rel)
        if hidden(rel) or f"{plain(path).rstrip('/')}/{rel}" in paths or rel.rsplit("/", 1)[-1] in names:
            continue
        storage.delete(full)
        removed.append(full)
    return removed


def sink_files(storage, path: str) -> list[str]:
    """The committed files in the file sink's log of ``path`` (URIs as logged), adds minus deletes in order."""
    files: dict[str, None] = {}
    for _, entries in read_log(storage, join(path, SINK_LOG)):
        for entry in entries:
            if entry.get("action", "add") == "delete":
                files.pop(entry["path"], None)
            else:
                files[entry["path"]] = None
    return list(files)


def log_batches(storage, folder: str) -> dict[int, str]:
    """The files of a Spark metadata log by batch id: ``<n>`` or ``<n>.compact`` (hidden ones, ``.0.crc`` and
    temporaries, are not part of it)."""
    batches = {}
    for name in storage.list(folder):
        found = re.fullmatch(r"(\d+)(\.compact)?", name)
        if found:
            batches[int(found.group(1))] = name
    return batches


def read_log(storage, folder: str) -> list[tuple[int, list[dict]]]:
    """A Spark metadata log (the file sink's ``_spark_metadata``, a file source's ``<checkpoint>/sources/0``) as
    Spark reads it: the latest ``<n>.compact`` (every entry up to batch n) and each batch after it, in order;
    each file is a version line ``v1`` and one JSON entry per line."""
    batches = log_batches(storage, folder)
    if not batches:
        return []
    compacts = [b for b, name in batches.items() if name.endswith(".compact")]
    first, last = (max(compacts) if compacts else min(batches)), max(batches)
    log = []
    for batch in range(first, last + 1):
        if batch not in batches:
            raise InputError(folder, batch, f"Spark's log lacks batch {batch} (it has {sorted(batches)})")
        lines = storage.read(join(folder, batches[batch])).decode("utf-8").split("\n")
        if lines[0].strip() != "v1":
            raise InputError(join(folder, batches[batch]), lines[0][:20], "a Spark log file starts with v1")
        log.append((batch, [json.loads(line) for line in lines[1:] if line.strip()]))
    return log


def plain(uri: str) -> str:
    """The path of a URI, decoded (``file:///in/a%20b.json`` -> ``/in/a b.json``); a plain path unchanged."""
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme else uri
