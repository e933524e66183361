"""``detect_language``: the language of each row (ISO 639-1 code) and the detector's confidence."""
from __future__ import annotations

from typing import Any

from udfs.errors import ConfigError
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


def language_plan(*, model: str | None = None, min_confidence: float = 0.0, device: str = "auto",
                  precision: str | None = None, fail_on_error: bool = False, catalog=None) -> driver.UdfPlan:
    if isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float)) \
            or not 0.0 <= min_confidence <= 1.0:
        raise ConfigError("min_confidence", min_confidence, "a number between 0 and 1")
    return driver.plan("language", predict, FIELDS, model=model, options={"min_confidence": float(min_confidence)},
                        device=device, precision=precision, fail_on_error=fail_on_error, catalog=catalog)


def detect_language(column, *, model: str | None = None, min_confidence: float = 0.0, device: str = "auto",
                    precision: str | None = None, fail_on_error: bool = False):
    """``df.withColumn("lang", detect_language("text"))`` -> struct<language, confidence, model, error>.

    ``language`` is the ISO 639-1 code (``en``, ``pt``; lid.176's three-letter code for the few languages
    without one). Rows with no letters, and rows whose best guess is below ``min_confidence``, get a null
    language and a reason.
    """
    p = language_plan(model=model, min_confidence=min_confidence, device=device, precision=precision,
                      fail_on_error=fail_on_error)
    return driver.make_udf(p)(column)
