"""A model that fails to load on a worker ends the job with one line, the first worker error (not Spark's Java
and Python traces, once per attempt), exit 4, and no staging left behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from pyspark.errors import PySparkException

from udfs.io.cli import worker_error

PROFILE = """master: local[1]
log_level: WARN
conf:
  spark.ui.enabled: false
  spark.ui.showConsoleProgress: false
"""
PROBLEM = ("The checkpoint you are trying to load has model type `no-such-architecture` but Transformers does not "
           "recognize this architecture. This could be because of an issue with the checkpoint, or because your "
           "version of Transformers is out of date.")


def test_the_first_python_error_of_a_worker_trace_is_the_line():
    trace = ("An error occurred while calling o91.save.\n: org.apache.spark.SparkException: Job aborted due to stage "
             "failure: Task 0 in stage 7.0 failed 4 times, most recent failure: Lost task 0.3: org.apache.spark.api."
             "python.PythonException: [PYTHON_EXCEPTION] An exception was thrown from the Python worker: Traceback "
             "(most recent call last):\n  File \"/w/udfs/runtime/worker.py\", line 45, in loaded\n    return "
             "worker_model(p)\n           ^^^^^^^^\nValueError: the weights are\n  cut short\n\nThe above exception "
             "was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"/w/"
             "udfs/models/loading.py\", line 250, in _build\nudfs.errors.ModelLoadError: m/1 (kind hf_encoder) did "
             "not load on cpu: ValueError: the weights are cut short\n\tat org.apache.spark.api.python."
             "BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:624)\norg.apache.spark."
             "SparkException: Job aborted\n")
    failed = type("Failed", (PySparkException,), {"__str__": lambda self: trace})  # as Spark Connect raises it
    assert worker_error(failed(message="lost task")) == \
        "ModelLoadError: m/1 (kind hf_encoder) did not load on cpu: ValueError: the weights are cut short"
    assert worker_error(KeyError("not Spark")) is None


@pytest.mark.slow  # a job in a subprocess (its own JVM)
def test_a_model_that_does_not_load_on_a_worker_ends_the_job_in_one_line(mlflow_registry, tmp_path):
    from udfs.models.registry import register_folder

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    register_folder("unloadable-encoder", task="embed", kind="hf_encoder", weights=weights, params={"max_tokens": 64})
    pd.DataFrame({"id": range(6), "text": ["a short text"] * 6}).to_parquet(tmp_path / "in.parquet")
    (tmp_path / "profile.yml").write_text(PROFILE)
    job = {"spark": {"profile": str(tmp_path / "profile.yml")},
           "input": {"path": str(tmp_path / "in.parquet"), "text_column": "text", "id_column": "id"},
           "tasks": [{"task": "embed", "column": "embedding", "model": "models:/unloadable-encoder@champion",
                      "languages": "any"}],
           "output": {"path": str(tmp_path / "out")}}
    (tmp_path / "job.yml").write_text(yaml.safe_dump(job))
    done = subprocess.run([sys.executable, "-m", "jobs.analyze", "--conf", "job.yml", "--quiet"], cwd=tmp_path,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=600)
    spark_notes = ("WARNING: Using incubator modules", "Using Spark's default log4j profile",
                   "Setting default log level", "To adjust logging level", "WARN NativeCodeLoader")
    lines = [ln for ln in done.stderr.splitlines() if not any(note in ln for note in spark_notes)]
    assert (done.returncode, lines, done.stdout) == (4, [
        f"job failed: ModelLoadError: unloadable-encoder/1 (kind hf_encoder) did not load on cpu: ValueError: {PROBLEM}"],
        "")
    assert sorted(os.listdir(tmp_path)) == ["in.parquet", "job.yml", "profile.yml", "weights"]  # no staging
