"""textspark: transformer models over big text tables on Apache Spark, versioned in MLflow.

Importing ``udfs`` is cheap: torch and transformers load inside Spark's Python workers, not here.
"""
from udfs.classify import classify
from udfs.embed import embed
from udfs.language import detect_language
from udfs.sentiment import sentiment
from udfs.summarize import summarize
from udfs.translate import translate
from udfs.sql import register_sql_functions

__all__ = ["embed", "sentiment", "classify", "summarize", "translate", "detect_language", "register_sql_functions"]
