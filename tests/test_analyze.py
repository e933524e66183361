"""jobs/analyze.py: every input row and column kept, one column per task, versions recorded, early errors."""
import json
from pathlib import Path

import pandas as pd
import pytest
from pyspark.testing import assertDataFrameEqual

from jobs import analyze
from udfs.io.jobconf import parse_job
from tests.inputs import BAD_INPUTS
from udfs.errors import ConfigError
from udfs.models.registry import resolve


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input") / "docs.parquet"
    # Parquet holds UTF-8, which cannot carry a lone surrogate; test_embed covers that one from Python.
    texts = ["Shares rose after strong profits.", "The match ended in a draw."] + [
        t for t in BAD_INPUTS if t is None or "\ud800" not in t]
    pd.DataFrame({"doc_id": range(len(texts)), "text": texts, "lang": ["en"] * len(texts)}).to_parquet(path)
    return path


def job(table, out, **overrides):
    data = {"input": {"path": str(table), "text_column": "text", "id_column": "doc_id"},
            "tasks": [{"task": "embed", "column": "embedding", "model": "models:/tiny-encoder@champion"}],
            "output": {"path": str(out), "mode": "overwrite"}}
    data.update(overrides)
    return parse_job(data, source="test")


def test_job_keeps_every_row_and_column_and_records_the_version(spark, tiny_encoder, table, tmp_path):
    summary = analyze.run(job(table, tmp_path / "out"), spark=spark)
    version = resolve(tiny_encoder).version
    out = spark.read.parquet(str(tmp_path / "out"))
    assert out.columns == ["doc_id", "text", "lang", "embedding", "embedding_error"]
    source = spark.read.parquet(str(table))
    assertDataFrameEqual(out.select("doc_id", "text", "lang"), source)  # every input row, unchanged
    got = out.toPandas().sort_values("doc_id").reset_index(drop=True)
    dims = [None if v is None else len(v) for v in got["embedding"]]
    assert dims == [32, 32, None, None, None, 32, 32, 32, 32, 32, None]
    missing = got["embedding"].isna()
    assert missing.tolist() == got["embedding_error"].notna().tolist()
    assert int(missing.sum()) == 4  # None, "", "   ", "\x00\x01"
    manifest = json.loads((tmp_path / "out" / "_textspark_manifest.json").read_text())
    assert manifest["rows"] == summary["rows"] == source.count() == 11
    assert manifest["tasks"] == [{"task": "embed", "column": "embedding", "model": f"tiny-encoder/{version}",
                                  "model_uri": f"models:/tiny-encoder/{version}", "null_with_reason": 4,
                                  "reads": None, "languages_recorded": False, "skipped_for_language": {}}]


def test_input_can_be_a_catalog_table(spark, tiny_encoder, table, tmp_path):
    spark.read.parquet(str(table)).createOrReplaceTempView("textspark_docs")  # spark.table() reads views too
    try:
        data = {"input": {"table": "textspark_docs", "text_column": "text", "id_column": "doc_id"},
                "tasks": [{"task": "embed", "column": "embedding", "model": "models:/tiny-encoder@champion"}],
                "output": {"path": str(tmp_path / "out"), "mode": "overwrite"}}
        summary = analyze.run(parse_job(data, source="test"), spark=spark)
    finally:
        spark.catalog.dropTempView("textspark_docs")
    out = spark.read.parquet(str(tmp_path / "out"))
    assertDataFrameEqual(out.select("doc_id", "text", "lang"), spark.read.parquet(str(table)))
    assert summary["rows"] == out.count() == 11 and out.filter("embedding IS NULL").count() == 4


def test_every_task_runs_once_per_row_in_one_python_stage(spark, tiny_encoder, table, tmp_path):
    """All tasks in one mapInArrow (one Python worker per partition holds every model); the result struct
    is split into columns without evaluating it twice."""
    from udfs.tasks.pipeline import apply_tasks, plan_tasks

    planned = plan_tasks(job(table, tmp_path / "x", tasks=[
        {"task": "embed", "column": "embedding", "model": tiny_encoder},
        {"task": "summarize", "column": "summary", "model": tiny_encoder}]).tasks)
    plan_text = apply_tasks(spark.read.parquet(str(table)), "text", planned)._jdf.queryExecution().executedPlan().toString()
    assert (plan_text.count("MapInArrow"), plan_text.count("ArrowEvalPython")) == (1, 0)


@pytest.mark.parametrize("overrides, key, value", [
    ({"tasks": [{"task": "sentimnet"}]}, "tasks[0].task", "sentimnet"),
    ({"tasks": [{"task": "embed", "colour": "x"}]}, "tasks[0].colour", "x"),
    ({"tasks": [{"task": "embed", "precision": "int3", "model": "models:/tiny-encoder@champion"}]},
     "tasks[0].precision", "int3"),
    ({"tasks": [{"task": "embed", "model": "models:/no-such-model@champion"}]}, "tasks[0].model",
     "models:/no-such-model@champion"),
    ({"output": {"path": "o", "mode": "replace"}}, "output.mode", "replace"),
    ({"input": {"path": "/nonexistent/file.parquet"}}, "input.path", "/nonexistent/file.parquet"),
    ({"input": {"path": "x", "format": "xlsx"}}, "input.format", "xlsx"),
])
def test_config_errors_fail_before_spark_naming_key_value_allowed(monkeypatch, tiny_encoder, table, tmp_path,
                                                                 overrides, key, value):
    monkeypatch.setattr(analyze, "job_spark", lambda *a, **k: pytest.fail("Spark started before validation"))
    with pytest.raises(ConfigError) as err:
        analyze.run(job(table, tmp_path / "out", **overrides))
    assert err.value.key == key
    assert repr(value) in str(err.value) and "allowed:" in str(err.value)


