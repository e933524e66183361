"""The MLflow registry: resolve a reference on the driver, register catalog entries idempotently.

A registered textspark model version is an MLflow pyfunc model whose artifacts hold one folder,
``textspark/``, with ``textspark.json`` (task, kind, params) and, where the kind has weights, ``weights/``.
Workers download that folder through MLflow (so it works on any executor that reaches the registry) and
load it by kind; ``mlflow.pyfunc.load_model`` gives the same model to plain MLflow users.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from udfs.errors import ModelReferenceError
from udfs.models.reference import ResolvedModel, parse_reference
from udfs.platform import get_experiment_id, mlflow_uris

FORMAT_VERSION = 1
MODELS_EXPERIMENT = "textspark-models"


def client():
    from mlflow.tracking import MlflowClient

    tracking, registry = mlflow_uris()
    return MlflowClient(tracking_uri=tracking, registry_uri=registry)


def resolve(reference: str, *, task: str | None = None) -> ResolvedModel:
    """Resolve a reference to one version, checking it exists and (if given) serves ``task``."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_reference(reference)
    tracking, registry = mlflow_uris()
    mlc = client()
    try:
        registered = mlc.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in mlc.search_registered_models())
        raise ModelReferenceError(
            f"model: got {reference!r}; no registered model {name!r}. Registered models: "
            f"{', '.join(known) or '(none)'}. Run `python -m jobs.register_models` to register the catalog."
        ) from None
    if alias is not None:
        aliases = dict(registered.aliases or {})
        if alias not in aliases:
            raise ModelReferenceError(
                f"model: got {reference!r}; {name!r} has no alias {alias!r}. Aliases that exist: "
                f"{', '.join(f'@{a} -> v{v}' for a, v in sorted(aliases.items())) or '(none)'}")
        version = str(aliases[alias])
    try:
        mv = mlc.get_model_version(name, version)
    except MlflowException:
        versions = sorted((str(v.version) for v in mlc.search_model_versions(f"name='{name}'")), key=int)
        raise ModelReferenceError(f"model: got {reference!r}; {name!r} has no version {version}. "
                                  f"Versions: {', '.join(versions) or '(none)'}") from None
    tags = mv.tags or {}
    model_task, kind = tags.get("textspark.task"), tags.get("textspark.kind")
    if not model_task or not kind:
        raise ModelReferenceError(f"model: {name}/{version} was not registered by textspark "
                                  "(no textspark.task / textspark.kind tags)")
    if task is not None and task not in _serves(model_task):
        raise ModelReferenceError(f"model: got {reference!r}, a {model_task!r} model; "
                                  f"task {task!r} needs a model registered for {task!r}")
    return ResolvedModel(name=name, version=str(version), task=model_task, kind=kind,
                         params=json.loads(tags.get("textspark.params", "{}")),
                         fingerprint=tags.get("textspark.fingerprint", ""),
                         tracking_uri=tracking, registry_uri=registry)


def _serves(model_task: str) -> set[str]:
    """Tasks a model registered for ``model_task`` can serve (an embedding model also does zero-shot)."""
    return {"embed": {"embed", "classify", "summarize"}}.get(model_task, {model_task})


# ---- registration -------------------------------------------------------------------------------

def fingerprint(files_dir: Path | None, meta: dict[str, Any]) -> str:
    """sha256 over the metadata and every file (relative path + bytes) of ``files_dir``."""
    h = hashlib.sha256(json.dumps({"format": FORMAT_VERSION, **meta}, sort_keys=True, default=str).encode())
    if files_dir is not None:
        for path in sorted(p for p in files_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(str(path.relative_to(files_dir)).encode())
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def find_version(name: str, fp: str):
    """The existing version of ``name`` with this fingerprint, or None."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client().search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    return next((v for v in versions if (v.tags or {}).get("textspark.fingerprint") == fp), None)


def register_folder(name: str, *, task: str, kind: str, params: dict[str, Any], weights: Path | None,
                    alias: str | None = "champion", description: str = "", extra_files: dict[str, Any] | None = None,
                    run_params: dict[str, Any] | None = None, run_id: str | None = None,
                    move_alias: bool = True) -> tuple[str, bool]:
    """Register ``weights`` (+ metadata) as a version of ``name`` unless an identical one exists.

    Returns (version, created). ``alias`` is pointed at a new version when ``move_alias``; an existing
    identical version only gets the alias when the alias does not exist yet.
    """
    import mlflow

    meta = {"task": task, "kind": kind, "params": params, "extra": extra_files or {}}
    fp = fingerprint(weights, meta)
    mlc = client()
    existing = find_version(name, fp)
    if existing is not None:
        if alias and alias not in (_aliases(mlc, name)):
            mlc.set_registered_model_alias(name, alias, existing.version)
        return str(existing.version), False

    with tempfile.TemporaryDirectory(prefix="textspark-stage-") as tmp:
        folder = Path(tmp) / "textspark"
        folder.mkdir()
        if weights is not None:
            shutil.copytree(weights, folder / "weights", ignore=shutil.ignore_patterns("__pycache__"))
        (folder / "textspark.json").write_text(json.dumps({"format": FORMAT_VERSION, "name": name, **meta},
                                                          indent=2, default=str))
        for filename, content in (extra_files or {}).items():
            (folder / filename).write_text(json.dumps(content, indent=2, default=str))
        from udfs.models.pyfunc import TextsparkPyfunc

        experiment_id = get_experiment_id(MODELS_EXPERIMENT)
        with mlflow.start_run(run_id=run_id, experiment_id=None if run_id else experiment_id,
                              run_name=None if run_id else f"register {name}") as run:
            if not run_id:
                mlflow.log_params({"task": task, "kind": kind, **{f"param.{k}": v for k, v in params.items()},
                                   **(run_params or {})})
            with warnings.catch_warnings():  # "add type hints to predict": inputs are texts in any shape
                warnings.simplefilter("ignore", UserWarning)
                info = mlflow.pyfunc.log_model(name="model", python_model=TextsparkPyfunc(),
                                               artifacts={"textspark": str(folder)},
                                               pip_requirements=pip_requirements())
            tags = {"textspark.task": task, "textspark.kind": kind, "textspark.fingerprint": fp,
                    "textspark.params": json.dumps(params, sort_keys=True, default=str)}
            mv = mlflow.register_model(info.model_uri, name, tags=tags)
            if description:
                mlc.update_model_version(name, mv.version, description=description)
            del run
    if alias and (move_alias or alias not in _aliases(mlc, name)):
        mlc.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version), True


def _aliases(mlc, name: str) -> dict[str, str]:
    return dict(mlc.get_registered_model(name).aliases or {})


def pip_requirements() -> list[str]:
    """Explicit requirements (this machine cannot let MLflow infer them)."""
    reqs = []
    for dist in ("torch", "transformers", "tokenizers", "pandas", "numpy", "scikit-learn", "fasttext-predict"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist).split('+')[0]}")
        except metadata.PackageNotFoundError:
            continue
    return reqs
