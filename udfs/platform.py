"""The embedded platform: offline environment, MLflow URIs and the Spark session builder.

Callers pass a Spark profile name or path. The shipped configuration (catalog, Spark profiles, discovery
script, sample job configs) is ``udfs/conf``: a link to the checkout's ``conf/``, a copy inside a wheel;
``TEXTSPARK_HOME`` points at another folder holding a ``conf/``."""
from __future__ import annotations

import logging
import os
import re
import shlex
import sqlite3
import sys
import warnings
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from udfs import metastore
from udfs.errors import ConfigError, ModelReferenceError
from udfs.metastore import default_tracking_uri  # noqa: F401 - the registry's default, beside the catalog

log = logging.getLogger(__name__)
# Settings a running driver JVM can no longer take (spark-submit has started it before the job reads its profile).
LAUNCH_SETTINGS = ("spark.driver.memory", "spark.driver.extraJavaOptions", "spark.driver.extraClassPath",
                   "spark.driver.extraLibraryPath", "spark.driver.cores")

PROJECT_ROOT = Path(os.environ.get("TEXTSPARK_HOME", Path(__file__).resolve().parents[1]))
CONF_DIR = PROJECT_ROOT / "conf" if "TEXTSPARK_HOME" in os.environ else Path(__file__).resolve().parent / "conf"

# Set for every process textspark starts (driver, and through the environment, local workers).
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "TOKENIZERS_PARALLELISM": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def setup_environment() -> None:
    """Offline hub, no telemetry, and default MLflow URIs; values the user already set win."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MLFLOW_TRACKING_URI", default_tracking_uri())
    os.environ.setdefault("MLFLOW_REGISTRY_URI", os.environ["MLFLOW_TRACKING_URI"])
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def mlflow_uris() -> tuple[str, str]:
    """(tracking URI, registry URI) as the driver sees them; captured into UDFs for the workers."""
    setup_environment()
    import mlflow

    tracking = mlflow.get_tracking_uri()
    registry = mlflow.get_registry_uri() or tracking
    return tracking, registry


SQLITE_WAIT_S = 10  # how long a registry read waits for a sqlite database another process holds under a write lock


@contextmanager
def registry_reads(subject: str, tracking: str, registry: str) -> Iterator[None]:
    """MLflow registry reads on the driver: a sqlite registry another process holds locked fails after
    SQLITE_WAIT_S, and a registry MLflow cannot read (locked meanwhile, a server that does not answer) fails
    in one line, ``<subject>; the MLflow registry <uri> cannot be read: <cause>`` (ModelReferenceError),
    instead of MLflow's traceback (which its sqlite store also logs before raising)."""
    for uri in dict.fromkeys((registry, tracking)):
        _wait_for_sqlite(subject, uri)
    store_log = logging.getLogger("mlflow.store.db.utils")
    store_log.addFilter(_not_a_database_error)
    try:
        yield
    except ModelReferenceError:
        raise
    except Exception as exc:
        if (cause := unreadable(exc)) is None:
            raise
        where = registry if registry == tracking else f"{registry} (tracking {tracking})"
        raise ModelReferenceError(f"{subject}; the MLflow registry {where} cannot be read: {cause}") from None
    finally:
        store_log.removeFilter(_not_a_database_error)


def _wait_for_sqlite(subject: str, uri: str) -> None:
    """A sqlite database another process holds under a write lock: one line after SQLITE_WAIT_S (each of
    MLflow's sessions would wait 20 s, its ``PRAGMA busy_timeout``, then log and raise a traceback)."""
    path = uri.removeprefix("sqlite:///").split("?")[0]
    if not uri.startswith("sqlite:///") or not os.path.isfile(path):  # a new one: MLflow creates it
        return
    try:
        with closing(sqlite3.connect(path, timeout=SQLITE_WAIT_S)) as con:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a read: waits out a writer's lock
    except sqlite3.Error as exc:
        why = f" (waited {SQLITE_WAIT_S} s: another process holds a write lock on it; retry when it is done)" \
            if "locked" in str(exc) else ""
        raise ModelReferenceError(f"{subject}; the MLflow registry {uri} cannot be read: {exc}{why}") from None


