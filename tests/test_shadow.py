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
from udfs.runtime import costs
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
    assert len(set(champion)) >= 2, champion  # the test means something only with several champion labels
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
    from udfs.io.shadowconf import parse_shadow

    return parse_shadow({"input": {"path": str(input_path), "id_column": "id"}, "task": "sentiment",
                         "output": {"path": str(tmp_path / "shadow")}, **keys})


def test_the_job_writes_the_diff_manifest_plot_and_run(spark, table, heads, tmp_path, monkeypatch):
    from jobs import shadow as job

    monkeypatch.setenv(costs.COSTS_ENV, str(tmp_path / "costs.jsonl"))

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
    assert (run.data.tags["textspark.job"], run.info.status, run.data.metrics["shadow.flip_rate"]) == \
        ("shadow", "FINISHED", 1.0)
    assert {a.path for a in client().list_artifacts(found["run_id"])} == {"shadow_confusion.png", "shadow_report.json"}
    # the challenger's page: its logged model holds the shadow metrics, from this run, and both carry the tag
    name, version = manifest["challenger"].split("/")
    mv = client().get_model_version(name, version)
    model_id = mv.source.removeprefix("models:/")
    assert manifest["challenger_model_id"] == model_id and model_id.startswith("m-")
    logged = client().get_logged_model(model_id)
    assert {m.key: m.value for m in logged.metrics} == {
        "shadow.rows": 5.0, "shadow.compared": texts, "shadow.flipped": texts, "shadow.flip_rate": 1.0,
        "shadow.flip_rate.class.positive": 1.0}
    assert {m.run_id for m in logged.metrics} == {found["run_id"]}
    tag = json.loads(mv.tags["textspark.shadow"])
    assert tag == {"run_id": found["run_id"], "report": str(out / "_textspark_manifest.json"),
                   "champion": manifest["champion"], "flip_rate": 1.0, "rows": 5, "model_id": model_id,
                   "metrics": "shadow.*", "artifacts": [f"runs:/{found['run_id']}/shadow_report.json",
                                                        f"runs:/{found['run_id']}/shadow_confusion.png"]}
    assert json.loads(logged.tags["textspark.shadow"]) == tag
    # each version's cost, and the cost store's records of this run
    assert set(manifest["costs"]) == {"champion", "challenger"}
    assert [manifest["costs"][c]["rows"] for c in ("champion", "challenger")] == [5, 5]
    assert [(r["kind"], r.get("column"), r["job"]) for r in costs.records()] == [
        ("task", "champion", "shadow"), ("task", "challenger", "shadow"), ("job", None, "shadow")]
    parts = ("setup", "spark_start", "read", "stage", "commit", "other")
    assert sum(manifest["wall"][k] for k in parts) == pytest.approx(manifest["wall"]["total"], abs=0.05)
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
                                          "fail_on_error, label_map, min_score, languages$"):
        job.run(shadow_conf(tmp_path, inp, champion=heads["positive"], challenger=heads["negative"],
                            settings={"labels": ["a"]}))


@pytest.fixture(scope="module")
def gated(spark, tiny_encoder, tmp_path_factory):
    """'shadow-gate' (classify): v1 always 'business' (@champion), v2 a head fitted on the labeled table (it
    labels every row right: 16 of 24 rows flip), v3 another version; the shadow report of v1 vs v2."""
    from jobs import shadow as job
    from udfs.io.shadowconf import parse_shadow
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


# ---- clusterings (udfs.training.shadow_clusters) ----

def test_matching_on_a_contingency_table_with_known_splits_and_merges():
    from udfs.training.shadow_clusters import match

    # champion 0 (30 rows) goes 20 / 10 to challenger 0 and 1: a split; champion 1 and 2 both go to challenger 2:
    # a merge; champion 3 keeps 9 of its 10 rows in challenger 3 (1 row, 10%, is no split)
    counts = {(0, 0): 20, (0, 1): 10, (1, 2): 8, (2, 2): 6, (3, 3): 9, (3, 1): 1}
    assert match(counts) == {
        "contingency": {"champion": [0, 1, 2, 3], "challenger": [0, 1, 2, 3],
                        "counts": [[20, 10, 0, 0], [0, 0, 8, 0], [0, 0, 6, 0], [0, 1, 0, 9]]},
        "matching": {0: 0, 1: 2, 3: 3}, "splits": [{"champion": 0, "rows": 30, "into": {0: 20, 1: 10}}],
        "merges": [{"challenger": 2, "rows": 14, "from": {1: 8, 2: 6}}], "split_share": 0.25}
    assert match(counts, split_share=0.4)["splits"] == []  # 10 of 30 is below a 40% share
    # ids renamed, nothing else changed: a one-to-one matching, no split, no merge
    assert match({(0, 5): 3, (1, 4): 2, (2, 6): 7}) == {
        "contingency": {"champion": [0, 1, 2], "challenger": [4, 5, 6], "counts": [[0, 3, 0], [2, 0, 0], [0, 0, 7]]},
        "matching": {0: 5, 1: 4, 2: 6}, "splits": [], "merges": [], "split_share": 0.25}
    assert match({})["matching"] == {} and match({})["contingency"]["counts"] == []


