"""The MLflow pyfunc face of every textspark model: ``mlflow.pyfunc.load_model`` / ``spark_udf`` work on it."""
from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc


class TextsparkPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the ``textspark/`` artifact folder by kind; ``predict`` takes texts, returns the task output."""

    def load_context(self, context):
        from udfs.loading import build

        self._folder = Path(context.artifacts["textspark"])
        self._model = build(self._folder, device="cpu", precision="fp32")

    def predict(self, context, model_input, params=None):
        import pandas as pd

        texts = model_input.iloc[:, 0] if isinstance(model_input, pd.DataFrame) else pd.Series(model_input)
        texts = [str(t) for t in texts]
        if hasattr(self._model, "embed"):
            return [list(map(float, v)) for v in self._model.embed(texts)]
        return self._model.predict(texts)
