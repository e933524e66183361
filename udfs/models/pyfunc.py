"""The MLflow pyfunc face of every textspark model: ``mlflow.pyfunc.load_model`` / ``spark_udf`` work on it.

``predict`` returns, per the version's registered task, what :data:`RESULT_TYPES` names; each version is
registered with an output signature saying the same, so ``mlflow.pyfunc.spark_udf(spark, uri)`` infers its
result type (a version registered without one takes ``result_type=RESULT_TYPES[task]``). The fields are the
textspark UDF's (sentiment labels canonical through the version's ``label_map``), less ``model`` and ``error``:

- embed: a float32 array (rows x dim); a row without a result is NaN (spark_udf has no null array<float>).
- sentiment, classify: a DataFrame ``label``, ``score``, ``scores`` (``{}`` where no result).
- language: a DataFrame ``language``, ``confidence``.
- summarize, translate: a Series of strings (None for an empty summary, as the UDF gives null).

A row without a result (null, empty or invisible text) is None / NaN here, and null through spark_udf: string
values are :class:`NullableStrings`, which MLflow's ``str`` cast leaves missing.
"""
from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
from pandas.api.types import pandas_dtype

from udfs.models.labels import canonical_scores
from udfs.models.loading import build
from udfs.text import clean_texts

LABELLED = "struct<label:string,score:float,scores:map<string,float>>"
RESULT_TYPES = {"embed": "array<float>", "sentiment": LABELLED, "classify": LABELLED,
                "language": "struct<language:string,confidence:float>", "summarize": "string", "translate": "string"}


def output_signature(task: str):
    """The MLflow signature (outputs only: inputs are texts in any shape) of a ``task`` model's predict;
    None for other tasks (a clustering's predict gives a dict per row)."""
    if task not in RESULT_TYPES:
        return None
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Map, Schema

    string, real = DataType.string, DataType.float
    columns = {"embed": [ColSpec(Array(real))],
               "sentiment": [ColSpec(string, "label"), ColSpec(real, "score"), ColSpec(Map(real), "scores")],
               "language": [ColSpec(string, "language"), ColSpec(real, "confidence")]}
    columns["classify"] = columns["sentiment"]
    return ModelSignature(inputs=None, outputs=Schema(columns.get(task, [ColSpec(string)])))


def text_column(frame: pd.DataFrame) -> pd.Series:
    """The texts of a DataFrame input: its ``text`` column, else its only (string) column."""
    if "text" in frame.columns:
        return frame["text"]
    if len(frame.columns) == 1:
        return frame[frame.columns[0]]
    strings = [c for c in frame.columns if frame[c].map(lambda v: v is None or isinstance(v, str)).all()
               and frame[c].notna().any()]
    if len(strings) != 1:
        raise ValueError(f"textspark model input: a DataFrame with a 'text' column, or exactly one string column; "
                         f"got columns {list(frame.columns)} ({len(strings)} of them strings)")
    return frame[strings[0]]


class NullableStrings(pd.arrays.StringArray):
    """A pandas string column (dtype ``string``) whose missing values stay missing through spark_udf.

    MLflow's spark_udf casts every value of a string result with ``str`` (``DataFrame.map(str)`` for a
    ``string`` result, ``Series.astype(str)`` for a struct's string field), so a None became the text
    ``'None'`` and a NaN ``'nan'``: no value of a plain column comes out null. Here both casts leave a missing
    value None, which Spark writes as null; iterating (``tolist()``) gives None for it too, as predict says."""

    @classmethod
    def of(cls, values) -> "NullableStrings":
        return cls(np.array([pd.NA if v is None else v for v in values], dtype=object))

    def __iter__(self):
        return (None if v is pd.NA else v for v in super().__iter__())

    def tolist(self) -> list:
        return list(self)

    def astype(self, dtype, copy=True):
        dtype = pandas_dtype(dtype)
        if isinstance(dtype, np.dtype) and dtype.kind == "U":
            return self._objects()
        return super().astype(dtype, copy=copy)

    def map(self, mapper, na_action=None):
        """``mapper`` of each present value; a missing one stays None (whatever ``na_action``)."""
        out = self._objects()
        present = ~self.isna()
        out[present] = [mapper(v) for v in out[present]]
        return out

    def _objects(self) -> np.ndarray:
        out = np.asarray(self, dtype=object).copy()
        out[self.isna()] = None
        return out


class TextsparkPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the ``textspark/`` artifact folder by kind; ``predict`` takes texts, returns the task output."""

    def load_context(self, context):
        self._folder = Path(context.artifacts["textspark"])
        meta = json.loads((self._folder / "textspark.json").read_text())
        self._task, self._params = meta["task"], meta.get("params") or {}
        self._model = build(self._folder, device="cpu", precision="fp32")

    def predict(self, context, model_input, params=None):
        """One result per input row, in order (see the module docstring for its type). Texts are cleaned as
        the Spark UDFs clean them (udfs.text.clean_texts), so both give the same result for the same row.
        A DataFrame's texts are its ``text`` column, or its only string column."""
        texts = text_column(model_input) if isinstance(model_input, pd.DataFrame) else pd.Series(model_input)
        clean, _ = clean_texts(texts.reset_index(drop=True))
        ok = np.flatnonzero(clean.notna().to_numpy())
        rows = clean.iloc[ok].tolist()
        if self._task == "embed":
            out = np.full((len(clean), self._model.dim), np.nan, dtype=np.float32)
            if len(ok):
                out[ok] = self._model.embed(rows)
            return out
        if self._task in ("sentiment", "classify"):
            fields = self._labelled(rows) if len(ok) else {"label": [], "score": [], "scores": []}
            return _spread(fields, ok, len(clean), {"label": None, "score": np.nan, "scores": {}})
        if self._task == "language":
            best = [found[0] if found else (None, np.nan) for found in self._model.detect(rows, k=1)]
            fields = {"language": [b[0] for b in best], "confidence": [b[1] for b in best]}
            return _spread(fields, ok, len(clean), {"language": None, "confidence": np.nan})
        out: list = [None] * len(clean)
        for i, value in zip(ok, self._model.predict(rows) if len(ok) else []):
            empty = self._task == "summarize" and not value.strip()  # the UDF gives no empty summary: null
            out[i] = None if empty else value
        if self._task in ("summarize", "translate"):  # strings: null through spark_udf, not 'None'
            return pd.Series(NullableStrings.of(out))
        return out  # a clustering's assignments: one dict per row

    def _labelled(self, rows: list[str]) -> dict[str, list]:
        """label, score, scores per row; a sentiment model's labels reach the canonical ones as
        udfs.tasks.sentiment.predict maps them (probabilities of labels mapping to one are added)."""
        proba = np.asarray(self._model.predict_proba(rows), dtype=np.float64)
        names = [str(x) for x in self._model.labels]
        if self._task == "sentiment":
            names, proba = canonical_scores(proba, self._model.labels, self._params.get("label_map"))
        top = proba.argmax(axis=1)
        return {"label": [names[j] for j in top], "score": [float(p[j]) for p, j in zip(proba, top)],
                "scores": [dict(zip(names, map(float, p))) for p in proba]}


def _spread(fields: dict[str, list], ok: np.ndarray, n: int, empty: dict) -> pd.DataFrame:
    """A DataFrame of ``n`` rows: ``fields`` at rows ``ok``, ``empty``'s values elsewhere; string fields
    (the ones whose empty value is None) as NullableStrings, so spark_udf gives null where there is none."""
    columns = {}
    for name, values in fields.items():
        column = [empty[name]] * n
        for i, value in zip(ok, values):
            column[i] = value
        columns[name] = NullableStrings.of(column) if empty[name] is None else column
    return pd.DataFrame(columns)
