"""Model references, pure: ``models:/name@alias`` parsing and the exact version a reference resolved to.

No MLflow here, so the runtime, the loaders and the registry can all share these types without a circle.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from udfs.errors import ModelReferenceError

_REF = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


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

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def label(self) -> str:
        """How outputs name it: ``textspark-minilm/3``."""
        return f"{self.name}/{self.version}"


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
        return reference, "champion", None
    match = _REF.match(reference)
    if not match:
        raise ModelReferenceError(f"model: got {reference!r}; allowed: models:/<name>@<alias> or "
                                  "models:/<name>/<version>")
    return match["name"], match["alias"], match["version"]
