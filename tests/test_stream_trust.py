"""udfs/io/stream.py at its trust boundaries: after a crash and a restart the output folder reads exactly with pandas
(files no micro-batch committed are removed; ``committed_files`` lists the committed ones at any time), and an
input file that does not fit the stream (no text column, a text column that is not a string, a CSV header in
another order) stops it in one line or is quarantined: never read as rows of null text."""
from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from jobs import analyze
from udfs.io.jobconf import load_job
from tests.helpers import assert_frame_equal, kill_stream_driver, run_job, stream_data_files

WORDS = "markets rose after the match while the film festival opened and shares fell in early trading".split()


def texts(ids) -> pd.DataFrame:
    return pd.DataFrame({"id": list(ids), "text": [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(8 + i % 30))
                                                   for i in ids]})


def drop(frame: pd.DataFrame, folder: Path, name: str, fmt: str = "parquet") -> Path:
    """Write ``frame`` beside ``folder`` and rename it in: files land in a stream's folder whole, as Spark needs."""
    tmp = folder.parent / f".{name}.tmp"
    if fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    elif fmt == "json":
        frame.to_json(tmp, orient="records", lines=True)
    else:
        frame.to_csv(tmp, index=False)
    tmp.rename(folder / name)
    return folder / name


def job_yaml(tmp_path: Path, inbox: Path, out: Path, model: str, *, fmt="parquet", trigger="available_now",
             partitions=None, name="stream", **stream) -> str:
    job = {"input": {"path": str(inbox), "format": fmt, "text_column": "text", "id_column": "id",
                     "stream": {"checkpoint": str(tmp_path / "checkpoint"), "trigger": trigger, **stream}},
           "output": {"path": str(out)},
           "tasks": [{"task": "embed", "column": "vec", "model": model}]}
    if partitions:
        job["inference"] = {"partitions": partitions}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(job))
    return str(path)


def assert_rows(spark, out: Path, ids, *, with_pandas=True):
    """The output holds each of ``ids`` once, for Spark (which honours _spark_metadata) and for pandas (which
    reads every data file in the folder)."""
    ids = sorted(ids)
    got = spark.read.parquet(str(out))
    assert (got.count(), sorted(r.id for r in got.select("id").collect())) == (len(ids), ids)
    if with_pandas:
        frame = pd.read_parquet(out)
        assert sorted(frame["id"]) == ids
        assert_frame_equal(spark.createDataFrame(frame, got.schema), got, atol=0.0)


