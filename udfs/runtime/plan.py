"""The runtime's shared types: what the driver plans (``UdfPlan``) and what the worker runs from it.

Both sides import this module and neither imports the other for a type: ``udfs.runtime.driver`` builds
plans and UDFs that call ``udfs.runtime.worker``; the worker only reads plans.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from udfs.models.reference import ResolvedModel
from udfs.runtime.guard import LanguageGuard

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
Predict = Callable[[Any, list, dict], Mapping[str, Any]]
Screen = Callable[[str], "str | None"]


@dataclass(frozen=True)
class UdfPlan:
    """Everything a worker needs, pickled into the UDF closure (small: no weights, no Spark objects)."""

    task: str
    model: ResolvedModel
    predict: Predict
    fields: tuple[tuple[str, str], ...]  # (name, Spark SQL type) of the task's own result fields
    options: dict = field(default_factory=dict, hash=False, compare=False)
    device: str = "auto"
    precision: str = "fp32"
    fail_on_error: bool = False
    screen: Screen | None = None  # the task's own rule: a reason to withhold a clean row from predict, or None
    guard: LanguageGuard | None = None  # rows in a language the model does not read are withheld (udfs.runtime.guard)
    progress: Any = field(default=None, hash=False, compare=False, repr=False)  # udfs.runtime.progress.RowCounter

    def struct_type(self) -> str:
        cols = [f"{name}: {dtype}" for name, dtype in self.fields] + ["model: string", "error: string"]
        return f"struct<{', '.join(cols)}>"
