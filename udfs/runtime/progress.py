"""Live progress on the driver's stderr: per task, rows scored of the total, rows/s and an ETA, every few seconds.

Workers add each batch to a Spark accumulator per task (exact, merged when a Spark task ends) and send their running count in a UDP datagram to the driver (live within a Spark task; best effort)."""
from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import sys
import threading
import time
from typing import Any, Mapping

from udfs.runtime import costs as cost

QUIET = "TEXTSPARK_QUIET"  # "1": no progress and no model-load lines (jobs' --quiet sets it; workers inherit it)
INTERVAL = "TEXTSPARK_PROGRESS_SECONDS"  # seconds between progress lines (default DEFAULT_INTERVAL)
DEFAULT_INTERVAL = 5.0
CONNECT_NOTE = ("no live progress over Spark Connect (a Connect client has no SparkContext, so no accumulators); "
                "watch the server's Spark UI (Jobs and Stages tabs, port 4040 of its driver by default): "
                "the summary prints when the job ends")


def is_quiet() -> bool:
    """Whether ``TEXTSPARK_QUIET`` turns the progress and model-load lines off (driver and workers)."""
    return os.environ.get(QUIET, "").strip().lower() not in ("", "0", "false", "no")


def say(line: str) -> None:
    """One ``textspark:`` line on stderr, unless quiet."""
    if not is_quiet():
        print(f"textspark: {line}", file=sys.stderr, flush=True)


class RowCounter:
    """Pickled into a task's UDF (``UdfPlan.progress``): the worker calls :meth:`add` after each Arrow batch."""

    def __init__(self, accumulator, channel: tuple[str, int, str] | None, index: int, skip_nulls: bool, costs=None):
        self.accumulator, self.channel, self.index, self.skip_nulls = accumulator, channel, index, skip_nulls
        self.costs = costs  # (the task's cost accumulator, the job's start) (udfs.runtime.costs), or None

    def add(self, texts, clock: cost.Clock | None = None) -> None:
        """Count a batch (an Arrow array of texts; ``skip_nulls``: its non-null rows, the rows computed by an
        incremental run); ``clock``: started before the batch, its cost."""
        n = len(texts) - (texts.null_count if self.skip_nulls else 0)
        if n <= 0:
            return
        if self.costs is not None and clock is not None:
            self.costs[0].add(clock.spent(n, texts))
        if self.accumulator is not None:
            self.accumulator.add(n)
        if self.channel is not None:
            _send(self.channel, self.index, n)

    def loaded(self, seconds: float, device: str) -> None:
        if self.costs is not None:
            self.costs[0].add(cost.load_vector(seconds, device))


_sent: dict[tuple, int] = {}  # worker side: (token, task index, stage, partition, attempt) -> rows so far
_sender: socket.socket | None = None


def _send(channel: tuple[str, int, str], index: int, n: int) -> None:
    """Tell the driver how many rows this Spark task attempt has counted for task ``index`` (never raises)."""
    global _sender
    try:
        from pyspark import TaskContext

        tc = TaskContext.get()
        where = (tc.stageId(), tc.partitionId(), tc.attemptNumber()) if tc is not None else (0, 0, 0)
        key = (channel[2], index, *where)
        _sent[key] = _sent.get(key, 0) + n
        if _sender is None:
            _sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        message = " ".join(map(str, (channel[2], index, *where, _sent[key])))
        _sender.sendto(message.encode(), (channel[0], channel[1]))
    except Exception:  # noqa: BLE001 - progress must never fail a batch
        pass


