"""Shared test helpers: whole-frame comparison, a registered model run directly, catalog registration, a free
port, the wheel, a local-cluster profile, and faults injected into a job run as a subprocess (bench/faults.py
uses them too)."""
from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

from pyspark.sql import DataFrame
from pyspark.testing import assertDataFrameEqual

ROOT = Path(__file__).resolve().parents[1]


def assert_frame_equal(actual: DataFrame, expected: DataFrame, *, atol: float = 1e-5) -> None:
    """``assertDataFrameEqual(actual, expected, rtol=0, atol=atol)`` -- same schema (names and types,
    nested ones too; nullability ignored), same rows in any order, every float (inside arrays, maps and
    structs too) within ``atol`` -- and, on top of it, no NaN anywhere in ``actual``.

    Why not assertDataFrameEqual alone: pyspark 4.3 calls two floats different when
    ``abs(a - b) > atol + rtol * abs(b)``, which is False when either is NaN, so a NaN score or embedding
    component would pass for any expected number. ``expected`` must be a DataFrame built with an explicit
    schema: against a list of Rows assertDataFrameEqual checks no schema and compares structs by zipping
    their values, so a missing or misnamed field would pass.
    """
    assert isinstance(expected, DataFrame), "build `expected` as a DataFrame with an explicit schema"
    assertDataFrameEqual(actual, expected, rtol=0.0, atol=atol)
    nans = list(_nan_paths(actual.collect()))
    assert not nans, f"NaN in the actual DataFrame at {nans[:5]}"


def _nan_paths(value: Any, path: str = "") -> Iterator[str]:
    if hasattr(value, "asDict"):
        value = value.asDict(recursive=False)
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nan_paths(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _nan_paths(v, f"{path}[{i}]")
    elif isinstance(value, float) and math.isnan(value):
        yield path


def load_direct(reference: str):
    """The registered model ``reference`` built in this process on the CPU in fp32, as a worker builds it:
    what the tests compute expected values with."""
    from udfs.models.loading import build, local_folder
    from udfs.models.registry import resolve

    return build(local_folder(resolve(reference)), device="cpu", precision="fp32")


def register_catalog_entry(name: str) -> str:
    """Register conf/models.yml's entry ``name`` in the test registry (idempotent); its reference."""
    from jobs.register_models import register_entry
    from udfs.models.catalog import load_catalog

    entry = load_catalog()[name]
    register_entry(entry)
    return entry.reference


def free_port() -> int:
    """A TCP port nothing listens on now, picked by the OS (a bind to port 0), for a server a test starts: a
    fixed port (Spark Connect's default 15002) fails the tests whenever another server already holds it."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_wheel(out: Path) -> Path:
    """textspark's wheel, built into ``out`` from a copy of the checkout (links kept): no build/ is left in
    the checkout and no stale build/ of the checkout's ends up in the wheel."""
    source = out / "source"
    anywhere = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__")
    at_root = {"output", "data", "mlruns", "spark-warehouse"}  # a run's folders; udfs/data ships in the wheel

    def ignore(folder: str, names: list[str]) -> set[str]:
        return set(anywhere(folder, names)) | (at_root & set(names) if Path(folder) == ROOT else set())

    shutil.copytree(ROOT, source, symlinks=True, ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, cwd=out)
    return next(out.glob("textspark-*.whl"))


def cluster_profile(batch_rows: int) -> str:
    """A Spark profile for a local-cluster of 2 workers of 1 core (master, worker and executor JVMs), Arrow
    batches of ``batch_rows``."""
    return f"""master: local-cluster[2,1,1024]
log_level: WARN
conf:
  spark.ui.enabled: false
  spark.ui.showConsoleProgress: false
  spark.executor.memory: 900m
  spark.python.worker.reuse: true
  spark.sql.shuffle.partitions: 4
  spark.sql.execution.arrow.maxRecordsPerBatch: {batch_rows}
"""


# ---- faults: a job run as a subprocess, and what can be killed in it (only processes it started, by PID) ----

def process_tree(root: int) -> dict[int, int]:
    """Every live descendant of ``root`` (pid -> parent pid), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        for child in (c for c, p in parents.items() if p == pid):
            tree[child] = pid
            todo.append(child)
    return tree


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def python_workers(root: int) -> dict[int, int]:
    """The Python workers under ``root`` (pid -> parent): processes a ``pyspark.daemon`` forked (not the
    daemon itself), or ``pyspark.worker`` processes started without a daemon."""
    tree = process_tree(root)
    return {pid: parent for pid, parent in tree.items()
            if "pyspark.daemon" in cmdline(parent)
            or ("pyspark.worker" in cmdline(pid) and "pyspark.daemon" not in cmdline(pid))}


def busy(pids, window: float = 0.5, share: float = 0.1) -> int | None:
    """Among ``pids``, the one that used the most CPU over ``window`` seconds if it used at least ``share``
    of a core (a worker computing a task, not one idle between tasks); else None."""
    pids = list(pids)
    before = {pid: cpu_ticks(pid) for pid in pids}
    time.sleep(window)
    used = {pid: (cpu_ticks(pid) - before[pid]) / os.sysconf("SC_CLK_TCK") for pid in pids}
    best = max(pids, key=used.get, default=None)
    return best if best is not None and used[best] >= share * window else None


def committed_parts(output: Path) -> list[Path]:
    """Data files a finished task has committed into the output's staging folder (not a running attempt's)."""
    return [p for p in (output.parent / "_textspark_staging").glob(f"{output.name}-*/**/*.parquet")
            if "/_temporary/0/_temporary/" not in str(p)]


def kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_worker(output: Path, after_tasks: int = 1):
    """Fault: once ``after_tasks`` tasks have committed their output, SIGKILL a Python worker that is
    computing (the busiest one, if it uses CPU)."""
    def fault(driver: int) -> str | None:
        if len(committed_parts(output)) < after_tasks:
            return None
        pid = busy(python_workers(driver))
        if pid is None:
            return None
        kill([pid])
        return f"python worker {pid}"
    return fault


def kill_executor(output: Path, after_tasks: int = 1):
    """Fault: once ``after_tasks`` tasks have committed, SIGKILL the executor JVM of a computing Python worker."""
    def fault(driver: int) -> str | None:
        if len(committed_parts(output)) < after_tasks:
            return None
        tree, pid = process_tree(driver), busy(python_workers(driver))
        while pid in tree and "CoarseGrainedExecutorBackend" not in cmdline(pid):
            pid = tree[pid]
        if pid not in tree:
            return None
        kill([pid])
        return f"executor JVM {pid}"
    return fault


def kill_driver(output: Path):
    """Fault: once a task has committed, SIGKILL the driver and every process it started (a lost machine)."""
    def fault(driver: int) -> str | None:
        if not committed_parts(output):
            return None
        tree = process_tree(driver)
        kill([driver, *tree])
        return f"driver {driver} and its {len(tree)} processes"
    return fault


def stream_data_files(output: Path) -> set[Path]:
    """A stream output's data files (Parquet files outside ``_spark_metadata`` and other hidden folders)."""
    return {p for p in output.rglob("*.parquet") if not any(part.startswith(("_", "."))
                                                              for part in p.relative_to(output).parts)}


