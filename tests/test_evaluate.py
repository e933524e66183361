"""evaluate + promote: the metrics of a perfect and a constant model; missing predictions and labels without
support; the alias moves only on a win larger than the margin; every decision is recorded; unseen labels and
bad configs fail clearly."""
import json
from datetime import datetime

import mlflow
import numpy as np
import pytest

from tests.inputs import VOCAB, labeled_rows
from udfs.errors import ConfigError
from udfs.models.loading import build, local_folder
from udfs.models.registry import client, resolve
from udfs.training.head import register_head
from udfs.training.evaluation import Evaluation, compare_and_promote, decide, evaluate_model
from udfs.training.metrics import classification_metrics

LABELS = sorted(VOCAB)


@pytest.fixture(scope="module")
def table(spark):
    return spark.createDataFrame(labeled_rows(8), "id int, text string, label string")


@pytest.fixture(scope="module")
def versions(table, tiny_encoder):
    """v1: a head that always answers 'business' (weights zero, bias favours it); v2: a head fitted on the
    table's own embeddings (memorises it). Both registered as versions of 'tiny-eval'."""
    from udfs.models.backends.heads import fit_head

    constant = [(np.zeros((32, 3), np.float32), np.array([1.0, 0.0, 0.0], np.float32))]
    v1, _ = register_head("tiny-eval", task="classify", base_model=tiny_encoder, layers=constant, labels=LABELS,
                          alias=None)
    enc = build(local_folder(resolve(tiny_encoder)), device="cpu", precision="fp32")
    rows = table.toPandas()
    y = rows["label"].map({label: i for i, label in enumerate(LABELS)}).to_numpy()
    fitted = fit_head(enc.embed(rows["text"].tolist()), y, 3, hidden=0, epochs=200, learning_rate=0.05, dropout=0.0)
    v2, _ = register_head("tiny-eval", task="classify", base_model=tiny_encoder, layers=fitted, labels=LABELS,
                          alias=None)
    return v1, v2


def test_metrics_of_a_perfect_and_a_constant_model(table, versions):
    v1, v2 = versions
    e = evaluate_model(table, f"models:/tiny-eval/{v2}", task="classify")  # v2 memorised the table
    assert e.metrics == {"accuracy": 1.0, "macro_f1": 1.0, "weighted_f1": 1.0,
                         "per_class": {k: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 8} for k in LABELS},
                         "confusion": [[8, 0, 0], [0, 8, 0], [0, 0, 8]], "labels": LABELS, "rows": 24,
                         "no_prediction": 0}
    assert e.counts == {"rows_in": 24, "null_labels": 0, "unseen_labels": 0, "rows": 24, "no_prediction": 0}
    constant = evaluate_model(table, f"models:/tiny-eval/{v1}", task="classify")  # always 'business'
    zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 8}
    assert constant.metrics == {
        "accuracy": pytest.approx(1 / 3), "macro_f1": pytest.approx(1 / 6), "weighted_f1": pytest.approx(1 / 6),
        "per_class": {"business": {"precision": pytest.approx(1 / 3), "recall": 1.0, "f1": 0.5, "support": 8},
                      "politics": zero, "sport": zero},
        "confusion": [[8, 0, 0], [8, 0, 0], [8, 0, 0]], "labels": LABELS, "rows": 24, "no_prediction": 0}


def test_a_missing_prediction_is_wrong_and_a_label_without_rows_scores_zero():
    m = classification_metrics(["a", "a", "b", "b"], ["a", None, "b", "a"], ["a", "b", "c"])
    assert m == {
        "accuracy": 0.5, "macro_f1": pytest.approx(7 / 18), "weighted_f1": pytest.approx(7 / 12),
        "per_class": {"a": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
                      "b": {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2},
                      "c": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}},
        "confusion": [[1, 0, 0], [1, 1, 0], [0, 0, 0]], "labels": ["a", "b", "c"], "rows": 4, "no_prediction": 1}


def test_promotion_only_on_a_win_beyond_the_margin_and_every_decision_recorded(table, versions):
    v1, v2 = versions
    mlc = client()
    # no champion yet: the first evaluated candidate becomes champion
    first = compare_and_promote(table, name="tiny-eval", candidates=[f"models:/tiny-eval/{v1}"], task="classify")
    assert first["decision"]["applied"] and resolve("models:/tiny-eval@champion").version == v1
    # v2 is much better: promoted, with the reason and scores recorded
    second = compare_and_promote(table, name="tiny-eval", candidates=[f"models:/tiny-eval/{v2}"], task="classify",
                                 margin=0.05)
    d = second["decision"]
    assert (d["promoted"], d["applied"], d["champion_version"], d["candidate_version"]) == (True, True, v1, v2)
    assert resolve("models:/tiny-eval@champion").version == v2
    assert d["candidate_score"] > d["champion_score"] + 0.05
    # the old version, now a candidate, does not beat the champion: nothing moves
    third = compare_and_promote(table, name="tiny-eval", candidates=[f"models:/tiny-eval/{v1}"], task="classify")
    assert not third["decision"]["promoted"] and "does not beat @champion" in third["decision"]["reason"]
    assert resolve("models:/tiny-eval@champion").version == v2
    # every decision: an MLflow run with decision.json, tags on the model and the versions
    for summary in (first, second, third):
        run = mlflow.get_run(summary["run_id"])
        assert run.data.tags["textspark.decision"] == ("promoted" if summary["decision"]["applied"] else "kept")
        logged = mlflow.artifacts.load_dict(f"runs:/{summary['run_id']}/decision.json")
        assert logged["decision"] == summary["decision"]
    last = json.loads(mlc.get_registered_model("tiny-eval").tags["textspark.last_decision"])
    assert (last["run_id"], last["applied"]) == (third["run_id"], False)
    assert mlc.get_model_version("tiny-eval", v1).tags["textspark.eval.macro_f1"].startswith(
        f"{third['evaluations'][v1]['macro_f1']:.4f}")


