"""The shadow job (jobs/shadow.py, udfs.shadow): two versions of a task in one pass, the diff table with known
flips, the same version twice, the summary figures exactly, the drift of two encoders, config errors, and
the evaluate job's gate on a shadow report."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_frame_equal, load_direct, register_catalog_entry
from tests.inputs import VOCAB, labeled_rows
from tests.tiny_models import build_tiny_encoder, random_head_layers
from udfs import shadow
from udfs.errors import ConfigError
from udfs.models.backends.heads import forward
from udfs.models.registry import client, register_folder, resolve
from udfs.text import EMPTY_INPUT, NULL_INPUT
from udfs.training.head import register_head
from udfs.training.shadow import neighbour_overlap, summary

ROOT = Path(__file__).resolve().parents[1]
CANON = ["negative", "neutral", "positive"]
RESULT = "struct<label:string,score:float,scores:map<string,float>,model:string,error:string>"
TEXTS = ["I love this product, it works great!", "Terrible service, I will never come back.",
         "The train was on time.", "The match ended in a draw after a late goal.",
         "Shares rose after the company reported strong profits.", "The band played their new album live."]


def softmax(logits):
    e = np.exp(np.asarray(logits, dtype=np.float64) - max(logits))
    return e / e.sum()


def constant(bias):
    """A head that gives every text the probabilities softmax(bias): its label is known without running it."""
    return [(np.zeros((32, 3), np.float32), np.asarray(bias, np.float32))]


@pytest.fixture(scope="module")
def heads(tiny_encoder):
    """Versions of 'shadow-sentiment', all on the tiny encoder: always positive (@champion), always negative,
    and a random head whose labels vary by text."""
    positive, _ = register_head("shadow-sentiment", task="sentiment", base_model=tiny_encoder,
                                layers=constant([0, 0, 1]), labels=CANON, alias="champion")
    negative, _ = register_head("shadow-sentiment", task="sentiment", base_model=tiny_encoder,
                                layers=constant([1, 0, 0]), labels=CANON, alias=None)
    varied, _ = register_head("shadow-sentiment", task="sentiment", base_model=tiny_encoder,
                              layers=random_head_layers(1, [32, 3]), labels=CANON, alias=None)
    return {k: f"models:/shadow-sentiment/{v}" for k, v in
            (("positive", positive), ("negative", negative), ("varied", varied))}


@pytest.fixture(scope="module")
def table(spark):
    rows = list(enumerate(TEXTS)) + [(len(TEXTS), None), (len(TEXTS) + 1, "")]
    return spark.createDataFrame(rows, "id int, text string")


def label(reference):
    return reference.removeprefix("models:/")


def constant_struct(bias, reference):
    p = softmax(bias)
    j = int(p.argmax())
    return (CANON[j], float(p[j]), dict(zip(CANON, map(float, p))), label(reference), None)


def test_every_row_flips_between_two_constant_heads(spark, table, heads):
    diff = shadow(table, task="sentiment", champion=heads["positive"], challenger=heads["negative"], id_column="id")
    pos, neg = softmax([0, 0, 1]), softmax([1, 0, 0])
    rows = [(i, constant_struct([0, 0, 1], heads["positive"]), constant_struct([1, 0, 0], heads["negative"]), True,
             float(np.float32(neg[2]) - np.float32(pos[2]))) for i in range(len(TEXTS))]
    rows += [(i, (None, None, None, label(heads[k1]), why), (None, None, None, label(heads[k2]), why), None, None)
             for i, why, k1, k2 in ((len(TEXTS), NULL_INPUT, "positive", "negative"),
                                    (len(TEXTS) + 1, EMPTY_INPUT, "positive", "negative"))]
    expected = spark.createDataFrame(rows, f"id int, champion {RESULT}, challenger {RESULT}, flipped boolean, "
                                           "score_delta double")
    assert_frame_equal(diff, expected, atol=1e-6)
    assert summary(diff, "sentiment") == {
        "task": "sentiment", "rows": 8, "compared": 6, "flipped": 6, "flip_rate": 1.0,
        "no_result": {"champion": 2, "challenger": 2},
        "per_class": {"positive": {"compared": 6, "flipped": 6, "flip_rate": 1.0}}, "per_language": None,
        "confusion": {"labels": ["negative", "positive"], "counts": [[0, 0], [6, 0]]}}


def varied_labels(reference):
    """The random head's labels for TEXTS, from the registered model run directly on the driver."""
    m = load_direct(reference)
    return [CANON[j] for j in forward(m.layers, m.encoder.embed(TEXTS)).argmax(axis=1)]