def unreadable(exc: BaseException | None) -> str | None:
    """The cause in one line when ``exc`` (or what it wraps) says the registry could not be read: a database
    error (locked, gone) or an HTTP request that failed; None for any other error (a missing model)."""
    while exc is not None:
        if type(exc).__name__ == "OperationalError" or getattr(exc, "error_code", None) == "TEMPORARILY_UNAVAILABLE" \
                or str(exc).startswith("API request to"):
            return first_line(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return None


def first_line(exc: BaseException) -> str:
    """``exc`` in one line of at most 500 characters, less SQLAlchemy's ``(sqlite3.OperationalError)`` prefix."""
    line = re.sub(r"^\([\w.]+\) ", "", (str(exc).strip() or type(exc).__name__).splitlines()[0])
    return line[:500] + ("..." if len(line) > 500 else "")


def _not_a_database_error(record: logging.LogRecord) -> bool:
    """Drops MLflow's logged traceback of a database error: ``registry_reads`` raises it as one line."""
    return not record.getMessage().startswith("SQLAlchemy database error")


def get_experiment_id(name: str) -> str:
    """The experiment's id; a new one keeps its artifacts beside a sqlite tracking database (``<dir>/mlruns``)
    rather than in ``./mlruns`` of whatever the working directory happens to be."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    uri = mlflow.get_tracking_uri()
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns").as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def load_spark_profile(profile: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read a Spark profile: a name under conf/spark/ or a path to a YAML file; None: $TEXTSPARK_SPARK_PROFILE,
    else ``local``."""
    profile = profile or os.environ.get("TEXTSPARK_SPARK_PROFILE") or "local"
    path = Path(profile)
    if path.suffix not in (".yml", ".yaml"):
        path = CONF_DIR / "spark" / f"{profile}.yml"
    if not path.is_file():
        allowed = sorted(p.stem for p in (CONF_DIR / "spark").glob("*.yml"))
        raise ConfigError("spark.profile", str(profile), allowed + ["<path to a .yml file>"])
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError("spark profile", str(path), "a YAML mapping with master, app_name, conf")
    conf = data.get("conf") or {}
    if not isinstance(conf, dict):
        raise ConfigError("conf", conf, "a mapping of Spark settings", source=str(path))
    if data.get("catalog", "none") not in ("local", "none"):
        raise ConfigError("catalog", data["catalog"], "local (tables persist in the user's data folder: "
                          "udfs/metastore.py), none (Spark's in-memory catalog)", source=str(path))
    catalog = {"catalog": data["catalog"]} if "catalog" in data else {}  # local: udfs/metastore.py
    return {"master": data.get("master"), "app_name": data.get("app_name", "textspark"),
            "log_level": str(data.get("log_level", "WARN")), **catalog,
            "conf": {str(k): _project_path(str(k), _spark_value(v)) for k, v in conf.items()}}


def _project_path(key: str, value: str) -> str:
    """Discovery scripts named relative to the project (conf/spark/gpu_discovery.sh) become absolute paths."""
    if key.endswith(".discoveryScript") and not os.path.isabs(value) and (PROJECT_ROOT / value).exists():
        return str(PROJECT_ROOT / value)
    return value


def _spark_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def get_spark(profile: str | os.PathLike | None = None, *, conf: Mapping[str, Any] | None = None,
              app_name: str | None = None):
    """SparkSession from a profile (conf/spark/<profile>.yml or a path; None: $TEXTSPARK_SPARK_PROFILE, else
    ``local``), with ``conf`` overriding its settings.

    A session that already exists (a notebook's, Databricks') is returned as it is. With ``SPARK_REMOTE`` set
    (``local[2]``, ``sc://host:15002``), the session is a Spark Connect one: ``local[...]`` starts a local
    Connect server with the profile's settings; a remote server keeps its owner's settings, and only ``conf``
    (the job's own ``spark.conf``) is applied, as session settings it accepts (one line names the others).
    Under ``spark-submit``, what its command line (``--master``, ``--conf k=v``, ``--driver-memory``...), a
    ``--properties-file`` or spark-defaults.conf set wins over the profile; the profile gives the rest, except
    driver launch settings (memory, JVM options), which only spark-submit can give: a warning says so."""
    setup_environment()
    from pyspark.sql import SparkSession

    settings = load_spark_profile(profile)
    active = SparkSession.getActiveSession()
    if active is not None:  # a notebook's, Databricks', a test's: its settings are its owner's
        return active
    explicit = {k: _spark_value(v) for k, v in (conf or {}).items()}
    remote = os.environ.get("SPARK_REMOTE")
    if remote and not remote.startswith("local"):
        return _remote_session(remote, app_name or settings["app_name"], explicit)
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started this driver's JVM
    submitted = _submitted_settings() if under_submit else set()
    builder = SparkSession.builder.appName(app_name or settings["app_name"])
    if remote:  # a local Connect server, started here with the profile's settings
        builder = builder.remote(remote)
    elif settings["master"] and "spark.master" not in submitted:
        builder = builder.master(settings["master"])
    catalog = metastore.spark_conf() if settings.get("catalog") == "local" else {}  # udfs/metastore.py
    merged = {**catalog, **settings["conf"], **explicit}
    merged.setdefault("spark.executorEnv.PYTHONPATH", _pythonpath())
    for key, value in merged.items():
        if key in submitted:
            continue
        if under_submit and key in LAUNCH_SETTINGS:
            log.warning("spark-submit started the driver before the profile was read: %s=%s cannot apply; "
                        "pass it to spark-submit (--conf %s=%s)", key, value, key, value)
            continue
        builder = builder.config(key, value)
    with _static_settings_already_set() if remote else nullcontext():
        spark = builder.getOrCreate()
    if not remote:  # a Connect client has no SparkContext; its server's log level is its own
        spark.sparkContext.setLogLevel(settings["log_level"])
    metastore.prepare(spark)
    return spark


def _remote_session(url: str, app_name: str, conf: Mapping[str, str]):
    """A session on a remote Spark Connect server (Databricks, a shared cluster): the job's own settings are set
    where the server allows it; the ones it refuses are named in one warning line, and the job goes on."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(url).appName(app_name).getOrCreate()
    skipped: dict[str, list[str]] = {}  # why -> keys
    for key, value in conf.items():
        try:
            spark.conf.set(key, value)
        except Exception as exc:  # noqa: BLE001 - the server decides which settings a client may change
            skipped.setdefault(_refusal(exc), []).append(key)
    if skipped:
        log.warning("Spark Connect session %s: skipped %s", url,
                    "; ".join(f"{', '.join(sorted(keys))} ({why})" for why, keys in skipped.items()))
    return spark


def _refusal(exc: BaseException) -> str:
    """Why a Connect server refused a setting: a static one (fixed when the server started), or its first line."""
    if getattr(exc, "getCondition", lambda: None)() == "CANNOT_MODIFY_CONFIG" or "CANNOT_MODIFY_CONFIG" in str(exc):
        return "static settings: the server fixed them when it started; set them where it is launched"
    return first_line(exc)


@contextmanager
def _static_settings_already_set() -> Iterator[None]:
    """SPARK_REMOTE=local[N]: pyspark starts the server with every setting, then sets each again on the session,
    where the static ones (already in force) warn "Failed to set ... CANNOT_MODIFY_CONFIG": wrongly, so dropped."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Failed to set .*CANNOT_MODIFY_CONFIG", category=UserWarning)
        yield


