"""Progress a person can read: live rows per task on the driver's stderr, model-load lines, training steps, --quiet."""
from __future__ import annotations

import re
import sys
import types

import pandas as pd
import pytest

from tests.helpers import cluster_profile
from udfs.models import model_cache
from udfs.runtime import driver, worker
from udfs.runtime.progress import CONNECT_NOTE, QUIET, Steps, describe, progress
from udfs.tasks.embed import embed_plan
from udfs.tasks.pipeline import PlannedTask, apply_tasks

FINAL = r"textspark: {names}: {done}/{total} rows scored in \d+\.\d s \(\d+\.\d rows/s\)"


@pytest.fixture(autouse=True)
def loud(monkeypatch):
    monkeypatch.delenv(QUIET, raising=False)


@pytest.fixture()
def texts(spark):
    rows = [(i, None if i % 10 == 0 else f"the match and the goal team today {i}") for i in range(300)]
    return spark.createDataFrame(pd.DataFrame(rows, columns=["id", "text"]), "id long, text string")


def planned(model, *columns):
    return [PlannedTask("embed", c, embed_plan(model=model, languages="any"), "embedding") for c in columns]


def err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_progress_line_says_rows_of_total_rate_and_eta():
    assert describe(1200, 2000, 30.0) == "1,200/2,000 rows (60%), 40.0 rows/s, ETA 20 s"
    assert describe(100, 2000, 10.0) == "100/2,000 rows (5%), 10.0 rows/s, ETA 3 min 10 s"
    assert describe(0, 2000, 12.0) == \
        "0/2,000 rows (0%), 12 s: the first batch is running (a worker loads its models first)"
    assert describe(700, None, 7.0) == "700 rows scored, 100.0 rows/s"
    assert describe(2000, 2000, 50.0, final=True) == "2,000/2,000 rows scored in 50.0 s (40.0 rows/s)"


def test_each_task_counts_every_row_in_the_fused_stage_and_prints_a_final_line(spark, tiny_encoder, texts, capsys):
    tasks = planned(tiny_encoder, "emb", "emb2")
    meter = progress(spark, tasks, 300, interval=3600)
    out = apply_tasks(texts, "text", meter.tasks, partitions=3)  # mapInArrow, three Spark tasks
    with meter:
        assert out.count() == 300
    assert meter.accumulated() == [300, 300]  # the accumulators: exact once the Spark tasks end
    assert meter.live() == [300, 300]  # the workers' live counts reached the driver as well
    lines = [ln for ln in err_lines(capsys) if not ln.startswith("textspark: loaded ")]
    assert len(lines) == 1 and re.fullmatch(FINAL.format(names="emb, emb2", done="300", total="300"), lines[0]), lines


def test_incremental_inputs_count_only_the_rows_computed(spark, tiny_encoder, texts, capsys):
    from pyspark.sql import functions as F

    staged = texts.withColumn("__in", F.when(F.col("id") < 100, F.col("text")))  # reused rows: null input
    meter = progress(spark, planned(tiny_encoder, "emb"), {"emb": 90}, interval=3600, skip_nulls=True)
    out = apply_tasks(staged, "text", meter.tasks, partitions=2, inputs=["__in"])
    with meter:
        out.collect()
    assert meter.accumulated() == [90]  # ids 0-99 less the 10 null texts
    assert re.fullmatch(FINAL.format(names="emb", done="90", total="90"), err_lines(capsys)[-1])


def test_a_scalar_arrow_udf_counts_its_rows(spark, tiny_encoder, texts, capsys):
    """The cluster job's path: driver.make_udf (a scalar Arrow UDF) on a counted plan."""
    from pyspark.sql import functions as F

    meter = progress(spark, {"embedding": embed_plan(model=tiny_encoder, languages="any")}, 300, interval=3600)
    udf = driver.make_udf(meter.tasks["embedding"], only="embedding")
    with meter:
        texts.repartition(2).select(udf(F.col("text")).alias("v")).collect()
    assert meter.accumulated() == [300]
    assert re.fullmatch(FINAL.format(names="embedding", done="300", total="300"), err_lines(capsys)[-1])


