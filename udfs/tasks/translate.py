"""``translate``: text into a target language, from a fixed source language or the detected one.

Rows already in the target language pass through unchanged; a pair the model does not support gives a null
translation and a reason naming the pairs it does support; long rows are translated sentence by sentence
(segment by segment) and rejoined by the backend. With ``source="auto"`` a row's language is detected once
for the whole row: a row mixing two languages is translated (or passed through) as its dominant language.
"""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, field_validator

from udfs.config import Allowed, Section, validate
from udfs.errors import ConfigError
from udfs.models.catalog import load_catalog
from udfs.models.loading import load
from udfs.models.registry import resolve
from udfs.runtime import driver
from udfs.text import NeedsLetters

NO_LETTERS = "no letters to translate"  # emoji, digits or punctuation alone: the engine would invent text
FIELDS = [("translation", "string"), ("source_language", "string"), ("target_language", "string"),
          ("source_confidence", "float"), ("translated", "boolean"), ("detector", "string")]
_CODE = re.compile(r"^[a-z]{2,3}$")


def predict(model, texts: list[str], options: dict[str, Any]) -> dict[str, Any]:
    target, source = options["target"], options["source"]
    n = len(texts)
    if source == "auto":
        detector = load(options["detector"], device="cpu")
        found = detector.detect(texts, k=1)
        sources = [f[0][0] if f else None for f in found]
        confidence = [f[0][1] if f else None for f in found]
        detector_label = options["detector"].label
    else:
        sources, confidence, detector_label = [source] * n, [None] * n, None
    translation: list[str | None] = [None] * n
    translated: list[bool | None] = [None] * n
    errors: list[str | None] = [None] * n
    supported = _describe(model.pairs)
    groups: dict[str, list[int]] = {}
    for i, src in enumerate(sources):
        if src is None:
            errors[i] = "could not detect the source language; pass source= to translate anyway"
        elif src == target:
            translation[i], translated[i] = texts[i], False
        elif f"{src}-{target}" not in model.pairs:
            errors[i] = f"unsupported language pair {src}->{target}; supported pairs: {supported}"
        else:
            groups.setdefault(src, []).append(i)
    for src, idx in groups.items():
        for i, text in zip(idx, model.translate([texts[i] for i in idx], src, target)):
            translation[i], translated[i] = text, True
    return {"translation": translation, "source_language": sources, "target_language": [target] * n,
            "source_confidence": confidence, "translated": translated, "detector": [detector_label] * n,
            "error": errors}


def _describe(pairs) -> str:
    return ", ".join(p.replace("-", "->") for p in pairs) or "(none declared)"


def declared_pairs(resolved) -> tuple[str, ...]:
    """The pairs a registered translation model declares in its params (checked before any Spark work)."""
    params = resolved.params
    pairs = params.get("pairs")
    if isinstance(pairs, dict):
        return tuple(pairs)
    if isinstance(pairs, list):
        return tuple(pairs)
    languages = params.get("languages")
    if isinstance(languages, dict):
        codes = sorted(languages)
        return tuple(f"{a}-{b}" for a in codes for b in codes if a != b)
    return ()


class TranslateOptions(Section):
    """translate's own keys (``model``, ``device``, ``precision``, ``fail_on_error`` are every task's).

    Whether the model serves the pair (its declared pairs) is checked in :func:`translate_plan`."""

    target: Annotated[str, Allowed("an ISO 639-1 language code such as pt, en, de"), Field(
        description="ISO 639-1 code to translate into, one the model supports (``pt``, ``en``)")]
    source: Annotated[str, Allowed("auto or an ISO 639-1 language code such as en"), Field(
        description="``auto`` (detect each row's) or an ISO 639-1 code paired with ``target``")] = "auto"
    detector: Annotated[str | None, Allowed("a language model reference (models:/name@alias, models:/name/3 or "
                                            "a registered name)"), Field(
        description="with ``source=\"auto\"``, the language model reference; None: catalog "
                    "``defaults.language``")] = None

    @field_validator("target")
    @classmethod
    def _target_code(cls, code: str) -> str:
        if not _CODE.match(code):
            raise ValueError("target")  # the message is the field's Allowed text
        return code

    @field_validator("source")
    @classmethod
    def _source_code(cls, code: str) -> str:
        if code != "auto" and not _CODE.match(code):
            raise ValueError("source")
        return code


