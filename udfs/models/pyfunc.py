"""The MLflow pyfunc face of every textspark model: ``mlflow.pyfunc.load_model`` / ``spark_udf`` work on it."""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from udfs.models.loading import build
from udfs.text import clean_texts


def text_column(frame: pd.DataFrame) -> pd.Series:
    """The texts of a DataFrame input: its ``text`` column, else its only string column."""
    if "text" in frame.columns:
        return frame["text"]
    strings = [c for c in frame.columns if frame[c].map(lambda v: v is None or isinstance(v, str)).all()
               and frame[c].notna().any()]
    if len(strings) != 1:
        raise ValueError(f"textspark model input: a DataFrame with a 'text' column, or exactly one string column; "
                         f"got columns {list(frame.columns)} ({len(strings)} of them strings)")
    return frame[strings[0]]


class TextsparkPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the ``textspark/`` artifact folder by kind; ``predict`` takes texts, returns the task output."""

    def load_context(self, context):
        self._folder = Path(context.artifacts["textspark"])
        self._model = build(self._folder, device="cpu", precision="fp32")

    def predict(self, context, model_input, params=None):
        """One result per input row, in order. Texts are cleaned as the Spark UDFs clean them
        (udfs.text.clean_texts), so both give the same result for the same row; a row the UDFs would
        give a null result with a reason (null, empty, nothing visible, not a string) gets None here.
        A DataFrame's texts are its ``text`` column, or its only string column."""
        texts = text_column(model_input) if isinstance(model_input, pd.DataFrame) else pd.Series(model_input)
        clean, _ = clean_texts(texts.reset_index(drop=True))
        ok = np.flatnonzero(clean.notna().to_numpy())
        out: list = [None] * len(clean)
        if len(ok):
            rows = clean.iloc[ok].tolist()
            if hasattr(self._model, "embed"):
                values = [list(map(float, v)) for v in self._model.embed(rows)]
            else:
                values = self._model.predict(rows)
            for i, value in zip(ok, values):
                out[i] = value
        return out
