"""One writer per output path: a lease beside the output, taken before any staging and held until the commit.

The lease is ``<parent>/_textspark_staging/<name>.lease``, a small JSON record of its owner: host, pid (and
the process's start time and the host's boot id, so a reused pid is not taken for the owner), the run id,
when the job started and its last heartbeat. It is created only where none exists (an atomic
create-if-absent), refreshed by a driver thread every ``heartbeat`` seconds, checked again just before the
commit, and deleted when the job ends.

Another job that finds a lease refuses in one line (:class:`LeaseHeld`, exit 3) unless the owner is gone:

- same host: its pid is not running (or runs another process than the one that took the lease);
- another host: its heartbeat is older than ``output.lease_timeout`` seconds (default 600).

A gone owner's lease is taken over; only then does :func:`udfs.io.commit.recover` touch the staging it left.

What is guaranteed where: on local disk the create is ``link(2)`` of a complete temp file (atomic), and the
read-decide-replace of a takeover and every heartbeat run under an ``flock`` (a file in the temp folder named
by the lease path's hash: udfs.io.storage.LocalStorage.lock), so two jobs on one host never both hold it. Through
Hadoop the create is ``createFile(overwrite=false)`` with ``fs.option.create.conditional.overwrite``: atomic in
HDFS's NameNode, a conditional PUT on S3A where the store supports it; elsewhere (and on stores without
conditional writes) a check followed by a put, where two jobs started within the same moment on different
hosts can both believe they hold the lease; the check before the commit narrows, but does not close, that
window. Run one scheduler per output there.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass

from udfs.io.storage import join, split
from udfs.errors import InputError

LEASE_SUFFIX = ".lease"


class LeaseHeld(InputError):
    """Another live job writes this output (exit 3, one line naming the owner and since when)."""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    pid_start: str  # the process's start time (clock ticks since boot, /proc/<pid>/stat), "" where unknown
    boot_id: str
    run_id: str
    started: float
    heartbeat: float

    @classmethod
    def me(cls, run_id: str) -> "Owner":
        now = time.time()
        return cls(socket.gethostname(), os.getpid(), _start_time(os.getpid()), _boot_id(), run_id, now, now)

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        return (f"host {self.host} pid {self.pid} (run {self.run_id}) since {since}, last heartbeat "
                f"{max(0, round(time.time() - self.heartbeat))} s ago")

    def gone(self, timeout: float) -> str | None:
        """Why this owner no longer holds the output (its job ended), or None while it may still run."""
        if self.host == socket.gethostname() and self.boot_id == _boot_id():
            if not _running(self.pid):
                return f"pid {self.pid} is not running"
            if self.pid_start and _start_time(self.pid) not in ("", self.pid_start):
                return f"pid {self.pid} is another process now"
            return None
        age = time.time() - self.heartbeat
        return f"no heartbeat for {round(age)} s (output.lease_timeout is {timeout:g})" if age > timeout else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def read_owner(storage, file: str) -> Owner | None:
    """A lease file's owner, or None where there is none. An unreadable one (being written on a filesystem
    whose create is not atomic, or not written by textspark) reads as an unknown owner whose last heartbeat
    is the file's modification time."""
    try:
        data = json.loads(storage.read(file))
        return Owner(**{k: data[k] for k in Owner.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a Java FileNotFoundException through py4j, or bad JSON
        if not storage.exists(file):
            return None
        when = storage.modified(file)
        return Owner("(unknown: unreadable lease)", -1, "", "", "(unknown)", when, when)


def lease_path(path: str, root: str) -> str:
    return join(root, split(path.rstrip("/"))[1] + LEASE_SUFFIX)


class Lease:
    """The lease on ``path`` for run ``run_id``; :meth:`acquire` before staging, :meth:`release` at the end."""

    def __init__(self, storage, path: str, root: str, run_id: str, *, timeout: float = 600,
                 source: str | None = None, key: str = "output.path"):
        self.storage, self.path, self.run_id, self.timeout = storage, path.rstrip("/"), run_id, float(timeout)
        self.file = lease_path(self.path, root)
        self.heartbeat = min(30.0, self.timeout / 4)
        self.owner = Owner.me(run_id)
        self.taken_over: str | None = None  # the gone owner whose lease this run took, in words
        self.source, self.key = source, key
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None  # set by the heartbeat thread when another job replaced the lease

    # ---- the record ----------------------------------------------------------------------------
    def _encode(self, owner: Owner) -> bytes:
        return json.dumps(asdict(owner), sort_keys=True).encode()

    def read(self) -> Owner | None:
        return read_owner(self.storage, self.file)

    def _locked(self):
        return self.storage.lock(f"{self.file}.lock")

    # ---- life cycle ----------------------------------------------------------------------------
    def acquire(self) -> "Lease":
        """Take the lease, or raise :class:`LeaseHeld` naming its live owner; starts the heartbeat."""
        with self._locked():
            for _ in range(3):
                if self.storage.create_new(self.file, self._encode(self.owner)):
                    break
                holder = self.read()
                if holder is None:
                    continue  # released meanwhile: try the create again
                why = holder.gone(self.timeout)
                if why is None:
                    raise LeaseHeld(self.key, self.path, f"another job is writing this output: {holder.describe()}; "
                                    "allowed: one job per output path at a time (wait for it, or write another path)",
                                    source=self.source)
                self._retire(holder)
                self.taken_over = f"took over the lease of run {holder.run_id} ({why})"
            else:
                raise LeaseHeld(self.key, self.path, "could not create the lease beside it (another job keeps "
                                "taking it); allowed: one job per output path at a time", source=self.source)
        self._thread = threading.Thread(target=self._beat, name=f"textspark-lease-{self.run_id}", daemon=True)
        self._thread.start()
        return self

    def _retire(self, holder: Owner) -> None:
        """Move a gone owner's lease aside and delete it. Where no flock reaches (another host on an object
        store), the moved file is checked to be the one judged gone and put back when it is not."""
        tomb = f"{self.file}.gone-{self.run_id}"
        try:
            self.storage.rename(self.file, tomb)
        except (FileNotFoundError, OSError):
            return  # removed meanwhile
        moved = read_owner(self.storage, tomb)
        if moved is not None and moved.run_id != holder.run_id:
            self.storage.rename(tomb, self.file)
            raise LeaseHeld(self.key, self.path, f"another job is writing this output: {moved.describe()}; "
                            "allowed: one job per output path at a time", source=self.source)
        self.storage.delete(tomb)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                with self._locked():
                    holder = self.read()
                    if holder is None or holder.run_id != self.run_id:
                        self.lost = f"the lease was replaced by {holder.describe() if holder else 'nobody'}"
                        return
                    self.storage.write(self.file, self._encode(Owner(**{**asdict(self.owner),
                                                                         "heartbeat": time.time()})))
            except Exception:  # noqa: BLE001 - a missed heartbeat; the check before the commit decides
                continue

    def check(self) -> None:
        """Before the commit: this run still holds the lease (raises LeaseHeld when it was taken over)."""
        holder = self.read()
        if self.lost or holder is None or holder.run_id != self.run_id:
            what = self.lost or (f"it is now held by {holder.describe()}" if holder else "it is gone")
            raise LeaseHeld(self.key, self.path, f"this run lost its lease on the output ({what}); nothing was "
                            "committed", source=self.source)

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still this run's."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            with self._locked():
                holder = self.read()
                if holder is not None and holder.run_id == self.run_id:
                    self.storage.delete(self.file)
        except Exception:  # noqa: BLE001 - the owner is gone then; the next job takes the lease over
            pass
