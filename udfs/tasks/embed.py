"""``embed``: sentence embeddings (array<float>, L2-normalised for the default model)."""
from __future__ import annotations

from typing import Any

import numpy as np

from udfs.runtime import driver

FIELDS = [("embedding", "array<float>")]


def predict(model, texts: list[str], options: dict[str, Any]) -> dict[str, Any]:
    vectors = model.embed(texts)
    if not np.isfinite(vectors).all():
        raise FloatingPointError("model produced non-finite values")
    return {"embedding": vectors}


def embed_plan(*, model: str | None = None, device: str = "auto", precision: str | None = None,
               fail_on_error: bool = False, catalog=None) -> driver.UdfPlan:
    return driver.plan("embed", predict, FIELDS, model=model, device=device, precision=precision,
                        fail_on_error=fail_on_error, catalog=catalog)


def embed(column, *, model: str | None = None, device: str = "auto", precision: str | None = None,
          fail_on_error: bool = False, with_error: bool = False):
    """``df.withColumn("v", embed("text"))`` -> array<float> (null for null/empty/failed rows).

    ``with_error=True`` returns the struct ``<embedding, model, error>`` instead, with the reason a row
    got no vector and the model version that produced it.
    """
    p = embed_plan(model=model, device=device, precision=precision, fail_on_error=fail_on_error)
    return driver.make_udf(p, only=None if with_error else "embedding")(column)
