"""The task table: how the analyze job (and SQL registration) builds each task's UDF from config keys."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from udfs.config import Section
from udfs.runtime import driver
from udfs.tasks.classify import ClassifyOptions, classify_plan
from udfs.tasks.embed import EmbedOptions, embed_plan
from udfs.tasks.language import LanguageOptions, language_plan
from udfs.tasks.sentiment import SentimentOptions, sentiment_plan
from udfs.tasks.summarize import SummarizeOptions, summarize_plan
from udfs.tasks.translate import TranslateOptions, translate_plan


@dataclass(frozen=True)
class TaskDef:
    name: str
    plan: Callable[..., driver.UdfPlan]  # keyword arguments: model, device, precision, fail_on_error, options
    options: type[Section]               # the task's own keys, typed (COMMON_KEYS are every task's)
    value_field: str | None = None       # plain (non-struct) output: the job writes this field + <column>_error
    guarded: bool = True                 # takes ``languages`` (udfs.runtime.guard); language, translate check their own

    @property
    def extra_keys(self) -> tuple[str, ...]:
        """Task-specific config keys the job passes through to ``plan``: the options model's fields, and
        ``languages`` for a guarded task."""
        return tuple(self.options.model_fields) + (("languages",) if self.guarded else ())

    @property
    def required_keys(self) -> tuple[str, ...]:
        """The options that have no default."""
        return tuple(name for name, f in self.options.model_fields.items() if f.is_required())


def _registry() -> dict[str, TaskDef]:
    return {
        "embed": TaskDef("embed", embed_plan, EmbedOptions, value_field="embedding"),
        "sentiment": TaskDef("sentiment", sentiment_plan, SentimentOptions),
        "classify": TaskDef("classify", classify_plan, ClassifyOptions),
        "summarize": TaskDef("summarize", summarize_plan, SummarizeOptions),
        "translate": TaskDef("translate", translate_plan, TranslateOptions, guarded=False),
        "language": TaskDef("language", language_plan, LanguageOptions, guarded=False),
    }


TASK_DEFS = _registry()
COMMON_KEYS = ("task", "column", "model", "device", "precision", "fail_on_error")
