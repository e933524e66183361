"""The MLflow pyfunc face of every textspark model: ``mlflow.pyfunc.load_model`` / ``spark_udf`` work on it.

The face only speaks MLflow: ``load_context`` builds the model by kind, ``predict`` finds the texts in its
input and turns the batch core's rows into the types below. The rows themselves come from the batch core
(``udfs.runtime.batch.run_batch``) on the version's own task plan (``udfs.tasks.serving``), as the textspark
UDFs' do: the same cleaning, the same language guard (a version that records the languages it reads checks
each row's language with the catalog's language model, resolved through the registry at load), the same
options (sentiment labels canonical through the version's ``label_map``; translate with its first declared
pair) and the same results.

``predict`` returns, per the version's registered task, what :data:`RESULT_TYPES` names; each version is
registered with an output signature saying the same, so ``mlflow.pyfunc.spark_udf(spark, uri)`` infers its
result type (a version registered without one takes ``result_type=RESULT_TYPES[task]``). The fields are the
textspark UDF's, less ``model`` and ``error`` (and classify's ``labels``):

- embed: a float32 array (rows x dim); a row without a result is NaN (spark_udf has no null array<float>).
- sentiment, classify: a DataFrame ``label``, ``score``, ``scores`` (``{}`` where no result).
- language: a DataFrame ``language``, ``confidence``.
- summarize, translate: a Series of strings (None for an empty summary, as the UDF gives null).

A row without a result (null, empty or invisible text, a language the version does not read, a row the model
failed on) is None / NaN here, and null through spark_udf: string values are :class:`NullableStrings`, which
MLflow's ``str`` cast leaves missing. The face's settings, the task's own config keys, are a JSON object in
``$TEXTSPARK_PYFUNC_CONFIG`` (MLflow's ``model_config`` reaches ``load_context`` only for keys a version
declared when logged): ``{"languages": "any"}`` serves the version without the guard, a list of ISO 639 codes
replaces what it records, ``{"source": "en", "target": "de"}`` picks a translation pair.
"""
from __future__ import annotations

import json
from pathlib import Path
import mlflow.pyfunc
import numpy as np
import pandas as pd
from pandas.api.types import pandas_dtype

from udfs.models.face import server
from udfs.models.loading import build

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
        self._task = meta["task"]
        self._model = build(self._folder, device="cpu", precision="fp32")
        self._rows = server()(self._folder, meta, self._model, getattr(context, "model_config", None))

    def predict(self, context, model_input, params=None):
        """One result per input row, in order (see the module docstring for its type): the batch core's rows,
        as the textspark UDF gives them. A DataFrame's texts are its ``text`` column, or its only string
        column."""
        texts = text_column(model_input) if isinstance(model_input, pd.DataFrame) else pd.Series(model_input)
        rows = self._rows(texts.reset_index(drop=True))
        if self._task == "embed":
            return _vectors(rows["embedding"], getattr(self._model, "dim", None))
        if self._task in ("sentiment", "classify"):
            return pd.DataFrame({"label": NullableStrings.of(rows["label"]), "score": _floats(rows["score"]),
                                 "scores": [v if v is not None else {} for v in rows["scores"]]})
        if self._task == "language":
            return pd.DataFrame({"language": NullableStrings.of(rows["language"]),
                                 "confidence": _floats(rows["confidence"])})
        if self._task in ("summarize", "translate"):  # strings: null through spark_udf, not 'None'
            return pd.Series(NullableStrings.of(rows["summary" if self._task == "summarize" else "translation"]))
        return rows["value"].tolist()  # a clustering's assignments: one dict per row (None where none)


def _floats(values: pd.Series) -> np.ndarray:
    """float64, NaN where there is no value (spark_udf gives null for it)."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _vectors(values: pd.Series, dim: int | None) -> np.ndarray:
    """rows x dim float32, a row of NaN where there is no vector."""
    found = [np.asarray(v, dtype=np.float32) for v in values if v is not None]
    dim = len(found[0]) if found else dim
    out = np.full((len(values), dim or 0), np.nan, dtype=np.float32)
    for i, v in enumerate(values):
        if v is not None:
            out[i] = v
    return out
