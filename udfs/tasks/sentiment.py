"""``sentiment``: struct<label, score, scores, model, error> with canonical labels negative/neutral/positive.

Any classifier registered for the ``sentiment`` task works: a head on frozen embeddings (the default,
trained on labeled tweets, drug reviews, film snippets and hand-written reviews in six languages), or a Hugging
Face sequence classifier. A model's own labels ("POSITIVE", "LABEL_1", "5 stars") reach the canonical ones
through ``label_map`` (stored in the catalog entry's / registered version's params, or given per call). Labels that already are canonical, in any case, map to
themselves. Several model labels may map to one canonical label: their probabilities add up. ``min_score``
trades labels for nulls: a best label scored below it gives a null label and a reason.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Mapping

import numpy as np
from pydantic import Field, field_validator

from udfs.config import Allowed, Fraction, Section, validate
from udfs.errors import ConfigError
from udfs.models.labels import CANONICAL, canonical_map, canonical_scores  # noqa: F401 - CANONICAL: re-exported
from udfs.runtime import driver

FIELDS = [("label", "string"), ("score", "float"), ("scores", "map<string,float>")]
LABEL_MAP_ALLOWED = "a mapping of model label -> negative | neutral | positive"


def predict(model, texts: list[str], options: dict[str, Any]) -> dict[str, Any]:
    proba = np.asarray(model.predict_proba(texts), dtype=np.float64)
    if not np.isfinite(proba).all():
        raise FloatingPointError("model produced non-finite scores")
    targets, scores = canonical_scores(proba, model.labels, options.get("label_map"))
    top = scores.argmax(axis=1)
    best = [float(s[j]) for s, j in zip(scores, top)]
    floor = options.get("min_score", 0.0)
    unclear = [score < floor for score in best]  # a null label with the reason; score and scores stay
    return {"label": [None if low else targets[j] for j, low in zip(top, unclear)], "score": best,
            "scores": [dict(zip(targets, map(float, s))) for s in scores],
            "error": [f"sentiment unclear: best guess {targets[j]!r} at {score:.2f} < min_score {floor}" if low
                      else None for j, score, low in zip(top, best, unclear)]}


def checked_label_map(label_map: Any) -> dict[str, str]:
    """``label_map`` (a mapping, or None for none) as {model label: canonical label}, strings; a ConfigError
    when it is no mapping or a value is not canonical."""
    if label_map is not None and not isinstance(label_map, Mapping):
        raise ConfigError("label_map", label_map, LABEL_MAP_ALLOWED)
    chosen = {str(k): str(v) for k, v in (label_map or {}).items()}
    bad = {k: v for k, v in chosen.items() if v not in CANONICAL}
    if bad:
        raise ConfigError("label_map", bad, f"values among {', '.join(CANONICAL)}")
    return chosen


class SentimentOptions(Section):
    """sentiment's own keys (``model``, ``device``, ``precision``, ``fail_on_error`` are every task's).

    A registered version's own ``label_map`` param (used when none is given) is checked the same way, and
    whether the map covers every label the model declares, in :func:`sentiment_plan`."""

    label_map: Annotated[dict[str, str] | None, Allowed(LABEL_MAP_ALLOWED), Field(
        description="model label -> negative | neutral | positive; None: the model's ``label_map`` param")] = None
    min_score: Annotated[Fraction, Field(
        description="0 to 1; a best label scored below it gives a null label and a reason")] = 0.0

    @field_validator("label_map", mode="before")
    @classmethod
    def _canonical_values(cls, label_map):
        return None if label_map is None else checked_label_map(label_map)


def sentiment_plan(*, model: str | None = None, device: str = "auto", precision: str | None = None,
                   fail_on_error: bool = False, catalog=None, languages=None, **options) -> driver.UdfPlan:
    """sentiment's plan; ``options``: :class:`SentimentOptions`' keys (their defaults are the model's)."""
    o = validate(SentimentOptions, options)
    p = driver.plan("sentiment", predict, FIELDS, model=model, device=device, precision=precision,
                     fail_on_error=fail_on_error, catalog=catalog, languages=languages)
    chosen = checked_label_map(p.model.params.get("label_map")) if o.label_map is None else o.label_map
    if p.model.params.get("labels"):  # known at registration: check every label is covered, before Spark starts
        try:
            canonical_map(p.model.params["labels"], chosen)
        except ValueError as exc:
            raise ConfigError("label_map", chosen, f"{exc} (model {p.model.label})") from None
    return replace(p, options={"label_map": chosen, "min_score": o.min_score})


def sentiment(column, *, model: str | None = None, label_map: Mapping[str, str] | None = None,
              min_score: float = 0.0, device: str = "auto", precision: str | None = None,
              fail_on_error: bool = False, languages=None):
    """``df.withColumn("s", sentiment("text"))`` -> ``struct<label, score, scores, model, error>``.

    ``label``: negative | neutral | positive; ``score``: its probability; ``scores``: every canonical
    label the model covers -> probability; ``model``: the version that produced the row; ``error``: why a
    row got no label (null/empty input, a language the model does not read, a best label scored below
    ``min_score``, a failure), else null. A row below ``min_score`` keeps its ``score`` and ``scores``.

    Args:
        column: the text column, a name or a Column.
        model: ``models:/name@alias``, ``models:/name/N`` or a name (@champion); default: catalog ``defaults.sentiment``.
        label_map: model label -> negative | neutral | positive; None: the model's ``label_map`` param;
            default None.
        min_score: 0 to 1; a best label scored below it gives a null label and a reason; default 0.0.
        device: ``auto`` (the GPU Spark gave the task, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; default auto.
        precision: ``auto`` (bf16 where native), ``fp32``, ``bf16``, ``fp16``; default: the model's param, else fp32.
        fail_on_error: True raises at the first row left without a result; default False: null result + reason.
        languages: ``any`` turns the language guard off; a list of ISO 639 codes replaces what the model
            records; default: the model's recorded languages (rows in others get a null and the reason).

    Returns:
        Column: ``struct<label, score, scores, model, error>``; ``label`` null and ``error`` the reason for a
            row without a result.

    Raises:
        ConfigError: a ``label_map`` value that is not canonical, or one that leaves a model label unmapped;
            raised here, on the driver, before Spark runs.

    Examples:
        On a local session ``spark``, with a random head on a tiny encoder registered as ``doc-sentiment``
        (labels NEG / NEU / POS, its ``label_map`` stored with it; leave ``model=`` out for the catalog's
        default):

        >>> from udfs import sentiment
        >>> df = spark.createDataFrame([(1, "I love this product!"), (2, "   ")], "id long, text string")
        >>> out = df.withColumn("s", sentiment("text", model="models:/doc-sentiment@champion"))
        >>> out.schema["s"].dataType.simpleString()
        'struct<label:string,score:float,scores:map<string,float>,model:string,error:string>'
        >>> [(r.id, r.s.label in ("negative", "neutral", "positive"), sorted(r.s.scores or {}), r.s.error)
        ...  for r in out.orderBy("id").collect()]
        [(1, True, ['negative', 'neutral', 'positive'], None), (2, False, [], 'empty input (no visible characters)')]
        >>> sentiment("text", model="models:/doc-sentiment@champion", label_map={"NEG": "bad"})
        Traceback (most recent call last):
        ...
        udfs.errors.ConfigError: label_map: got {'NEG': 'bad'}; allowed: values among negative, neutral, positive
    """
    p = sentiment_plan(model=model, label_map=label_map, min_score=min_score, device=device, precision=precision,
                       fail_on_error=fail_on_error, languages=languages)
    return driver.make_udf(p)(column)