def test_decide_margin_is_strict():
    def ev(version, score):
        return Evaluation(reference="", name="m", version=version, metrics={"macro_f1": score})

    assert not decide(ev("1", 0.80), [ev("2", 0.81)], metric="macro_f1", margin=0.01, alias="champion").promoted
    assert decide(ev("1", 0.80), [ev("2", 0.8101)], metric="macro_f1", margin=0.01, alias="champion").promoted
    assert not decide(ev("1", 0.80), [ev("1", 0.80)], metric="macro_f1", margin=0.0, alias="champion").promoted
    best = decide(ev("1", 0.5), [ev("2", 0.6), ev("3", 0.7)], metric="macro_f1", margin=0.0, alias="champion")
    assert (best.candidate_version, best.promoted) == ("3", True)


def test_unseen_labels_fail_or_are_dropped_and_counted(spark, versions):
    _, v2 = versions
    df = spark.createDataFrame([(1, "the match and the goal", "sport"), (2, "a film premiere", "entertainment"),
                                (3, "shares and profits", None)], "id int, text string, label string")
    with pytest.raises(ValueError, match=r"labels \['entertainment'\] \(1 rows\) are not among the labels "
                                         r"tiny-eval/\d+ predicts \(business, politics, sport\)"):
        evaluate_model(df, f"models:/tiny-eval/{v2}", task="classify")
    e = evaluate_model(df, f"models:/tiny-eval/{v2}", task="classify", unseen_labels="drop")
    assert e.counts == {"rows_in": 3, "null_labels": 1, "unseen_labels": 1, "rows": 1, "no_prediction": 0}


def test_bad_configs_fail_naming_the_key(table, versions, tiny_encoder):
    from jobs.evaluate import parse_evaluate_job

    with pytest.raises(ConfigError, match=r"candidates: got 'models:/tiny-encoder@champion'; allowed: versions of "):
        compare_and_promote(table, name="tiny-eval", candidates=[tiny_encoder], task="classify")
    with pytest.raises(ConfigError, match=r"metric: got 'auc'; allowed: macro_f1, accuracy, weighted_f1"):
        compare_and_promote(table, name="tiny-eval", candidates=["models:/tiny-eval/1"], task="classify",
                            metric="auc")
    with pytest.raises(ConfigError, match=r"margin: got -0.1"):
        parse_evaluate_job({"model": "m", "input": {"dataset": "tweets"}, "margin": -0.1})
    with pytest.raises(ConfigError, match=r"input: got None; allowed: exactly one of input or holdout_of"):
        parse_evaluate_job({"model": "m"})
    with pytest.raises(ConfigError, match=r"model: got 'models:/m@x'; allowed: a registered model name"):
        parse_evaluate_job({"model": "models:/m@x", "input": {"dataset": "tweets"}})


def test_evaluate_job_on_a_table(spark, versions, tmp_path, monkeypatch):
    from jobs import evaluate

    mlc = client()
    path = tmp_path / "labeled.parquet"
    spark.createDataFrame(labeled_rows(8), "id int, text string, label string").toPandas().to_parquet(path)
    job = evaluate.parse_evaluate_job({"model": "tiny-eval", "input": {"path": str(path)}, "where": "id < 12",
                                       "candidates": [f"models:/tiny-eval/{versions[0]}"], "promote": False})
    summary = evaluate.run(job, spark=spark)
    assert {e["counts"]["rows"] for e in summary["evaluations"].values()} == {12}
    assert summary["decision"]["applied"] is False
    # the job's one run: named for the job, FINISHED, linked to the logged model of every version it evaluated
    run = mlc.get_run(summary["run_id"])
    started = datetime.fromtimestamp(run.info.start_time / 1000).isoformat(timespec="seconds")
    assert (run.info.run_name, run.info.status) == (f"evaluate tiny-eval {started}", "FINISHED")
    labels = sorted(f"tiny-eval/{v}" for v in summary["evaluations"])
    assert (run.data.tags["textspark.job"], run.data.tags["textspark.model_versions"]) == ("evaluate", ",".join(labels))
    assert sorted(m.model_id for m in run.inputs.model_inputs) == \
        sorted(mlc.get_model_version("tiny-eval", v).source.removeprefix("models:/") for v in summary["evaluations"])