def test_flips_are_the_rows_the_champion_did_not_call_positive(spark, table, heads):
    champion = varied_labels(heads["varied"])
    assert len(set(champion)) >= 2  # the test means something only with several champion labels
    diff = shadow(table, task="sentiment", champion=heads["varied"], challenger=heads["positive"], id_column="id")
    flips = {r.id: r.flipped for r in diff.select("id", "flipped").collect()}
    assert flips == {**{i: c != "positive" for i, c in enumerate(champion)}, len(TEXTS): None, len(TEXTS) + 1: None}
    counts = {c: champion.count(c) for c in sorted(set(champion))}
    flipped = sum(n for c, n in counts.items() if c != "positive")
    labels = sorted(set(champion) | {"positive"})
    matrix = [[counts.get(a, 0) if b == "positive" else 0 for b in labels] for a in labels]
    assert summary(diff, "sentiment") == {
        "task": "sentiment", "rows": 8, "compared": 6, "flipped": flipped, "flip_rate": flipped / 6,
        "no_result": {"champion": 2, "challenger": 2},
        "per_class": {c: {"compared": n, "flipped": 0 if c == "positive" else n, "flip_rate": 0.0 if c == "positive"
                          else 1.0} for c, n in counts.items()},
        "per_language": None, "confusion": {"labels": labels, "counts": matrix}}


def test_the_same_version_twice_gives_no_flips(spark, table, heads):
    diff = shadow(table, task="sentiment", champion=heads["varied"], challenger=heads["varied"], id_column="id")
    rows = diff.orderBy("id").collect()
    assert [r.flipped for r in rows] == [False] * len(TEXTS) + [None, None]
    assert [r.score_delta for r in rows] == [0.0] * len(TEXTS) + [None, None]
    assert all(r.champion == r.challenger for r in rows)
    found = summary(diff, "sentiment")
    assert (found["flipped"], found["flip_rate"]) == (0, 0.0)
    labels = found["confusion"]["labels"]
    assert found["confusion"]["counts"] == [[varied_labels(heads["varied"]).count(a) if a == b else 0 for b in labels]
                                            for a in labels]


def test_rows_per_language_where_the_models_are_guarded(spark, heads):
    register_catalog_entry("textspark-lid176")
    texts = [(1, "The weather is fine today and the train arrived on time at the station."),
             (2, "I really enjoyed the concert last night, the band was wonderful."),
             (3, "O tempo está ótimo hoje e o comboio chegou a horas à estação."),
             (4, "Das Wetter ist heute schön und der Zug kam pünktlich am Bahnhof an.")]
    df = spark.createDataFrame(texts, "id int, text string")
    diff = shadow(df, task="sentiment", champion=heads["positive"], challenger=heads["negative"], id_column="id",
                  settings={"languages": ["en", "pt"]})
    assert [(r.id, r.language, r.flipped) for r in diff.orderBy("id").collect()] == [
        (1, "en", True), (2, "en", True), (3, "pt", True), (4, "de", None)]
    found = summary(diff, "sentiment")
    assert found["per_language"] == {"en": {"compared": 2, "flipped": 2, "flip_rate": 1.0},
                                     "pt": {"compared": 1, "flipped": 1, "flip_rate": 1.0}}
    assert found["no_result"] == {"champion": 1, "challenger": 1}


@pytest.fixture(scope="module")
def encoders(workdir, tiny_encoder):
    """Two versions of 'shadow-encoder': the tiny encoder's weights (seed 0) and another one's (seed 1)."""
    for seed in (0, 1):
        register_folder("shadow-encoder", task="embed", kind="hf_encoder",
                        weights=build_tiny_encoder(workdir / f"shadow-encoder-{seed}", seed=seed),
                        params={"max_tokens": 64, "pooling": "mean", "normalize": True, "token_budget": 256})
    versions = sorted(int(v.version) for v in client().search_model_versions("name='shadow-encoder'"))
    return [f"models:/shadow-encoder/{v}" for v in versions[:2]]


def test_embedding_drift(spark, encoders):
    texts = [(i, t) for i, t in enumerate(TEXTS * 2)]
    texts = [(i, f"{t} number {i}") for i, t in texts]
    df = spark.createDataFrame(texts, "id int, text string")
    same = summary(shadow(df, task="embed", champion=encoders[0], challenger=encoders[0], id_column="id"), "embed")
    assert same["drift"]["cosine"] == pytest.approx({"mean": 1.0, "p50": 1.0, "p90": 1.0}, abs=1e-6)
    assert same["drift"]["neighbour_overlap_at_10"] == 1.0 and same["drift"]["overlap_rows"] == 12
    assert (same["flip_rate"], same["confusion"], same["per_class"]) == (None, None, None)
    diff = shadow(df, task="embed", champion=encoders[0], challenger=encoders[1], id_column="id")
    rows = diff.orderBy("id").collect()
    assert [r.flipped for r in rows] == [None] * 12
    a = np.array([r.champion.embedding for r in rows], dtype=np.float64)
    b = np.array([r.challenger.embedding for r in rows], dtype=np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert [r.score_delta for r in rows] == pytest.approx(list(1 - cos), abs=1e-6)
    drift = summary(diff, "embed")["drift"]
    assert drift["cosine"] == pytest.approx({"mean": cos.mean(), "p50": np.quantile(cos, 0.5, method="inverted_cdf"),
                                             "p90": np.quantile(cos, 0.9, method="inverted_cdf")}, abs=1e-6)
    assert drift["neighbour_overlap_at_10"] == pytest.approx(neighbour_overlap(a, b))


def test_neighbour_overlap_on_vectors_whose_neighbours_are_known():
    a = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])   # nearest: 0->1, 1->0, 2->1
    b = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 0.9]])   # nearest: 0->2, 1->2, 2->1
    assert neighbour_overlap(a, b, k=1) == pytest.approx(1 / 3)
    assert neighbour_overlap(a, a, k=1) == 1.0 and neighbour_overlap(a[:1], b[:1]) is None


