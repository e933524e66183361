"""``classify``: struct<label, score, scores, labels, model, error>, supervised or zero-shot.

Three methods, chosen from the model's kind (or ``method=``):

* ``supervised``: a trained classifier (``embedding_head`` or ``hf_classifier``), e.g.
  ``model="models:/topics@champion"``; its own labels; ``labels=`` is not allowed.
* ``embedding``: zero-shot on an embedding model (the default when ``labels=`` is given without a model):
  cosine similarity between the text's vector and each label's vector (the label text through
  ``hypothesis_template``, or its description); ``scores`` = softmax(similarity / temperature). A text
  longer than ``chunk_words`` words (default 100) is the mean of its windows' vectors (at most
  ``max_chunks``, default 16), so a long article is read whole rather than cut at the model's token limit;
  ``chunk_words=0`` cuts instead.
* ``nli``: zero-shot on an NLI model (labels include "entailment"): does the text entail
  ``hypothesis_template.format(label)``? ``scores`` = softmax of the entailment logits across labels.

``multi_label=True``: ``labels`` lists every label whose own score reaches ``threshold``, best first
(possibly none); the per-label scores are then independent: P(label) for supervised models, P(entailment)
against contradiction for NLI, the raw cosine similarity for the embedding method (pick a threshold on that
scale, e.g. 0.3). Single-label: ``labels`` is ``[label]``. ``label`` / ``score`` are always the top label.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal, Mapping, Sequence

import numpy as np
from pydantic import Field, field_validator, model_validator

from udfs.config import Allowed, Fraction, Section, validate
from udfs.errors import ConfigError
from udfs.models import model_cache
from udfs.models.backends.heads import matmul_in_chunks
from udfs.models.catalog import load_catalog
from udfs.runtime import driver
from udfs.vectors import unit_rows

FIELDS = [("label", "string"), ("score", "float"), ("scores", "map<string,float>"), ("labels", "array<string>")]
Method = Literal["auto", "supervised", "embedding", "nli"]
SUPERVISED_KINDS = ("embedding_head", "hf_classifier")
# The embedding method averages the label's vector over several generic phrasings (prompt ensembling).
DEFAULT_TEMPLATES = {"embedding": ("This text is about {}.", "The topic of this text is {}.",
                                   "This article is about {}.", "A story about {}."),
                     "nli": ("This example is about {}.",)}
# Embedding method: texts longer than this many words are embedded as the mean of their windows.
# Measured on all 2,225 BBC articles with the default prompts: 0.847 cut at 256 tokens, 0.853 with
# 150-word windows, 0.862 with 100 and 60 (docs/benchmarks/quality.md: picked on BBC, lightly tuned).
DEFAULT_CHUNK_WORDS = 100


def predict(model, texts: list[str], options: dict[str, Any]) -> dict[str, Any]:
    method, multi = options["method"], options["multi_label"]
    if method == "supervised":
        names, scores = list(model.labels), np.asarray(model.predict_proba(texts), dtype=np.float64)
    elif method == "nli":
        names = options["labels"]
        hypotheses = [p[0] for p in options["prompts"]]
        scores = np.asarray(model.zero_shot(texts, hypotheses, multi_label=multi), dtype=np.float64)
    else:
        names = options["labels"]
        scores = _embedding_scores(model, texts, options["prompts"], options["temperature"], multi,
                                   options.get("chunk_words"), options.get("max_chunks", 16))
    if not np.isfinite(scores).all():
        raise FloatingPointError("model produced non-finite scores")
    return _postprocess(scores, names, multi, options["threshold"])


def _embedding_scores(model, texts: list[str], prompts: list[list[str]], temperature: float,
                      multi: bool, chunk_words: int | None = None, max_chunks: int = 16) -> np.ndarray:
    key = ("classify.prompts", tuple(map(tuple, prompts)))  # label vectors: once per model, while it is cached
    label_vectors = model_cache.derived(model, key, lambda: _label_vectors(model, prompts))
    vectors = model.embed_windows(texts, chunk_words, max_chunks) if chunk_words else model.embed(texts)
    sim = matmul_in_chunks(_unit(vectors), label_vectors.T)  # a row's scores do not depend on its batch
    if multi:
        return np.clip(sim, 0.0, 1.0)
    z = sim / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _label_vectors(model, prompts: list[list[str]]) -> np.ndarray:
    """One unit vector per label: the normalised mean of its prompts' vectors."""
    flat = _unit(model.embed([p for group in prompts for p in group]))
    out, start = [], 0
    for group in prompts:
        out.append(flat[start:start + len(group)].mean(axis=0))
        start += len(group)
    return _unit(np.stack(out))


