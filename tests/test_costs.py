"""Cost per row (issue 30): each task's model loads and compute in the manifest, MLflow and the cost store;
``--plan`` estimates a job's time from the store before anything runs."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from jobs import analyze
from udfs.io.jobconf import parse_job
from tests.tiny_models import build_tiny_encoder
from udfs.runtime import costs

ROWS = 300


@pytest.fixture(scope="module")
def costs_encoder(workdir, mlflow_registry) -> str:
    """A tiny encoder of this module's own: its first load in this test session is this module's."""
    from udfs.models.registry import register_folder

    folder = build_tiny_encoder(workdir / "costs-encoder", seed=3)
    register_folder("costs-encoder", task="embed", kind="hf_encoder", weights=folder,
                    params={"max_tokens": 64, "pooling": "mean", "normalize": True, "token_budget": 256})
    return "models:/costs-encoder@champion"


def table(path: Path, rows: int) -> Path:
    texts = [f"the match and the goal team today number {i} " * (1 + i % 3) for i in range(rows)]
    pd.DataFrame({"id": range(rows), "text": texts}).to_parquet(path, index=False)
    return path


def job_data(source: Path, out: Path, model: str) -> dict:
    return {"spark": {"profile": "local"}, "input": {"path": str(source), "text_column": "text", "id_column": "id"},
            "tasks": [{"task": "embed", "column": "embedding", "model": model, "device": "cpu", "languages": "any"},
                      {"task": "embed", "column": "again", "model": model, "device": "cpu", "languages": "any"}],
            "output": {"path": str(out)}}


def run_metrics(out: Path) -> dict:
    import mlflow

    runs = [r for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
            if r.info.run_name.startswith(f"analyze {out} ")]
    assert len(runs) == 1
    return runs[0].data.metrics


def test_an_analyze_run_records_each_tasks_cost(spark, costs_encoder, tmp_path, monkeypatch):
    store = tmp_path / "costs.jsonl"
    monkeypatch.setenv(costs.COSTS_ENV, str(store))
    out = tmp_path / "out"
    summary = analyze.run(parse_job(job_data(table(tmp_path / "in.parquet", ROWS), out, costs_encoder),
                                    source="test"), spark=spark)
    manifest = json.loads((out / "_textspark_manifest.json").read_text())
    assert set(manifest["costs"]) == {"embedding", "again"} and manifest["costs"] == summary["costs"]
    wall = manifest["wall"]
    for column, c in manifest["costs"].items():
        assert c["rows"] == ROWS and c["model"] == summary["tasks"][0]["model"] and c["device"] == "cpu"
        assert isinstance(c["cpu_seconds"], float) and c["cpu_seconds"] > 0
        assert isinstance(c["wall_seconds"], float) and c["wall_seconds"] > 0
        assert c["seconds_per_1000_rows"] == pytest.approx(1000 * c["wall_seconds"] / ROWS, abs=0.01)
        assert c["gpu_seconds"] is None and isinstance(c["loads"], int) and isinstance(c["mean_chars"], float)
        assert 0 <= c["load_seconds"] / max(c["loads"], 1) <= wall["stage"]  # each load ran inside the stage
    # the model loads once per Python worker, for the first task that needs it (the second shares it)
    first = manifest["costs"]["embedding"]
    assert first["loads"] >= 1 and first["load_seconds"] > 0 and manifest["costs"]["again"]["loads"] == 0
    parts = ("setup", "spark_start", "read", "stage", "commit", "other")
    assert sum(wall[k] for k in parts) == pytest.approx(wall["total"], abs=0.05)
    assert wall["workers"] == 2 and wall["cores"] == 2
    assert wall["accounted"] == pytest.approx(wall["total"] - wall["stage_other"] - wall["other"], abs=0.02)

    metrics = run_metrics(out)
    assert metrics["cost.embedding.rows"] == ROWS and metrics["cost.again.rows"] == ROWS
    assert metrics["cost.embedding.load_seconds"] == first["load_seconds"]
    assert metrics["cost.embedding.cpu_seconds"] > 0 and metrics["wall.total"] == wall["total"]

    lines = costs.lines(summary)
    assert lines[0].startswith("  embedding    cost: load ") and f"{ROWS} rows, " in lines[0]
    assert "s per 1,000 rows" in lines[0] and lines[-1].startswith("  wall ")

    records = costs.records(store)  # one record per task per run, and one for the run
    assert [(r["kind"], r.get("column")) for r in records] == [("task", "embedding"), ("task", "again"), ("job", None)]
    assert records[0]["seconds_per_1000_rows"] == first["seconds_per_1000_rows"] and records[0]["cores"] == 2
    analyze.run(parse_job(job_data(table(tmp_path / "in2.parquet", 100), tmp_path / "out2", costs_encoder),
                          source="test"), spark=spark)
    records = costs.records(store)
    assert [r["kind"] for r in records] == ["task", "task", "job"] * 2
    assert [r["rows"] for r in records if r["kind"] == "task"] == [ROWS, ROWS, 100, 100]


def write_job(tmp_path: Path, model: str, rows: int = 2000) -> Path:
    conf = tmp_path / "job.yml"
    data = job_data(table(tmp_path / "in.parquet", rows), tmp_path / "out", model)
    data["tasks"] = data["tasks"][:1]
    conf.write_text(yaml.safe_dump(data))
    return conf


def no_spark(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("--plan started a Spark session")

    monkeypatch.setattr(analyze, "job_spark", refuse)
    monkeypatch.setattr("udfs.platform.get_spark", refuse)


def test_plan_estimates_from_the_recorded_costs_without_spark(tiny_encoder, tmp_path, monkeypatch, capsys):
    from udfs.models.registry import resolve

    label = resolve(tiny_encoder, task="embed").label
    store = tmp_path / "costs.jsonl"
    store.write_text("".join(json.dumps(r) + "\n" for r in [
        {"kind": "task", "at": "2026-01-01T00:00:00", "job": "analyze", "column": "embedding", "model": label,
         "device": "cpu", "cores": 2, "workers": 2, "seconds_per_1000_rows": 10.0, "load_seconds": 3.0,
         "rows": 500, "mean_chars": 40.0},
        {"kind": "job", "at": "2026-01-01T00:00:00", "job": "analyze", "cores": 2, "workers": 2, "rows": 500,
         "total_seconds": 12.0, "spark_start_seconds": 5.0, "fixed_seconds": 0.0}]))
    monkeypatch.setenv(costs.COSTS_ENV, str(store))
    no_spark(monkeypatch)
    conf = write_job(tmp_path, tiny_encoder)
    assert analyze.main(["--conf", str(conf), "--plan"]) == 0
    out = capsys.readouterr().out.splitlines()
    # 2,000 rows at 10 s per 1,000 rows on 2 workers = 10 s, + 3 s load, + 5 s Spark start = 18 s
    assert out[0].startswith(f"plan for {conf}: 2,000 input rows on 2 parallel worker(s) of 2 core(s) (local[2,4]), cpu")
    assert out[1] == (f"  embedding    {label}: 2,000 rows x 10.00 s per 1,000 rows / 2 worker(s) + 3.0 s load "
                      "= 13.0 s")
    assert out[2].startswith("  Spark start 5.0 s + reading, writing and other fixed costs 0.0 s")
    assert out[3] == "  total: 18.0 s"
    assert not (tmp_path / "out").exists()


def test_a_plan_with_no_recorded_cost_says_so(tiny_encoder, tmp_path, monkeypatch, capsys):
    from udfs.models.registry import resolve

    label = resolve(tiny_encoder, task="embed").label
    monkeypatch.setenv(costs.COSTS_ENV, str(tmp_path / "none.jsonl"))
    no_spark(monkeypatch)
    assert analyze.main(["--conf", str(write_job(tmp_path, tiny_encoder, rows=100)), "--plan"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [f"  embedding    no recorded cost for {label} (cpu): run once",
                       "  no recorded analyze run for the Spark start and fixed costs: run once",
                       "  total: nothing recorded to estimate from"]


def test_the_estimate_falls_back_to_the_model_name_and_leaves_out_what_it_cannot_estimate():
    store = [{"kind": "task", "at": "t1", "model": "enc/1", "device": "cpu", "cores": 4,
              "seconds_per_1000_rows": 8.0, "load_seconds": 1.0},
             {"kind": "task", "at": "t2", "model": "enc/1", "device": "gpu", "cores": 4,
              "seconds_per_1000_rows": 0.5, "load_seconds": 2.0},
             {"kind": "job", "at": "t3", "job": "analyze", "cores": 4, "spark_start_seconds": 4.0,
              "fixed_seconds": 1.0}]
    assert costs.lookup(store, "enc/1", "gpu", 4)["seconds_per_1000_rows"] == 0.5
    assert costs.lookup(store, "enc/2", "cpu", 4)["seconds_per_1000_rows"] == 8.0  # the same name, same device
    assert costs.lookup(store, "other/1", "cpu", 4) is None
    lines, total = costs.estimate("analyze", [("a", "enc/2"), ("b", "other/1")], 1000, 4, "cpu", 4, store)
    assert lines[0] == ("  a            enc/2: 1,000 rows x 8.00 s per 1,000 rows / 4 worker(s) + 1.0 s load = 3.0 s"
                        " (recorded for enc/1, cpu)")
    assert lines[1] == "  b            no recorded cost for other/1 (cpu): run once"
    assert total == 3.0 + 4.0 + 1.0 and lines[-1] == "  total: 8.0 s (without b: no recorded cost)"


def test_the_wall_split_and_the_cost_vector():
    assert costs.CostParam().addInPlace(costs.vector(rows=2, cpu_seconds=1.5), costs.load_vector(2.0, "cuda:0")) \
        == costs.vector(rows=2, cpu_seconds=1.5, loads=1, gpu_loads=1, load_seconds=2.0)
    entry = costs.entry(costs.vector(loads=2, load_seconds=4, cpu_seconds=30, wall_seconds=20, rows=2000,
                                     chars=80000), "enc/1")
    assert entry["seconds_per_1000_rows"] == 10.0 and entry["mean_chars"] == 40.0 and entry["device"] == "cpu"
    wall = costs.account({"setup": 1, "spark_start": 5, "read": 2, "stage": 15, "commit": 1}, 25, {"t": entry}, 2, 2)
    assert (wall["tasks"], wall["stage_other"], wall["other"], wall["accounted"]) == (12.0, 3.0, 1.0, 21.0)


def test_a_cluster_run_records_its_embedding_cost_and_plans_from_it(spark, costs_encoder, tmp_path, monkeypatch,
                                                                     capsys):
    from jobs import cluster

    monkeypatch.setenv(costs.COSTS_ENV, str(tmp_path / "costs.jsonl"))
    texts = [f"the match and the goal team {i}" if i % 2 else f"shares rose after strong profits {i}"
             for i in range(200)]
    pd.DataFrame({"id": [str(i) for i in range(200)], "text": texts}).to_parquet(tmp_path / "in.parquet")
    data = {"spark": {"profile": "local"}, "input": {"path": str(tmp_path / "in.parquet"), "id_column": "id"},
            "output": {"path": str(tmp_path / "out")}, "k": 2, "embedding_model": costs_encoder,
            "center_languages": False, "name": "costs-clusters"}
    summary = cluster.run(*cluster.parse_cluster_job(data), spark=spark)
    embedding = summary["costs"]["embedding"]
    assert embedding["rows"] == 200 and embedding["wall_seconds"] > 0 and embedding["device"] == "cpu"
    assert set(summary["wall"]) >= {"setup", "spark_start", "read", "stage", "fit", "commit", "other", "total"}
    # a task record per cost (the language model's too, where the keywords' stop words need it), then the job's
    assert set(summary["costs"]) <= {"embedding", "language"}
    assert [(r["kind"], r.get("column")) for r in costs.records()] == [
        *(("task", column) for column in summary["costs"]), ("job", None)]

    (tmp_path / "job.yml").write_text(yaml.safe_dump(data))
    no_spark(monkeypatch)
    monkeypatch.setattr(cluster, "job_spark", analyze.job_spark)
    assert cluster.main(["--conf", str(tmp_path / "job.yml"), "--plan"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(f"  embedding    {embedding['model']}: 200 rows x ") and out[-1].startswith("  total: ")