def kill_stream_driver(output: Path):
    """Fault: SIGKILL a stream's driver and every process it started while a micro-batch writes: once a data file
    that was not in ``output`` when the fault was made is complete (ends with Parquet's footer magic), before
    Spark's file sink lists the batch in ``_spark_metadata``."""
    before = stream_data_files(output) if output.exists() else set()

    def complete(path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                fh.seek(-4, os.SEEK_END)
                return path.stat().st_size > 12 and fh.read(4) == b"PAR1"
        except OSError:
            return False

    def fault(driver: int) -> str | None:
        if not output.exists() or not any(complete(p) for p in stream_data_files(output) - before):
            return None
        tree = process_tree(driver)
        kill([driver, *tree])
        return f"driver {driver} and its {len(tree)} processes"
    return fault


def run_job(conf: Path, logs: Path, *, fault=None, timeout: float = 600) -> dict:
    """``python -m jobs.analyze --conf conf`` in its own session; ``fault(driver_pid)`` is polled until it
    returns what it killed. Returns rc, seconds, stdout, stderr and the fault."""
    logs.mkdir(parents=True, exist_ok=True)
    started, injected = time.time(), None
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "jobs.analyze", "--conf", str(conf)], cwd=ROOT,
                                stdout=out, stderr=err, start_new_session=True,
                                env={**os.environ, "TEXTSPARK_TASK_LOGS": "1"})  # Spark's "Lost task" lines
        while proc.poll() is None:
            if fault is not None and injected is None:
                injected = fault(proc.pid)
            if time.time() - started > timeout:
                kill([proc.pid, *process_tree(proc.pid)])
                raise TimeoutError(f"{conf}: still running after {timeout} s")
            time.sleep(0.05)
    return {"rc": proc.returncode, "seconds": round(time.time() - started, 1), "fault": injected,
            "stdout": (logs / "stdout").read_text(), "stderr": (logs / "stderr").read_text()}


def write_conf(work: Path, name: str, table: Path, output: Path, tasks: list[dict], profile: str = "local",
               partitions: int = 8, mode: str = "overwrite") -> Path:
    """An analyze job's configuration file ``work/<name>.yml``: ``table`` (columns id, text) through ``tasks`` into
    ``output``, with the Spark ``profile`` and ``partitions`` inference partitions."""
    import yaml

    conf = work / f"{name}.yml"
    conf.write_text(yaml.safe_dump({
        "spark": {"profile": profile}, "input": {"path": str(table), "text_column": "text", "id_column": "id"},
        "tasks": tasks, "inference": {"partitions": partitions},
        "output": {"path": str(output), "mode": mode}}))
    return conf
