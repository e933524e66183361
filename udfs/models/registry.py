"""The MLflow registry: resolve a reference on the driver, register catalog entries idempotently.

A registered textspark model version is an MLflow pyfunc model whose artifacts hold one folder,
``textspark/``, with ``textspark.json`` (task, kind, params) and, where the kind has weights, ``weights/``.
Workers download that folder through MLflow (so it works on any executor that reaches the registry) and
load it by kind; ``mlflow.pyfunc.load_model`` gives the same model to plain MLflow users.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from contextlib import ExitStack, contextmanager
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from udfs.errors import ConfigError, ModelReferenceError
from udfs.models.catalog import TASKS
from udfs.models.loading import FORMAT_VERSION, file_lock, fingerprint, holds
from udfs.models.reference import (LANGUAGES_RULE, LANGUAGES_TAG, NAME, NAME_RULE, ResolvedModel, from_tags,
                                   languages_tag, parse_languages, parse_reference)
from udfs.platform import first_line, get_experiment_id, mlflow_uris, registry_reads, unreadable

MODELS_EXPERIMENT = "textspark-models"
REGISTERED_TASKS = (*TASKS, "cluster")  # the catalog's tasks, and fitted clusterings' (udfs.clustering)
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # udfs/: each registered version carries it as MLflow code
_ready: set[tuple[str, str]] = set()


def client():
    """An MlflowClient on the configured URIs; a sqlite database is created under a file lock first."""
    from mlflow.tracking import MlflowClient

    tracking, registry = mlflow_uris()
    if (tracking, registry) in _ready:
        return MlflowClient(tracking_uri=tracking, registry_uri=registry)
    with _sqlite_lock(tracking, registry):
        # the first use per URI builds MLflow's stores (cached per process), which create a new sqlite
        # database's tables: two processes doing that at once fail ("table experiments already exists")
        mlc = MlflowClient(tracking_uri=tracking, registry_uri=registry)
        mlc.search_experiments(max_results=1)
        mlc.search_registered_models(max_results=1)
    _ready.add((tracking, registry))
    return mlc


@contextmanager
def _sqlite_lock(*uris: str) -> Iterator[None]:
    """An exclusive lock per host on the sqlite database files among ``uris`` (no-op for other stores)."""
    paths = sorted({os.path.abspath(u.removeprefix("sqlite:///").split("?")[0]) for u in uris
                    if u.startswith("sqlite:///")})
    with ExitStack() as stack:
        for path in paths:
            digest = hashlib.sha256(path.encode()).hexdigest()[:16]
            stack.enter_context(file_lock(Path(tempfile.gettempdir()) / f"textspark-db-{digest}.lock"))
        yield


def resolve(reference: str, *, task: str | None = None) -> ResolvedModel:
    """Resolve a reference to one version, on the driver, before any model runs: it exists, serves ``task``
    (if given), its tags hold only values textspark writes (``reference.from_tags``), and its files are in
    this host's cache or the artifact store. Each failure, a locked or unreachable registry included, is one
    line (ModelReferenceError)."""
    name, alias, version = parse_reference(reference)
    tracking, registry = mlflow_uris()
    with registry_reads(f"model: got {reference!r}", tracking, registry):
        mlc = client()
        mv = _model_version(mlc, reference, name, alias, version)
        resolved = from_tags(reference, name, str(mv.version), mv.tags or {}, tasks=REGISTERED_TASKS,
                             tracking_uri=tracking, registry_uri=registry)
        if task is not None and task not in _serves(resolved.task):
            raise ModelReferenceError(f"model: got {reference!r}, a {resolved.task!r} model; "
                                      f"task {task!r} needs a model registered for {task!r}")
        if not holds(resolved):  # a verified copy on this host needs no round trip to the artifact store
            _check_files(mlc, resolved, reference)
    return resolved


def _model_version(mlc, reference: str, name: str, alias: str | None, version: str | None):
    from mlflow.exceptions import MlflowException

    try:
        registered = mlc.get_registered_model(name)
    except MlflowException as exc:
        if unreadable(exc):
            raise
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
        return mlc.get_model_version(name, version)
    except MlflowException as exc:
        if unreadable(exc):
            raise
        versions = sorted((str(v.version) for v in mlc.search_model_versions(f"name='{name}'")), key=int)
        raise ModelReferenceError(f"model: got {reference!r}; {name!r} has no version {version}. "
                                  f"Versions: {', '.join(versions) or '(none)'}") from None


def _check_files(mlc, model: ResolvedModel, reference: str) -> None:
    """The version's ``textspark/`` folder is in the artifact store (one listing), else one line naming where
    it should be: found here, not after a worker's four download attempts."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        listed = mlflow.artifacts.list_artifacts(artifact_uri=f"{model.uri}/artifacts/textspark")
        found, cause = any(PurePosixPath(f.path).name == "textspark.json" for f in listed), ""
    except (MlflowException, OSError) as exc:
        if unreadable(exc):
            raise
        found, cause = False, f" (listing it failed: {first_line(exc)})"
    if not found:
        where = mlc.get_model_version_download_uri(model.name, model.version) + "/artifacts/textspark"
        raise ModelReferenceError(f"model: {model.label} (from {reference!r}): its files are not in the artifact "
                                  f"store: no textspark.json under {where}{cause}; register the model again "
                                  "(python -m jobs.register_models) or point the alias at a version whose files exist")


