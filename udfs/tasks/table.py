"""The task table: how the analyze job (and SQL registration) builds each task's UDF from config keys."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from udfs.runtime import driver
from udfs.tasks.classify import classify_plan
from udfs.tasks.embed import embed_plan
from udfs.tasks.language import language_plan
from udfs.tasks.sentiment import sentiment_plan
from udfs.tasks.summarize import summarize_plan
from udfs.tasks.translate import translate_plan


@dataclass(frozen=True)
class TaskDef:
    name: str
    plan: Callable[..., driver.UdfPlan]  # keyword arguments: model, device, precision, fail_on_error, extras
    extra_keys: tuple[str, ...] = ()     # task-specific config keys the job passes through to ``plan``
    required_keys: tuple[str, ...] = ()
    value_field: str | None = None       # plain (non-struct) output: the job writes this field + <column>_error


def _registry() -> dict[str, TaskDef]:
    return {
        "embed": TaskDef("embed", embed_plan, value_field="embedding"),
        "sentiment": TaskDef("sentiment", sentiment_plan, extra_keys=("label_map",)),
        "classify": TaskDef("classify", classify_plan,
                            extra_keys=("labels", "descriptions", "multi_label", "threshold", "method",
                                        "hypothesis_template", "temperature", "chunk_words", "max_chunks")),
        "summarize": TaskDef("summarize", summarize_plan,
                             extra_keys=("method", "max_sentences", "max_words", "max_input_sentences")),
        "translate": TaskDef("translate", translate_plan, extra_keys=("target", "source", "detector"),
                             required_keys=("target",)),
        "language": TaskDef("language", language_plan, extra_keys=("min_confidence",)),
    }


TASK_DEFS = _registry()
COMMON_KEYS = ("task", "column", "model", "device", "precision", "fail_on_error")