def test_live_counts_follow_the_latest_attempt_and_ignore_strangers(spark, tiny_encoder):
    meter = progress(spark, planned(tiny_encoder, "emb"), 300)
    token = meter.tasks[0].plan.progress.channel[2]
    for message in (f"{token} 0 5 0 0 64", f"{token} 0 5 0 0 128", f"{token} 0 5 0 0 64",  # late datagram
                    f"{token} 0 5 1 0 22", f"{token} 0 5 1 1 10",  # partition 1 retried: its count restarts
                    f"{'0' * 16} 0 5 2 0 999", f"{token} 7 5 2 0 999", "garbage"):
        meter._record(message.encode())
    assert meter.live() == [138]
    assert meter.lines(now=meter._started + 13.8) == ["emb: 138/300 rows (46%), 10.0 rows/s, ETA 16 s"]
    meter.__exit__(None, None, None)


def test_a_task_with_nothing_to_compute_is_not_shown(spark, tiny_encoder):
    meter = progress(spark, planned(tiny_encoder, "emb", "idle"), {"emb": 10, "idle": 0})
    assert meter.lines(now=meter._started + 1) == [
        "emb: 0/10 rows (0%), 1 s: the first batch is running (a worker loads its models first)"]
    meter.__exit__(None, None, None)


def test_over_spark_connect_one_line_says_why_and_what_to_watch(tiny_encoder, capsys):
    connect = types.new_class("SparkSession")
    connect.__module__ = "pyspark.sql.connect.session"
    tasks = planned(tiny_encoder, "emb")
    with progress(connect(), tasks, 100, interval=0.01) as meter:
        assert meter.tasks is tasks  # no accumulators to carry
    assert capsys.readouterr().err == f"textspark: {CONNECT_NOTE}\n"


def test_quiet_prints_nothing_and_counts_nothing(spark, tiny_encoder, texts, capsys, monkeypatch):
    tasks = planned(tiny_encoder, "emb")
    with progress(spark, tasks, 300, quiet=True) as meter:
        apply_tasks(texts, "text", meter.tasks).collect()
    assert meter.tasks is tasks
    monkeypatch.setenv(QUIET, "1")  # what --quiet sets; the workers inherit it
    with progress(spark, tasks, 300) as meter:
        assert meter.tasks is tasks
    model_cache.clear()
    worker.worker_model(tasks[0].plan)
    assert capsys.readouterr().err == ""


def test_a_worker_prints_one_line_per_model_load(tiny_encoder, capsys):
    p = embed_plan(model=tiny_encoder, languages="any", device="cpu", precision="fp32")
    model_cache.clear()
    for _ in range(3):
        worker.worker_model(p)
    lines = err_lines(capsys)
    assert len(lines) == 1
    assert re.fullmatch(rf"textspark: loaded {re.escape(p.model.label)} \(hf_encoder, cpu, fp32\) in \d+\.\d s",
                        lines[0]), lines


def test_training_steps_print_epoch_step_loss_and_eta(capsys):
    meter = Steps("fine-tuning tiny on 32 rows", 4, 2, every=2, interval=3600)
    for epoch, loss in ((1, 1.0), (1, 0.5), (2, 0.25), (2, 0.25)):
        meter.step(epoch, loss)
    lines = err_lines(capsys)
    assert len(lines) == 2
    assert re.fullmatch(r"textspark: fine-tuning tiny on 32 rows: epoch 1/2, step 2/4 \(50%\), loss 0\.7500, "
                        r"\d+\.\d steps/s, ETA \d+ s", lines[0]), lines
    assert re.fullmatch(r"textspark: fine-tuning tiny on 32 rows: epoch 2/2, step 4/4 \(100%\), loss 0\.2500, "
                        r"\d+\.\d steps/s, done in \d+ s", lines[1]), lines