@pytest.mark.slow  # two subprocess-free runs and one `python -m jobs.analyze` killed mid-batch
def test_a_stream_killed_mid_batch_reads_back_exactly_with_pandas_after_the_restart(spark, tiny_encoder, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    drop(texts(range(200)), inbox, "a.parquet")
    job = job_yaml(tmp_path, inbox, out, tiny_encoder, partitions=4)
    analyze.run(load_job(job), spark=spark)
    committed = stream_data_files(out)
    drop(texts(range(200, 8200)), inbox, "b.parquet")

    killed = run_job(Path(job), tmp_path / "logs-killed", fault=kill_stream_driver(out), timeout=300)
    assert killed["fault"] and killed["rc"] == -signal.SIGKILL, killed["stderr"][-3000:]
    assert not (out / "_spark_metadata" / "1").exists()  # killed mid-batch: batch 1 was never committed
    assert stream_data_files(out) - committed  # ... and left files of it in the folder

    restarted = analyze.run(load_job(job), spark=spark)
    assert_rows(spark, out, range(8200))  # pandas too: the killed batch's files are gone
    assert restarted["rows"] == 8000 and restarted["uncommitted_removed"] >= 1


def four_batches_and_a_crash(spark, tmp_path: Path, model: str) -> tuple[str, Path, list[str]]:
    """A stream output of 40 rows in four micro-batches, its sink log compacted (``1.compact``, ``3.compact``) and
    the deltas those hold deleted, then what a crash leaves beside them: a whole data file of a batch never
    committed (a copy of a committed one: its rows twice for pandas), an empty file and a file cut after its
    header. Returns the job, the output folder and the files Spark reads in it."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    job = job_yaml(tmp_path, inbox, out, model)
    key = "spark.sql.streaming.fileSink.log.compactInterval"
    saved = spark.conf.get(key, None)
    spark.conf.set(key, "2")  # batches 1 and 3 are logged as 1.compact and 3.compact
    try:
        for i in range(4):
            drop(texts(range(10 * i, 10 * i + 10)), inbox, f"{i}.parquet")
            analyze.run(load_job(job), spark=spark)
    finally:
        spark.conf.unset(key) if saved is None else spark.conf.set(key, saved)
    log = out / "_spark_metadata"
    names = sorted(p.name for p in log.iterdir() if not p.name.startswith("."))
    assert names == ["0", "1.compact", "2", "3.compact"]
    for batch in ("0", "2"):  # what Spark's log cleanup deletes in time: the deltas a compact file holds
        (log / batch).unlink()
        (log / f".{batch}.crc").unlink()
    spark_files = sorted(spark.read.parquet(str(out)).inputFiles())
    part = sorted(stream_data_files(out))[0]
    shutil.copy(part, out / f"part-00009-{part.name[len('part-00000-'):]}")
    (out / "part-00001-6f0e2bd4-0000-4000-8000-000000000000-c000.snappy.parquet").write_bytes(b"")
    (out / "part-00002-6f0e2bd4-0000-4000-8000-000000000001-c000.snappy.parquet").write_bytes(b"PAR1")
    return job, out, spark_files


def test_files_no_micro_batch_committed_are_removed_by_the_next_run(spark, tiny_encoder, tmp_path):
    job, out, spark_files = four_batches_and_a_crash(spark, tmp_path, tiny_encoder)
    summary = analyze.run(load_job(job), spark=spark)  # nothing new to read: the run only cleans
    assert_rows(spark, out, range(40))
    assert sorted(p.as_uri() for p in stream_data_files(out)) == spark_files  # every committed file kept
    assert (summary["rows"], summary["uncommitted_removed"]) == (0, 3)


def test_committed_files_lists_what_spark_reads_beside_a_crashed_batch(spark, tiny_encoder, tmp_path):
    from udfs.io.stream_log import committed_files, remove_uncommitted

    _, out, spark_files = four_batches_and_a_crash(spark, tmp_path, tiny_encoder)
    assert sorted(Path(f).as_uri() for f in committed_files(str(out))) == spark_files
    assert sorted(pd.read_parquet(committed_files(str(out)))["id"]) == list(range(40))
    # the same through Hadoop's FileSystem (what an hdfs:// or s3a:// output uses), on a file: URI
    assert committed_files(out.as_uri(), spark) == committed_files(str(out))
    assert len(remove_uncommitted(out.as_uri(), spark)) == 3
    assert sorted(p.as_uri() for p in stream_data_files(out)) == spark_files


def test_a_stream_refuses_an_output_folder_that_holds_files_no_stream_committed(spark, tiny_encoder, tmp_path,
                                                                               capsys):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    drop(texts(range(5)), inbox, "a.parquet")
    texts(range(100, 103)).to_parquet(out / "part-00000-batch.parquet")  # a batch job's output, say
    job = job_yaml(tmp_path, inbox, out, tiny_encoder)
    assert analyze.main(["--conf", job]) == 3
    assert capsys.readouterr().err.strip() == (
        f"input error: {job}: output.path: got '{out}'; it holds 1 data file no stream committed (no "
        "_spark_metadata): Spark readers of a stream's output see only the files its log lists, so these rows "
        "would vanish for them; write the stream to a new folder")
    assert sorted(pd.read_parquet(out)["id"]) == [100, 101, 102]  # untouched


BAD = {  # a dropped-in file that does not fit a stream of (id, text): what it holds, and the problem named
    "no text column": (pd.DataFrame({"id": [50, 51], "body": ["x y", "z"]}),
                       "has no column 'text' (its columns: body, id)"),
    "text not a string": (pd.DataFrame({"id": [50, 51], "text": [1.5, 2.5]}),
                          "its column 'text' is double, not a string"),
    "no id column": (pd.DataFrame({"text": ["x y", "z"]}), "has no column 'id' (its columns: text)"),
}
NEEDS = "each file of the stream needs the columns text (a string) and id (an integer or a string)"


@pytest.mark.parametrize("fmt", ["parquet", "json"])
def test_a_file_without_the_text_column_stops_the_stream_in_one_line(spark, tiny_encoder, tmp_path, capsys, fmt):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    job = job_yaml(tmp_path, inbox, out, tiny_encoder, fmt=fmt)
    drop(texts(range(3)), inbox, f"a.{fmt}", fmt)
    assert analyze.main(["--conf", job]) == 0
    bad = drop(BAD["no text column"][0], inbox, f"bad.{fmt}", fmt)
    drop(texts(range(3, 6)), inbox, f"c.{fmt}", fmt)
    capsys.readouterr()
    assert analyze.main(["--conf", job]) == 3
    assert capsys.readouterr().err.strip() == (
        f"input error: {job}: input.path: got '{bad}'; has no column 'text' (its columns: body, id); {NEEDS}; "
        "move it out of the folder, or set input.stream.bad_files: quarantine")
    assert_rows(spark, out, range(3))  # nothing of that run: the stream stopped before its micro-batch
    assert bad.exists()


def test_bad_files_are_quarantined_with_their_reason_and_counted(spark, tiny_encoder, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    job = job_yaml(tmp_path, inbox, out, tiny_encoder, bad_files="quarantine")
    drop(texts(range(3)), inbox, "a.parquet")
    bad = {case: drop(frame, inbox, f"{case.replace(' ', '-')}.parquet") for case, (frame, _) in BAD.items()}
    drop(texts(range(3, 7)), inbox, "c.parquet")
    summary = analyze.run(load_job(job), spark=spark)

    quarantine = inbox / "_quarantine"  # the default: beside the files, hidden from Spark and pandas readers
    assert summary["rows"] == 7
    assert sorted(summary["quarantined"], key=lambda q: q["file"]) == sorted(
        ({"file": str(path), "moved_to": str(quarantine / path.name), "reason": BAD[case][1]}
         for case, path in bad.items()), key=lambda q: q["file"])
    for case, path in bad.items():
        assert not path.exists()
        pd.testing.assert_frame_equal(pd.read_parquet(quarantine / path.name), BAD[case][0])
        assert (quarantine / f"{path.name}.reason.txt").read_text() == f"{path}: {BAD[case][1]}; {NEEDS}\n"
    assert_rows(spark, out, range(7))
    manifest = json.loads((out / "_textspark_manifest.json").read_text())
    assert len(manifest["quarantined"]) == 3


def test_a_csv_whose_header_is_in_another_order_is_not_read_by_position(spark, tiny_encoder, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    job = job_yaml(tmp_path, inbox, out, tiny_encoder, fmt="csv", bad_files="quarantine",
                   quarantine=str(tmp_path / "held"))
    drop(texts(range(3)), inbox, "a.csv", "csv")
    analyze.run(load_job(job), spark=spark)
    swapped = drop(texts(range(3, 5))[["text", "id"]], inbox, "swapped.csv", "csv")
    summary = analyze.run(load_job(job), spark=spark)
    assert summary["quarantined"] == [{
        "file": str(swapped), "moved_to": str(tmp_path / "held" / "swapped.csv"),
        "reason": "its header is text, id; Spark reads a CSV file by position, as id, text (the stream's columns)"}]
    assert_rows(spark, out, ["0", "1", "2"])  # a CSV stream reads every column as a string


def test_a_bad_file_arriving_while_a_timed_stream_runs_stops_it(spark, tiny_encoder, tmp_path):
    from udfs.io.stream import run_stream
    from udfs.errors import InputError
    from udfs.tasks.pipeline import plan_tasks

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    conf = load_job(job_yaml(tmp_path, inbox, out, tiny_encoder, fmt="json", trigger="1 second"))
    drop(texts(range(3)), inbox, "a.json", "json")
    failed, stop = [], threading.Event()

    def run():
        try:
            run_stream(conf, plan_tasks(conf.tasks), spark, stop=stop)
        except InputError as exc:
            failed.append(str(exc))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.time() + 120
        while not (out / "_spark_metadata" / "0").exists() and time.time() < deadline:
            time.sleep(0.2)
        bad = drop(BAD["no text column"][0], inbox, "bad.json", "json")
        thread.join(120)
    finally:
        stop.set()
        thread.join(60)
    assert failed == [f"{conf.source}: input.path: got '{bad}'; has no column 'text' (its columns: body, id); "
                      f"{NEEDS}; move it out of the folder, or set input.stream.bad_files: quarantine"]
    assert_rows(spark, out, range(3))


@pytest.mark.slow  # the guard trips: Spark fails the micro-batch's tasks (each attempt) before the job re-checks
def test_a_file_landing_after_the_check_is_caught_in_the_micro_batch_and_quarantined(spark, tiny_encoder,
                                                                                      tmp_path, monkeypatch):
    from udfs.io import stream_input

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    job = job_yaml(tmp_path, inbox, out, tiny_encoder, fmt="json", bad_files="quarantine")
    drop(texts(range(3)), inbox, "a.json", "json")
    bad = drop(BAD["no text column"][0], inbox, "late.json", "json")
    listed = stream_input.input_files
    calls = []

    def late(*args, **kwargs):  # the first listing misses late.json: it landed between the check and the query
        files = listed(*args, **kwargs)
        calls.append(len(files))
        return [f for f in files if not f.endswith("late.json")] if len(calls) == 1 else files

    monkeypatch.setattr(stream_input, "input_files", late)
    summary = analyze.run(load_job(job), spark=spark)
    assert len(calls) >= 2 and not bad.exists()
    assert [q["file"] for q in summary["quarantined"]] == [str(bad)]
    assert_rows(spark, out, range(3))


FITS = pd.DataFrame({"id": [1, 2], "text": ["a b", "c"]})


@pytest.mark.parametrize("fmt", ["parquet", "json", "csv"])
@pytest.mark.parametrize("case", ["fits", *BAD])
def test_a_files_own_columns_read_by_python_are_judged_as_spark_reads_them(spark, tmp_path, fmt, case):
    from udfs.io.stream_input import column_problem, local_columns, spark_columns

    (tmp_path / "in").mkdir()
    path = drop(FITS if case == "fits" else BAD[case][0], tmp_path / "in", f"file.{fmt}", fmt)
    options = {"header": "true", "multiline": "true", "escape": '"'} if fmt == "csv" else {}
    python, spark_read = local_columns(str(path), fmt, options), spark_columns(str(path), fmt, options, spark)
    assert python == spark_read  # names and types
    assert fmt == "json" or list(python) == list(spark_read)  # and order (Spark sorts a JSON file's names)
    expected = None if case == "fits" or (fmt == "csv" and case == "text not a string") else BAD[case][1]
    assert column_problem(python, "text", "id") == column_problem(spark_read, "text", "id") == expected


def test_a_file_cut_short_is_a_bad_file(tmp_path):
    from udfs.io.stream_input import column_problem, file_columns

    (tmp_path / "cut.parquet").write_bytes(b"PAR1")
    (tmp_path / "cut.json").write_text('{"id": 1, "text": "a"}\n{"id": 2, "te')
    assert column_problem(file_columns(str(tmp_path / "cut.parquet"), "parquet", {}), "text", "id") == (
        "cannot be read as parquet (Parquet file size is 4 bytes, smaller than the minimum file footer (8 bytes))")
    assert column_problem(file_columns(str(tmp_path / "cut.json"), "json", {}), "text", "id") == \
        "cannot be read as json (line 2 is not JSON)"


def test_a_quarantine_folder_the_stream_would_read_is_a_configuration_error(tmp_path):
    from udfs.io.stream_input import check_quarantine
    from udfs.errors import ConfigError

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for folder in (tmp_path / "held", inbox / "_held", inbox / ".held"):
        check_quarantine(load_job(job_yaml(tmp_path, inbox, tmp_path / "out", "m", quarantine=str(folder))))
    job = job_yaml(tmp_path, inbox, tmp_path / "out", "m", quarantine=str(inbox / "held"))
    with pytest.raises(ConfigError) as raised:
        check_quarantine(load_job(job))
    assert str(raised.value) == (
        f"{job}: input.stream.quarantine: got '{inbox / 'held'}'; allowed: a folder outside input.path, or one "
        "under it whose name starts with _ or . (the stream reads every other folder in input.path)")