def is_connect(spark) -> bool:
    """A Spark Connect session (no SparkContext on the client)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


class Progress:
    """``with progress(spark, tasks, total_rows):`` around the Spark action that scores the rows.

    ``tasks``: PlannedTasks (named by their column) or a mapping name -> UdfPlan. Build the DataFrame from
    :attr:`tasks` (the same, each plan carrying its counter); ``total_rows`` (an int, or name -> int/None)
    may be set any time before ``with``. A task whose total is 0 is not shown. ``costs``: also each task's
    model loads and compute (:meth:`costs`), quiet or not."""

    def __init__(self, spark, tasks, total_rows: int | Mapping[str, int | None] | None = None, *,
                 interval: float | None = None, quiet: bool | None = None, skip_nulls: bool = False,
                 costs: bool = False):
        self.total_rows = total_rows
        self.interval = float(interval if interval is not None else os.environ.get(INTERVAL) or DEFAULT_INTERVAL)
        self.quiet = is_quiet() if quiet is None else bool(quiet)
        self.remote = is_connect(spark)
        self.names = list(tasks) if isinstance(tasks, Mapping) else [t.column for t in tasks]
        self._accumulators: list = []
        self._socket: socket.socket | None = None
        self._token = ""
        self._live: dict[tuple, tuple[int, int]] = {}  # (index, stage, partition) -> (attempt, rows)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = time.monotonic()  # restarted by ``with``
        self.tasks, self._costs = tasks, []
        if (self.quiet and not costs) or self.remote or not self.names:
            return
        sc = spark.sparkContext
        self._costs = cost.accumulators(sc, len(self.names)) if costs else [None] * len(self.names)
        self._accumulators = [] if self.quiet else [sc.accumulator(0) for _ in self.names]
        channel = None if self.quiet else self._listen(sc)
        counters = [RowCounter(a, channel, i, skip_nulls, c and (c, time.time())) for i, (a, c) in
                    enumerate(zip(self._accumulators or [None] * len(self.names), self._costs))]
        if isinstance(tasks, Mapping):
            self.tasks = {name: _counted(p, c) for (name, p), c in zip(tasks.items(), counters)}
        else:
            self.tasks = [dataclasses.replace(t, plan=_counted(t.plan, c)) for t, c in zip(tasks, counters)]

    def _listen(self, sc) -> tuple[str, int, str] | None:
        """A UDP socket on the driver's address for the workers' live counts (None where it cannot bind)."""
        try:
            host = socket.gethostbyname(sc.getConf().get("spark.driver.host", "127.0.0.1"))
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socket.bind((host, 0))
            self._socket.settimeout(0.2)
            self._token = secrets.token_hex(8)
            return host, self._socket.getsockname()[1], self._token
        except OSError:
            self._socket = None
            return None

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        if self.quiet or not self.names:
            return self
        if self.remote:
            say(CONNECT_NOTE)
            return self
        self._thread = threading.Thread(target=self._report, name="textspark-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self._drain()
            if exc_type is None:
                self._print(final=True)
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def accumulated(self) -> list[int]:
        """Rows per task in the accumulators: exact, merged as each Spark task ends."""
        return [int(a.value) for a in self._accumulators]

    def costs(self) -> dict[str, dict]:
        """Per task: its ``costs`` entry (udfs.runtime.costs.entry), exact once the Spark tasks end."""
        plans = self.tasks.values() if isinstance(self.tasks, Mapping) else [t.plan for t in self.tasks]
        return {name: cost.entry(c.value, p.model.label)
                for name, c, p in zip(self.names, self._costs, plans) if c is not None}

    def live(self) -> list[int]:
        """Rows per task from the workers' datagrams: within running Spark tasks too (best effort)."""
        live = [0] * len(self.names)
        for (i, _, _), (_, rows) in list(self._live.items()):
            live[i] += rows
        return live

    def counts(self) -> list[int]:
        """Rows counted per task so far: the accumulated or the live count, the larger."""
        return [max(a, n) for a, n in zip(self.accumulated(), self.live())] if self._accumulators else []

    def totals(self) -> list[int | None]:
        t = self.total_rows
        return [t.get(name) for name in self.names] if isinstance(t, Mapping) else [t] * len(self.names)

    def lines(self, *, final: bool = False, now: float | None = None) -> list[str]:
        """The progress lines: tasks with the same count and total share one."""
        elapsed = max((now if now is not None else time.monotonic()) - self._started, 1e-9)
        groups: dict[tuple, list[str]] = {}
        for name, done, total in zip(self.names, self.counts(), self.totals()):
            if total != 0:
                groups.setdefault((done, total), []).append(name)
        return [f"{', '.join(names)}: {describe(done, total, elapsed, final=final)}"
                for (done, total), names in groups.items()]

    def _print(self, *, final: bool = False) -> None:
        for line in self.lines(final=final):
            say(line)

    def _report(self) -> None:
        due = time.monotonic() + self.interval
        while not self._stop.is_set():
            if self._socket is not None:
                self._receive()
            else:
                self._stop.wait(0.2)
            if time.monotonic() >= due:
                self._print()
                due = time.monotonic() + self.interval

    def _receive(self) -> None:
        try:
            data = self._socket.recv(256)
        except (OSError, socket.timeout):
            return
        self._record(data)

    def _drain(self) -> None:
        if self._socket is None:
            return
        self._socket.setblocking(False)
        while True:
            try:
                self._record(self._socket.recv(256))
            except OSError:
                return

    def _record(self, data: bytes) -> None:
        try:
            token, *fields = data.decode().split()
            index, stage, partition, attempt, rows = map(int, fields)
        except ValueError:
            return
        if token != self._token or not 0 <= index < len(self.names):
            return
        key = (index, stage, partition)
        seen = self._live.get(key, (-1, 0))
        if (attempt, rows) > seen:  # a newer attempt restarts the count; datagrams may come out of order
            self._live[key] = (attempt, rows)