def _unit(v: np.ndarray) -> np.ndarray:
    return unit_rows(np.asarray(v, dtype=np.float64))


def _postprocess(scores: np.ndarray, names: Sequence[str], multi: bool, threshold: float) -> dict[str, Any]:
    top = scores.argmax(axis=1)
    if multi:
        chosen = [[names[j] for j in np.argsort(-s, kind="stable") if s[j] >= threshold] for s in scores]
    else:
        chosen = [[names[j]] for j in top]
    return {"label": [names[j] for j in top], "score": [float(s[j]) for s, j in zip(scores, top)],
            "scores": [dict(zip(names, map(float, s))) for s in scores], "labels": chosen}


def _method_for(resolved, requested: str) -> str:
    kind, params = resolved.kind, resolved.params
    nli = bool(params.get("nli")) or any(str(x).lower().startswith("entail") for x in params.get("labels") or ())
    if kind == "hf_encoder":
        available = ("embedding",)
    elif kind == "hf_classifier" and nli:
        available = ("nli",)
    elif kind in SUPERVISED_KINDS:
        available = ("supervised",)
    else:
        raise ConfigError("model", resolved.label, f"a classifier ({', '.join(SUPERVISED_KINDS)}), an NLI "
                          f"hf_classifier or an embedding model (hf_encoder); this one is {kind!r}")
    if requested == "auto":
        return available[0]
    if requested not in available:
        raise ConfigError("method", requested, f"{', '.join(available)} for {resolved.label} (kind {kind})")
    return requested


def _prompts(labels: list[str], descriptions, templates: Sequence[str]) -> list[list[str]]:
    """Per label, the texts that stand for it: its description, else each template filled with it
    (``descriptions`` as checked by :class:`ClassifyOptions`)."""
    if descriptions is None:
        return [[t.format(label) for t in templates] for label in labels]
    if isinstance(descriptions, Mapping):
        return [[str(descriptions[label])] if label in descriptions else [t.format(label) for t in templates]
                for label in labels]
    return [[d] for d in descriptions]