def translate_plan(*, model: str | None = None, device: str = "auto", precision: str | None = None,
                   fail_on_error: bool = False, catalog=None, **options) -> driver.UdfPlan:
    """translate's plan; ``options``: :class:`TranslateOptions`' keys (their defaults are the model's)."""
    o = validate(TranslateOptions, options)
    target, source = o.target, o.source
    p = driver.plan("translate", predict, FIELDS, model=model, options={"target": target, "source": source},
                     device=device, precision=precision, fail_on_error=fail_on_error, catalog=catalog,
                     screen=NeedsLetters(NO_LETTERS), guarded=False)  # its own per-row source check
    pairs = declared_pairs(p.model)
    if pairs:
        targets = sorted({x.split("-")[1] for x in pairs})
        if target not in targets:
            raise ConfigError("target", target, f"{', '.join(targets)} (model {p.model.label} supports "
                                                f"{_describe(pairs)})")
        if source not in ("auto", target) and f"{source}-{target}" not in pairs:
            raise ConfigError("source", source, f"auto or a source paired with {target!r} by model "
                                                f"{p.model.label}: {_describe(pairs)}")
    if source == "auto":
        reference = o.detector or (catalog or load_catalog()).default_reference("language")
        p.options["detector"] = resolve(reference, task="language")
    return p


def translate(column, *, target: str, source: str = "auto", model: str | None = None, detector: str | None = None,
              device: str = "auto", precision: str | None = None, fail_on_error: bool = False):
    """``df.withColumn("pt", translate("text", target="pt", source="en"))``.

    -> ``struct<translation, source_language, target_language, source_confidence, translated, detector,
    model, error>``. ``source="auto"`` detects each row's language with the language model (``detector=``, default the
    catalog's); rows already in ``target`` pass through (``translated`` false).

    Args:
        column: the text column, a name or a Column.
        target: ISO 639-1 code to translate into, one the model supports (``pt``, ``en``); required.
        source: ``auto`` (detect each row's) or an ISO 639-1 code paired with ``target``; default auto.
        model: a ``bergamot`` or ``hf_seq2seq`` model reference; default: catalog ``defaults.translate``.
        detector: with ``source="auto"``, the language model reference; None: catalog ``defaults.language``;
            default None.
        device: ``auto`` (the GPU Spark gave the task, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; default auto.
        precision: ``auto`` (bf16 where native), ``fp32``, ``bf16``, ``fp16``; default: the model's param, else fp32.
        fail_on_error: True raises at the first row left without a result; default False: null result + reason.

    Returns:
        Column: ``struct<translation, source_language, target_language, source_confidence, translated,
            detector, model, error>``; ``translation`` null and ``error`` the reason for a row in a pair the
            model does not serve, with no letters, or without text.

    Raises:
        ConfigError: a ``target`` the model does not serve, or a fixed ``source`` not paired with it; raised
            here, on the driver, before Spark runs.

    Examples:
        On a local session ``spark``, with a tiny random Marian model registered for en->pt as
        ``doc-marian-en-pt`` (its "translations" are gibberish; leave ``model=`` out for the catalog's
        default, Bergamot en<->pt):

        >>> from udfs import translate
        >>> df = spark.createDataFrame([(1, "The weather is fine today."), (2, "😀😀")], "id long, text string")
        >>> out = df.withColumn("pt", translate("text", target="pt", source="en",
        ...                                     model="models:/doc-marian-en-pt@champion"))
        >>> out.schema["pt"].dataType.simpleString()
        'struct<translation:string,source_language:string,target_language:string,source_confidence:float,translated:boolean,detector:string,model:string,error:string>'
        >>> [(r.id, r.pt.source_language, r.pt.translated, r.pt.error) for r in out.orderBy("id").collect()]
        [(1, 'en', True, None), (2, None, None, 'no letters to translate')]
        >>> translate("text", target="de", source="en", model="models:/doc-marian-en-pt@champion")
        Traceback (most recent call last):
        ...
        udfs.errors.ConfigError: target: got 'de'; allowed: pt (model doc-marian-en-pt/1 supports en->pt)
    """
    p = translate_plan(target=target, source=source, model=model, detector=detector, device=device,
                       precision=precision, fail_on_error=fail_on_error)
    return driver.make_udf(p)(column)
