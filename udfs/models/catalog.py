"""The model catalog (conf/models.yml): which models exist, where their weights come from, their defaults."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from udfs.errors import ConfigError
from udfs.models.kinds import BUILDERS
from udfs.platform import CONF_DIR, PROJECT_ROOT

TASKS = ("embed", "sentiment", "classify", "summarize", "translate", "language")
KINDS = tuple(BUILDERS)
SOURCE_KEYS = ("package", "path", "hf_id", "train")  # train: a training config (built from real data)


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    task: str
    kind: str
    source: dict[str, str]
    alias: str = "champion"
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def reference(self) -> str:
        return f"models:/{self.name}@{self.alias}"

    def source_dir(self) -> Path | None:
        """Local folder holding the weights, or None for a hub id or a trained model."""
        if "package" in self.source:
            spec = importlib.util.find_spec(self.source["package"])
            if spec is None or spec.origin is None:
                raise ConfigError(f"models.{self.name}.source.package", self.source["package"],
                                  "an installed package (run `make run` or pip install it)")
            return Path(spec.origin).parent / self.source.get("subdir", "")
        if "path" in self.source:
            path = Path(os.path.expanduser(self.source["path"]))
            return path if path.is_absolute() else PROJECT_ROOT / path
        return None


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, CatalogEntry]
    defaults: dict[str, str]
    path: Path | None = None

    def default_reference(self, task: str) -> str:
        if task not in self.defaults:
            raise ConfigError(f"defaults.{task}", None, sorted(self.defaults), source=str(self.path))
        return self.defaults[task]

    def __getitem__(self, name: str) -> CatalogEntry:
        if name not in self.entries:
            raise ConfigError("model", name, sorted(self.entries), source=str(self.path))
        return self.entries[name]


def load_catalog(path: str | os.PathLike | None = None) -> Catalog:
    """Read and validate a catalog; ``path`` defaults to $TEXTSPARK_MODELS or conf/models.yml."""
    path = Path(path or os.environ.get("TEXTSPARK_MODELS") or CONF_DIR / "models.yml")
    if not path.is_file():
        raise ConfigError("models catalog", str(path), "an existing YAML file (conf/models.yml)")
    return parse_catalog(yaml.safe_load(path.read_text()) or {}, path=path)


def parse_catalog(data: dict[str, Any], *, path: Path | None = None) -> Catalog:
    src = str(path) if path else None
    models = data.get("models") or {}
    if not isinstance(models, dict):
        raise ConfigError("models", models, "a mapping of model name -> entry", source=src)
    entries = {name: _parse_entry(name, raw, src) for name, raw in models.items()}
    defaults = data.get("defaults") or {}
    for task, ref in defaults.items():
        if task not in TASKS:
            raise ConfigError(f"defaults.{task}", ref, TASKS, source=src)
    return Catalog(entries=entries, defaults=dict(defaults), path=path)


def _parse_entry(name: str, raw: Any, src: str | None) -> CatalogEntry:
    key = f"models.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(key, raw, "a mapping with task, kind, source", source=src)
    task, kind = raw.get("task"), raw.get("kind")
    if task not in TASKS:
        raise ConfigError(f"{key}.task", task, TASKS, source=src)
    if kind not in KINDS:
        raise ConfigError(f"{key}.kind", kind, KINDS, source=src)
    source = raw.get("source")
    if not isinstance(source, dict) or sum(k in source for k in SOURCE_KEYS) != 1:
        raise ConfigError(f"{key}.source", source, "a mapping with exactly one of package, path, hf_id, train",
                          source=src)
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{key}.params", params, "a mapping", source=src)
    return CatalogEntry(name=name, task=task, kind=kind, source={k: str(v) for k, v in source.items()},
                        alias=str(raw.get("alias", "champion")), params=params,
                        description=str(raw.get("description", "")))
