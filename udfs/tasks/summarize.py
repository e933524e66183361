"""``summarize``: extractive (sentence centrality on an embedding model) or abstractive (seq2seq, map-reduce).

Extractive: split each row into sentences, embed them all (one length-batched pass for the whole Arrow
batch), score each sentence by its summed cosine similarity to the row's other sentences (degree
centrality, LexRank without the threshold), keep the best within ``max_sentences`` / ``max_words`` and
return them in their original order. Abstractive: the model's ``generate`` with the catalog's beams and
lengths; documents longer than the model's input are chunked, summarized, and the summaries summarized.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from udfs.config import Allowed, Section, validate
from udfs.errors import ConfigError
from udfs.runtime import driver
from udfs.sentences import split_sentences
from udfs.vectors import unit_rows

FIELDS = [("summary", "string"), ("method", "string"), ("input_sentences", "int"), ("summary_sentences", "int"),
          ("chunks", "int")]
KIND_METHOD = {"hf_encoder": "extractive", "hf_seq2seq": "abstractive"}


def predict(model, texts: list[str], options: dict[str, Any]) -> dict[str, Any]:
    if options["method"] == "abstractive":
        return _abstractive(model, texts)
    return _extractive(model, texts, options)


def _abstractive(model, texts: list[str]) -> dict[str, Any]:
    summaries, chunks = model.summarize(texts)
    errors = [None if s.strip() else "the model generated an empty summary" for s in summaries]
    return {"summary": [s if s.strip() else None for s in summaries], "method": ["abstractive"] * len(texts),
            "input_sentences": [len(split_sentences(t)) for t in texts],
            "summary_sentences": [len(split_sentences(s)) for s in summaries], "chunks": chunks, "error": errors}


def _extractive(model, texts: list[str], options: dict[str, Any]) -> dict[str, Any]:
    max_sentences, max_words = options["max_sentences"], options["max_words"]
    limit = options["max_input_sentences"]
    docs = [split_sentences(t) for t in texts]
    counts = [len(d) for d in docs]
    docs = [d[:limit] for d in docs]
    rank = [i for i, d in enumerate(docs) if len(d) > max_sentences or _words(d) > (max_words or np.inf)]
    flat = [s for i in rank for s in docs[i]]
    vectors = model.embed(flat) if flat else np.zeros((0, 1), dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise FloatingPointError("model produced non-finite values")
    summaries: list[str | None] = [" ".join(d) for d in docs]
    chosen_n = [len(d) for d in docs]
    start = 0
    for i in rank:
        n = len(docs[i])
        picked = _select(docs[i], centrality(vectors[start:start + n]), max_sentences, max_words)
        start += n
        summaries[i], chosen_n[i] = " ".join(picked), len(picked)
    return {"summary": summaries, "method": ["extractive"] * len(texts), "input_sentences": counts,
            "summary_sentences": chosen_n, "chunks": [None] * len(texts)}


def centrality(vectors: np.ndarray) -> np.ndarray:
    """Each sentence's summed (non-negative) cosine similarity to the other sentences."""
    v = unit_rows(vectors)
    sim = np.clip(v @ v.T, 0.0, None)
    np.fill_diagonal(sim, 0.0)
    return sim.sum(axis=1)


def _select(sentences: list[str], scores: np.ndarray, max_sentences: int, max_words: int | None) -> list[str]:
    """The highest-scoring sentences (earlier wins ties) that fit the budgets, in their original order; a
    top sentence longer than ``max_words`` on its own is cut to ``max_words`` words."""
    order = sorted(range(len(sentences)), key=lambda j: (-scores[j], j))
    keep, used = [], 0
    for j in order:
        if len(keep) >= max_sentences:
            break
        n = len(sentences[j].split())
        if max_words is not None and used + n > max_words:
            continue
        keep.append(j)
        used += n
    if not keep:  # every sentence exceeds the word budget alone
        return [" ".join(sentences[order[0]].split()[:max_words]) + " …"]
    return [sentences[j] for j in sorted(keep)]


def _words(sentences: list[str]) -> int:
    return sum(len(s.split()) for s in sentences)


PositiveInt = Annotated[int, Field(ge=1), Allowed("a positive integer")]


class SummarizeOptions(Section):
    """summarize's own keys (``model``, ``device``, ``precision``, ``fail_on_error`` are every task's).

    Whether the model serves ``method`` (its kind) is checked in :func:`summarize_plan`."""

    method: Annotated[Literal["auto", "extractive", "abstractive"], Field(
        description="``auto`` (the model's), ``extractive`` or ``abstractive`` (must be the model's)")] = "auto"
    max_sentences: Annotated[PositiveInt, Field(
        description="extractive: the most sentences kept, a positive integer")] = 3
    max_words: Annotated[int | None, Field(ge=1), Allowed("a positive integer or null"), Field(
        description="extractive: the most words kept, a positive integer; None: no word budget")] = None
    max_input_sentences: Annotated[PositiveInt, Field(
        description="extractive: sentences read from the start, a positive integer")] = 200


