"""The user's data folder and the local catalog that outlives the Spark session.

``data_home()`` is ``$XDG_DATA_HOME/textspark`` (by default ``~/.local/share/textspark``): the MLflow registry
(``mlflow.db``) and, for a Spark profile with ``catalog: local`` (the shipped ``local`` one), the catalog:

- ``metastore_db/``: a Hive metastore (the Derby and Hive jars pyspark ships) holding the databases and tables;
- ``warehouse/``: the managed tables' files (``warehouse/<schema>.db/<table>``, ``warehouse/<table>``).

So a job's ``output.table`` is there for ``get_spark("local").table(name)`` in any later process.

Embedded Derby lets one JVM at a time open the database, and keeps it until that JVM stops or shuts it down.
So the catalog is opened only when needed and handed back right after:

- Spark opens the metastore the first time something needs the catalog (a table read or written, a database
  created); a job that reads and writes folders never opens it, so any number of them run side by side.
- A job's table work runs inside :func:`holding`: an exclusive lock between processes (``metastore.lock``,
  beside it ``metastore.holder`` says which process and for what), then the Derby database is shut down on
  the way out, which releases it for the next process. A second job that needs the catalog meanwhile waits
  (``$TEXTSPARK_CATALOG_WAIT`` seconds, default 600), then fails in one line naming the holder.
- A process outside :func:`holding` (a notebook's ``spark.table(...)``) keeps the metastore open until its
  session stops or it calls :func:`release`; Hive retries for about 20 s before a job gives up on it, in one
  line that says so.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from udfs.errors import InputError

log = logging.getLogger(__name__)
URL_KEY = "spark.hadoop.javax.jdo.option.ConnectionURL"
WAIT_ENV = "TEXTSPARK_CATALOG_WAIT"
WAIT_S = 600
POLL_S = 0.2
_held = threading.local()  # this process's depth of holding() per thread; the lock is taken once


def data_home() -> Path:
    """``$XDG_DATA_HOME/textspark`` (by default ``~/.local/share/textspark``), created."""
    home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "textspark"
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_tracking_uri() -> str:
    """Where models and runs go when ``MLFLOW_TRACKING_URI`` is not set: on Databricks the workspace's
    registry; elsewhere one registry per user, whatever the working directory or the install folder
    (``data_home() / "mlflow.db"``)."""
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return "databricks"
    return f"sqlite:///{data_home() / 'mlflow.db'}"


def spark_conf(home: Path | None = None) -> dict[str, str]:
    """The Spark settings of the local catalog in ``home`` (default :func:`data_home`): Hive's catalog on an
    embedded Derby metastore, without a connection pool (so that a shut-down database is opened again on the
    next use), and the warehouse of managed tables beside it."""
    home = home or data_home()
    return {"spark.sql.catalogImplementation": "hive",
            "spark.sql.warehouse.dir": str(home / "warehouse"),
            URL_KEY: f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true",
            "spark.hadoop.datanucleus.connectionPoolingType": "None",
            "spark.hadoop.hive.metastore.schema.verification": "false"}


def _jvm(spark):
    """The local JVM of a classic session, or of the Connect server ``SPARK_REMOTE=local`` started here."""
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:
        from pyspark import SparkContext

        jvm = SparkContext._jvm
    return jvm


def metastore(spark) -> Path | None:
    """The Derby folder of the local catalog this session uses, or None (another catalog: Databricks', a
    remote server's, Spark's in-memory one)."""
    try:
        url = spark.conf.get(URL_KEY, None) or ""
    except Exception:  # noqa: BLE001 - a Connect server that does not answer for the key
        return None
    if not url.startswith("jdbc:derby:;databaseName=") or _jvm(spark) is None:
        return None
    return Path(url.removeprefix("jdbc:derby:;databaseName=").split(";")[0])


def prepare(spark) -> None:
    """Derby's log goes beside the metastore (not ``./derby.log`` in the working directory); before it opens."""
    folder = metastore(spark)
    if folder is not None:
        _jvm(spark).java.lang.System.setProperty("derby.stream.error.file", str(folder.parent / "derby.log"))


def release(spark) -> None:
    """Shut the local metastore's Derby database down in this JVM, so another process can open it; the next
    use of the catalog here opens it again. Nothing for another catalog, or one not open."""
    folder = metastore(spark)
    if folder is None:
        return
    try:
        _jvm(spark).java.sql.DriverManager.getConnection(f"jdbc:derby:;databaseName={folder};shutdown=true")
    except Exception:  # noqa: BLE001 - Derby answers a shutdown with SQLException 08006 (or XJ004: not open)
        pass


@contextmanager
def holding(spark, purpose: str, *, wait_s: float | None = None) -> Iterator[None]:
    """Use the local catalog for ``purpose`` (``writing table s.t``): wait for the process that holds it (at
    most ``wait_s``, default ``$TEXTSPARK_CATALOG_WAIT`` or 600 s), then hold it; on the way out, release
    the metastore (:func:`release`) and the lock. Re-entrant; nothing for another catalog."""
    folder = metastore(spark)
    depth = getattr(_held, "depth", 0)
    if folder is None or depth:
        _held.depth = depth + 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    import fcntl

    wait_s = float(os.environ.get(WAIT_ENV, WAIT_S)) if wait_s is None else wait_s
    lock, holder = folder.parent / "metastore.lock", folder.parent / "metastore.holder"
    with open(lock, "a") as handle:
        _acquire(handle, fcntl, holder, folder, purpose, wait_s)
        _held.depth = 1
        try:
            holder.write_text(json.dumps({"pid": os.getpid(), "purpose": purpose, "since": time.time()}))
            try:
                yield
            except Exception as exc:
                if "XSDB6" in str(exc) or "Another instance of Derby" in str(exc):
                    raise InputError("spark catalog", str(folder), "another Spark process has the local catalog's "
                                     "metastore open and does not hand it back (a notebook or shell that used a "
                                     "table: call udfs.metastore.release(spark) there, or stop its session)") from None
                raise
        finally:
            _held.depth = 0
            release(spark)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(handle, fcntl, holder: Path, folder: Path, purpose: str, wait_s: float) -> None:
    """Take the exclusive lock on ``handle``, waiting at most ``wait_s`` for the process that holds it."""
    deadline, said = time.monotonic() + wait_s, False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        who = _holder(holder)
        if time.monotonic() >= deadline:
            raise InputError("spark catalog", str(folder), f"the local catalog is held by {who}; waited {wait_s:g} "
                             f"s for it (for {purpose}); run again when it is done, or set {WAIT_ENV} to wait "
                             "longer") from None
        if not said:
            log.warning("waiting for the local catalog %s, held by %s (for %s)", folder, who, purpose)
            said = True
        time.sleep(POLL_S)


def _holder(holder: Path) -> str:
    try:
        info = json.loads(holder.read_text())
        since = time.strftime("%H:%M:%S", time.localtime(info["since"]))
        return f"process {info['pid']} ({info['purpose']}, since {since})"
    except (OSError, ValueError, KeyError):
        return "another process"
