"""The MLflow pyfunc face's plan: a version loaded by ``mlflow.pyfunc.load_model`` / ``spark_udf`` runs its
task's own plan through the batch core (``udfs.runtime.batch.run_batch``), so it gives what the task's UDF
gives on the same rows: the same cleaning, language guard, options and results.

``udfs.models.pyfunc`` keeps the face itself (MLflow's ``load_context`` / ``predict``, the input's text
column, the return types); it sits in the models room, below the tasks, so it cannot import them: this room
registers :func:`serve` in ``udfs.models.face`` when imported (``udfs/tasks/__init__.py``; unpickling the face
imports ``udfs``, whose ``__init__`` imports the tasks), as ``udfs.clustering`` registers its kind's builder.

At ``load_context``, :func:`serve`:

- finds the version in the registry by its name and content fingerprint (``textspark.json`` and the
  weights, as registered), so the languages it reads are the registry's ``textspark.languages`` tag, which
  may be set after registration, and its label is ``name/version``, as on a UDF's rows;
- plans it with the task table's plan function (``TASK_DEFS``), on the CPU in fp32, with the face's
  settings: a JSON object in ``$TEXTSPARK_PYFUNC_CONFIG``, then ``model_config``, with the task's own config
  keys (``languages`` too, for a guarded task); translate defaults to the model's first declared pair. MLflow
  hands ``load_model(uri, model_config=...)`` on only for keys a version declared when it was logged, and
  versions declare none, so the environment variable is what works for every version (``spark_udf`` passes
  it to its workers with ``extra_env``);
- resolves the guard's language model as the UDF's plan does (the catalog's ``defaults.language``, through
  the registry) and loads it there and then. A version that records languages and cannot find or load its
  language model, or that the registry does not know, fails to load with one line saying so and how to
  serve it unguarded (``TEXTSPARK_PYFUNC_CONFIG='{"languages": "any"}'``).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import json
import os

import pandas as pd

from udfs.errors import ConfigError, ModelLoadError, ModelReferenceError
from udfs.models.content import fingerprint
from udfs.models.face import serve_with
from udfs.models.loading import load
from udfs.models.reference import ANY, ResolvedModel, from_tags, parse_languages
from udfs.models.registry import REGISTERED_TASKS, find_version
from udfs.platform import first_line, mlflow_uris
from udfs.runtime import driver
from udfs.runtime.batch import run_batch
from udfs.tasks.table import TASK_DEFS

CONFIG_ENV = "TEXTSPARK_PYFUNC_CONFIG"  # a JSON object: the face's settings (model_config's keys win)
UNGUARDED = f"{CONFIG_ENV}='{{\"languages\": \"any\"}}'"  # how a caller serves a version without the guard


def serve(folder: Path, meta: Mapping[str, Any], model: Any,
          config: Mapping[str, Any] | None = None) -> Callable[[pd.Series], pd.DataFrame]:
    """``texts -> rows``: the batch core on the plan of the version in ``folder`` (its ``textspark.json`` is
    ``meta``), with ``model`` built from it; each row holds the task's fields, ``model`` and ``error``.
    ``config``: MLflow's ``model_config``, over ``$TEXTSPARK_PYFUNC_CONFIG``."""
    settings = {**environment_config(), **dict(config or {})}
    version = find_self(folder, meta, unguarded=_unguarded(settings.get("languages")))
    try:
        p = face_plan(version, model, settings)
        if p.guard is not None:  # load the language model now: a failure is the load's, not a batch's
            load(p.guard.detector, device="cpu")
    except (ConfigError, ModelReferenceError, ModelLoadError) as exc:
        raise ModelLoadError(f"textspark pyfunc {version.label}: {' '.join(str(exc).split())}; or set {UNGUARDED} "
                             "to serve it without the language guard") from None
    return partial(run_batch, p, model)


def environment_config() -> dict[str, Any]:
    """The JSON object in ``$TEXTSPARK_PYFUNC_CONFIG`` ({} where unset); a ConfigError for anything else."""
    raw = os.environ.get(CONFIG_ENV, "").strip()
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ConfigError(CONFIG_ENV, raw, 'a JSON object of the task\'s config keys, e.g. {"languages": "any"}')
    return value


def find_self(folder: Path, meta: Mapping[str, Any], *, unguarded: bool = False) -> ResolvedModel:
    """The registered version whose content ``folder`` holds (the lowest with its fingerprint, as
    registration keeps one); ``unguarded``: where the registry cannot say, the version as ``textspark.json``
    describes it (label ``name/?``, no languages) instead of a ModelLoadError."""
    name = str(meta.get("name"))
    content = {k: v for k, v in meta.items() if k not in ("format", "name")}
    weights = folder / "weights"
    tracking, registry = "", ""
    try:
        tracking, registry = mlflow_uris()
        found = find_version(name, fingerprint(weights if weights.is_dir() else None, content))
        if found is None:
            raise LookupError(f"no version of {name!r} holds this content")
        return from_tags(f"models:/{name}/{found.version}", name, str(found.version), found.tags or {},
                         tasks=REGISTERED_TASKS, tracking_uri=tracking, registry_uri=registry)
    except Exception as exc:  # noqa: BLE001 - any failure is one line (or, unguarded, no failure)
        if unguarded:
            return ResolvedModel(name=name, version="?", task=str(meta.get("task")), kind=str(meta.get("kind")),
                                 params=dict(meta.get("params") or {}))
        raise ModelLoadError(f"textspark pyfunc {name}: cannot read which languages it reads from the registry "
                             f"{registry or tracking or '(none configured)'}: {first_line(exc)}; set "
                             "MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI to the registry it was registered in, "
                             f"or set {UNGUARDED} to serve it without the language guard") from None


def face_plan(version: ResolvedModel, model: Any, settings: Mapping[str, Any]) -> driver.UdfPlan:
    """The task's own plan for ``version`` on the CPU in fp32, with ``settings`` (the environment's and
    ``model_config``'s): its task table keys; translate's ``source`` and ``target`` default to the model's
    first declared pair."""
    settings = dict(settings)
    spec = TASK_DEFS.get(version.task)
    if spec is None:  # a fitted clustering: its own predict, one assignment per row
        unknown = sorted(set(settings) - {"languages"})
        if unknown:
            raise ConfigError(CONFIG_ENV, unknown, f"languages (the only key of a {version.task} version)")
        return driver.plan(version.task, _own_predict, [("value", "string")], model=version, device="cpu",
                           precision="fp32", languages=settings.get("languages"))
    unknown = sorted(set(settings) - set(spec.extra_keys))
    if unknown:
        raise ConfigError(CONFIG_ENV, unknown, f"keys among {', '.join(spec.extra_keys)} (the {version.task} "
                                                   "task's own)")
    if version.task == "translate" and "target" not in settings:
        pairs = list(getattr(model, "pairs", None) or ())
        if not pairs:
            raise ConfigError(CONFIG_ENV, settings, f"a target: {version.label} declares no language pairs")
        source, target = str(pairs[0]).split("-")
        settings = {"source": source, "target": target, **settings}
    return spec.plan(model=version, device="cpu", precision="fp32", **settings)


def _own_predict(model: Any, texts: list[str], options: dict) -> dict[str, list]:
    """A version no task serves (a clustering): its model's own ``predict``, one value per text."""
    return {"value": list(model.predict(texts))}


def _unguarded(languages: Any) -> bool:
    try:
        return parse_languages(languages) == (ANY,)
    except ValueError:
        return False  # the plan names the bad value


serve_with(serve)
