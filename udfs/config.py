"""One configuration mechanism: a typed pydantic model per section, validated once, errors in one line.

Every section (job input/output/tasks/inference/spark/mlflow, task options, cluster, train, evaluate,
catalog entries) is a :class:`Section`. :func:`validate` turns pydantic's error into a
:class:`~udfs.errors.ConfigError` with today's message format, ``<file>: <key path>: got <value>;
allowed: <...>``. A field says what is allowed with ``Annotated[..., Allowed("a positive integer")]``; a
``Literal`` field lists its values; an unknown key lists the section's keys. A validator that needs a
richer message raises ``ConfigError`` itself (its key is relative to the section) and it passes through.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Mapping, Sequence, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from udfs.errors import ConfigError

S = TypeVar("S", bound="Section")


@dataclass(frozen=True)
class Allowed:
    """What a field allows, in words: the ``allowed:`` part of its error message."""

    text: str


Fraction = Annotated[float, Field(ge=0.0, le=1.0), Allowed("a number between 0 and 1")]
"""A number from 0 to 1: a score floor, a cut-off, a rate."""


class Section(BaseModel):
    """A configuration section: unknown keys rejected, no silent coercion (``"3"`` is not 3, ``true`` not 1)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True)

    def __init__(self, /, **data: Any) -> None:
        """``Section(key=value, ...)`` built in Python fails with the same one-line ConfigError."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _config_error(type(self), exc.errors()[0], data, "", None) from None

    __init__.__pydantic_base_init__ = True  # pydantic's marker: keep its own handling of this __init__


def validate(model: type[S], data: Any, *, key: str = "", source: str | None = None,
             what: str = "a mapping") -> S:
    """``data`` (a mapping, as read from YAML or given in Python) as ``model``, or a one-line ConfigError.

    ``key`` is the section's own path (``input``, ``tasks[0]``) that error keys are prefixed with."""
    if isinstance(data, model):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(key or "(top level)", data, what, source=source)
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise _config_error(model, exc.errors()[0], data, key, source) from None


def _config_error(model: type[Section], err: Mapping[str, Any], data: Mapping, prefix: str,
                  source: str | None) -> ConfigError:
    loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and _is_union_tag(part)))
    original = (err.get("ctx") or {}).get("error")
    if isinstance(original, ConfigError):  # a validator's own message: make its key absolute
        last = loc[-1] if loc else None
        names_field = isinstance(last, str) and (original.key == last or original.key.startswith((f"{last}.", f"{last}[")))
        inner = loc[:-1] if names_field else loc
        path = _join(prefix, inner, original.key) if original.key else _join(prefix, inner)
        return ConfigError(path, original.value, original.allowed, source=source)
    fields_at, value = _walk(model, data, loc)
    path = _join(prefix, loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        path = path if "." in path or "[" in path or prefix else f"(top level).{path}"
        return ConfigError(path, value, f"keys {', '.join(fields_at)}", source=source)
    annotation, allowed = _field_info(model, loc)
    if allowed is None and kind in ("model_type", "dict_type"):
        allowed = "a mapping"
    if allowed is None and kind == "bool_type":
        allowed = "true, false"
    if allowed is None:
        literal = _literal_values(annotation)
        allowed = ", ".join(str(v) for v in literal) if literal else err["msg"]
    return ConfigError(path, None if kind == "missing" else value, allowed, source=source)


def _is_union_tag(part: str) -> bool:
    """pydantic names a union member's branch in the error location (``list[str]``, ``function-after[...]``)."""
    return "[" in part or part in ("str", "int", "float", "bool", "list", "dict", "tuple", "none", "literal")


def _join(prefix: str, loc: tuple, *tail: str) -> str:
    path = prefix
    for part in (*loc, *tail):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _walk(model: type[Section], data: Any, loc: tuple) -> tuple[list[str], Any]:
    """The field names of the section holding ``loc``'s last part, and the value given there."""
    fields = list(model.model_fields)
    value = data
    for part in loc:
        if isinstance(value, Mapping) and part in value:
            sub = _field_info(model, (part,))[0] if isinstance(part, str) and model is not None else None
            value = value[part]
            nested = _section_type(sub)
            if nested is not None:
                model, fields = nested, list(nested.model_fields)
        elif isinstance(value, (list, tuple)) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return fields, None
    return fields, value


def _section_type(annotation: Any) -> type[Section] | None:
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    for arg in get_args(annotation) or ():
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def _field_info(model: type[Section], loc: tuple) -> tuple[Any, str | None]:
    """The annotation and ``Allowed`` text of the field at ``loc`` (following nested sections)."""
    annotation, allowed = None, None
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            continue
        info = model.model_fields[part]
        annotation = info.annotation
        allowed = next((m.text for m in info.metadata if isinstance(m, Allowed)), None)
        model = _section_type(annotation)
    return annotation, allowed


# -- the keys of a section, for a job's --help (jobs.*.main) and the docs' configuration reference --------------

def config_help(*models: type, exclude: Sequence[str] = ()) -> str:
    """The argparse epilog of a job: one line per configuration key of ``models`` (``udfs.config.Section``
    classes, nested sections as dotted keys), its default, and what it allows where the model says so."""
    rows: dict[str, str] = {}
    for model in models:
        for key, shown in config_keys(model):
            if key not in exclude and not key.startswith(tuple(f"{x}." for x in exclude)):
                rows.setdefault(key, shown)
    width = max(len(k) for k in rows) + 2
    lines = [f"  {key:<{width}}{shown}" for key, shown in rows.items()]
    return "configuration keys (--conf YAML) and their defaults:\n" + "\n".join(lines)


def config_keys(model: type, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, default and what is allowed) for every field of ``model``, nested sections expanded."""
    rows = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        allowed = next((m.text for m in info.metadata if isinstance(m, Allowed)), None)
        literal = _literal_values(info.annotation)
        allowed = allowed or (", ".join(str(v) for v in literal) if literal else None)
        section = _one_section(info.annotation)
        if info.is_required():
            rows.append((key, f"required{': ' + allowed if allowed else ''}"))
        elif section is None or info.get_default(call_default_factory=True) is None:
            default = info.get_default(call_default_factory=True)
            rows.append((key, _shown(default) + (f"  ({allowed})" if allowed and section is None else "")
                         + ("  (a section)" if section is not None else "")))
        if section is not None:
            rows += config_keys(section, f"{key}.")
    return rows


def _one_section(annotation: Any) -> type | None:
    """The section type a field holds (``X`` or ``X | None``), or None: a value, a list, a choice of sections."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    if get_origin(annotation) not in (Union, UnionType):
        return None
    found = [a for a in get_args(annotation) if a is not type(None)]
    return found[0] if len(found) == 1 and isinstance(found[0], type) and issubclass(found[0], Section) else None


def _literal_values(annotation: Any) -> tuple:
    """The values of a ``Literal`` field (``Literal[...] | None`` too); () where other values are allowed."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    if get_origin(annotation) in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if all(get_origin(a) is Literal for a in args):
            return tuple(v for a in args for v in get_args(a))
    return ()


def _shown(value: Any) -> str:
    """A default as YAML writes it: null, true, [], {}, a bare string."""
    if isinstance(value, str):
        return value or '""'
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value) if value is None or isinstance(value, (bool, list, dict)) else str(value)
