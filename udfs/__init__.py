"""textspark: transformer models over big text tables on Apache Spark, versioned in MLflow.

Importing ``udfs`` is cheap: torch and transformers load inside Spark's Python workers, not here.
"""
from udfs.embed import embed
from udfs.sql import register_sql_functions

__all__ = ["embed", "register_sql_functions"]