class ClassifyOptions(Section):
    """classify's own keys (``model``, ``device``, ``precision``, ``fail_on_error`` are every task's).

    Checks that need the resolved model (which method it serves, its own labels) stay in :func:`classify_plan`."""

    labels: Annotated[list | tuple | None, Allowed("a non-empty list of distinct, non-empty label names"), Field(
        description="zero-shot label names (distinct, non-empty); required zero-shot, none for a trained one")] = None
    descriptions: Annotated[Any, Field(  # checked against labels below
        description="zero-shot: label -> text standing for it, or a list of one per label")] = None
    multi_label: Annotated[bool, Allowed("true, false"), Field(
        description="True lists every label whose score reaches ``threshold`` in ``labels``")] = False
    threshold: Annotated[Fraction, Field(
        description="0 to 1, the multi-label cut-off (a cosine similarity for embedding)")] = 0.5
    method: Annotated[Method, Field(
        description="``auto`` (from the model's kind), ``supervised``, ``embedding`` or ``nli``")] = "auto"
    hypothesis_template: Annotated[str | list | tuple | None, Allowed(
        "a string containing {} (the label), or a list of them (embedding method: averaged)"), Field(
        description="a string with ``{}`` or a list (averaged; nli: one); None: the model's, else generic")] = None
    temperature: Annotated[float, Field(gt=0.0), Allowed("a positive number"), Field(
        description="a positive number scaling the embedding method's softmax")] = 0.05
    chunk_words: Annotated[int | None, Field(ge=0, le=100_000), Allowed("an integer from 0 to 100000"), Field(
        description="embedding: texts over this many words are the mean of such windows, 0 cuts; 0 to 100000; "
                    "None: 100")] = None
    max_chunks: Annotated[int | None, Field(ge=1, le=100_000), Allowed("an integer from 1 to 100000"), Field(
        description="embedding: the most windows per text, 1 to 100000")] = 16

    @field_validator("labels")
    @classmethod
    def _distinct_names(cls, labels):
        if labels is not None and (not labels or not all(isinstance(x, str) and x.strip() for x in labels)
                                   or len(set(labels)) != len(labels)):
            raise ValueError("labels")  # the message is the field's Allowed text
        return labels

    @field_validator("hypothesis_template")
    @classmethod
    def _placeholders(cls, template):
        templates = [template] if isinstance(template, str) else template
        if templates is not None and (not templates or not all(isinstance(t, str) and "{}" in t for t in templates)):
            raise ValueError("hypothesis_template")
        return template

    @model_validator(mode="after")
    def _descriptions_match_labels(self):
        labels, descriptions = self.labels, self.descriptions
        if labels is None or descriptions is None:
            return self
        if isinstance(descriptions, Mapping):
            unknown = sorted(set(descriptions) - set(labels))
            if unknown:
                raise ConfigError("descriptions", unknown, f"keys among labels {list(labels)}")
        elif not (isinstance(descriptions, (list, tuple)) and len(descriptions) == len(labels)
                  and all(isinstance(d, str) and d.strip() for d in descriptions)):
            raise ConfigError("descriptions", descriptions,
                              f"a mapping label -> description, or a list of {len(labels)} non-empty strings")
        return self


def classify_plan(*, model: str | None = None, device: str = "auto", precision: str | None = None,
                  fail_on_error: bool = False, catalog=None, languages=None, **options) -> driver.UdfPlan:
    """classify's plan; ``options``: :class:`ClassifyOptions`' keys (their defaults are the model's)."""
    o = validate(ClassifyOptions, options)
    labels = None if o.labels is None else list(o.labels)
    if model is None and labels is not None:  # zero-shot without a model: the default embedding model
        model = (catalog or load_catalog()).default_reference("embed")
    p = driver.plan("classify", predict, FIELDS, model=model, device=device, precision=precision,
                     fail_on_error=fail_on_error, catalog=catalog, languages=languages)
    chosen = _method_for(p.model, o.method)
    options: dict[str, Any] = {"method": chosen, "multi_label": o.multi_label, "threshold": o.threshold,
                               "temperature": o.temperature}
    if chosen == "supervised":
        if labels is not None or o.descriptions is not None:
            known = p.model.params.get("labels")
            raise ConfigError("labels", labels, f"none for {p.model.label}, a trained classifier with its own labels"
                              f"{' (' + ', '.join(map(str, known)) + ')' if known else ''}; for zero-shot "
                              "labels use an embedding or NLI model")
    else:
        if labels is None:
            raise ConfigError("labels", None, f"a non-empty list of labels: {p.model.label} classifies zero-shot "
                              f"({chosen}); or pass model= a trained classifier, e.g. models:/topics@champion")
        templates = o.hypothesis_template or p.model.params.get("hypothesis_template") or DEFAULT_TEMPLATES[chosen]
        templates = [templates] if isinstance(templates, str) else list(templates)
        if chosen == "nli" and len(templates) != 1:
            raise ConfigError("hypothesis_template", templates, "one template for the nli method")
        options.update(labels=labels, prompts=_prompts(labels, o.descriptions, templates))
    if chosen == "embedding":
        options.update(chunk_words=DEFAULT_CHUNK_WORDS if o.chunk_words is None else o.chunk_words,
                       max_chunks=o.max_chunks)
    elif o.chunk_words:
        raise ConfigError("chunk_words", o.chunk_words, f"0 or nothing for the {chosen} method (windows are for "
                          "zero-shot classification on an embedding model)")
    return replace(p, options=options)


