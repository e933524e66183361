"""``detect_language``: the language of each row (ISO 639-1 code) and the detector's confidence."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from udfs.config import Allowed, Fraction, Section, validate
from udfs.runtime import driver

FIELDS = [("language", "string"), ("confidence", "float")]


def predict(model, texts: list[str], options: dict[str, Any]) -> dict[str, Any]:
    min_confidence = options.get("min_confidence", 0.0)
    languages, confidences, errors = [], [], []
    for best in model.detect(texts, k=1):
        if not best:
            languages.append(None), confidences.append(None), errors.append("no letters to identify a language")
            continue
        code, prob = best[0]
        if prob < min_confidence:
            languages.append(None), confidences.append(prob)
            errors.append(f"language unclear: best guess {code!r} at {prob:.2f} < min_confidence {min_confidence}")
            continue
        languages.append(code), confidences.append(prob), errors.append(None)
    return {"language": languages, "confidence": confidences, "error": errors}


class LanguageOptions(Section):
    """detect_language's own keys (``model``, ``device``, ``precision``, ``fail_on_error`` are every task's)."""

    min_confidence: Annotated[Fraction, Field(
        description="0 to 1; a best guess below it gives a null language and a reason")] = 0.0


def language_plan(*, model: str | None = None, device: str = "auto", precision: str | None = None,
                  fail_on_error: bool = False, catalog=None, **options) -> driver.UdfPlan:
    """language's plan; ``options``: :class:`LanguageOptions`' keys (their defaults are the model's)."""
    o = validate(LanguageOptions, options)
    return driver.plan("language", predict, FIELDS, model=model, options=o.model_dump(),
                        device=device, precision=precision, fail_on_error=fail_on_error, catalog=catalog,
                        guarded=False)


def detect_language(column, *, model: str | None = None, min_confidence: float = 0.0, device: str = "auto",
                    precision: str | None = None, fail_on_error: bool = False):
    """``df.withColumn("lang", detect_language("text"))`` -> ``struct<language, confidence, model, error>``.

    ``language`` is the ISO 639-1 code (``en``, ``pt``; lid.176's three-letter code for the few languages
    without one). Rows with no letters, and rows whose best guess is below ``min_confidence``, get a null
    language and a reason.

    Args:
        column: the text column, a name or a Column.
        model: ``models:/name@alias``, ``models:/name/N`` or a name (@champion); default: catalog ``defaults.language``.
        min_confidence: 0 to 1; a best guess below it gives a null language and a reason; default 0.0.
        device: ``auto`` (the GPU Spark gave the task, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; default auto.
        precision: ``auto`` (bf16 where native), ``fp32``, ``bf16``, ``fp16``; default: the model's param, else fp32.
        fail_on_error: True raises at the first row left without a result; default False: null result + reason.

    Returns:
        Column: ``struct<language, confidence, model, error>``.

    Examples:
        On a local session ``spark`` whose registry holds the catalog's default, ``textspark-lid176``
        (fastText lid.176; ``python -m jobs.register_models`` registers it):

        >>> from udfs import detect_language
        >>> df = spark.createDataFrame([(1, "The weather is fine and the train was on time."),
        ...                             (2, "O tempo está bom hoje e o trem chegou na hora certa."),
        ...                             (3, "123 !!")], "id long, text string")
        >>> out = df.withColumn("lang", detect_language("text"))
        >>> out.schema["lang"].dataType.simpleString()
        'struct<language:string,confidence:float,model:string,error:string>'
        >>> [(r.id, r.lang.language, r.lang.model, r.lang.error) for r in out.orderBy("id").collect()]
        [(1, 'en', 'textspark-lid176/1', None), (2, 'pt', 'textspark-lid176/1', None),
         (3, None, 'textspark-lid176/1', 'no letters to identify a language')]
    """
    p = language_plan(model=model, min_confidence=min_confidence, device=device, precision=precision,
                      fail_on_error=fail_on_error)
    return driver.make_udf(p)(column)
