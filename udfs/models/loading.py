"""Worker side: fetch a resolved model version through MLflow and build it by its kind, once per worker."""
from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from udfs.models import model_cache
from udfs.models.kinds import BUILDERS
from udfs.models.reference import ResolvedModel


def cache_root() -> Path:
    return Path(os.environ.get("TEXTSPARK_CACHE") or Path.home() / ".cache" / "textspark" / "models")


def local_folder(model: ResolvedModel) -> Path:
    """The version's ``textspark/`` folder on this host, downloaded through MLflow on first use.

    Cached per host under $TEXTSPARK_CACHE by the version's content fingerprint (so two registries that
    both have a "version 1" never collide); a download lands in a temp folder and is renamed into place.
    """
    key = model.fingerprint or f"{model.name}-{model.version}"
    target = cache_root() / str(key)
    if (target / "textspark.json").is_file():
        return target
    import mlflow

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        mlflow.set_tracking_uri(model.tracking_uri)
        mlflow.set_registry_uri(model.registry_uri)
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"{model.uri}/artifacts/textspark", dst_path=str(tmp))
        try:
            os.replace(path, target)
        except OSError:  # another worker on this host won the race
            if not (target / "textspark.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build(folder: Path, *, device: str, precision: str, options: dict[str, Any] | None = None) -> Any:
    """Construct the in-memory model for a ``textspark/`` folder by its kind."""
    meta = json.loads((folder / "textspark.json").read_text())
    kind, params = meta["kind"], {**meta.get("params", {}), **(options or {})}
    params.pop("precision", None)  # a plan-level setting (resolved per worker), passed explicitly
    if kind not in BUILDERS:
        raise ValueError(f"kind: got {kind!r}; allowed: {', '.join(sorted(BUILDERS))}")
    module, _, attr = BUILDERS[kind].partition(":")
    return getattr(importlib.import_module(module), attr)(folder, device=device, precision=precision, **params)


def load(model: ResolvedModel, *, device: str, precision: str = "fp32") -> Any:
    """The worker's shared instance of ``model`` on ``device`` (loaded once per Python worker)."""
    key = (model.name, model.version, model.fingerprint, device, precision)
    return model_cache.get(key, lambda: build(local_folder(model), device=device, precision=precision))