def _submitted_settings() -> set[str]:
    """Under spark-submit: the settings its command line (``--master``, ``--conf``, ``--driver-memory``...) or a
    properties file set, which win over the profile. spark-submit always sets ``spark.master`` (local[*]
    when not given), so the command line itself is read from the driver JVM."""
    from pyspark import SparkContext

    SparkContext._ensure_initialized()
    jvm = SparkContext._jvm
    args = shlex.split(str(jvm.java.lang.System.getProperty("sun.java.command") or ""))
    given: set[str] = set()
    for flag, value in zip(args, args[1:]):
        if flag == "--master":
            given.add("spark.master")
        elif flag == "--conf" and "=" in value:
            given.add(value.split("=", 1)[0])
        elif flag == "--properties-file":
            given.update(_properties(Path(value)))
    conf_dir = os.environ.get("SPARK_CONF_DIR") or os.path.join(os.environ.get("SPARK_HOME", ""), "conf")
    return given | _properties(Path(conf_dir) / "spark-defaults.conf")


def _properties(path: Path) -> set[str]:
    """The keys of a Spark properties file (``key value`` or ``key=value`` lines)."""
    if not path.is_file():
        return set()
    lines = (line.strip() for line in path.read_text().splitlines())
    return {re.split(r"[\s=]", line, maxsplit=1)[0] for line in lines if line and not line.startswith("#")}


def _pythonpath() -> str:
    """Local executors must import udfs: put the project on their path (an installed wheel also works)."""
    parts = [str(PROJECT_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(parts))
