"""``embed``: sentence embeddings (array<float>, L2-normalised for the default model)."""
from __future__ import annotations

from typing import Any

import numpy as np

from udfs.config import Section
from udfs.runtime import driver

FIELDS = [("embedding", "array<float>")]


class EmbedOptions(Section):
    """embed has no keys of its own (``model``, ``device``, ``precision``, ``fail_on_error`` are every task's)."""


def predict(model, texts: list[str], options: dict[str, Any]) -> dict[str, Any]:
    vectors = model.embed(texts)
    if not np.isfinite(vectors).all():
        raise FloatingPointError("model produced non-finite values")
    return {"embedding": vectors}


def embed_plan(*, model: str | None = None, device: str = "auto", precision: str | None = None,
               fail_on_error: bool = False, catalog=None, languages=None) -> driver.UdfPlan:
    return driver.plan("embed", predict, FIELDS, model=model, device=device, precision=precision,
                        fail_on_error=fail_on_error, catalog=catalog, languages=languages)


def embed(column, *, model: str | None = None, device: str = "auto", precision: str | None = None,
          fail_on_error: bool = False, with_error: bool = False, languages=None):
    """``df.withColumn("v", embed("text"))`` -> ``array<float>`` (null for null/empty/failed rows).

    Args:
        column: the text column, a name or a Column.
        model: ``models:/name@alias``, ``models:/name/N`` or a name (@champion); default: catalog ``defaults.embed``.
        device: ``auto`` (the GPU Spark gave the task, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; default auto.
        precision: ``auto`` (bf16 where native), ``fp32``, ``bf16``, ``fp16``; default: the model's param, else fp32.
        fail_on_error: True raises at the first row left without a result; default False: null result + reason.
        with_error: True returns ``struct<embedding, model, error>`` (why a row has no vector); default False.
        languages: ``any`` turns the language guard off; a list of ISO 639 codes replaces what the model
            records; default: the model's recorded languages (rows in others get a null and the reason).

    Returns:
        Column: ``array<float>`` (the model's dimension; L2-normalised by the default model), null for a row
            without a result; with ``with_error=True``, ``struct<embedding, model, error>``: the vector, the
            version that produced it (``name/version``) and why a row has no vector.

    Examples:
        On a local session ``spark``, with a tiny random 32-wide encoder registered as ``tiny-encoder`` (leave
        ``model=`` out for the catalog's default, multilingual-e5-small):

        >>> from udfs import embed
        >>> df = spark.createDataFrame([(1, "The match ended in a draw."), (2, None)], "id long, text string")
        >>> df.select(embed("text", model="models:/tiny-encoder@champion").alias("v")).schema["v"].dataType
        ArrayType(FloatType(), True)
        >>> out = df.withColumn("v", embed("text", model="models:/tiny-encoder@champion", with_error=True))
        >>> out.schema["v"].dataType.simpleString()
        'struct<embedding:array<float>,model:string,error:string>'
        >>> [(r.id, len(r.v.embedding or []), r.v.model, r.v.error) for r in out.orderBy("id").collect()]
        [(1, 32, 'tiny-encoder/1', None), (2, 0, 'tiny-encoder/1', 'null input')]
    """
    p = embed_plan(model=model, device=device, precision=precision, fail_on_error=fail_on_error, languages=languages)
    return driver.make_udf(p, only=None if with_error else "embedding")(column)
