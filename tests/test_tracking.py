"""udfs/io/tracking.py: a job's MLflow run spans the job, is named ``<job> <output> <start>``, ends FINISHED or
FAILED, and links the registered versions the job used; a job refused for its configuration leaves no run."""
import os
import time
from datetime import datetime

import mlflow
import pandas as pd
import pytest

from jobs import analyze
from udfs.errors import InputError
from udfs.io.jobconf import parse_job
from udfs.io.commit import MANIFEST
from udfs.io.tracking import job_run
from tests.inputs import labeled_rows
from udfs.errors import ConfigError
from udfs.models.registry import client, resolve

EXPERIMENT = "tracking-tests"


def textspark_tags(run) -> dict:
    return {k: v for k, v in run.data.tags.items() if k.startswith("textspark.")}


def model_inputs(run) -> list[str]:
    """The run's model inputs (``get_run`` has them; ``search_runs`` leaves them out)."""
    return [m.model_id for m in client().get_run(run.info.run_id).inputs.model_inputs]


def started_at(run) -> str:
    return datetime.fromtimestamp(run.info.start_time / 1000).isoformat(timespec="seconds")


def test_a_run_is_named_and_dated_from_the_job_start_and_ends_finished():
    started = datetime(2026, 12, 7, 5, 10, 3).timestamp()
    with job_run("analyze", EXPERIMENT, "/data/out", started=started) as tracked:
        running = client().get_run(tracked.run_id).info.status
        body_done = time.time()
    run = client().get_run(tracked.run_id)
    assert running == "RUNNING"
    assert (run.info.run_name, run.info.status, run.info.start_time, textspark_tags(run)) == \
        ("analyze /data/out 2026-12-07T05:10:03", "FINISHED", int(started * 1000), {"textspark.job": "analyze"})
    assert int(body_done * 1000) <= run.info.end_time <= int(time.time() * 1000)


def test_a_job_that_raises_ends_its_run_failed_and_the_error_goes_on():
    with pytest.raises(RuntimeError, match="^boom$"):
        with job_run("cluster", EXPERIMENT, "/data/clusters") as tracked:
            raise RuntimeError("boom")
    run = client().get_run(tracked.run_id)
    assert (run.info.status, run.info.run_name) == ("FAILED", f"cluster /data/clusters {started_at(run)}")


def test_the_run_links_each_version_it_used_through_its_logged_model(tiny_encoder, tmp_path):
    """A version registered from a logged model (every textspark registration) is a model input of the run;
    one registered from a folder has no logged model: only the tag names it."""
    mlc = client()
    encoder = resolve(tiny_encoder)
    mlc.create_registered_model("tracking-legacy")
    legacy = mlc.create_model_version("tracking-legacy", source=str(tmp_path))
    with job_run("evaluate", EXPERIMENT, "tracking-legacy",
                 models=[encoder.label, f"tracking-legacy/{legacy.version}", encoder.label, None]) as tracked:
        pass
    # from the registry side: the version -> its logged model -> the runs that name the version -> their inputs
    version = mlc.get_model_version(encoder.name, encoder.version)
    logged = mlc.get_logged_model(version.source.removeprefix("models:/"))
    used_it = mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list",
                                 filter_string=f"tags.`textspark.model_versions` LIKE '%{encoder.label}%'")
    assert [r.info.run_id for r in used_it] == [tracked.run_id]
    assert model_inputs(used_it[0]) == [logged.model_id]
    assert textspark_tags(used_it[0]) == {"textspark.job": "evaluate", "textspark.model_versions":
                                          f"tiny-encoder/{encoder.version},tracking-legacy/{legacy.version}"}


def _job(table, out, experiment: str, model: str = "models:/tiny-encoder@champion"):
    return parse_job({"input": {"path": str(table), "text_column": "text", "id_column": "doc_id"},
                      "tasks": [{"task": "embed", "column": "embedding", "model": model}],
                      "output": {"path": str(out)}, "mlflow": {"experiment": experiment}}, source="test.yml")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("tracking") / "texts.parquet"
    pd.DataFrame({"doc_id": [1, 2, 3], "text": ["markets fell", None, "a goal late on"]}).to_parquet(path)
    return path


