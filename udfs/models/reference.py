"""Model references, pure: ``models:/name@alias`` parsing and the exact version a reference resolved to.

No MLflow here, so the runtime, the loaders and the registry can all share these types without a circle.
What a registry says about a version (its tags) is data, never a path: ``from_tags`` admits only the values
textspark writes, and ``ResolvedModel.cache_name`` is a fingerprint or ``<name>-<version>``, never more.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from udfs.errors import ConfigError, ModelReferenceError
from udfs.models.kinds import KINDS

_REF = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # MLflow forbids only '/' and ':'; a name may name a folder
NAME_RULE = "a letter or digit, then up to 127 letters, digits, '.', '_' or '-'"
VERSION = re.compile(r"[1-9][0-9]{0,9}")
FINGERPRINT = re.compile(r"[0-9a-f]{64}")
FINGERPRINT_RULE = "64 lowercase hex characters (the sha256 textspark registers), or none (a version registered " \
                   "before fingerprints)"
SHOWN = 200  # characters of a refused value a message shows (a path, whole; a blob, cut)
LANGUAGES_TAG = "textspark.languages"  # the languages a version reads: "any", or ISO 639 codes "en,pt"
LANGUAGE = re.compile(r"[a-z]{2,3}")
ANY = "any"
LANGUAGES_RULE = "any, or ISO 639 codes (two or three lowercase letters) separated by commas, e.g. en,pt"


def checked_languages(value: Any) -> tuple[str, ...] | None:
    """:func:`parse_languages` for a configuration key (a catalog entry's, a training config's): a ConfigError
    naming ``languages`` and the rule when the value is neither."""
    try:
        return parse_languages(value)
    except ValueError:
        raise ConfigError("languages", value, LANGUAGES_RULE) from None


def parse_languages(value: Any) -> tuple[str, ...] | None:
    """A languages value (a tag's ``"en,pt"`` / ``"any"``, or a list) as a sorted tuple, ``("any",)``, or None
    when absent; ValueError when it is neither."""
    if value is None or value == "":
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(value)
    codes = [str(c).strip() for c in items]
    if codes == [ANY]:
        return (ANY,)
    if not all(LANGUAGE.fullmatch(c) for c in codes):
        raise ValueError(value)
    return tuple(sorted(set(codes)))


def languages_tag(languages: tuple[str, ...] | None) -> str | None:
    return None if languages is None else ",".join(languages)


@dataclass(frozen=True)
class ResolvedModel:
    """An exact model version, resolved once on the driver and shipped to the workers."""

    name: str
    version: str
    task: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    fingerprint: str = ""
    tracking_uri: str = ""
    registry_uri: str = ""
    languages: tuple[str, ...] | None = None  # what it reads: ("any",), ISO 639 codes, or None (not recorded)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def label(self) -> str:
        """How outputs name it: ``textspark-minilm/3``."""
        return f"{self.name}/{self.version}"

    def cache_name(self) -> str:
        """The version's folder name in a per-host cache: its fingerprint, else (a version registered before
        fingerprints) ``<name>-<version>``; anything that could name another folder raises."""
        fingerprint, name, version = (str(v) for v in (self.fingerprint or "", self.name, self.version))
        if fingerprint and FINGERPRINT.fullmatch(fingerprint):
            return fingerprint
        if not fingerprint and NAME.fullmatch(name) and VERSION.fullmatch(version):
            return f"{name}-{version}"
        if fingerprint:
            raise ModelReferenceError(f"model: {_cut(self.label)}: fingerprint {_cut(self.fingerprint)!r} is not a "
                                      f"cache folder name; allowed: {FINGERPRINT_RULE}")
        raise ModelReferenceError(f"model: {_cut(self.label)!r} has no fingerprint and is not a cache folder name; "
                                  f"allowed: a name that is {NAME_RULE}, and a version number")


def from_tags(reference: str, name: str, version: str, tags: dict[str, str], *, tasks: Iterable[str],
              tracking_uri: str, registry_uri: str) -> ResolvedModel:
    """The version a registry describes by ``tags``, admitting only values textspark writes: a known task and
    kind, params a JSON object, a fingerprint of 64 hex characters (or none), languages ``any`` or ISO 639
    codes (or none). Anything else raises one line
    naming the version, the tag, the value (cut) and what is allowed."""
    def refuse(tag: str, allowed: str):
        return ModelReferenceError(f"model: {name}/{version} (from {reference!r}): tag {tag}: "
                                   f"got {_cut(tags.get(tag))!r}; allowed: {allowed}")

    if not VERSION.fullmatch(str(version)):
        raise ModelReferenceError(f"model: {name} (from {reference!r}): version {_cut(str(version))!r}; allowed: "
                                  "a positive integer")
    if not tags.get("textspark.task") or not tags.get("textspark.kind"):
        raise ModelReferenceError(f"model: {name}/{version} was not registered by textspark "
                                  "(no textspark.task / textspark.kind tags)")
    if tags["textspark.task"] not in tasks:
        raise refuse("textspark.task", ", ".join(sorted(tasks)))
    if tags["textspark.kind"] not in KINDS:
        raise refuse("textspark.kind", ", ".join(sorted(KINDS)))
    try:
        params = json.loads(tags.get("textspark.params", "{}"))
    except ValueError:
        params = None
    if not isinstance(params, dict):
        raise refuse("textspark.params", "a JSON object")
    fingerprint = tags.get("textspark.fingerprint", "")
    if fingerprint and not FINGERPRINT.fullmatch(fingerprint):
        raise refuse("textspark.fingerprint", FINGERPRINT_RULE)
    try:
        languages = parse_languages(tags.get(LANGUAGES_TAG))
    except ValueError:
        raise refuse(LANGUAGES_TAG, LANGUAGES_RULE) from None
    return ResolvedModel(name=name, version=str(version), task=tags["textspark.task"], kind=tags["textspark.kind"],
                         params=params, fingerprint=fingerprint, tracking_uri=tracking_uri, registry_uri=registry_uri,
                         languages=languages)


def _cut(value: Any) -> Any:
    """A refused value as a message shows it: strings longer than SHOWN characters are cut."""
    return value[:SHOWN] + "..." if isinstance(value, str) and len(value) > SHOWN else value


def parse_reference(reference: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` -> (name, alias, None); ``models:/name/3`` -> (name, None, "3");
    a bare ``name`` means ``models:/name@champion``."""
    if not isinstance(reference, str) or not reference:
        raise ModelReferenceError(f"model: got {reference!r}; allowed: models:/<name>@<alias>, "
                                  "models:/<name>/<version> or a registered model name")
    if not reference.startswith("models:/"):
        if "/" in reference or "@" in reference:
            raise ModelReferenceError(f"model: got {reference!r}; allowed: models:/<name>@<alias>, "
                                      "models:/<name>/<version> or a registered model name")
        return check_name(reference, reference), "champion", None
    match = _REF.match(reference)
    if not match:
        raise ModelReferenceError(f"model: got {reference!r}; allowed: models:/<name>@<alias> or "
                                  "models:/<name>/<version>")
    return check_name(match["name"], reference), match["alias"], match["version"]


def check_name(name: str, reference: str) -> str:
    """``name`` when it is a model name textspark serves (it may name a cache folder); else one line."""
    if not NAME.fullmatch(name):
        raise ModelReferenceError(f"model: got {_cut(reference)!r}; a model name is {NAME_RULE}")
    return name
