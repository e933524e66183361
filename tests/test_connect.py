"""Spark Connect (what Databricks shared clusters and serverless run): the public API over a local Connect
server gives the same rows as a classic session. The Connect client runs in a subprocess with
SPARK_REMOTE=local[2], as a user's process would; this process keeps its classic session."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import assert_frame_equal
from udfs import embed, register_sql_functions

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["Shares rose after strong profits.", "The match ended in a draw.", None, "   "]

CLIENT = """
import json, sys
from udfs import embed, register_sql_functions
from udfs.platform import get_spark

spark = get_spark("local")
kind = type(spark).__module__
rows = json.loads(sys.argv[1])
df = spark.createDataFrame(rows, "id int, text string")
encoder = sys.argv[2]
out = df.withColumn("v", embed("text", model=encoder)).withColumn("e", embed("text", model=encoder, with_error=True))
register_sql_functions(spark, ["embed"], models={"embed": encoder})
df.createOrReplaceTempView("t")
sql = spark.sql("SELECT id, size(embed(text)) AS dims FROM t")
print("RESULT " + json.dumps({"session": kind,
                              "rows": [r.asDict(recursive=True) for r in out.orderBy("id").collect()],
                              "sql": [r.asDict() for r in sql.orderBy("id").collect()]}))
spark.stop()
"""


@pytest.fixture(scope="module")
def connect_result(tiny_encoder, mlflow_registry, tmp_path_factory):
    rows = [[i, t] for i, t in enumerate(TEXTS)]
    env = {**os.environ, "SPARK_REMOTE": "local[2]", "PYSPARK_PYTHON": sys.executable}
    out = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(rows), tiny_encoder], cwd=tmp_path_factory.mktemp("c"),
                         env=env, capture_output=True, text=True, timeout=600)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, out.stderr[-3000:]
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow  # a Spark Connect server: a second JVM
def test_public_api_over_spark_connect_equals_a_classic_session(spark, tiny_encoder, connect_result):
    assert connect_result["session"] == "pyspark.sql.connect.session"
    df = spark.createDataFrame(list(enumerate(TEXTS)), "id int, text string")
    classic = df.withColumn("v", embed("text", model=tiny_encoder)) \
                .withColumn("e", embed("text", model=tiny_encoder, with_error=True))
    remote = spark.createDataFrame(connect_result["rows"], classic.schema)
    assert_frame_equal(remote, classic, atol=1e-6)
    register_sql_functions(spark, ["embed"], models={"embed": tiny_encoder})
    df.createOrReplaceTempView("t")
    sql = spark.sql("SELECT id, size(embed(text)) AS dims FROM t").orderBy("id").collect()
    assert connect_result["sql"] == [r.asDict() for r in sql]
    assert [r.dims for r in sql[:2]] == [len(classic.first().v)] * 2
