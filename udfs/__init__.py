"""textspark: transformer models over big text tables on Apache Spark, versioned in MLflow.

Importing ``udfs`` is cheap: torch and transformers load inside Spark's Python workers, not here.
The API reference (docs/api.md) is built from the docstrings of the names below; each factory's Examples
run as doctests in ``make test`` (tests/test_docs.py).
"""
import udfs.clustering  # noqa: F401 - registers the kmeans_centroids kind wherever a model is loaded (pyfunc too)
from udfs.tasks.classify import classify
from udfs.tasks.embed import embed
from udfs.tasks.incremental import analyze
from udfs.tasks.language import detect_language
from udfs.tasks.sentiment import sentiment
from udfs.tasks.sql import register_sql_functions
from udfs.tasks.summarize import summarize
from udfs.tasks.translate import translate
from udfs.training.shadow import shadow

__all__ = ["embed", "sentiment", "classify", "summarize", "translate", "detect_language", "register_sql_functions",
           "analyze", "shadow"]
