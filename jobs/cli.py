"""``textspark <command>``: the jobs as one console script (``textspark analyze --conf job.yml``), and the
configuration keys with their defaults that each job's ``--help`` lists, read from its configuration models."""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Sequence, Union, get_args, get_origin

COMMANDS = {"analyze": "jobs.analyze", "cluster": "jobs.cluster", "train": "jobs.train_classifier",
            "evaluate": "jobs.evaluate", "register": "jobs.register_models", "shadow": "jobs.shadow"}


def main(argv: list[str] | None = None) -> int:
    """Run ``textspark <command> [args]``: the command's own ``main`` gets the args; returns its exit status
    (2 for an unknown command or a bad option, as argparse exits)."""
    parser = argparse.ArgumentParser(prog="textspark", description="Run a textspark job, e.g. textspark analyze "
                                     "--conf job.yml", epilog="textspark <command> --help: the command's options "
                                     "and configuration keys with their defaults")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, module in COMMANDS.items():
        commands.add_parser(name, help=f"{_summary(module)} ({module})", add_help=False)
    try:
        args, rest = parser.parse_known_args(argv)
        job = importlib.import_module(COMMANDS[args.command])
        saved, sys.argv[0] = sys.argv[0], f"textspark {args.command}"  # the command's usage line names it
        try:
            return job.main(rest)
        finally:
            sys.argv[0] = saved
    except SystemExit as exc:  # argparse: --help (0), an unknown command or option (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1


def _summary(module: str) -> str:
    """The first line of a job module's docstring, read without importing the job (Spark, torch)."""
    source = Path(importlib.util.find_spec(module).origin).read_text()
    return (ast.get_docstring(ast.parse(source)) or module).splitlines()[0].rstrip(".")


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
    from udfs.config import Allowed

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
    from udfs.config import Section

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


if __name__ == "__main__":
    sys.exit(main())