def summarize_plan(*, model: str | None = None, device: str = "auto", precision: str | None = None,
                   fail_on_error: bool = False, catalog=None, languages=None, **options) -> driver.UdfPlan:
    """summarize's plan; ``options``: :class:`SummarizeOptions`' keys (their defaults are the model's)."""
    o = validate(SummarizeOptions, options)
    p = driver.plan("summarize", predict, FIELDS, model=model, device=device, precision=precision,
                     fail_on_error=fail_on_error, catalog=catalog, options=o.model_dump(exclude={"method"}),
                     languages=languages)
    served = KIND_METHOD.get(p.model.kind)
    if served is None or o.method not in ("auto", served):
        raise ConfigError("method", o.method, f"{served or 'no method'} for model {p.model.label} "
                                            f"(kind {p.model.kind}); extractive needs an embedding model "
                                            "(hf_encoder), abstractive a seq2seq model (hf_seq2seq)")
    p.options["method"] = served
    return p


def summarize(column, *, model: str | None = None, method: str = "auto", max_sentences: int = 3,
              max_words: int | None = None, max_input_sentences: int = 200, device: str = "auto",
              precision: str | None = None, fail_on_error: bool = False, languages=None):
    """``df.withColumn("sum", summarize("text"))`` -> ``struct<summary, method, input_sentences,
    summary_sentences, chunks, model, error>``.

    The default model (an embedding model) summarizes extractively: at most ``max_sentences`` sentences
    (and ``max_words`` words, if given) chosen from the first ``max_input_sentences`` sentences. A seq2seq
    model (``model="models:/my-bart@champion"``) summarizes abstractively with its catalog's generation
    settings; ``chunks`` tells how many pieces a long document was cut into.

    Args:
        column: the text column, a name or a Column.
        model: an ``hf_encoder`` (extractive) or ``hf_seq2seq`` (abstractive); default: catalog ``defaults.summarize``.
        method: ``auto`` (the model's), ``extractive`` or ``abstractive`` (must be the model's); default auto.
        max_sentences: extractive: the most sentences kept, a positive integer; default 3.
        max_words: extractive: the most words kept, a positive integer; None: no word budget; default None.
        max_input_sentences: extractive: sentences read from the start, a positive integer; default 200.
        device: ``auto`` (the GPU Spark gave the task, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; default auto.
        precision: ``auto`` (bf16 where native), ``fp32``, ``bf16``, ``fp16``; default: the model's param, else fp32.
        fail_on_error: True raises at the first row left without a result; default False: null result + reason.
        languages: ``any`` turns the language guard off; a list of ISO 639 codes replaces what the model
            records; default: the model's recorded languages (rows in others get a null and the reason).

    Returns:
        Column: ``struct<summary, method, input_sentences, summary_sentences, chunks, model, error>``;
            ``method`` is ``extractive`` or ``abstractive``, ``chunks`` the pieces an abstractive summary read.

    Raises:
        ConfigError: a ``method`` the model's kind does not serve, or an option out of range; raised here, on
            the driver, before Spark runs.

    Examples:
        Extractive, on a local session ``spark``, with a tiny random encoder registered as ``tiny-encoder``
        (leave ``model=`` out for the catalog's default):

        >>> from udfs import summarize
        >>> text = "The match ended in a draw. The fans sang until the end. Oil prices fell sharply this week."
        >>> df = spark.createDataFrame([(1, text), (2, None)], "id long, text string")
        >>> out = df.withColumn("s", summarize("text", model="models:/tiny-encoder@champion", max_sentences=2))
        >>> out.schema["s"].dataType.simpleString()
        'struct<summary:string,method:string,input_sentences:int,summary_sentences:int,chunks:int,model:string,error:string>'
        >>> [(r.id, r.s.method, r.s.input_sentences, r.s.summary_sentences, r.s.error)
        ...  for r in out.orderBy("id").collect()]
        [(1, 'extractive', 3, 2, None), (2, None, None, None, 'null input')]
        >>> summarize("text", model="models:/tiny-encoder@champion", method="abstractive")
        Traceback (most recent call last):
        ...
        udfs.errors.ConfigError: method: got 'abstractive'; allowed: extractive for model tiny-encoder/1 (kind
        hf_encoder); extractive needs an embedding model (hf_encoder), abstractive a seq2seq model (hf_seq2seq)
    """
    p = summarize_plan(languages=languages, model=model, method=method, max_sentences=max_sentences, max_words=max_words,
                       max_input_sentences=max_input_sentences, device=device, precision=precision,
                       fail_on_error=fail_on_error)
    return driver.make_udf(p)(column)
