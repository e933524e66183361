"""Whole-DataFrame comparison with float tolerance that reaches inside arrays, maps and structs."""
from __future__ import annotations

import math
from typing import Any, Sequence


def _close(a: Any, b: Any, atol: float, path: str) -> None:
    if hasattr(a, "asDict"):
        a = a.asDict(recursive=False)
    if hasattr(b, "asDict"):
        b = b.asDict(recursive=False)
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _close(a[k], b[k], atol, f"{path}.{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, atol, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None and math.isclose(a, b, abs_tol=atol), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def assert_rows_equal(df, expected: Sequence[dict], *, key: str, atol: float = 1e-5) -> None:
    """``df`` holds exactly ``expected`` (dicts with every column), compared by ``key``, floats within atol."""
    actual = sorted((r.asDict(recursive=True) for r in df.collect()), key=lambda r: r[key])
    expected = sorted(expected, key=lambda r: r[key])
    assert len(actual) == len(expected), f"{len(actual)} rows != {len(expected)} expected"
    for a, e in zip(actual, expected):
        assert list(a) == list(e), f"columns {list(a)} != {list(e)}"
        _close(a, e, atol, f"row {a[key]!r}")


def register_catalog_entry(name: str) -> str:
    """Register conf/models.yml's entry ``name`` in the test registry (idempotent); its reference."""
    from jobs.register_models import register_entry
    from udfs.models.catalog import load_catalog

    entry = load_catalog()[name]
    register_entry(entry)
    return entry.reference