def test_finetuning_prints_its_steps(spark, tiny_encoder, capsys, monkeypatch):
    from udfs.training.settings import TrainSettings
    from udfs.training.train import train

    monkeypatch.setenv("TEXTSPARK_PROGRESS_SECONDS", "0")  # a line every step
    rows = [(f"the match and the goal team {i}", "sport") if i % 2 else (f"shares profits market {i}", "business")
            for i in range(24)]
    df = spark.createDataFrame(pd.DataFrame(rows, columns=["text", "label"]))
    train(df, TrainSettings(name="tiny-progress", method="finetune", base_model=tiny_encoder, test_fraction=0.25,
                            finetune={"epochs": 2, "batch_size": 8}))
    lines = [ln for ln in err_lines(capsys) if ln.startswith("textspark: fine-tuning")]
    assert [re.sub(r"loss \d\.\d{4}, \d+\.\d steps/s, (ETA|done in) \d+ s$", "...", ln) for ln in lines] == [
        f"textspark: fine-tuning tiny-progress on 18 rows: epoch {e}/2, step {s}/6 ({100 * s // 6}%), ..."
        for e, s in ((1, 1), (1, 2), (1, 3), (2, 4), (2, 5), (2, 6))]


def test_quiet_flag_sets_the_environment_the_workers_inherit(tmp_path, monkeypatch):
    from jobs import analyze, cluster, evaluate, shadow, train_classifier
    from udfs.io.cli import parse_args

    assert parse_args("", ["--conf", "x.yml"]).quiet is False
    for job in (analyze, cluster, evaluate, shadow, train_classifier):
        monkeypatch.delenv(QUIET, raising=False)
        assert job.main(["--conf", str(tmp_path / "missing.yml"), "--quiet"]) in (2, 3)
        assert sys.modules["os"].environ.get(QUIET) == "1"


CLUSTER_PROFILE = cluster_profile(128)
LOADED = r"textspark: loaded tiny-encoder/\d+ \(hf_encoder, cpu, fp32\) in \d+\.\d s"


@pytest.mark.slow  # two analyze jobs in subprocesses (a JVM each; local-cluster: master, worker, executor JVMs)
@pytest.mark.parametrize("profile", ["local", "local-cluster"])
def test_the_analyze_job_prints_live_progress_and_model_loads_and_quiet_turns_them_off(tiny_encoder, tmp_path,
                                                                                       profile):
    import os
    import subprocess

    from tests.helpers import ROOT, write_conf

    if profile == "local-cluster":
        (tmp_path / "cluster.yml").write_text(CLUSTER_PROFILE)
        profile = str(tmp_path / "cluster.yml")
    table = tmp_path / "in.parquet"
    pd.DataFrame({"id": range(2000), "text": [f"the match and the goal team today {i}" for i in range(2000)]}) \
        .to_parquet(table)
    tasks = [{"task": "embed", "column": "embedding", "model": tiny_encoder, "precision": "fp32", "device": "cpu",
              "languages": "any"}]
    env = {**os.environ, "TEXTSPARK_PROGRESS_SECONDS": "1"}
    env.pop(QUIET, None)
    for quiet in (False, True):
        conf = write_conf(tmp_path, f"job{quiet}", table, tmp_path / f"out{quiet}", tasks, profile=profile, partitions=2)
        run = subprocess.run([sys.executable, "-m", "jobs.analyze", "--conf", str(conf)] + ["--quiet"] * quiet,
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"wrote 2000 rows to {tmp_path / f'out{quiet}'}" in run.stdout  # the summary stays
        ours = [ln for ln in run.stderr.splitlines() if ln.startswith("textspark: ")]
        if quiet:
            assert ours == []
            continue
        final = [ln for ln in ours if re.fullmatch(FINAL.format(names="embedding", done="2,000", total="2,000"), ln)]
        loads = [ln for ln in ours if re.fullmatch(LOADED, ln)]
        assert len(final) == 1 and ours[-1] == final[0], ours
        # one per Python worker that loaded it (two partitions); a local-cluster's go to its executors' logs
        assert 1 <= len(loads) <= 2 if profile == "local" else loads == [], ours
        assert all(re.fullmatch(r"textspark: embedding: \d[\d,]*/2,000 rows \(\d+%\), .+", ln)
                   for ln in ours if ln not in final + loads), ours
