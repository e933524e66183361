"""Where a job YAML's relative paths point (the working directory) and how its CSV input is read (RFC 4180
quotes by default, the user's reader options over the defaults)."""
import pandas as pd
from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

from jobs import analyze
from udfs.io.inputs import read_input, reader_options
from udfs.io.sections import InputConf
from udfs.io.jobconf import parse_job
from tests.helpers import assert_frame_equal

SCHEMA = StructType([StructField("id", LongType()), StructField("text", StringType())])


def test_relative_paths_in_a_job_yaml_are_relative_to_the_working_directory(spark, tiny_encoder, tmp_path,
                                                                            monkeypatch, capsys):
    (tmp_path / "in").mkdir()
    pd.DataFrame({"id": [1, 2], "text": ["Shares rose.", "A draw."]}).to_parquet(tmp_path / "in" / "docs.parquet")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "job.yml").write_text(
        "input: {path: in/docs.parquet, text_column: text, id_column: id}\n"
        f"tasks: [{{task: embed, column: v, model: '{tiny_encoder}'}}]\n"
        "output: {path: results/docs}\n")
    monkeypatch.chdir(tmp_path)

    conf = parse_job({"input": {"path": "in/docs.parquet"}, "output": {"path": "results/docs"},
                      "tasks": [{"task": "embed"}]})
    assert (conf.input.path, conf.output.path) == (f"{tmp_path}/in/docs.parquet", f"{tmp_path}/results/docs")
    assert analyze.main(["--conf", "conf/job.yml"]) == 0, capsys.readouterr().err
    assert f"wrote 2 rows to {tmp_path}/results/docs" in capsys.readouterr().out
    written = spark.read.parquet(str(tmp_path / "results" / "docs"))
    assert_frame_equal(written.select("id", "text"),
                       spark.createDataFrame([(1, "Shares rose."), (2, "A draw.")], SCHEMA))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf", "in", "results"]


CSV = '''id,text
1,"He said ""hi"" and left"
2,"A ""quoted"" word, a comma
and a second line"
3,plain text
4,"ends with a quote """
'''


def test_csv_input_reads_doubled_quotes_back_exactly(spark, tmp_path):
    (tmp_path / "docs.csv").write_text(CSV)
    inp = InputConf(path=str(tmp_path / "docs.csv"), format="csv", options={"inferSchema": "true"})
    got = read_input(spark, inp)
    expected = [(1, 'He said "hi" and left'), (2, 'A "quoted" word, a comma\nand a second line'),
                (3, "plain text"), (4, 'ends with a quote "')]
    schema = StructType([StructField("id", IntegerType()), StructField("text", StringType())])  # as inferred
    assert_frame_equal(got, spark.createDataFrame(expected, schema))


def test_the_users_csv_options_win_over_the_defaults():
    assert reader_options("csv", {}) == {"header": "true", "multiLine": "true", "escape": '"'}
    assert reader_options("csv", {"escape": "\\", "multiline": "false", "sep": ";"}) == {
        "header": "true", "escape": "\\", "multiline": "false", "sep": ";"}
    assert reader_options("json", {"multiLine": "true"}) == {"multiLine": "true"}
