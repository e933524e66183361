"""One job run's output folder: checks before any Spark work, the staging folder Spark writes into, the commit
(udfs/io/commit.py: a crash at any moment leaves the previous complete output or the new one).

One job writes one output path at a time, enforced by a lease beside the output (udfs/io/lease.py): a job takes
it before it recovers or stages anything (so recovery only ever touches what a gone job left), checks it is
still its own before the commit, and releases it at the end (:meth:`Output.close`); a second job on the path
refuses in one line (exit 3).
"""
from __future__ import annotations

from contextlib import contextmanager

from udfs.errors import InputError
from udfs.io.commit import STAGING, Commit, new_run_id, recover
from udfs.io.jobconf import OutputConf
from udfs.io.lease import Lease
from udfs.io.storage import connect_problem, hidden, is_local, join, split, storage_for


class Output:
    """One job run's output: checks before any Spark work, the staging folder Spark writes into, the commit.

    A local path is checked (and crashed runs recovered) when this is built, before Spark starts; any other
    scheme when :meth:`bind` gives it the Spark session (over Spark Connect: see storage.connect_problem)."""

    def __init__(self, conf: OutputConf, *, source: str | None = None):
        self.conf, self.source = conf, source
        self.path = conf.path.rstrip("/")
        self.storage = self._commit = self.lease = None
        self.existed, self.recovered, self.spark = False, [], None
        if is_local(self.path):
            self._open(None)

    def bind(self, spark) -> "Output":
        problem = connect_problem(self.path, spark)
        if problem:
            self.close()
            raise self._error(problem)
        self.spark = spark
        if self.storage is None:
            self._open(spark)
        return self

    def _error(self, problem: str) -> InputError:
        return InputError("output.path", self.path, problem, source=self.source)

    def _open(self, spark) -> None:
        s = storage_for(self.path, spark)
        if s.exists(self.path) and not s.is_dir(self.path):
            raise self._error("allowed: a folder path (this is a file)")
        above = split(self.path)[0]
        while is_local(above) and above != "/" and not s.exists(above):
            above = split(above)[0]
        if is_local(above) and not s.is_dir(above):
            raise self._error(f"allowed: a folder path that is not under a file ({above} is a file)")
        commit = Commit(s, self.path, new_run_id())
        try:
            s.mkdirs(commit.root)
            s.write(join(commit.root, f".probe-{commit.run_id}"), b"")
            s.delete(join(commit.root, f".probe-{commit.run_id}"))
        except Exception as exc:  # noqa: BLE001 - OSError locally, a Java IOException through py4j
            raise self._error(f"cannot write next to it ({_reason(exc)})") from None
        self.storage, self._commit = s, commit
        # one writer per path: nothing next to the output is touched before the lease is this run's
        self.lease = take_lease(s, self.conf, commit.root, commit.run_id, source=self.source)
        self.recovered = [self.lease.taken_over] if self.lease.taken_over else []
        self.recovered += recover(s, self.path)
        self.existed = s.exists(self.path)
        if self.existed and self.conf.mode in ("error", "errorifexists"):
            self.close()
            raise self._error(f"the output exists and mode is {self.conf.mode}; allowed: a new path, or mode "
                              "overwrite, append or ignore")
        if self.skip:
            self.close()

    def close(self) -> None:
        """Release the lease and remove the (then empty) staging root; safe to call more than once."""
        if self.lease is not None:
            self.lease.release()
            self.lease = None
        if self._commit is not None:
            self.storage.rmdir(self._commit.root)

    def __enter__(self) -> "Output":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def skip(self) -> bool:
        """mode: ignore on an existing output: nothing is written."""
        return self.existed and self.conf.mode == "ignore"

    @property
    def appending(self) -> bool:
        return self.existed and self.conf.mode == "append"

    @property
    def stage(self) -> str:
        return self._commit.stage

    @property
    def run_id(self) -> str:
        return self._commit.run_id

    def _existing(self, table: str):
        """The existing output's table, or None when it holds no data file yet."""
        folder = join(self.path, table) if table else self.path
        if not any(not hidden(rel) for rel in self.storage.files(folder)):
            return None
        return self.spark.read.format(self.conf.format).load(folder)

    def previous(self):
        """The committed output (never a staging folder: a crashed run's is recovered or removed first), or None."""
        return self._existing("") if self.existed else None

    def check_append(self, df, *, table: str = "") -> None:
        """mode: append: the new rows' columns must be the existing output's (names, order, types)."""
        old = self._existing(table) if self.appending else None
        if old is None:
            return
        where = f"{table}: " if table else ""
        mismatch = schema_mismatch(old.schema, df.schema)
        if mismatch:
            raise self._error(f"mode append: {where}{mismatch}; nothing was written")

    def check_ids(self, df, id_column: str | None, *, table: str = "") -> None:
        """mode: append with an id column: refuse ids the existing output already holds."""
        old = self._existing(table) if self.appending and id_column else None
        if old is None or id_column not in old.columns:
            return
        dupes = df.select(id_column).join(old.select(id_column), on=id_column, how="left_semi")
        count = dupes.count()
        if count:
            few = [r[0] for r in dupes.distinct().orderBy(id_column).limit(5).collect()]
            raise self._error(f"mode append: {count} rows have input.id_column {id_column!r} values already in "
                              f"the output (e.g. {', '.join(map(repr, few))}); nothing was written")

    def add_existing(self, tables: tuple[str, ...] = ("",)) -> None:
        """mode: append: the existing output's data files join the staged ones (hard links on local disk,
        copies elsewhere), so the commit replaces the folder with old + new rows."""
        if not self.appending:
            return
        for table in tables:
            folder = join(self.path, table) if table else self.path
            for rel in self.storage.files(folder):
                if not hidden(rel):
                    target = join(self.stage, table, rel) if table else join(self.stage, rel)
                    if self.storage.exists(target):
                        raise OSError(f"append: {target} exists in the staged output")
                    self.storage.link(join(folder, rel), target)

    def commit(self, manifest: str) -> None:
        self.lease.check()  # still this run's: a job judged gone (no heartbeat) must not commit over its successor
        self._commit.commit(manifest)

    @contextmanager
    def staging(self):
        """Removes the staging folder when the body fails (the previous output is untouched)."""
        try:
            yield self.stage
        except BaseException:
            try:
                self.storage.delete(self.stage)
                self.storage.rmdir(self._commit.root)
            except Exception:  # noqa: BLE001 - the next run's recover() removes it
                pass
            raise


