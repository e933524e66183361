"""The embedded platform's defaults: where the registry goes when the user names none."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CODE = "import os; from udfs.platform import setup_environment; setup_environment(); print(os.environ['MLFLOW_TRACKING_URI'])"


def tracking_uri_in_fresh_process(env: dict, cwd) -> str:
    return subprocess.run([sys.executable, "-c", CODE], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_default_registry_is_per_user_not_the_install_folder_or_the_working_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    uri = tracking_uri_in_fresh_process({**env, "XDG_DATA_HOME": str(tmp_path / "data")}, tmp_path)
    assert uri == f"sqlite:///{tmp_path / 'data' / 'textspark' / 'mlflow.db'}"


def test_mlflow_tracking_uri_wins(tmp_path):
    uri = tracking_uri_in_fresh_process({**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mine.db'}"},
                                        tmp_path)
    assert uri == f"sqlite:///{tmp_path / 'mine.db'}"


SUBMITTED_APP = """
import sys
from udfs.platform import get_spark
spark = get_spark(sys.argv[1])
conf = spark.sparkContext.getConf()
print("RESULT", spark.sparkContext.master, conf.get("spark.sql.shuffle.partitions"), conf.get("spark.task.maxFailures"))
spark.stop()
"""


@pytest.mark.slow  # two spark-submit runs: two JVMs
def test_spark_submit_honours_the_profile_unless_the_command_line_says_otherwise(tmp_path):
    profile = tmp_path / "mine.yml"
    profile.write_text("master: local[1]\nconf:\n  spark.sql.shuffle.partitions: 7\n  spark.task.maxFailures: 5\n")
    app = tmp_path / "app.py"
    app.write_text(SUBMITTED_APP)
    submit = Path(sys.executable).with_name("spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "SPARK_CONF_DIR": str(tmp_path)}  # no spark-defaults.conf there

    def result(*flags: str) -> str:
        out = subprocess.run([str(submit), *flags, str(app), str(profile)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        return next((line for line in out.stdout.splitlines() if line.startswith("RESULT")), out.stderr[-2000:])

    assert result() == "RESULT local[1] 7 5"
    assert result("--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=3") == "RESULT local[2] 3 5"


def test_on_databricks_the_default_registry_is_the_workspace_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    assert tracking_uri_in_fresh_process({**env, "DATABRICKS_RUNTIME_VERSION": "15.4"}, tmp_path) == "databricks"


def test_spark_profile_lookup_order_argument_then_environment_then_local(tmp_path, monkeypatch):
    from udfs.platform import load_spark_profile

    mine = tmp_path / "mine.yml"
    mine.write_text("master: local[1]\napp_name: mine\nconf: {spark.sql.shuffle.partitions: 3}\n")
    monkeypatch.delenv("TEXTSPARK_SPARK_PROFILE", raising=False)
    assert load_spark_profile() == load_spark_profile("local")
    monkeypatch.setenv("TEXTSPARK_SPARK_PROFILE", str(mine))
    assert load_spark_profile() == {"master": "local[1]", "app_name": "mine", "log_level": "WARN",
                                    "conf": {"spark.sql.shuffle.partitions": "3"}}
    assert load_spark_profile("local") != load_spark_profile()  # an explicit argument wins


def test_get_spark_returns_the_active_session(spark):
    """A notebook's or Databricks' own session is the one to use, never a new one."""
    from pyspark.sql import SparkSession

    from udfs.platform import get_spark

    assert SparkSession.getActiveSession() is spark
    assert get_spark() is spark and get_spark("local", conf={"spark.sql.shuffle.partitions": 9}) is spark