def describe(done: int, total: int | None, seconds: float, *, final: bool = False) -> str:
    """``1,200/2,000 rows (60%), 41.3 rows/s, ETA 19 s`` (without a total: rows and rows/s)."""
    rate = done / seconds
    if final:
        scored = f"{done:,}/{total:,}" if total is not None else f"{done:,}"
        return f"{scored} rows scored in {seconds:.1f} s ({rate:.1f} rows/s)"
    if total is None:
        return f"{done:,} rows scored, {rate:.1f} rows/s"
    share = f"{done:,}/{total:,} rows ({100 * done // max(total, 1)}%)"
    if done == 0:
        return f"{share}, {seconds:.0f} s: the first batch is running (a worker loads its models first)"
    left = max(total - done, 0) / rate
    return f"{share}, {rate:.1f} rows/s, ETA {_duration(left)}"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def _counted(plan, counter: RowCounter):
    return dataclasses.replace(plan, progress=counter)


def progress(spark, tasks, total_rows: int | Mapping[str, int | None] | None = None, **options) -> Progress:
    """See :class:`Progress` (``options``: interval, quiet, skip_nulls, costs)."""
    return Progress(spark, tasks, total_rows, **options)


class Steps:
    """Training progress: ``<what>: epoch 1/2, step 40/310 (13%), loss 0.6931, 1.9 steps/s, ETA 2 min 22 s``
    on stderr every ``every`` steps or ``interval`` seconds (default 15 s, or $TEXTSPARK_PROGRESS_SECONDS),
    and at the last step; the loss is the mean over the steps since the previous line."""

    def __init__(self, what: str, steps: int, epochs: int, *, every: int | None = None,
                 interval: float | None = None):
        self.what, self.steps, self.epochs, self.every = what, max(int(steps), 1), int(epochs), every
        self.interval = float(interval if interval is not None else os.environ.get(INTERVAL) or 15.0)
        self.done, self._losses = 0, []
        self._started = self._last = time.monotonic()

    def step(self, epoch: int, loss: float) -> None:
        """After a step of ``epoch`` (1-based) whose loss was ``loss``."""
        self.done += 1
        self._losses.append(float(loss))
        now = time.monotonic()
        if (self.done == self.steps or now - self._last >= self.interval
                or (self.every and self.done % self.every == 0)):
            say(self.line(epoch, now))
            self._last, self._losses = now, []

    def line(self, epoch: int, now: float) -> str:
        rate = self.done / max(now - self._started, 1e-9)
        loss = sum(self._losses) / max(len(self._losses), 1)
        head = (f"{self.what}: epoch {epoch}/{self.epochs}, step {self.done}/{self.steps} "
                f"({100 * self.done // self.steps}%), loss {loss:.4f}, {rate:.1f} steps/s")
        if self.done >= self.steps:
            return f"{head}, done in {_duration(now - self._started)}"
        return f"{head}, ETA {_duration((self.steps - self.done) / rate)}"