# x of each row's vector [x, 0]: groups a (5 rows around 0), b (3 around 10), c (4 around 20), d (2 around 30)
GROUPS = {"a": [0.0, 1.0, -1.0, 2.0, -2.0], "b": [10.0, 11.0, 9.0], "c": [20.0, 21.0, 19.0, 22.0], "d": [30.0, 31.0]}
CHAMPION_X = [5.0, 20.0, 30.0]       # a and b -> 0, c -> 1, d -> 2
CHALLENGER_X = [26.0, 0.0, 10.0]     # a -> 1, b -> 2, c and d -> 0: champion 0 splits, champion 1 and 2 merge
CLUSTER_RESULT = "struct<cluster:int,distance:double,model:string,error:string>"


@pytest.fixture(scope="module")
def vector_clusterings(spark):
    """Two versions of 'shadow-vectors' (euclidean, fitted on the column ``vec``) and the table of GROUPS, plus
    a row without a vector."""
    from udfs.clustering.model import Clustering, register

    refs = []
    for xs, alias in ((CHAMPION_X, "champion"), (CHALLENGER_X, None)):
        version, _ = register(Clustering(centroids=np.array([[x, 0.0] for x in xs]), distance="euclidean",
                                         embedding_column="vec"), name="shadow-vectors", alias=alias)
        refs.append(f"models:/shadow-vectors/{version}")
    rows = [(i, f"row {i}", [x, 0.0]) for i, x in enumerate(x for g in "abcd" for x in GROUPS[g])]
    df = spark.createDataFrame(rows + [(len(rows), "no vector", None)], "id int, text string, vec array<double>")
    return {"champion": refs[0], "challenger": refs[1], "table": df}


def test_clusters_that_split_and_merge_between_two_clusterings(spark, vector_clusterings):
    v = vector_clusterings
    diff = shadow(v["table"], task="cluster", champion=v["champion"], challenger=v["challenger"], id_column="id",
                  settings={"embedding_column": "vec"})

    def nearest(x, centroids):
        j = min(range(len(centroids)), key=lambda k: abs(x - centroids[k]))
        return j, abs(x - centroids[j])

    # the matching pairs champion 0 with challenger 1 (5 rows of a, not b's 3) and champion 1 with challenger 0
    # (c's 4 rows, not d's 2); champion 2 has no partner left: b's and d's rows flip
    partner = {0: 1, 1: 0}
    rows = []
    for i, x in enumerate(x for g in "abcd" for x in GROUPS[g]):
        (c, dc), (h, dh) = nearest(x, CHAMPION_X), nearest(x, CHALLENGER_X)
        rows.append((i, (c, dc, label(v["champion"]), None), (h, dh, label(v["challenger"]), None),
                     partner.get(c) != h, dh - dc))
    rows.append((14, (None, None, label(v["champion"]), "null embedding"),
                 (None, None, label(v["challenger"]), "null embedding"), None, None))
    expected = spark.createDataFrame(rows, f"id int, champion {CLUSTER_RESULT}, challenger {CLUSTER_RESULT}, "
                                           "flipped boolean, score_delta double")
    assert_frame_equal(diff, expected, atol=1e-9)
    assert [r[3] for r in rows[:14]] == [False] * 5 + [True] * 3 + [False] * 4 + [True] * 2
    assert summary(diff, "cluster") == {
        "task": "cluster", "rows": 15, "compared": 14, "flipped": 5, "flip_rate": 5 / 14,
        "no_result": {"champion": 1, "challenger": 1},
        "per_class": {"0": {"compared": 8, "flipped": 3, "flip_rate": 3 / 8},
                      "1": {"compared": 4, "flipped": 0, "flip_rate": 0.0},
                      "2": {"compared": 2, "flipped": 2, "flip_rate": 1.0}},
        "per_language": None, "confusion": None,
        "contingency": {"champion": [0, 1, 2], "challenger": [0, 1, 2], "counts": [[0, 5, 3], [4, 0, 0], [2, 0, 0]]},
        "matching": {"0": 1, "1": 0}, "split_share": 0.25,
        "splits": [{"champion": 0, "rows": 8, "into": {"1": 5, "2": 3}}],
        "merges": [{"challenger": 0, "rows": 6, "from": {"1": 4, "2": 2}}]}
    # a stricter split share: b's 3 of 8 rows (37.5%) no longer make champion 0 a split
    assert summary(diff, "cluster", split_share=0.4)["splits"] == []