def classify(column, *, model: str | None = None, labels: Sequence[str] | None = None, descriptions=None,
             multi_label: bool = False, threshold: float = 0.5, method: str = "auto",
             hypothesis_template: str | Sequence[str] | None = None, temperature: float = 0.05,
             chunk_words: int | None = None, max_chunks: int = 16,
             device: str = "auto", precision: str | None = None, fail_on_error: bool = False, languages=None):
    """``df.withColumn("t", classify("text", labels=["sport", "politics"]))`` (zero-shot) or
    ``classify("text", model="models:/topics@champion")`` (trained) -> ``struct<label, score, scores, labels,
    model, error>`` (the module docstring explains the three methods and the scores).

    Args:
        column: the text column, a name or a Column.
        model: a trained classifier, NLI or embedding model (``models:/name@alias``, ``models:/name/N``, a name);
            default: catalog ``defaults.embed`` with ``labels``, else ``defaults.classify``.
        labels: zero-shot label names (distinct, non-empty); required zero-shot, none for a trained one;
            default None.
        descriptions: zero-shot: label -> text standing for it, or a list of one per label; default None.
        multi_label: True lists every label whose score reaches ``threshold`` in ``labels``; default False.
        threshold: 0 to 1, the multi-label cut-off (a cosine similarity for embedding); default 0.5.
        method: ``auto`` (from the model's kind), ``supervised``, ``embedding`` or ``nli``; default auto.
        hypothesis_template: a string with ``{}`` or a list (averaged; nli: one); None: the model's, else
            generic; default None.
        temperature: a positive number scaling the embedding method's softmax; default 0.05.
        chunk_words: embedding: texts over this many words are the mean of such windows, 0 cuts; 0 to 100000;
            None: 100; default None.
        max_chunks: embedding: the most windows per text, 1 to 100000; default 16.
        device: ``auto`` (the GPU Spark gave the task, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; default auto.
        precision: ``auto`` (bf16 where native), ``fp32``, ``bf16``, ``fp16``; default: the model's param, else fp32.
        fail_on_error: True raises at the first row left without a result; default False: null result + reason.
        languages: ``any`` turns the language guard off; a list of ISO 639 codes replaces what the model
            records; default: the model's recorded languages (rows in others get a null and the reason).

    Returns:
        Column: ``struct<label, score, scores, labels, model, error>``: the top label and its score, every
            label's score, ``labels`` (the top label; with ``multi_label``, every label reaching ``threshold``),
            the version that produced the row and why a row has no result.

    Raises:
        ConfigError: labels given to a trained classifier, none given for zero-shot, repeated labels, an option
            out of range; raised here, on the driver, before Spark runs.

    Examples:
        Zero-shot on a local session ``spark``, with a tiny random encoder registered as ``tiny-encoder``
        (leave ``model=`` out for the catalog's embedding default):

        >>> from udfs import classify
        >>> df = spark.createDataFrame([(1, "The match ended in a draw after a late goal.")], "id long, text string")
        >>> out = df.withColumn("t", classify("text", model="models:/tiny-encoder@champion",
        ...                                   labels=["sport", "politics"]))
        >>> out.schema["t"].dataType.simpleString()
        'struct<label:string,score:float,scores:map<string,float>,labels:array<string>,model:string,error:string>'
        >>> r = out.first().t
        >>> r.label in ("sport", "politics"), sorted(r.scores), round(sum(r.scores.values()), 3), r.model
        (True, ['politics', 'sport'], 1.0, 'tiny-encoder/1')
        >>> classify("text", model="models:/tiny-encoder@champion")
        Traceback (most recent call last):
        ...
        udfs.errors.ConfigError: labels: got None; allowed: a non-empty list of labels: tiny-encoder/1 classifies
        zero-shot (embedding); or pass model= a trained classifier, e.g. models:/topics@champion
    """
    p = classify_plan(model=model, labels=labels, descriptions=descriptions, multi_label=multi_label,
                      threshold=threshold, method=method, hypothesis_template=hypothesis_template,
                      temperature=temperature, chunk_words=chunk_words, max_chunks=max_chunks, device=device,
                      precision=precision, fail_on_error=fail_on_error, languages=languages)
    return driver.make_udf(p)(column)
