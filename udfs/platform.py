"""The embedded platform: offline environment, MLflow URIs and the Spark session builder.

Everything here is explicit: callers pass a Spark profile name or path. The shipped configuration (model
catalog, Spark profiles, discovery script, sample job configs) is ``udfs/conf``: a link to the checkout's
``conf/`` in the source tree, a copy inside an installed wheel; ``TEXTSPARK_HOME`` points at another folder
holding a ``conf/``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping

import yaml

from udfs.errors import ConfigError

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


def default_tracking_uri() -> str:
    """Where models and runs go when ``MLFLOW_TRACKING_URI`` is not set: one registry per user, whatever the
    working directory or the install folder (``$XDG_DATA_HOME/textspark/mlflow.db``, by default under
    ``~/.local/share``)."""
    home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "textspark"
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'mlflow.db'}"


def mlflow_uris() -> tuple[str, str]:
    """(tracking URI, registry URI) as the driver sees them; captured into UDFs for the workers."""
    setup_environment()
    import mlflow

    tracking = mlflow.get_tracking_uri()
    registry = mlflow.get_registry_uri() or tracking
    return tracking, registry


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


def load_spark_profile(profile: str | os.PathLike = "local") -> dict[str, Any]:
    """Read a Spark profile: a name under conf/spark/ or a path to a YAML file."""
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
    return {"master": data.get("master"), "app_name": data.get("app_name", "textspark"),
            "log_level": str(data.get("log_level", "WARN")),
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


def get_spark(profile: str | os.PathLike = "local", *, conf: Mapping[str, Any] | None = None,
              app_name: str | None = None):
    """SparkSession from a profile (conf/spark/<profile>.yml), with ``conf`` overriding its settings.

    Under ``spark-submit``, what the command line set (``--master``, ``--conf k=v``) wins over the profile.
    A session that already exists (a notebook's, Databricks') is returned as it is.
    """
    setup_environment()
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    settings = load_spark_profile(profile)
    active = SparkSession.getActiveSession()
    if active is not None:  # a notebook's, Databricks', a test's: its settings are its owner's
        return active
    submitted: dict[str, str] = {}
    if "PYSPARK_GATEWAY_PORT" in os.environ:  # launched by spark-submit: its JVM holds the command-line conf
        SparkContext._ensure_initialized()
        submitted = dict(SparkConf().getAll())
    builder = SparkSession.builder.appName(app_name or settings["app_name"])
    if settings["master"] and "spark.master" not in submitted:
        builder = builder.master(settings["master"])
    merged = {**settings["conf"], **{k: _spark_value(v) for k, v in (conf or {}).items()}}
    merged.setdefault("spark.executorEnv.PYTHONPATH", _pythonpath())
    for key, value in merged.items():
        if key not in submitted:
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings["log_level"])
    return spark


def _pythonpath() -> str:
    """Local executors must import udfs: put the project on their path (an installed wheel also works)."""
    parts = [str(PROJECT_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(parts))
