"""jobs/analyze.py with output.mode incremental (reuse, counts in the manifest and the MLflow run, a picture)
and with input.stream (Structured Streaming: each input file's rows exactly once)."""
from __future__ import annotations

import json

import mlflow
import pytest
import yaml

from jobs import analyze
from udfs.io.jobconf import load_job
from tests.helpers import assert_frame_equal
from tests.test_incremental import DAY1, DAY2
from udfs.tasks.incremental import BOOKKEEPING


def write_job(tmp_path, name, inp, out, *, mode=None, stream=None, tiny_encoder, fmt="parquet"):
    job = {"input": {"path": str(inp), "format": fmt, "text_column": "text", "id_column": "id"},
           "output": {"path": str(out)},
           "tasks": [{"task": "embed", "column": "vec", "model": tiny_encoder},
                     {"task": "summarize", "column": "summary", "model": tiny_encoder, "max_sentences": 2}]}
    if mode:
        job["output"]["mode"] = mode
    if stream:
        job["input"]["stream"] = stream
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(job))
    return str(path)


def parquet(spark, rows, path):
    spark.createDataFrame(rows, "id int, text string").coalesce(1).write.mode("overwrite").parquet(str(path))
    return path


def test_incremental_job_reuses_counts_and_equals_a_full_run(spark, tiny_encoder, tmp_path):
    out = tmp_path / "out"
    job = write_job(tmp_path, "inc", parquet(spark, DAY1, tmp_path / "in"), out, mode="incremental",
                    tiny_encoder=tiny_encoder)
    first = analyze.run(load_job(job), spark=spark)
    assert first["incremental"]["tasks"]["vec"]["computed_because"] == {"new": 6, "text_changed": 0,
                                                                      "model_changed": 0, "retry": 0}
    parquet(spark, DAY2, tmp_path / "in")
    second = analyze.run(load_job(job), spark=spark)
    inc = second["incremental"]
    assert (inc["rows"], inc["dropped"], inc["full_recompute"]) == (7, 1, None)
    for column in ("vec", "summary"):
        c = inc["tasks"][column]
        assert (c["computed"], c["reused"], c["dropped"]) == (4, 3, 1)
        assert c["computed_because"] == {"new": 2, "text_changed": 2, "model_changed": 0, "retry": 0}
    manifest = json.loads((out / "_textspark_manifest.json").read_text())
    assert manifest["incremental"] == inc
    run = mlflow.search_runs(experiment_names=["textspark-jobs"], order_by=["start_time DESC"],
                             max_results=1, output_format="list")[0]
    assert {k: run.data.metrics[k] for k in ("computed.vec", "reused.vec", "dropped.vec", "computed.vec.new",
                                             "computed.vec.text_changed", "computed.vec.model_changed")} == \
        {"computed.vec": 4, "reused.vec": 3, "dropped.vec": 1, "computed.vec.new": 2,
         "computed.vec.text_changed": 2, "computed.vec.model_changed": 0}
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"task_distributions.png", "textspark_manifest.json"} <= artifacts
    full = tmp_path / "full"
    analyze.run(load_job(write_job(tmp_path, "full", tmp_path / "in", full, tiny_encoder=tiny_encoder)), spark=spark)
    assert_frame_equal(spark.read.parquet(str(out)).drop(*BOOKKEEPING), spark.read.parquet(str(full)), atol=1e-6)


def test_incremental_needs_unique_ids(spark, tiny_encoder, tmp_path, capsys):
    rows = [(1, "a b c"), (1, "d e f"), (2, "g")]
    job = write_job(tmp_path, "dup", parquet(spark, rows, tmp_path / "in"), tmp_path / "out", mode="incremental",
                    tiny_encoder=tiny_encoder)
    assert analyze.main(["--conf", job]) == 3
    assert capsys.readouterr().err.strip() == (f"input error: {job}: input.id_column: got 'id'; 1 duplicate ids "
                                               "(e.g. 1); an incremental run needs unique ids")


@pytest.mark.slow  # two streaming queries
def test_a_stream_gives_every_row_of_each_dropped_file_once(spark, tiny_encoder, tmp_path):
    from udfs import embed

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    stream = {"checkpoint": str(tmp_path / "checkpoint"), "trigger": "available_now"}
    job = write_job(tmp_path, "stream", inbox, out, stream=stream, tiny_encoder=tiny_encoder, fmt="json")
    files = [DAY1[:3], DAY2[4:]]
    seen = []
    for i, rows in enumerate(files):
        (inbox / f"part-{i}.json").write_text("".join(json.dumps({"id": r[0], "text": r[1]}) + "\n" for r in rows))
        summary = analyze.run(load_job(job), spark=spark)
        assert (summary["mode"], summary["rows"]) == ("stream", len(rows))
        seen += rows
        got = spark.read.parquet(str(out))
        expected = spark.createDataFrame(seen, "id long, text string") \
                        .select("id", "text", embed("text", model=tiny_encoder, with_error=True).alias("e")) \
                        .selectExpr("id", "text", "e.embedding AS vec", "e.error AS vec_error")
        assert_frame_equal(got.select("id", "text", "vec", "vec_error"), expected, atol=1e-6)
        assert got.count() == len(seen)
    assert json.loads((out / "_textspark_manifest.json").read_text())["rows"] == len(files[1])
