"""Shared test helpers: whole-frame comparison, a registered model run directly, catalog registration, a free
port, the wheel, a local-cluster profile."""
from __future__ import annotations

import math
import shutil
import socket
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

from pyspark.sql import DataFrame
from pyspark.testing import assertDataFrameEqual


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
    shutil.copytree(Path(__file__).resolve().parents[1], source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "output", "data", "mlruns", "spark-warehouse"))
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
