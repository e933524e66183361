"""Errors textspark raises on the driver, before any Spark work starts."""
from __future__ import annotations

from typing import Any, Iterable


class ConfigError(ValueError):
    """A configuration value is missing or not allowed.

    The message always names the key, the value given and what is allowed, e.g.
    ``tasks[1].task: got 'sentimnet'; allowed: classify, embed, language, sentiment, summarize, translate``.
    """

    def __init__(self, key: str, value: Any, allowed: str | Iterable[Any], *, source: str | None = None):
        if not isinstance(allowed, str):
            allowed = ", ".join(str(a) for a in allowed)
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: got {value!r}; allowed: {allowed}")
        self.key, self.value, self.allowed, self.source = key, value, allowed, source


class ModelReferenceError(LookupError):
    """A model reference (``models:/name@alias`` or ``models:/name/3``) does not resolve."""


class ModelLoadError(RuntimeError):
    """A registered version that resolved on the driver fails to load on a worker; names the version, the kind
    and the backend's error."""


class InputError(Exception):
    """The input or output cannot be used as configured (exit 3); one line naming the key and the value."""

    def __init__(self, key: str, value: Any, problem: str, *, source: str | None = None):
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: got {value!r}; {problem}")
        self.key, self.value, self.problem, self.source = key, value, problem, source


class MissingPackageError(ImportError):
    """A package a model or a data source needs is not installed (exit 3): one line naming what needs it,
    the missing module and the pip command that installs it."""

    def __init__(self, needed_by: str, module: str, command: str):
        super().__init__(f"{needed_by} needs the Python package {module!r}, which is not installed here; "
                         f"install it with: {command}")
        self.needed_by, self.module, self.command = needed_by, module, command
