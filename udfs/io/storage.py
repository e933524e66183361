"""The few filesystem operations an output commit needs, for local disk (os/shutil) and for every other
scheme (hdfs://, s3a://, gs://, abfss://, dbfs:, file:) through Hadoop's FileSystem in Spark's JVM (udfs/io/hadoop.py).

Over Spark Connect the client has no JVM: a local path (no scheme, or file:) is written through os/shutil
when the Connect server runs on this machine (``SPARK_REMOTE=local[N]``, ``sc://localhost``), so both see
the same disk; anything else (a remote server, or an s3a://, dbfs:, abfss://... path) is refused by
:func:`connect_problem`, because the commit's renames and deletes have no Connect equivalent.

``atomic_rename`` says whether renaming a folder is one atomic step (local disk, HDFS) or a copy of each
file followed by a delete (object stores: S3, GCS, Azure blob, DBFS); udfs.io.commit picks its protocol by it.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from udfs.io.hadoop import HadoopStorage
from udfs.runtime.progress import is_connect

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_local(path: str) -> bool:
    return path.startswith("/")


def os_path(path: str) -> str:
    """``file:///x`` and ``file:/x`` as the plain path ``/x``; other paths unchanged."""
    return "/" + path.removeprefix("file:").lstrip("/") if path.startswith("file:/") else path


def connect_problem(path: str, spark) -> str | None:
    """Why a job cannot commit ``path`` over this Spark Connect session, or None (not Connect, or a local
    path with a Connect server on this machine)."""
    if spark is None or not is_connect(spark):
        return None
    host = spark.client.host
    if is_local(os_path(path)) and host in LOCAL_HOSTS:
        return None
    return (f"over Spark Connect (server {host}) a job commits only local paths (no scheme, or file:) with a "
            "Connect server on this machine (SPARK_REMOTE=local[N] or sc://localhost): the atomic commit "
            "renames and deletes files, which a Connect client cannot do on the server's filesystem; run the "
            "job with a JVM driver (spark-submit, a Databricks job cluster) for this output")


def storage_for(path: str, spark=None) -> "LocalStorage | HadoopStorage":
    """Local absolute paths use os/shutil (no Spark needed); over Spark Connect, file: paths too (see
    connect_problem); anything else Hadoop's FileSystem."""
    if is_local(path) or (spark is not None and is_connect(spark) and is_local(os_path(path))):
        return LocalStorage()
    if spark is None:
        raise ValueError(f"{path}: a non-local path needs a Spark session to reach its filesystem")
    if is_connect(spark):
        raise ValueError(connect_problem(path, spark))
    return HadoopStorage(spark, path)


def hidden(rel: str) -> bool:
    """Spark's rule: a file or folder whose name starts with ``_`` or ``.`` is not data."""
    return any(part.startswith(("_", ".")) for part in rel.split("/"))


def join(parent: str, *names: str) -> str:
    return "/".join([parent.rstrip("/"), *names])


def split(path: str) -> tuple[str, str]:
    """(parent, name) of a path or URI; the parent of ``s3a://bucket/out`` is ``s3a://bucket``."""
    parent, _, name = path.rstrip("/").rpartition("/")
    return (parent or "/"), name


class LocalStorage:
    """Local disk; paths may also be file: URIs (the same path on this machine)."""

    atomic_rename = True

    def exists(self, path: str) -> bool:
        path = os_path(path)
        return os.path.lexists(path)

    def is_dir(self, path: str) -> bool:
        path = os_path(path)
        return os.path.isdir(path)

    def list(self, path: str) -> list[str]:
        path = os_path(path)
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def files(self, path: str) -> Iterator[str]:
        """Every file under ``path``, relative to it."""
        path = os_path(path)
        for folder, _, names in os.walk(path):
            for name in sorted(names):
                yield os.path.relpath(os.path.join(folder, name), path)

    def mkdirs(self, path: str) -> None:
        path = os_path(path)
        os.makedirs(path, exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        src, dst = os_path(src), os_path(dst)
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "rename target exists", dst)
        os.rename(src, dst)

    def exchange(self, a: str, b: str) -> bool:
        """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
        a, b = os_path(a), os_path(b)
        fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
        if fn is None:
            return False
        at_fdcwd, rename_exchange = -100, 2
        if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
            return True
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
            return False
        raise OSError(code, os.strerror(code), a)

    def rmdir(self, path: str) -> None:
        """Remove ``path`` if it is an empty folder."""
        path = os_path(path)
        try:
            os.rmdir(path)
        except OSError:
            pass

    def delete(self, path: str) -> None:
        path = os_path(path)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)

    def write(self, path: str, data: bytes) -> None:
        """Written to a temporary name, flushed to disk, then renamed: the file appears whole or not at all."""
        path = os_path(path)
        tmp = _synced(f"{path}.tmp-{os.getpid()}", data)
        os.replace(tmp, path)

    def read(self, path: str) -> bytes:
        path = os_path(path)
        with open(path, "rb") as fh:
            return fh.read()

    def create_new(self, path: str, data: bytes) -> bool:
        """Write ``path`` whole only if it does not exist (a complete temp file hard-linked into place: atomic);
        False when it exists."""
        path = os_path(path)
        tmp = _synced(f"{path}.new-{os.getpid()}-{uuid.uuid4().hex[:8]}", data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.remove(tmp)

    def modified(self, path: str) -> float:
        return os.path.getmtime(os_path(path))

    @contextlib.contextmanager
    def lock(self, path: str) -> Iterator[None]:
        """An exclusive lock between the processes of this host on ``path`` (an flock on a file named by the
        path's hash in the temp folder, so nothing is left beside the output)."""
        import fcntl
        import hashlib
        import tempfile

        folder = Path(tempfile.gettempdir()) / "textspark-locks"
        folder.mkdir(mode=0o1777, exist_ok=True)
        name = hashlib.sha256(os.path.realpath(os_path(path)).encode()).hexdigest()[:32]
        fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def link(self, src: str, dst: str) -> None:
        """A hard link (no bytes copied; a copy across filesystems)."""
        src, dst = os_path(src), os_path(dst)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def _synced(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` and flush it to disk; returns ``path``."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return path
