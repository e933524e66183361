"""udfs/io/commit.py and udfs/io/output.py: outputs commit atomically (a crash after any step of a commit, then
recovery, leaves the previous complete output or the new complete one), and the output modes report what this run
wrote."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.testing import assertDataFrameEqual

from jobs import analyze
from jobs.cluster import parse_cluster_job
from jobs.cluster import run as run_cluster
from udfs.errors import InputError
from udfs.io.jobconf import parse_job
from udfs.io.commit import MANIFEST, STAGING, Commit, new_run_id, recover
from udfs.io.hadoop import HadoopStorage
from udfs.io.storage import LocalStorage

OLD = {"part-0.parquet": b"old-0", "part-1.parquet": b"old-1", MANIFEST: b'{"run": "old"}'}
NEW = {"part-a.parquet": b"new-a", "assignments/part-b.parquet": b"new-b", "_SUCCESS": b""}
NEW_COMMITTED = {**NEW, MANIFEST: b'{"run": "new"}'}


class Crash(Exception):
    """Stands for the driver dying before a filesystem operation."""


class CrashingStorage:
    """A storage whose driver dies before its ``after``-th changing operation (counting from 0)."""

    CHANGING = {"mkdirs", "rename", "exchange", "delete", "write", "link", "rmdir"}

    def __init__(self, inner, after: int):
        self.inner, self.left, self.atomic_rename = inner, after, inner.atomic_rename

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name not in self.CHANGING:
            return attr

        def changing(*args):
            if self.left == 0:
                raise Crash(name)
            self.left -= 1
            return attr(*args)
        return changing


class NoExchange(LocalStorage):
    """Local disk where renameat2(RENAME_EXCHANGE) is unavailable: the two-rename fallback."""

    def exchange(self, a, b):
        return False


def tree(folder: Path) -> dict[str, bytes] | None:
    """Every file under ``folder`` (Hadoop's hidden .crc checksum files left out), or None if it is absent."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".crc")}


def put(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def storages(request):
    """(storage, how a path is spelled for it) for each commit protocol."""
    kind = request.param
    if kind == "local":
        return LocalStorage(), str
    if kind == "local, no exchange":
        return NoExchange(), str
    spark = request.getfixturevalue("spark")

    def hadoop(path):
        s = HadoopStorage(spark, f"file:{path}")
        s.atomic_rename = kind == "hadoop, atomic rename"  # else: the object-store protocol, file by file
        return s
    return hadoop, (lambda p: f"file:{p}")


@pytest.fixture(params=["local", "local, no exchange", "hadoop, atomic rename", "hadoop, object store"])
def protocol(request):
    return storages(request)


@pytest.mark.parametrize("had_output", [True, False])
def test_a_crash_before_any_step_of_a_commit_leaves_the_old_or_the_new_output(protocol, tmp_path, had_output):
    make, spell = protocol
    outcomes = []
    for after in range(100):
        work = tmp_path / str(after)
        out = work / "out"
        storage = make(out) if callable(make) else make
        commit = Commit(storage, spell(out), new_run_id())
        if had_output:
            put(out, OLD)
        put(Path(commit.stage.removeprefix("file:")), NEW)
        try:
            Commit(CrashingStorage(storage, after), spell(out), commit.run_id).commit('{"run": "new"}')
        except Crash:
            now = tree(out)
            if storage.atomic_rename:  # a reader finds no folder, or a complete one
                assert now in (None, OLD if had_output else None, NEW_COMMITTED), (after, now)
            elif now is not None and MANIFEST in now:  # object stores: a folder with a manifest is complete
                assert now in (OLD, NEW_COMMITTED), (after, now)
            recover(storage, spell(out))
            outcomes.append(tree(out))
            assert outcomes[-1] in (OLD if had_output else None, NEW_COMMITTED), (after, outcomes[-1])
            assert not (work / STAGING).exists()  # nothing stale is left
            continue
        assert tree(out) == NEW_COMMITTED and not (work / STAGING).exists()
        break
    else:
        pytest.fail("the commit never completed")
    assert outcomes[0] == (OLD if had_output else None) and NEW_COMMITTED in outcomes  # both sides were hit


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    folder = tmp_path_factory.mktemp("output-input")

    def table(name, ids, **extra):
        path = folder / f"{name}.parquet"
        pd.DataFrame({"doc_id": ids, "text": [f"document {i} about markets" for i in ids], **extra}).to_parquet(path)
        return path
    return {"a": table("a", [0, 1, 2], lang=["en"] * 3), "b": table("b", [10, 11, 12, 13, 14], lang=["pt"] * 5),
            "b_overlap": table("c", [2, 1, 20], lang=["en"] * 3),
            "b_int_lang": table("d", [30, 31], lang=[1, 2])}


def job(table, out, mode="overwrite", **input_keys):
    return parse_job({"input": {"path": str(table), "text_column": "text", "id_column": "doc_id", **input_keys},
                      "tasks": [{"task": "embed", "column": "embedding", "model": "models:/tiny-encoder@champion"}],
                      "output": {"path": str(out), "mode": mode}}, source="test.yml")


def manifest(out) -> dict:
    return json.loads(Path(out, MANIFEST).read_text())


def test_overwrite_replaces_the_whole_output_and_reports_this_runs_rows(spark, tiny_encoder, tables, tmp_path):
    out = tmp_path / "out"
    analyze.run(job(tables["a"], out), spark=spark)
    summary = analyze.run(job(tables["b"], out), spark=spark)
    got = spark.read.parquet(str(out))
    assertDataFrameEqual(got.select("doc_id", "text", "lang"), spark.read.parquet(str(tables["b"])))
    assert (summary["rows"], summary["output_rows"], manifest(out)["rows"], got.count()) == (5, 5, 5, 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left beside it


def test_append_keeps_the_old_rows_and_reports_only_the_new_ones(spark, tiny_encoder, tables, tmp_path):
    out = tmp_path / "out"
    analyze.run(job(tables["a"], out), spark=spark)
    before = spark.read.parquet(str(out)).toPandas()
    summary = analyze.run(job(tables["b"], out, mode="append"), spark=spark)
    after = spark.read.parquet(str(out))
    new = after.where("doc_id >= 10")
    assertDataFrameEqual(after, spark.createDataFrame(before, after.schema).unionByName(new))  # old rows untouched
    assertDataFrameEqual(new.select("doc_id", "text", "lang"), spark.read.parquet(str(tables["b"])))
    assert (summary["rows"], summary["output_rows"], after.count()) == (5, 8, 8)
    assert (manifest(out)["rows"], manifest(out)["output_rows"], manifest(out)["mode"]) == (5, 8, "append")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("table, message", [
    ("b_int_lang", "mode append: column 2 is 'lang' string in the existing output but 'lang' bigint in this run's "
                   "rows"),
    ("b_overlap", "mode append: 2 rows have input.id_column 'doc_id' values already in the output (e.g. 1, 2)"),
])
def test_append_refuses_rows_that_do_not_fit_and_writes_nothing(spark, tiny_encoder, tables, tmp_path, table, message):
    out = tmp_path / "out"
    analyze.run(job(tables["a"], out), spark=spark)
    before = tree(out)
    with pytest.raises(InputError) as err:
        analyze.run(job(tables[table], out, mode="append"), spark=spark)
    assert message in str(err.value) and str(err.value).startswith(f"test.yml: output.path: got '{out}'")
    assert tree(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_ignore_on_an_existing_output_writes_nothing_and_logs_no_run(monkeypatch, spark, tiny_encoder, tables,
                                                                      tmp_path, capsys):
    out = tmp_path / "out"
    analyze.run(job(tables["a"], out), spark=spark)
    before = tree(out)
    monkeypatch.setattr(analyze, "job_spark", lambda *a, **k: pytest.fail("Spark started"))
    monkeypatch.setattr(analyze, "_log_run", lambda *a, **k: pytest.fail("an MLflow run was logged"))
    monkeypatch.setattr(analyze, "job_run", lambda *a, **k: pytest.fail("an MLflow run was opened"))
    summary = analyze.run(job(tables["b"], out, mode="ignore"))
    analyze.print_summary(summary)
    assert (summary["rows"], summary["skipped"]) == (0, True) and tree(out) == before
    assert capsys.readouterr().out.strip() == f"{out} exists and output.mode is ignore: nothing written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_output_through_hadoops_filesystem_commits_the_same_way(spark, tiny_encoder, tables, tmp_path):
    out = tmp_path / "out"
    analyze.run(job(tables["a"], f"file:{out}"), spark=spark)
    summary = analyze.run(job(tables["b"], f"file:{out}"), spark=spark)
    assertDataFrameEqual(spark.read.parquet(str(out)).select("doc_id", "text", "lang"),
                         spark.read.parquet(str(tables["b"])))
    assert (summary["rows"], manifest(out)["rows"]) == (5, 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_recover_restores_the_previous_output_of_a_cluster_job_cut_mid_commit(monkeypatch, spark, tmp_path):
    """The cluster job's assignments, clusters, plot and manifest are one commit: cut between the two renames
    (old output moved aside, new one not yet in place), the next start restores the whole previous set."""
    rng = np.random.default_rng(0)
    vectors = np.vstack([rng.normal(c, 0.05, (6, 3)) for c in (0.0, 5.0)]).tolist()
    path = tmp_path / "vec.parquet"
    pd.DataFrame({"id": [f"r{i}" for i in range(12)], "text": [f"row {i}" for i in range(12)],
                  "vec": vectors}).to_parquet(path)
    out = tmp_path / "clusters"
    data = {"input": {"path": str(path), "id_column": "id", "text_column": "text"}, "output": {"path": str(out)},
            "k": 2, "embedding_column": "vec", "name": "test-output-clusters", "n_init": 1, "max_iter": 5,
            "lexical_weight": 0.0}
    first = run_cluster(*parse_cluster_job(data), spark=spark)
    old = tree(out)
    assert {"assignments", "clusters", "_projection.png", MANIFEST} <= {p.split("/")[0] for p in old}

    def cut(self, manifest):
        self.storage.write(f"{self.stage}/{MANIFEST}", manifest.encode())
        self.storage.rename(self.path, self.previous)
        raise Crash("driver died between the renames")
    monkeypatch.setattr(Commit, "commit", cut)
    with pytest.raises(Crash):
        run_cluster(*parse_cluster_job({**data, "k": 3}), spark=spark)
    assert not out.exists()
    monkeypatch.undo()
    assert recover(LocalStorage(), str(out)) and tree(out) == old and first["rows"] == 12
    second = run_cluster(*parse_cluster_job({**data, "k": 3}), spark=spark)
    assert (second["k"], manifest(out)["k"], spark.read.parquet(f"{out}/clusters").count()) == (3, 3, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clusters", "vec.parquet"]
