"""The model catalog (conf/models.yml): which models exist, where their weights come from, their defaults."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, Field, PrivateAttr

from udfs.config import Allowed, Section, validate
from udfs.errors import ConfigError
from udfs.models.convert import check_convert_source
from udfs.models.kinds import KINDS
from udfs.models.packages import require
from udfs.models.reference import LANGUAGES_RULE, checked_languages
from udfs.platform import CONF_DIR

TaskName = Literal["embed", "sentiment", "classify", "summarize", "translate", "language"]
TASKS = get_args(TaskName)
SOURCE_KEYS = ("package", "path", "hf_id", "train", "convert")  # train: a training config (built from real data);
# convert: another package's weights turned into a Hugging Face folder at registration (udfs.models.convert)


def _known_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError("kind", kind, KINDS)
    return kind


def _one_source(source: dict[str, str]) -> dict[str, str]:
    if sum(k in source for k in SOURCE_KEYS) != 1:
        raise ConfigError("source", source, "a mapping with exactly one of " + ", ".join(SOURCE_KEYS))
    if "convert" in source:
        check_convert_source(source)
    return source


class CatalogEntry(Section):
    """``models.<name>``: a model the catalog can register, where its weights come from, its defaults."""

    name: str
    task: TaskName
    kind: Annotated[str, AfterValidator(_known_kind), Allowed(", ".join(KINDS))]
    source: Annotated[dict[str, str], AfterValidator(_one_source),
                      Allowed("a mapping with exactly one of " + ", ".join(SOURCE_KEYS))]
    alias: str = "champion"
    params: Annotated[dict[str, Any], Allowed("a mapping")] = Field(default_factory=dict)
    description: str = ""
    languages: Annotated[Any, AfterValidator(checked_languages), Allowed(LANGUAGES_RULE)] = None  # what it reads
    _folder: Path = PrivateAttr(default=CONF_DIR)  # the catalog file's folder
    _file: str | None = PrivateAttr(default=None)  # the catalog file, named by errors found later

    @property
    def catalog_file(self) -> str:
        return self._file or "catalog"

    @property
    def reference(self) -> str:
        return f"models:/{self.name}@{self.alias}"

    def source_dir(self) -> Path | None:
        """Local folder holding the weights, or None for a hub id, a converted or a trained model."""
        if "package" in self.source:
            require(self.source["package"], f"{self.catalog_file}: models.{self.name}.source.package")
            return Path(importlib.util.find_spec(self.source["package"]).origin).parent / self.source.get("subdir", "")
        if "path" in self.source:
            return self._local(self.source["path"])
        return None

    def train_config(self) -> Path:
        """A ``source: {train: <config>}`` entry's training config."""
        return self._local(self.source["train"])

    def _local(self, path: str) -> Path:
        """A relative ``path:`` / ``train:`` is relative to the catalog file's folder."""
        resolved = Path(os.path.expanduser(path))
        return resolved if resolved.is_absolute() else self._folder / resolved


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
    if isinstance(raw, dict):
        raw = {**raw, "name": name, "source": _strings(raw.get("source")), "alias": str(raw.get("alias", "champion")),
               "description": str(raw.get("description", "")), "params": raw.get("params") or {}}
    entry = validate(CatalogEntry, raw, key=f"models.{name}", source=src, what="a mapping with task, kind, source")
    if src is not None:
        entry._folder, entry._file = Path(src).parent, src
    return entry


def _strings(source: Any) -> Any:
    """Source values are names and paths: YAML may read them as numbers."""
    return {str(k): str(v) for k, v in source.items()} if isinstance(source, dict) else source