def test_the_same_clustering_twice_gives_no_flips_splits_or_merges(spark, vector_clusterings):
    v = vector_clusterings
    diff = shadow(v["table"], task="cluster", champion=v["champion"], challenger=v["champion"], id_column="id",
                  settings={"embedding_column": "vec"})
    assert [(r.id, r.flipped, r.score_delta) for r in diff.orderBy("id").collect()] == \
        [(i, False, 0.0) for i in range(14)] + [(14, None, None)]
    found = summary(diff, "cluster")
    assert (found["flipped"], found["flip_rate"], found["splits"], found["merges"], found["matching"]) == \
        (0, 0.0, [], [], {"0": 0, "1": 1, "2": 2})
    assert found["contingency"]["counts"] == [[8, 0, 0], [0, 4, 0], [0, 0, 2]]


TEXT_ORDER = [3, 5, 0, 1, 4, 2]  # the challenger's centroids: the champion's, in this order


@pytest.fixture(scope="module")
def text_clusterings(tiny_encoder):
    """Two versions of 'shadow-texts' on the tiny encoder (cosine): the champion's centroids are the vectors of
    TEXTS (text i is cluster i), the challenger's the same vectors in TEXT_ORDER (text i is cluster
    TEXT_ORDER.index(i)): the same clustering with other ids."""
    from udfs.clustering.model import Clustering, register

    vectors = load_direct(tiny_encoder).embed(TEXTS).astype(np.float64)
    encoder = resolve(tiny_encoder).uri
    refs = []
    for rows, alias in ((list(range(len(TEXTS))), "champion"), (TEXT_ORDER, None)):
        version, _ = register(Clustering(centroids=vectors[rows], embedding_model=encoder), name="shadow-texts",
                              alias=alias)
        refs.append(f"models:/shadow-texts/{version}")
    return refs


def test_the_cluster_job_matches_renamed_clusters_in_one_embedding_pass(spark, table, text_clusterings, tmp_path,
                                                                        monkeypatch):
    from jobs import shadow as job

    monkeypatch.setenv(costs.COSTS_ENV, str(tmp_path / "costs.jsonl"))
    path = tmp_path / "in.parquet"
    table.toPandas().to_parquet(path)
    champion, challenger = text_clusterings
    found = job.run(job.parse_shadow_job({"input": {"path": str(path), "id_column": "id"}, "task": "cluster",
                                          "champion": champion, "challenger": challenger,
                                          "output": {"path": str(tmp_path / "shadow")}}), spark=spark)
    out = tmp_path / "shadow"
    written = spark.read.parquet(str(out))
    assert written.columns == ["id", "champion", "challenger", "flipped", "score_delta"]
    assert [(r.id, r.champion.cluster, r.challenger.cluster, r.flipped) for r in written.orderBy("id").collect()] == \
        [(i, i, TEXT_ORDER.index(i), False) for i in range(len(TEXTS))] + [(6, None, None, None), (7, None, None, None)]
    manifest = json.loads((out / "_textspark_manifest.json").read_text())
    matching = {str(i): TEXT_ORDER.index(i) for i in range(len(TEXTS))}
    assert {k: manifest[k] for k in ("task", "rows", "compared", "flipped", "flip_rate", "matching", "splits",
                                     "merges", "plot")} == {
        "task": "cluster", "rows": 8, "compared": 6, "flipped": 0, "flip_rate": 0.0, "matching": matching,
        "splits": [], "merges": [], "plot": "_shadow_clusters.png"}
    assert (out / "_shadow_clusters.png").read_bytes()[:4] == b"\x89PNG"
    # both clusterings assign the same vectors: the encoder ran once per row
    assert set(manifest["costs"]) == {"embedding"} and manifest["costs"]["embedding"]["rows"] == 8
    name, version = label(challenger).split("/")
    mv = client().get_model_version(name, version)
    logged = client().get_logged_model(mv.source.removeprefix("models:/"))
    assert {m.key: m.value for m in logged.metrics} == {
        "shadow.rows": 8, "shadow.compared": 6, "shadow.flipped": 0, "shadow.flip_rate": 0.0, "shadow.splits": 0,
        "shadow.merges": 0, **{f"shadow.flip_rate.class.{i}": 0.0 for i in range(len(TEXTS))}}
    assert {a.path for a in client().list_artifacts(found["run_id"])} == {"shadow_clusters.png", "shadow_report.json"}
    tag = json.loads(mv.tags["textspark.shadow"])
    assert (tag["splits"], tag["merges"], tag["artifacts"]) == (0, 0, [f"runs:/{found['run_id']}/shadow_report.json",
                                                                      f"runs:/{found['run_id']}/shadow_clusters.png"])
    run_inputs = {m.model_id for m in client().get_run(found["run_id"]).inputs.model_inputs}
    assert logged.model_id in run_inputs