def test_missing_text_column_is_named(spark, tiny_encoder, table, tmp_path):
    conf = job(table, tmp_path / "out", input={"path": str(table), "text_column": "body"})
    with pytest.raises(ConfigError, match=r"input.text_column: got 'body'; allowed: doc_id, text, lang"):
        analyze.run(conf, spark=spark)


def test_cli_reports_config_errors_with_exit_code_2(tmp_path, capsys):
    conf = tmp_path / "bad.yml"
    conf.write_text("input: {path: /nope.parquet}\ntasks: [{task: embed}]\noutput: {path: out}\n")
    assert analyze.main(["--conf", str(conf)]) == 2
    assert "input.path: got '/nope.parquet'; allowed: an existing file or folder" in capsys.readouterr().err


@pytest.mark.slow  # spark-submit: a second JVM
def test_spark_submit_entry_point(tiny_encoder, table, tmp_path):
    """`spark-submit jobs/analyze.py --conf ...`: the command line's --master wins over the profile's."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    conf = tmp_path / "job.yml"
    conf.write_text(f"input: {{path: {table}, text_column: text}}\n"
                    f"tasks: [{{task: embed, column: v, model: '{tiny_encoder}'}}]\n"
                    f"output: {{path: {tmp_path / 'out'}}}\n")
    submit = Path(sys.executable).with_name("spark-submit")
    done = subprocess.run([str(submit), "--master", "local[1]", str(root / "jobs" / "analyze.py"), "--conf", str(conf)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=os.environ)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "_textspark_manifest.json").read_text())
    assert (manifest["rows"], manifest["spark_master"], manifest["tasks"][0]["null_with_reason"]) == (11, "local[1]", 4)
    assert f"wrote 11 rows to {tmp_path / 'out'}" in done.stdout


@pytest.fixture
def no_spark(monkeypatch):
    """Fails the test if the job starts Spark (so no model can have loaded)."""
    monkeypatch.setattr(analyze, "job_spark", lambda *a, **k: pytest.fail("Spark started before the error"))


@pytest.mark.parametrize("case, code, message", [
    ("yaml", 2, "configuration error: {conf}: line 6, column 7: got 'mapping values are not allowed here'; "
                "allowed: valid YAML"),
    ("csv as parquet", 3, "input error: {conf}: input.path: got '{csv}'; input.format is parquet but it is not a "
                          "Parquet file; allowed: Parquet files, or set input.format (csv, json)"),
    ("output under a file", 3, "input error: {conf}: output.path: got '{csv}/out'; allowed: a folder path that is "
                               "not under a file ({csv} is a file)"),
    ("output not writable", 3, "input error: {conf}: output.path: got '/proc/textspark/out'; cannot write next to it"),
    ("mode error, output exists", 3, "input error: {conf}: output.path: got '{existing}'; the output exists and "
                                     "mode is error; allowed: a new path, or mode overwrite, append or ignore"),
    ("unregistered model", 2, "configuration error: {conf}: tasks[0].model: got 'models:/nope@champion'; allowed: "),
])
def test_cli_config_and_input_errors_are_one_line_before_spark(no_spark, tiny_encoder, table, tmp_path, capsys,
                                                               case, code, message):
    csv, existing, conf = tmp_path / "docs.csv", tmp_path / "existing", tmp_path / "job.yml"
    csv.write_text("doc_id,text\n1,hello\n")
    existing.mkdir()
    inp, out, mode = table, tmp_path / "out", "overwrite"
    if case == "csv as parquet":
        inp = csv
    elif case == "output under a file":
        out = csv / "out"
    elif case == "output not writable":
        out = "/proc/textspark/out"
    elif case == "mode error, output exists":
        out, mode = existing, "error"
    broken = "input:\n  path: x\n   bad: 1\n" if case == "yaml" else ""  # line 6: a key indented under a value
    model = "models:/nope@champion" if case == "unregistered model" else tiny_encoder
    conf.write_text(f"input: {{path: {inp}, text_column: text}}\ntasks: [{{task: embed, model: '{model}'}}]\n"
                    f"output: {{path: {out}, mode: {mode}}}\n{broken}")
    assert analyze.main(["--conf", str(conf)]) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(message.format(conf=conf, csv=csv, existing=existing)), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.csv", "existing", "job.yml"]  # nothing written


def test_a_file_spark_cannot_read_in_the_format_is_an_input_error(spark, tiny_encoder, tmp_path):
    from udfs.errors import InputError

    csv = tmp_path / "docs.csv"
    csv.write_text("doc_id,text\n1,hello\n")
    conf = job(csv, tmp_path / "out", input={"path": f"file:{csv}", "text_column": "text"})  # read by Spark
    with pytest.raises(InputError, match=rf"input.path: got 'file:{csv}'; Spark cannot read it as format parquet: "
                                         r".*FAILED_READ_FILE"):
        analyze.run(conf, spark=spark)
    assert not (tmp_path / "out").exists()
