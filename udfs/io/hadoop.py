"""Storage through Hadoop's FileSystem in Spark's JVM: the operations of udfs.io.storage.LocalStorage for every
other scheme (hdfs://, s3a://, gs://, abfss://, dbfs:, file:)."""
from __future__ import annotations

import contextlib
import errno
from typing import Iterator

ATOMIC_SCHEMES = ("hdfs", "viewfs", "file")  # Hadoop filesystems whose folder rename is atomic


class HadoopStorage:
    """The same operations through ``org.apache.hadoop.fs.FileSystem`` (the output's own filesystem)."""

    def __init__(self, spark, path: str):
        self._jvm = spark._jvm
        self._conf = spark._jsc.hadoopConfiguration()
        self._fs = self._path(path).getFileSystem(self._conf)
        scheme = self._fs.getUri().getScheme() or "file"
        self.atomic_rename = scheme in ATOMIC_SCHEMES

    def _path(self, path: str):
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def exists(self, path: str) -> bool:
        return bool(self._fs.exists(self._path(path)))

    def is_dir(self, path: str) -> bool:
        return self.exists(path) and bool(self._fs.getFileStatus(self._path(path)).isDirectory())

    def list(self, path: str) -> list[str]:
        if not self.is_dir(path):
            return []
        return sorted(str(s.getPath().getName()) for s in self._fs.listStatus(self._path(path)))

    def files(self, path: str) -> Iterator[str]:
        if not self.exists(path):
            return
        base = str(self._fs.makeQualified(self._path(path)).toUri().getPath()).rstrip("/")
        found = self._fs.listFiles(self._path(path), True)
        while found.hasNext():
            full = str(found.next().getPath().toUri().getPath())
            yield full[len(base) + 1:]

    def mkdirs(self, path: str) -> None:
        if not self._fs.mkdirs(self._path(path)):
            raise OSError(f"cannot create folder {path}")

    def rename(self, src: str, dst: str) -> None:
        if self.exists(dst):
            raise FileExistsError(errno.EEXIST, "rename target exists", dst)
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"rename {src} -> {dst} failed")

    def exchange(self, a: str, b: str) -> bool:
        return False

    def rmdir(self, path: str) -> None:
        try:
            if self.is_dir(path) and not self.list(path):
                self._fs.delete(self._path(path), False)
        except Exception:  # noqa: BLE001 - best effort: another job may be using the folder
            pass

    def delete(self, path: str) -> None:
        self._fs.delete(self._path(path), True)

    def write(self, path: str, data: bytes) -> None:
        """One create + close: on object stores the object becomes visible, whole, at close."""
        stream = self._fs.create(self._path(path), True)
        try:
            stream.write(bytearray(data))
        finally:
            stream.close()

    def create_new(self, path: str, data: bytes) -> bool:
        """Create ``path`` only where it does not exist; False when it does. Hadoop's ``createFile`` builder with
        ``overwrite(false)`` and the ``fs.option.create.conditional.overwrite`` option: atomic in HDFS's
        NameNode and, on S3A, a conditional PUT (``If-None-Match: *``) where the store supports it; elsewhere a
        check followed by a put (see udfs.io.lease)."""
        if self.exists(path):
            return False
        try:
            stream = self._fs.createFile(self._path(path)).overwrite(False) \
                .opt("fs.option.create.conditional.overwrite", "true").build()
            try:
                stream.write(bytearray(data))
            finally:
                stream.close()  # an object store's conditional PUT happens here
        except Exception as exc:  # noqa: BLE001 - FileAlreadyExistsException, 412 Precondition Failed via py4j
            if any(word in str(exc) for word in ("AlreadyExists", "Precondition", "412")) or self.exists(path):
                return False
            raise
        return True

    def modified(self, path: str) -> float:
        return self._fs.getFileStatus(self._path(path)).getModificationTime() / 1000.0

    @contextlib.contextmanager
    def lock(self, path: str) -> Iterator[None]:
        """No lock reaches across hosts here: the lease's own checks stand alone (see udfs.io.lease)."""
        yield

    def read(self, path: str) -> bytes:
        stream = self._fs.open(self._path(path))
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def link(self, src: str, dst: str) -> None:
        """A copy (Hadoop filesystems have no hard links)."""
        util = self._jvm.org.apache.hadoop.fs.FileUtil
        if not util.copy(self._fs, self._path(src), self._fs, self._path(dst), False, self._conf):
            raise OSError(f"copy {src} -> {dst} failed")
