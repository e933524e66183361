"""The task table: how the analyze job (and SQL registration) builds each task's UDF from config keys."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from udfs.config import Section, config_keys
from udfs.runtime import driver
from udfs.tasks.classify import ClassifyOptions, classify, classify_plan
from udfs.tasks.embed import EmbedOptions, embed, embed_plan
from udfs.tasks.language import LanguageOptions, detect_language, language_plan
from udfs.tasks.sentiment import SentimentOptions, sentiment, sentiment_plan
from udfs.tasks.summarize import SummarizeOptions, summarize, summarize_plan
from udfs.tasks.translate import TranslateOptions, translate, translate_plan


@dataclass(frozen=True)
class TaskDef:
    name: str
    plan: Callable[..., driver.UdfPlan]  # keyword arguments: model, device, precision, fail_on_error, **options
    options: type[Section]               # the task's own keys: their defaults and descriptions (the one source)
    factory: Callable                    # the public Python factory (udfs.<name>): its signature repeats options'
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
        "embed": TaskDef("embed", embed_plan, EmbedOptions, embed, value_field="embedding"),
        "sentiment": TaskDef("sentiment", sentiment_plan, SentimentOptions, sentiment),
        "classify": TaskDef("classify", classify_plan, ClassifyOptions, classify),
        "summarize": TaskDef("summarize", summarize_plan, SummarizeOptions, summarize),
        "translate": TaskDef("translate", translate_plan, TranslateOptions, translate, guarded=False),
        "language": TaskDef("language", language_plan, LanguageOptions, detect_language, guarded=False),
    }


TASK_DEFS = _registry()
COMMON_KEYS = ("task", "column", "model", "device", "precision", "fail_on_error")


def task_keys_help() -> str:
    """Each task's own configuration keys (a ``tasks[i]`` entry's, besides COMMON_KEYS) with their default, what
    they allow and their description, read from the options models: for a job's ``--help`` epilog, after
    :func:`udfs.config.config_help`, and so for the docs' configuration reference, which prints ``--help``."""
    lines = [f"task keys (tasks[i], besides {', '.join(COMMON_KEYS)}; guarded tasks also take languages):"]
    for name, tdef in TASK_DEFS.items():
        rows = config_keys(tdef.options)
        if not rows:
            lines.append(f"  {name}: none of its own")
            continue
        lines.append(f"  {name}:")
        width = max(len(key) for key, _ in rows) + 2
        for key, shown in rows:
            lines.append(f"    {key:<{width}}{shown}")
            description = tdef.options.model_fields[key].description
            if description:
                lines.append(f"    {'':<{width}}{description}")
    return "\n".join(lines)