def shadow_conf(tmp_path, input_path, **keys):
    from jobs.config import parse_shadow

    return parse_shadow({"input": {"path": str(input_path), "id_column": "id"}, "task": "sentiment",
                         "output": {"path": str(tmp_path / "shadow")}, **keys})


def test_the_job_writes_the_diff_manifest_plot_and_run(spark, table, heads, tmp_path):
    from jobs import shadow as job

    path = tmp_path / "in.parquet"
    table.toPandas().to_parquet(path)
    conf = shadow_conf(tmp_path, path, champion="models:/shadow-sentiment@champion", challenger=heads["negative"],
                       sample={"rows": 5, "seed": 3})
    found = job.run(conf, spark=spark)  # the champion: shadow-sentiment@champion (always positive)
    out = tmp_path / "shadow"
    written = spark.read.parquet(str(out))
    assert written.count() == 5 and found["rows"] == 5 and found["input_rows"] == 5
    texts = written.where("flipped IS NOT NULL").count()
    assert (found["compared"], found["flipped"], found["flip_rate"]) == (texts, texts, 1.0)
    manifest = json.loads((out / "_textspark_manifest.json").read_text())
    assert (manifest["champion"], manifest["challenger"]) == (label(resolve("models:/shadow-sentiment@champion").uri),
                                                              label(heads["negative"]))
    assert manifest["confusion"] == {"labels": ["negative", "positive"], "counts": [[0, 0], [texts, 0]]}
    assert (out / "_shadow_confusion.png").read_bytes()[:4] == b"\x89PNG"
    run = client().get_run(found["run_id"])
    assert (run.data.tags["textspark.job"], run.info.status, run.data.metrics["flip_rate"]) == \
        ("shadow", "FINISHED", 1.0)
    artifacts = {a.path for a in client().list_artifacts(found["run_id"])}
    assert {"shadow_confusion.png", "shadow_report.json"} <= artifacts
    name, version = manifest["challenger"].split("/")
    tag = json.loads(client().get_model_version(name, version).tags["textspark.shadow"])
    assert (tag["run_id"], tag["flip_rate"]) == (found["run_id"], 1.0)
    ids = sorted(r.id for r in written.collect())
    again = job.run(conf, spark=spark)  # the same seed scores the same rows
    assert sorted(r.id for r in spark.read.parquet(str(out)).collect()) == ids and again["rows"] == 5