def take_lease(storage, conf: OutputConf, root: str, run_id: str, *, source: str | None) -> Lease:
    """The lease on ``conf.path`` for ``run_id`` (LeaseHeld when a live job holds it); the staging root
    ``root`` is removed again, if empty, when it cannot be taken."""
    try:
        return Lease(storage, conf.path, root, run_id, timeout=conf.lease_timeout, source=source).acquire()
    except BaseException:
        storage.rmdir(root)
        raise


@contextmanager
def writer_lease(conf: OutputConf, spark, *, source: str | None = None):
    """The output's lease alone, held while the body runs: a stream's output, which Spark's file sink commits
    batch by batch, is still written by one job at a time."""
    s = storage_for(conf.path, spark)
    root = join(split(conf.path.rstrip("/"))[0], STAGING)
    s.mkdirs(root)
    lease = take_lease(s, conf, root, new_run_id(), source=source)
    try:
        yield lease
    finally:
        lease.release()
        s.rmdir(root)


def schema_mismatch(old, new) -> str | None:
    """The first column (by position) whose name or type differs, in words; None when they match."""
    def describe(field) -> str:
        return f"{field.name!r} {field.dataType.simpleString()}" if field else "no column"

    for i in range(max(len(old.fields), len(new.fields))):
        a = old.fields[i] if i < len(old.fields) else None
        b = new.fields[i] if i < len(new.fields) else None
        if a is None or b is None or (a.name, a.dataType.simpleString()) != (b.name, b.dataType.simpleString()):
            return f"column {i} is {describe(a)} in the existing output but {describe(b)} in this run's rows"
    return None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    lines = [line for line in str(text).splitlines() if "Exception" in line] or [str(text)]
    return lines[0].strip()[:300]
