"""The task table: how the analyze job (and SQL registration) builds each task's UDF from config keys."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from udfs import runtime


@dataclass(frozen=True)
class TaskDef:
    name: str
    plan: Callable[..., runtime.UdfPlan]  # keyword arguments: model, device, precision, fail_on_error, extras
    extra_keys: tuple[str, ...] = ()     # task-specific config keys the job passes through to ``plan``
    required_keys: tuple[str, ...] = ()
    value_field: str | None = None       # plain (non-struct) output: the job writes this field + <column>_error


def _registry() -> dict[str, TaskDef]:
    from udfs.embed import embed_plan

    return {
        "embed": TaskDef("embed", embed_plan, value_field="embedding"),
    }


TASK_DEFS = _registry()
COMMON_KEYS = ("task", "column", "model", "device", "precision", "fail_on_error")