def test_config_errors_are_one_line_before_spark(tmp_path, heads, capsys):
    from jobs import shadow as job

    bad, inp = tmp_path / "bad.yml", tmp_path / "in"
    inp.mkdir()
    bad.write_text(f"input: {{path: {inp}, id_column: id}}\ntask: sentiment\noutput: {{path: {tmp_path / 'o'}}}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = subprocess.run([sys.executable, "-m", "jobs.cli", "shadow", "--conf", str(bad)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert (out.returncode, out.stdout, out.stderr) == (
        2, "", f"configuration error: {bad}: challenger: got None; allowed: a model reference (models:/name@alias, "
               "models:/name/N or a name)\n")
    bad.write_text(f"input: {{path: {inp}, id_column: id}}\ntask: sentiment\nchallenger: models:/nope/1\n"
                   f"champion: {heads['positive']}\n"
                   f"output: {{path: {tmp_path / 'o'}}}\n")
    assert job.main(["--conf", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"configuration error: {bad}: challenger: got 'models:/nope/1'; allowed: ") \
        and err.count("\n") == 1
    with pytest.raises(ConfigError, match=r"^settings.label_map: got \{'negative': 'bad'\}; allowed: values among "):
        job.run(shadow_conf(tmp_path, inp, champion=heads["positive"], challenger=heads["negative"],
                            settings={"label_map": {"negative": "bad"}}))
    with pytest.raises(ConfigError, match=r"^settings.labels: got \['a'\]; allowed: keys device, precision, "
                                          "fail_on_error, label_map, languages$"):
        job.run(shadow_conf(tmp_path, inp, champion=heads["positive"], challenger=heads["negative"],
                            settings={"labels": ["a"]}))


@pytest.fixture(scope="module")
def gated(spark, tiny_encoder, tmp_path_factory):
    """'shadow-gate' (classify): v1 always 'business' (@champion), v2 a head fitted on the labeled table (it
    labels every row right: 16 of 24 rows flip), v3 another version; the shadow report of v1 vs v2."""
    from jobs import shadow as job
    from jobs.config import parse_shadow
    from udfs.models.backends.heads import fit_head

    labels = sorted(VOCAB)
    rows = labeled_rows(8)
    folder = tmp_path_factory.mktemp("gate")
    spark.createDataFrame(rows, "id int, text string, label string").toPandas().to_parquet(folder / "labeled.parquet")
    v1, _ = register_head("shadow-gate", task="classify", base_model=tiny_encoder, layers=[
        (np.zeros((32, 3), np.float32), np.array([1.0, 0.0, 0.0], np.float32))], labels=labels, alias="champion")
    enc = load_direct(tiny_encoder)
    y = np.array([labels.index(r[2]) for r in rows])
    fitted = fit_head(enc.embed([r[1] for r in rows]), y, 3, hidden=0, epochs=200, learning_rate=0.05, dropout=0.0)
    v2, _ = register_head("shadow-gate", task="classify", base_model=tiny_encoder, layers=fitted, labels=labels,
                          alias=None)
    v3, _ = register_head("shadow-gate", task="classify", base_model=tiny_encoder, layers=[
        (np.zeros((32, 3), np.float32), np.array([0.0, 1.0, 0.0], np.float32))], labels=labels, alias=None)
    report = job.run(parse_shadow({"input": {"path": str(folder / "labeled.parquet"), "id_column": "id"},
                                   "task": "classify", "champion": "models:/shadow-gate@champion",
                                   "challenger": f"models:/shadow-gate/{v2}", "output": {"path": str(folder / "r")}}),
                     spark=spark)
    assert (report["flipped"], report["compared"]) == (16, 24)
    return {"v1": v1, "v2": v2, "v3": v3, "table": folder / "labeled.parquet", "report": folder / "r"}


def evaluate_conf(gated, tmp_path, candidate, max_flip_rate):
    conf = tmp_path / f"evaluate-{candidate}-{max_flip_rate}.yml"
    conf.write_text(json.dumps({"model": "shadow-gate", "input": {"path": str(gated["table"])},
                                "candidates": [f"models:/shadow-gate/{gated[candidate]}"],
                                "gate": {"shadow_report": str(gated["report"]), "max_flip_rate": max_flip_rate}}))
    return conf


def test_the_evaluate_gate_refuses_above_the_limit_or_for_another_version_and_promotes_below(
        spark, gated, tmp_path, capsys):
    from jobs import evaluate

    champion = lambda: resolve("models:/shadow-gate@champion").version  # noqa: E731
    assert evaluate.main(["--conf", str(evaluate_conf(gated, tmp_path, "v2", 0.05))]) == 0  # "kept": exit 0
    printed = capsys.readouterr().out
    reason = (f"refused by the gate: flip rate 0.6667 (16 of 24 rows) against shadow-gate/{gated['v1']} in the shadow "
              f"report ({gated['report']}) is above max_flip_rate 0.05 (the evaluation alone: v{gated['v2']}")
    assert f"decision: kept -- {reason}" in printed and champion() == gated["v1"]
    record = json.loads(client().get_registered_model("shadow-gate").tags["textspark.last_decision"])
    assert (record["applied"], record["gate"]["passed"], record["reason"].startswith(reason)) == (False, False, True)

    def run(candidate, limit):
        return evaluate.run(evaluate.parse_evaluate_job(json.loads(evaluate_conf(gated, tmp_path, candidate, limit)
                                                                   .read_text())), spark=spark)

    other = run("v3", 0.9)  # v3 does not beat v1 either; the gate's reason is recorded beside the evaluation's
    assert other["gate"]["reason"] == (f"the shadow report ({gated['report']}) is for shadow-gate/{gated['v2']}, "
                                       f"not for shadow-gate/{gated['v3']}")
    assert (other["decision"]["applied"], champion()) == (False, gated["v1"])
    promoted = run("v2", 0.7)
    assert (promoted["gate"]["passed"], promoted["decision"]["applied"], champion()) == (True, True, gated["v2"])
    run_tags = client().get_run(promoted["run_id"]).data.tags
    assert (run_tags["textspark.decision"], run_tags["textspark.gate"]) == ("promoted", "passed")
    assert math.isclose(client().get_run(promoted["run_id"]).data.metrics["gate.flip_rate"], 16 / 24)
