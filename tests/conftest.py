"""Shared fixtures: one local SparkSession, a throw-away MLflow registry, tiny models registered in it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tiny_models import build_tiny_encoder


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("textspark")


@pytest.fixture(scope="session", autouse=True)
def mlflow_registry(workdir):
    """MLflow tracking + registry in a temporary sqlite file (never the project's mlflow.db), and quiet jobs."""
    import mlflow

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "TEXTSPARK_CACHE",
                                            "TEXTSPARK_QUIET", "XDG_DATA_HOME")}
    # TEXTSPARK_QUIET: no progress or model-load lines on stderr, which tests read for the one-line errors
    # (tests/test_progress.py turns them back on)
    # XDG_DATA_HOME: the local catalog's metastore and warehouse (udfs/metastore.py), never the user's
    os.environ.update(MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri, TEXTSPARK_CACHE=str(workdir / "cache"),
                      TEXTSPARK_QUIET="1", XDG_DATA_HOME=str(workdir / "data"))
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    from udfs.platform import setup_environment

    setup_environment()
    # experiments created through udfs.platform.get_experiment_id keep their artifacts in <workdir>/mlruns
    yield uri
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def spark(mlflow_registry):
    from udfs.platform import get_spark

    session = get_spark("local", conf={"spark.sql.shuffle.partitions": 2,
                                       "spark.sql.execution.arrow.maxRecordsPerBatch": 64})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def tiny_encoder(workdir, mlflow_registry) -> str:
    """A registered tiny random encoder; returns its reference ``models:/tiny-encoder@champion``."""
    from udfs.models.registry import register_folder

    folder = build_tiny_encoder(workdir / "tiny-encoder")
    register_folder("tiny-encoder", task="embed", kind="hf_encoder", weights=folder,
                    params={"max_tokens": 64, "pooling": "mean", "normalize": True, "token_budget": 256})
    return "models:/tiny-encoder@champion"


@pytest.fixture(scope="session")
def real_catalog(mlflow_registry):
    """The project's real catalog (conf/models.yml) registered in the test registry."""
    from jobs.register_models import register_entry
    from udfs.models.catalog import load_catalog

    catalog = load_catalog()
    for entry in catalog.entries.values():
        if "train" in entry.source:  # trained from real data (minutes): tests train small ones themselves
            continue
        register_entry(entry)
    return catalog