def test_the_analyze_run_covers_the_job_and_logs_what_it_did(spark, tiny_encoder, table, tmp_path, monkeypatch):
    read, real_read = [], analyze.read_input

    def recording(*args, **kwargs):
        read.append(time.time())
        return real_read(*args, **kwargs)

    monkeypatch.setattr(analyze, "read_input", recording)
    out = tmp_path / "out"
    before = time.time()
    summary = analyze.run(_job(table, out, "tracking-analyze"), spark=spark)
    after = time.time()
    [run] = mlflow.search_runs(experiment_names=["tracking-analyze"], output_format="list")
    encoder = resolve(tiny_encoder)
    assert (run.info.run_name, run.info.status) == (f"analyze {out} {started_at(run)}", "FINISHED")
    # the run starts before the job reads its input and ends after the output is committed
    assert int(before * 1000) <= run.info.start_time <= int(read[0] * 1000)
    assert os.path.getmtime(out / MANIFEST) * 1000 <= run.info.end_time <= after * 1000
    assert run.data.params == {"input": str(table), "output": str(out), "mode": "overwrite",
                               "model.embedding": encoder.label}
    costs = {k: v for k, v in run.data.metrics.items() if k.startswith(("cost.", "wall."))}  # tests/test_costs.py
    assert {k: v for k, v in run.data.metrics.items() if k not in costs} == {
        "rows": 3, "output_rows": 3, "seconds": summary["seconds"], "errors.embedding": 1}
    assert {k.split(".")[1] for k in costs if k.startswith("cost.")} == {"embedding"}
    assert textspark_tags(run) == {"textspark.job": "analyze", "textspark.model_versions": encoder.label}
    version = client().get_model_version(encoder.name, encoder.version)
    assert model_inputs(run) == [version.source.removeprefix("models:/")]
    artifacts = {a.path for a in client().list_artifacts(run.info.run_id)}
    assert artifacts == {"task_distributions.png", "textspark_manifest.json"}


def test_a_job_that_fails_after_its_checks_leaves_a_failed_run(spark, tiny_encoder, table, tmp_path, monkeypatch):
    def unreadable(*args, **kwargs):
        raise InputError("input.path", str(table), "unreadable")

    monkeypatch.setattr(analyze, "read_input", unreadable)
    out = tmp_path / "out"
    with pytest.raises(InputError):
        analyze.run(_job(table, out, "tracking-failed"), spark=spark)
    [run] = mlflow.search_runs(experiment_names=["tracking-failed"], output_format="list")
    assert (run.info.run_name, run.info.status) == (f"analyze {out} {started_at(run)}", "FAILED")


def test_a_job_refused_for_its_configuration_leaves_no_run(spark, tiny_encoder, table, tmp_path):
    with pytest.raises(ConfigError, match="no registered model 'no-such-model'"):
        analyze.run(_job(table, tmp_path / "out", "tracking-refused", model="models:/no-such-model@champion"),
                    spark=spark)
    assert mlflow.get_experiment_by_name("tracking-refused") is None


def test_the_train_job_logs_one_run_from_its_start_linked_to_its_base_model(spark, tiny_encoder, tmp_path):
    from jobs.train_classifier import parse_train_job, run

    path = tmp_path / "labeled.parquet"
    pd.DataFrame(labeled_rows(8), columns=["id", "text", "label"]).to_parquet(path)
    job = parse_train_job({"input": {"path": str(path)}, "base_model": tiny_encoder, "head": {"epochs": 2},
                           "register": {"name": "tiny-tracked"}, "mlflow": {"experiment": "tracking-train"}})
    before = time.time()
    result = run(job, spark=spark)
    [logged] = mlflow.search_runs(experiment_names=["tracking-train"], output_format="list")
    encoder = resolve(tiny_encoder)
    assert (logged.info.run_id, logged.info.run_name, logged.info.status) == \
        (result.run_id, f"train tiny-tracked {started_at(logged)}", "FINISHED")
    assert int(before * 1000) <= logged.info.start_time
    assert textspark_tags(logged) == {"textspark.job": "train_classifier", "textspark.model": "tiny-tracked",
                                      "textspark.model_versions": encoder.label}
    base = client().get_model_version(encoder.name, encoder.version).source.removeprefix("models:/")
    assert model_inputs(logged) == [base]
    trained = client().get_model_version("tiny-tracked", result.version)
    assert (trained.run_id, [m.model_id for m in client().get_run(result.run_id).outputs.model_outputs]) == \
        (result.run_id, [trained.source.removeprefix("models:/")])  # the new version: the run's output


def test_a_stream_run_covers_the_stream_and_is_named_for_its_output(spark, tiny_encoder, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    pd.DataFrame({"id": [1, 2], "text": ["markets rose", "the match"]}).to_parquet(inbox / "a.parquet")
    conf = parse_job({"input": {"path": str(inbox), "text_column": "text", "id_column": "id",
                                "stream": {"checkpoint": str(tmp_path / "checkpoint")}},
                      "tasks": [{"task": "embed", "column": "vec", "model": tiny_encoder}],
                      "output": {"path": str(out)}, "mlflow": {"experiment": "tracking-stream"}})
    before = time.time()
    summary = analyze.run(conf, spark=spark)
    [run] = mlflow.search_runs(experiment_names=["tracking-stream"], output_format="list")
    assert (run.info.run_name, run.info.status) == (f"analyze {out} {started_at(run)}", "FINISHED")
    assert int(before * 1000) <= run.info.start_time and \
        run.info.end_time - run.info.start_time >= summary["seconds"] * 1000 - 100  # seconds: rounded to 0.1
    assert run.data.metrics == {"rows": 2, "micro_batches": 1, "seconds": summary["seconds"]}
    assert textspark_tags(run) == {"textspark.job": "analyze", "textspark.model_versions": resolve(tiny_encoder).label}