def test_a_cluster_shadow_needs_a_champion_and_clusterings(tmp_path, text_clusterings, heads):
    from udfs.training.shadow import plan_shadow

    with pytest.raises(ConfigError, match=r"^champion: got None; allowed: a registered clustering"):
        plan_shadow("cluster", None, text_clusterings[1])
    with pytest.raises(ConfigError, match=r"^challenger: got 'models:/shadow-sentiment/1'; allowed: a registered "
                                          r"clustering \(task cluster\)"):
        plan_shadow("cluster", text_clusterings[0], heads["positive"])
    with pytest.raises(ConfigError, match=r"^settings.split_share: got 0.7; allowed: a number in \(0, 0.5\]$"):
        plan_shadow("cluster", text_clusterings[0], text_clusterings[1], {"split_share": 0.7})
    with pytest.raises(ConfigError, match=r"^settings.labels: got \['a'\]; allowed: keys device, precision, "
                                          r"fail_on_error, embedding_column, split_share$"):
        plan_shadow("cluster", text_clusterings[0], text_clusterings[1], {"labels": ["a"]})


# ---- --plan ----

def test_plan_estimates_the_shadow_job_from_the_recorded_costs_without_spark(heads, tmp_path, monkeypatch, capsys):
    import pandas as pd
    import yaml

    from jobs import shadow as job

    champion, challenger = label(heads["positive"]), label(heads["negative"])
    store = tmp_path / "costs.jsonl"
    at = "2026-01-01T00:00:00"
    store.write_text("".join(json.dumps(r) + "\n" for r in [
        {"kind": "task", "at": at, "job": "shadow", "column": "champion", "model": champion, "device": "cpu",
         "cores": 2, "workers": 2, "seconds_per_1000_rows": 10.0, "load_seconds": 3.0, "rows": 500, "mean_chars": 40.0},
        {"kind": "task", "at": at, "job": "shadow", "column": "challenger", "model": challenger, "device": "cpu",
         "cores": 2, "workers": 2, "seconds_per_1000_rows": 2.0, "load_seconds": 0.5, "rows": 500, "mean_chars": 40.0},
        {"kind": "job", "at": at, "job": "shadow", "cores": 2, "workers": 2, "rows": 500, "total_seconds": 14.0,
         "spark_start_seconds": 5.0, "fixed_seconds": 1.0}]))
    monkeypatch.setenv(costs.COSTS_ENV, str(store))

    def refuse(*args, **kwargs):
        raise AssertionError("--plan started a Spark session")

    monkeypatch.setattr(job, "job_spark", refuse)
    monkeypatch.setattr("udfs.platform.get_spark", refuse)
    pd.DataFrame({"id": range(3000), "text": [f"text {i}" for i in range(3000)]}).to_parquet(tmp_path / "in.parquet")
    conf = tmp_path / "shadow.yml"
    conf.write_text(yaml.safe_dump({"spark": {"profile": "local"}, "task": "sentiment", "champion": heads["positive"],
                                    "challenger": heads["negative"], "sample": {"rows": 2000, "seed": 1},
                                    "input": {"path": str(tmp_path / "in.parquet"), "id_column": "id"},
                                    "output": {"path": str(tmp_path / "out")}}))
    assert job.main(["--conf", str(conf), "--plan"]) == 0
    # the sample's 2,000 rows: 10 s per 1,000 rows / 2 workers + 3 s load = 13 s; 2 / 2 + 0.5 = 2.5 s; + 5 + 1 s
    assert capsys.readouterr().out.splitlines() == [
        f"plan for {conf}: 2,000 input rows on 2 parallel worker(s) of 2 core(s) (local[2,4]), cpu; costs recorded "
        f"in {store}",
        f"  champion     {champion}: 2,000 rows x 10.00 s per 1,000 rows / 2 worker(s) + 3.0 s load = 13.0 s",
        f"  challenger   {challenger}: 2,000 rows x 2.00 s per 1,000 rows / 2 worker(s) + 0.5 s load = 2.5 s",
        f"  Spark start 5.0 s + reading, writing and other fixed costs 1.0 s (the shadow run of {at})",
        "  total: 21.5 s"]
    assert not (tmp_path / "out").exists()