def _serves(model_task: str) -> set[str]:
    """Tasks a model registered for ``model_task`` can serve (an embedding model also does zero-shot)."""
    return {"embed": {"embed", "classify", "summarize"}}.get(model_task, {model_task})


# ---- registration -------------------------------------------------------------------------------

def find_version(name: str, fp: str):
    """The existing version of ``name`` with this fingerprint (the lowest, should there be several), or None."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client().search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    same = [v for v in versions if (v.tags or {}).get("textspark.fingerprint") == fp]
    return min(same, key=lambda v: int(v.version), default=None)


def register_folder(name: str, *, task: str, kind: str, params: dict[str, Any], weights: Path | None,
                    alias: str | None = "champion", description: str = "", extra_files: dict[str, Any] | None = None,
                    run_params: dict[str, Any] | None = None, run_id: str | None = None,
                    move_alias: bool = True, languages: list[str] | str | None = None) -> tuple[str, bool]:
    """Register ``weights`` (+ metadata) as a version of ``name`` unless an identical one exists.

    ``languages``: what the model reads, ``"any"`` or ISO 639 codes (``["en"]``); recorded as the version's
    ``textspark.languages`` tag (also on an identical existing version: it is metadata, not content), where
    the runtime's language guard reads it. Returns (version, created). ``alias`` is pointed at a new version when ``move_alias``; an existing
    identical version only gets the alias when the alias does not exist yet.

    Safe under concurrency (two jobs registering the same folder at once): after creating its version, a
    caller looks for versions of ``name`` with the same fingerprint; all but the lowest delete themselves
    (with the run they created) and return the lowest as existing, so every caller returns one version and
    the alias is only ever set after that check, on the survivor.
    """
    import mlflow

    if not isinstance(name, str) or not NAME.fullmatch(name):  # resolve serves only such names
        raise ConfigError("name", name, NAME_RULE)
    try:
        langs = languages_tag(parse_languages(languages))
    except ValueError:
        raise ConfigError("languages", languages, LANGUAGES_RULE) from None
    meta = {"task": task, "kind": kind, "params": params, "extra": extra_files or {}}
    fp = fingerprint(weights, meta)
    mlc = client()
    existing = find_version(name, fp)
    if existing is not None:
        record_languages(name, str(existing.version), langs, existing.tags)
        return _keep_existing(mlc, name, alias, str(existing.version))

    with tempfile.TemporaryDirectory(prefix="textspark-stage-") as tmp:
        folder = Path(tmp) / "textspark"
        folder.mkdir()
        if weights is not None:
            shutil.copytree(weights, folder / "weights", ignore=shutil.ignore_patterns("__pycache__"))
        (folder / "textspark.json").write_text(json.dumps({"format": FORMAT_VERSION, "name": name, **meta},
                                                          indent=2, default=str))
        for filename, content in (extra_files or {}).items():
            (folder / filename).write_text(json.dumps(content, indent=2, default=str))
        from udfs.models.pyfunc import TextsparkPyfunc, output_signature

        experiment_id = None if run_id else _experiment_id()
        with mlflow.start_run(run_id=run_id, experiment_id=experiment_id,
                              run_name=None if run_id else f"register {name}") as run:
            if not run_id:
                mlflow.log_params({"task": task, "kind": kind, **{f"param.{k}": v for k, v in params.items()},
                                   **(run_params or {})})
            with warnings.catch_warnings():  # "add type hints to predict": inputs are texts in any shape
                warnings.simplefilter("ignore", UserWarning)
                info = mlflow.pyfunc.log_model(name="model", python_model=TextsparkPyfunc(),
                                               artifacts={"textspark": str(folder)},
                                               signature=output_signature(task),  # spark_udf's result type
                                               code_paths=[str(PACKAGE_DIR)],  # loads where textspark is not installed
                                               pip_requirements=pip_requirements())
            tags = {"textspark.task": task, "textspark.kind": kind, "textspark.fingerprint": fp,
                    "textspark.params": json.dumps(params, sort_keys=True, default=str),
                    **({LANGUAGES_TAG: langs} if langs else {})}
            mv = mlflow.register_model(info.model_uri, name, tags=tags)
            own_run = None if run_id else run.info.run_id
    survivor = find_version(name, fp)
    if survivor is not None and str(survivor.version) != str(mv.version):  # lost a race: remove the duplicate
        mlc.delete_model_version(name, mv.version)
        if own_run:
            mlc.delete_run(own_run)
        return _keep_existing(mlc, name, alias, str(survivor.version))
    if description:
        mlc.update_model_version(name, mv.version, description=description)
    if alias and (move_alias or alias not in _aliases(mlc, name)):
        mlc.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version), True


def record_languages(name: str, version: str, languages: str | None, tags: dict[str, str] | None = None) -> None:
    """Set a version's ``textspark.languages`` tag to ``languages`` (a tag value) where it differs; None: leave it."""
    if languages is None:
        return
    if tags is None:
        tags = client().get_model_version(name, version).tags
    if (tags or {}).get(LANGUAGES_TAG) != languages:
        client().set_model_version_tag(name, version, LANGUAGES_TAG, languages)


def _keep_existing(mlc, name: str, alias: str | None, version: str) -> tuple[str, bool]:
    """An identical version exists: it gets ``alias`` only where the alias does not exist yet."""
    if alias and alias not in _aliases(mlc, name):
        mlc.set_registered_model_alias(name, alias, version)
    return version, False


def _experiment_id() -> str:
    """The models experiment; created once even when two registrations start at the same moment."""
    from mlflow.exceptions import MlflowException

    try:
        return get_experiment_id(MODELS_EXPERIMENT)
    except MlflowException:  # another process created it between the look-up and the create
        return get_experiment_id(MODELS_EXPERIMENT)


def _aliases(mlc, name: str) -> dict[str, str]:
    return dict(mlc.get_registered_model(name).aliases or {})


def pip_requirements() -> list[str]:
    """Explicit requirements (this machine cannot let MLflow infer them)."""
    reqs = []
    for dist in ("torch", "transformers", "tokenizers", "pandas", "numpy", "pyarrow", "scikit-learn", "scipy",
                 "fasttext-predict", "pyyaml", "pydantic"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist).split('+')[0]}")
        except metadata.PackageNotFoundError:
            continue
    return reqs