def test_the_job_writes_its_diff_into_a_catalog_table(spark, table, heads, tmp_path, monkeypatch, capsys):
    """output.table: the diff rows with textspark_run_id and scored_at, the manifest in the table's property, the
    figure in the run; overwrite replaces, append adds a run's rows; incremental is a one-line config error."""
    from jobs import shadow as job
    from udfs.io.shadowconf import parse_shadow
    from udfs.io.tables import MANIFEST_PROPERTY, RUN_ID

    monkeypatch.setenv(costs.COSTS_ENV, str(tmp_path / "costs.jsonl"))
    schema = f"shadow_{os.getpid()}"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema} LOCATION '{tmp_path / 'warehouse'}'")
    path = tmp_path / "in.parquet"
    table.toPandas().to_parquet(path)

    def conf(mode):
        return parse_shadow({"input": {"path": str(path), "id_column": "id"}, "task": "sentiment",
                             "champion": heads["positive"], "challenger": heads["negative"],
                             "output": {"table": f"{schema}.diff", "mode": mode}}, source="shadow.yml")

    try:
        first = job.run(conf("overwrite"), spark=spark)
        second = job.run(conf("overwrite"), spark=spark)
        third = job.run(conf("append"), spark=spark)
        name = f"{schema}.diff"
        counts = {r[0]: r[1] for r in spark.table(name).groupBy(RUN_ID).count().collect()}
        rows = len(TEXTS) + 2
        assert counts == {second["run_id"]: rows, third["run_id"]: rows}  # the first run's rows were replaced
        assert (first["rows"], third["rows"], third["output_rows"], third["table"]["name"]) == (rows, rows, 2 * rows,
                                                                                              name)
        assert spark.table(name).columns == ["id", "champion", "challenger", "flipped", "score_delta",
                                             "textspark_run_id", "scored_at"]
        mine = spark.table(name).where(f"{RUN_ID} = '{third['run_id']}'")
        assert mine.where("flipped").count() == len(TEXTS) and mine.where("flipped IS NULL").count() == 2
        described = {r[0]: r[1] for r in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()}
        properties = spark.sql(f"SHOW TBLPROPERTIES {name}").collect()
        manifest = json.loads(next(r[1] for r in properties if r[0] == MANIFEST_PROPERTY))
        assert (manifest["job"], manifest["run_id"], manifest["flip_rate"]) == ("shadow", third["run_id"], 1.0)
        assert described["Provider"].lower() == "parquet"
        assert {a.path for a in client().list_artifacts(third["run_id"])} == {"shadow_confusion.png",
                                                                               "shadow_report.json"}
        tag = json.loads(client().get_model_version(*label(heads["negative"]).split("/")).tags["textspark.shadow"])
        assert (tag["run_id"], tag["report"]) == (third["run_id"], f"{name} ({MANIFEST_PROPERTY})")
        job.print_summary(third)
        assert capsys.readouterr().out.strip().splitlines()[-1] == \
            f"manifest: table {name} property {MANIFEST_PROPERTY} (the figure: in the MLflow run)"
        with pytest.raises(ConfigError) as err:
            conf("incremental")
        assert str(err.value) == ("shadow.yml: output.mode: got 'incremental'; allowed: overwrite, append, error, "
                                  "errorifexists, ignore (a shadow job's diff table)")
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS {schema} CASCADE")
