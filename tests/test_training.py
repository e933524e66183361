"""train_classifier: stratified deterministic split, logged run, registered version that the UDFs load,
aliases, full fine-tuning, bad training data, and catalog entries built by training (idempotent)."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from pyspark.testing import assertDataFrameEqual

from tests.inputs import VOCAB, labeled_rows
from udfs import classify
from udfs.errors import ConfigError
from udfs.models.loading import build, local_folder
from udfs.models.registry import client, resolve
from udfs.training.data import prepare
from udfs.training.finetune import epoch_batches, training_rows
from udfs.training.settings import TrainSettings
from udfs.training.train import train

# prepare(labeled_rows(), test_fraction=0.25, seed=3)'s held-out rows: 3 a class, picked by a seeded hash
HELD_OUT = [("the company and the prices bank today number 9", "business"),
            ("the prices and the company shares today number 10", "business"),
            ("the bank and the market profits today number 11", "business"),
            ("the party and the election parliament today number 11", "politics"),
            ("the election and the party vote today number 8", "politics"),
            ("the minister and the parliament election today number 6", "politics"),
            ("the team and the coach league today number 2", "sport"),
            ("the match and the goal team today number 6", "sport"),
            ("the league and the striker match today number 10", "sport")]


@pytest.fixture(scope="module")
def table(spark):
    return spark.createDataFrame(labeled_rows(), "id int, text string, label string")


@pytest.fixture(scope="module")
def trained(table, tiny_encoder):
    s = TrainSettings(name="tiny-topics", base_model=tiny_encoder, test_fraction=0.25, seed=3,
                      head={"hidden": 32, "epochs": 200, "learning_rate": 0.03})  # a margin that holds on any machine
    return train(table, s), s


def test_split_is_stratified_deterministic_and_disjoint(spark, table, tiny_encoder):
    s = TrainSettings(name="x", base_model=tiny_encoder, test_fraction=0.25, seed=3)
    a, b = prepare(table, s), prepare(table, s)
    assert a.class_counts == b.class_counts == {"train": {k: 9 for k in VOCAB}, "test": {k: 3 for k in VOCAB}}
    assertDataFrameEqual(a.df, b.df)
    assertDataFrameEqual(a.df.filter("split = 'test'").select("text", "label"),
                         spark.createDataFrame(HELD_OUT, "text string, label string"))
    assert a.df.count() == a.df.select("text").distinct().count() == 36  # each row once, in one split
    other = prepare(table, TrainSettings(name="x", base_model=tiny_encoder, test_fraction=0.25, seed=4))
    assert sorted(tuple(r) for r in other.df.collect()) != sorted(tuple(r) for r in a.df.collect())  # seed picks
    assert a.labels == sorted(VOCAB)


def test_max_rows_takes_a_stratified_subsample(table, tiny_encoder):
    p = prepare(table, TrainSettings(name="x", base_model=tiny_encoder, max_rows=18, test_fraction=0.34))
    assert p.class_counts == {"train": {k: 4 for k in VOCAB}, "test": {k: 2 for k in VOCAB}}


def test_training_registers_a_version_the_udf_loads_with_the_logged_metrics(spark, trained):
    result, _ = trained
    mv = resolve(result.uri)
    assert (mv.task, mv.kind, mv.params["labels"]) == ("classify", "embedding_head", sorted(VOCAB))
    assert result.aliases == {"candidate": result.version, "champion": result.version}  # first version
    counts = {"rows_in": 36, "null_labels": 0, "null_texts": 0, "duplicates": 0, "train": 27, "test": 9,
              "embed_failed": 0}
    assert result.counts == counts
    # the words give the class away: every held-out row right (a head that learned nothing scores ~0.33)
    assert result.metrics == {"accuracy": 1.0, "macro_f1": 1.0, "weighted_f1": 1.0}
    assert result.report == {k: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3} for k in sorted(VOCAB)}
    assert result.confusion == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics == {**{f"test.{k}": 1.0 for k in ("accuracy", "macro_f1", "weighted_f1")},
                                **{f"test.{label}.{k}": 1.0 for label in VOCAB for k in ("precision", "recall", "f1")},
                                **{f"rows.{k}": v for k, v in counts.items()}}
    assert run.data.params["method"] == "head" and run.data.params["labels"] == "business,politics,sport"
    artifacts = {a.path for a in client().list_artifacts(result.run_id)}
    assert {"confusion_matrix.png", "confusion_matrix.json", "classification_report.json"} <= artifacts
    assert client().get_model_version("tiny-topics", result.version).run_id == result.run_id  # model logged in the run
    assert mlflow.artifacts.load_dict(f"runs:/{result.run_id}/confusion_matrix.json") == \
        {"labels": ["business", "politics", "sport"], "matrix": [[3, 0, 0], [0, 3, 0], [0, 0, 3]]}
    # the classify UDF serves it: the held-out rows' labels, from this version
    held_out = spark.createDataFrame([(text, label, f"tiny-topics/{result.version}") for text, label in HELD_OUT],
                                     "text string, label string, model string")
    served = held_out.select("text", classify("text", model=result.uri).alias("c")) \
        .select("text", "c.label", "c.model")
    assertDataFrameEqual(served, held_out)


def test_pyfunc_loads_the_version_alone(trained):
    """The pyfunc's predict gives a DataFrame label, score, scores (what spark_udf's struct result reads)."""
    result, _ = trained
    model = mlflow.pyfunc.load_model(result.uri)
    texts = ["the match and the goal team today", "shares profits market"]
    out = model.predict(texts)
    direct = build(local_folder(resolve(result.uri)), device="cpu", precision="fp32")
    expected = direct.predict(texts)
    assert list(out.columns) == ["label", "score", "scores"]
    assert out["label"].tolist() == [r["label"] for r in expected]
    # float32 scores from batches padded differently: equal to float32 rounding, so an absolute bound too
    assert out["scores"][0] == pytest.approx(expected[0]["scores"], abs=1e-6)
    assert sum(out["scores"][0].values()) == pytest.approx(1.0)
    # bad rows: no label where the Spark UDF gives a null result; control characters cleaned as the UDF cleans them
    odd = model.predict(pd.Series([None, "", "   ", "the match\x00and the goal\x85team today", "shares profits market"]))
    assert odd["label"].tolist() == [None, None, None] + [r["label"] for r in expected]
    assert odd["scores"][3] == pytest.approx(direct.predict([texts[0]])[0]["scores"], abs=1e-6)


def test_retraining_moves_candidate_not_champion(table, trained, tiny_encoder):
    first, s = trained
    again = TrainSettings(name="tiny-topics", base_model=tiny_encoder, test_fraction=0.25, seed=3,
                          head={"hidden": 0, "epochs": 30, "learning_rate": 0.05})
    second = train(table, again)
    assert second.created and int(second.version) > int(first.version)
    assert second.aliases["candidate"] == second.version
    assert second.aliases["champion"] == first.version


def test_full_finetuning_one_epoch_registers_an_hf_classifier(spark, table, tiny_encoder):
    s = TrainSettings(name="tiny-finetuned", method="finetune", base_model=tiny_encoder, test_fraction=0.25,
                      finetune={"epochs": 1, "batch_size": 8, "max_length": 32, "learning_rate": 1e-3})
    result = train(table, s)
    mv = resolve(result.uri)
    assert (mv.kind, mv.params["labels"], mv.params["max_tokens"]) == ("hf_classifier", sorted(VOCAB), 32)
    weights = local_folder(mv) / "weights"
    assert (weights / "config.json").is_file() and (weights / "tokenizer.json").is_file()
    out = spark.createDataFrame([("the match and the goal",), (None,)], "text string") \
        .select(classify("text", model=result.uri).alias("c")).collect()
    assert out[0].c.label in VOCAB and sum(out[0].c.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert (out[1].c.label, out[1].c.error) == (None, "null input")
    assert mlflow.get_run(result.run_id).data.params["finetune.epochs"] == "1"


def test_finetuning_rows_repeat_a_domain_and_balance_its_classes_within_it():
    rows = pd.DataFrame({"text": ["t1", "t2", "t3", "r1", "r2"], "label": ["pos", "pos", "neg", "pos", "neg"],
                         "domain": ["tweets", "tweets", "tweets", "reviews", "reviews"]})
    texts, y, w = training_rows(rows, {"neg": 0, "pos": 1}, {"reviews": 2}, "balanced")
    assert texts == ["r1", "r2", "r1", "r2", "t1", "t2", "t3"]  # domains in name order, reviews twice
    assert y.tolist() == [1, 0, 1, 0, 1, 1, 0]
    # reviews: 4 rows, 2 a class -> 1 each; tweets: 3 rows, pos 2 -> 3/(2*2), neg 1 -> 3/(2*1)
    assert w.tolist() == [1.0, 1.0, 1.0, 1.0, 0.75, 0.75, 1.5]
    texts, y, w = training_rows(rows, {"neg": 0, "pos": 1}, {}, None)
    assert (texts, w.tolist()) == (["r1", "r2", "t1", "t2", "t3"], [1.0] * 5)
    with pytest.raises(ConfigError, match=r"finetune.domain_repeats: got \{'drugs': 5\}; allowed: domains of the "
                                          r"training table: reviews, tweets"):
        training_rows(rows, {"neg": 0, "pos": 1}, {"drugs": 5}, None)
    with pytest.raises(ConfigError, match=r"allowed: an empty mapping \(no domain_column\)"):
        training_rows(rows.drop(columns="domain"), {"neg": 0, "pos": 1}, {"reviews": 2}, None)


def test_finetuning_batches_group_rows_of_similar_length():
    import torch

    lengths = np.array([7, 0, 5, 2, 9, 1, 4, 8, 3, 6, 11, 10])  # row i's token count; one window (50 batches)
    grouped = epoch_batches(lengths, 4, torch.Generator().manual_seed(0), True)
    # whatever the shuffle: the 4 shortest rows together, then the next 4, ... (the batches' order is shuffled)
    assert sorted(sorted(lengths[b].tolist()) for b in grouped) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert grouped == epoch_batches(lengths, 4, torch.Generator().manual_seed(0), True)  # the seed decides
    plain = epoch_batches(lengths, 5, torch.Generator().manual_seed(0), False)
    assert [len(b) for b in plain] == [5, 5, 2] and sorted(sum(plain, [])) == list(range(12))
    by5 = epoch_batches(lengths, 5, torch.Generator().manual_seed(1), True)
    assert sorted(sorted(lengths[b].tolist()) for b in by5) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]


def test_finetuning_with_domains_serves_its_own_length_and_rejects_an_unknown_domain(spark, tiny_encoder):
    rows = [(i, text, label, "news" if i % 2 else "blogs") for i, text, label in labeled_rows(8)]
    df = spark.createDataFrame(rows, "id int, text string, label string, source string")
    tune = {"epochs": 1, "batch_size": 8, "max_length": 16, "predict_max_length": 24, "learning_rate": 1e-3,
            "warmup": 0.1, "class_weight": "balanced", "domain_repeats": {"news": 2}}
    result = train(df, TrainSettings(name="tiny-finetuned-domains", method="finetune", base_model=tiny_encoder,
                                     domain_column="source", test_fraction=0.25, finetune=tune))
    served = resolve(result.uri).params
    assert (served["max_tokens"], served["precision"]) == (24, "fp32")
    assert mlflow.get_run(result.run_id).data.params["finetune.domain_repeats"] == "{'news': 2}"
    with pytest.raises(ConfigError, match=r"finetune.domain_repeats: got \{'reviews': 2\}; allowed: domains of the "
                                          r"training table: blogs, news"):
        train(df, TrainSettings(name="never-registered", method="finetune", base_model=tiny_encoder,
                                domain_column="source", finetune={**tune, "domain_repeats": {"reviews": 2}}))
    assert "never-registered" not in {m.name for m in client().search_registered_models()}
    with pytest.raises(ConfigError, match=r"finetune.warmup: got 1.5; allowed: a number >= 0 and < 1"):
        TrainSettings(name="x", finetune={"warmup": 1.5})
    with pytest.raises(ConfigError, match=r"finetune.precision: got 'fp16'; allowed: auto, bf16, fp32"):
        TrainSettings(name="x", finetune={"precision": "fp16"})


def test_finetuning_with_frozen_layers_trains_only_the_layers_above(spark, tiny_encoder):
    from transformers import AutoModel

    from udfs.models.registry import register_folder

    # a base served in precision auto: the fine-tuned model is served as the base is
    register_folder("tiny-encoder-auto", task="embed", kind="hf_encoder",
                    weights=local_folder(resolve(tiny_encoder)) / "weights", params={"max_tokens": 64, "precision": "auto"})
    df = spark.createDataFrame(labeled_rows(8), "id int, text string, label string")
    tune = {"epochs": 1, "batch_size": 8, "max_length": 16, "learning_rate": 1e-2, "frozen_layers": 1}
    result = train(df, TrainSettings(name="tiny-finetuned-frozen", method="finetune",
                                     base_model="models:/tiny-encoder-auto@champion", test_fraction=0.25, finetune=tune))
    assert resolve(result.uri).params == {"labels": ["business", "politics", "sport"], "max_tokens": 16,
                                          "base_model": "tiny-encoder-auto/1", "precision": "auto"}
    before = AutoModel.from_pretrained(str(local_folder(resolve(tiny_encoder)) / "weights")).state_dict()
    after = AutoModel.from_pretrained(str(local_folder(resolve(result.uri)) / "weights")).state_dict()
    assert before.keys() == after.keys()
    changed = sorted({name.split(".")[0] + ("." + name.split(".")[2] if name.startswith("encoder.") else "")
                      for name in before if not np.array_equal(before[name].numpy(), after[name].numpy())})
    assert changed == ["encoder.1", "pooler"]  # the tiny encoder has 2 layers: embeddings and layer 0 frozen
    with pytest.raises(ConfigError, match=r"finetune.frozen_layers: got 3; allowed: 0 to 2 \(the base model's "
                                          r"layers\)"):
        train(df, TrainSettings(name="never-registered", method="finetune", base_model=tiny_encoder,
                                finetune={**tune, "frozen_layers": 3}))
    assert "never-registered" not in {m.name for m in client().search_registered_models()}


@pytest.mark.parametrize("rows, settings, message", [
    ([], {}, "training table is empty"),
    ([(1, "a", "sport"), (2, "b", "sport"), (3, "c", "sport")], {}, r"only one class \('sport', 3 rows\)"),
    ([(1, "a", "sport"), (2, "b", "sport"), (3, "c", "politics")], {}, r"classes \['politics'\] have fewer than 2"),
    ([(1, "a", "sport"), (2, "b", None), (3, "c", "politics")], {"null_labels": "error"},
     r"label: 1 of 3 rows have a null or blank label \(null_labels: error\)"),
    ([(1, None, None), (2, "  ", "x")], {}, "no row with both a text and a label"),
])
def test_bad_training_data_fails_with_a_clear_error(spark, tiny_encoder, rows, settings, message):
    df = spark.createDataFrame(rows, "id int, text string, label string")
    with pytest.raises(ValueError, match=message):
        train(df, TrainSettings(name="never-registered", base_model=tiny_encoder, **settings))
    assert "never-registered" not in {m.name for m in client().search_registered_models()}


def test_null_labels_are_dropped_and_counted_by_default(spark, tiny_encoder):
    rows = labeled_rows(4) + [(100, "a text without label", None), (101, None, "sport"), (102, "dup", "sport"),
                              (103, "dup", "sport")]
    p = prepare(spark.createDataFrame(rows, "id int, text string, label string"),
                TrainSettings(name="x", base_model=tiny_encoder, test_fraction=0.25))
    assert p.counts == {"rows_in": 16, "null_labels": 1, "null_texts": 1, "duplicates": 1, "train": 10, "test": 3}


def test_split_column_and_labels_unseen_in_training(spark, tiny_encoder):
    rows = [(1, "a", "sport", "train"), (2, "b", "politics", "train"), (3, "c", "sport", "test"),
            (4, "d", "business", "test")]
    df = spark.createDataFrame(rows, "id int, text string, label string, split string")
    s = TrainSettings(name="x", base_model=tiny_encoder, split_column="split")
    with pytest.raises(ValueError, match=r"test-split labels \['business'\] never occur in the training split"):
        prepare(df, s)
    bad = spark.createDataFrame([(1, "a", "sport", "training"), (2, "b", "politics", "test")],
                                "id int, text string, label string, split string")
    with pytest.raises(ValueError, match=r"split: values \['training'\] are neither train nor one of test"):
        prepare(bad, s)
    ok = prepare(spark.createDataFrame(rows[:3] + [(4, "d", "politics", "validation")],
                                       "id int, text string, label string, split string"), s)
    assert ok.class_counts == {"train": {"sport": 1, "politics": 1}, "test": {"sport": 1, "politics": 1}}


def test_settings_fail_early_naming_the_key(spark, table, tiny_encoder):
    with pytest.raises(ConfigError, match=r"method: got 'lora'; allowed: head, finetune"):
        TrainSettings(name="x", method="lora")
    with pytest.raises(ConfigError, match=r"test_fraction: got 1.5"):
        TrainSettings(name="x", test_fraction=1.5)
    with pytest.raises(ConfigError, match=r"head.layers: got 3; allowed: keys hidden"):
        TrainSettings(name="x", head={"layers": 3})
    with pytest.raises(ConfigError, match=r"label_column: got 'sentiment'; allowed: id, text, label"):
        train(table, TrainSettings(name="x", base_model=tiny_encoder, label_column="sentiment"))
    with pytest.raises(ConfigError, match=r"label_map: .*\['business', 'politics', 'sport'\] map to no canonical"):
        train(table, TrainSettings(name="x", task="sentiment", base_model=tiny_encoder))


def test_job_config_and_catalog_entry_built_by_training(spark, tiny_encoder, tmp_path, monkeypatch, capsys):
    """A catalog entry with source {train: conf}: trained and made champion when absent, untouched after."""
    from jobs.register_models import register_entry
    from jobs.train_classifier import parse_train_job
    from udfs.models.catalog import load_catalog, parse_catalog

    path = tmp_path / "labeled.parquet"
    spark.createDataFrame(labeled_rows(), "id int, text string, label string").toPandas().to_parquet(path)
    conf = tmp_path / "train.yml"
    conf.write_text(yaml.safe_dump({"input": {"path": str(path)}, "label_column": "label", "base_model": tiny_encoder,
                                    "head": {"hidden": 0, "epochs": 20}, "register": {"name": "ignored"}}))
    catalog = parse_catalog({"models": {"tiny-built": {"task": "classify", "kind": "embedding_head",
                                                       "source": {"train": str(conf)}}}})
    monkeypatch.setattr("udfs.platform.get_spark", lambda *a, **k: spark)
    version, created = register_entry(catalog["tiny-built"])
    assert created and resolve("models:/tiny-built@champion").version == version
    assert register_entry(catalog["tiny-built"]) == (version, False)
    assert len(client().search_model_versions("name='tiny-built'")) == 1
    # the catalog changes the recipe to fine-tuning: @champion, a head, is of another kind and is retrained once
    tuned = tmp_path / "finetune.yml"
    tuned.write_text(yaml.safe_dump({"input": {"path": str(path)}, "label_column": "label", "base_model": tiny_encoder,
                                     "method": "finetune", "finetune": {"epochs": 1, "batch_size": 8,
                                                                        "max_length": 32},
                                     "register": {"name": "ignored"}}))
    (tmp_path / "models.yml").write_text(yaml.safe_dump(
        {"models": {"tiny-built": {"task": "classify", "kind": "hf_classifier", "source": {"train": str(tuned)}},
                    "tiny-mismatch": {"task": "classify", "kind": "embedding_head", "source": {"train": str(tuned)}}}}))
    changed = load_catalog(tmp_path / "models.yml")
    capsys.readouterr()
    new_version, created = register_entry(changed["tiny-built"])
    assert capsys.readouterr().out.splitlines()[0] == (
        f"tiny-built: training from {tuned} (@champion is version {version}, of kind embedding_head; "
        "the catalog's is hf_classifier)")
    assert created and int(new_version) == int(version) + 1
    champion = resolve("models:/tiny-built@champion")
    assert (champion.version, champion.kind) == (new_version, "hf_classifier")
    assert register_entry(changed["tiny-built"]) == (new_version, False)
    with pytest.raises(ConfigError) as bad_kind:  # before any model loads or data is read
        register_entry(changed["tiny-mismatch"])
    assert str(bad_kind.value) == (f"{tmp_path / 'models.yml'}: models.tiny-mismatch.kind: got 'embedding_head'; "
                                   f"allowed: hf_classifier (what {tuned} trains: method finetune)")
    assert client().search_registered_models(filter_string="name='tiny-mismatch'") == []
    from jobs import train_classifier

    bad = tmp_path / "bad.yml"  # wrong only in a way seen once the table is read: the file is still named
    bad.write_text(yaml.safe_dump({"input": {"path": str(path)}, "label_column": "sentiment",
                                   "base_model": tiny_encoder, "register": {"name": "never-registered"}}))
    monkeypatch.setattr("jobs.train_classifier.get_spark", lambda *a, **k: spark)
    capsys.readouterr()  # what registering logged so far
    assert train_classifier.main(["--conf", str(bad)]) == 2
    assert capsys.readouterr().err == (f"configuration error: {bad}: label_column: got 'sentiment'; "
                                       "allowed: id, text, label\n")
    with pytest.raises(ConfigError, match=r"input.dataset: got 'imdb'; allowed: tweets, bbc_news, drug_reviews"):
        parse_train_job({"input": {"dataset": "imdb"}, "register": {"name": "x"}})
    with pytest.raises(ConfigError, match=r"register.name: got None"):
        parse_train_job({"input": {"dataset": "tweets"}})



def _two_domains(spark):
    """Domain a: labeled_rows() (12 a class); domain b: 4 a class, other texts."""
    rows = [(i, text, label, "a") for i, text, label in labeled_rows()]
    rows += [(100 + i, f"b {text}", label, "b") for i, text, label in labeled_rows(per_class=4)]
    return spark.createDataFrame(rows, "id int, text string, label string, domain string")


def test_domains_are_subsampled_and_split_each_on_its_own(spark, table, tiny_encoder):
    s = TrainSettings(name="x", base_model=tiny_encoder, max_rows=18, test_fraction=0.34, domain_column="domain")
    p = prepare(_two_domains(spark), s)
    # a: 36 rows > max_rows -> 6 a class, 2 held out; b: 12 rows <= max_rows -> all 4 a class, 1 held out
    assert p.domain_counts == {"a": {"train": {k: 4 for k in VOCAB}, "test": {k: 2 for k in VOCAB}},
                               "b": {"train": {k: 3 for k in VOCAB}, "test": {k: 1 for k in VOCAB}}}
    assert p.class_counts == {"train": {k: 7 for k in VOCAB}, "test": {k: 3 for k in VOCAB}}
    alone = prepare(table, TrainSettings(name="x", base_model=tiny_encoder, max_rows=18, test_fraction=0.34))
    assert alone.domain_counts is None
    assertDataFrameEqual(p.df.filter("domain = 'a'").drop("domain"), alone.df)  # as if it were the only one


def test_domain_weights_give_each_domain_and_its_classes_equal_weight():
    from udfs.models.backends.heads import domain_weights

    y = np.array([0] * 6 + [1] * 2 + [0, 1, 1, 1])
    domains = np.array(["a"] * 8 + ["b"] * 4)
    w = domain_weights(y, domains)
    assert w.mean() == pytest.approx(1.0)
    share = {(d, c): w[(domains == d) & (y == c)].sum() for d in "ab" for c in (0, 1)}
    assert share == pytest.approx({key: len(y) / 4 for key in share})  # 2 domains x 2 classes, a quarter each
    plain = domain_weights(y, domains, class_weight=None)
    assert plain[domains == "a"].sum() == pytest.approx(plain[domains == "b"].sum()) == pytest.approx(6.0)
    assert len(set(plain[domains == "a"].tolist())) == 1  # classes keep their frequencies within a domain


def test_domain_balanced_head_trains_and_registers(spark, tiny_encoder):
    s = TrainSettings(name="tiny-domains", base_model=tiny_encoder, test_fraction=0.25, seed=3,
                      domain_column="domain", balance_domains=True,
                      head={"hidden": 32, "epochs": 200, "learning_rate": 0.03})
    result = train(_two_domains(spark), s)
    assert result.counts["train"] + result.counts["test"] == 48
    assert result.metrics["accuracy"] >= 0.75  # the words give the class away in both domains
    assert mlflow.get_run(result.run_id).data.params["balance_domains"] == "True"
    assert "domain_counts.json" in {a.path for a in client().list_artifacts(result.run_id)}


def test_datasets_input_reads_each_dataset_as_a_domain(spark, monkeypatch):
    from jobs.train_classifier import parse_train_job, read_table

    frames = {"tweets": pd.DataFrame({"id": [1, 2], "text": ["good", "bad"], "label": ["positive", "negative"],
                                      "confidence": [1.0, 1.0]}),
              "drug_reviews": pd.DataFrame({"id": [1], "text": ["it helped"], "label": ["positive"]})}
    monkeypatch.setattr("udfs.io.datasets.tweets", lambda: frames["tweets"])
    monkeypatch.setattr("udfs.io.datasets.drug_reviews", lambda split="test": frames["drug_reviews"])
    sources = [{"dataset": "tweets"}, {"dataset": "drug_reviews", "split": "train"}]
    job = parse_train_job({"input": {"datasets": sources}, "domain_column": "domain", "register": {"name": "x"}})
    got = read_table(spark, job)
    assertDataFrameEqual(got, spark.createDataFrame(
        [("1", "good", "positive", "tweets"), ("2", "bad", "negative", "tweets"),
         ("1", "it helped", "positive", "drug_reviews:train")],
        "id string, text string, label string, domain string"))
    with pytest.raises(ConfigError, match=r"input.datasets\[1\].dataset: got 'imdb'; allowed: tweets,"):
        parse_train_job({"input": {"datasets": [sources[0], {"dataset": "imdb"}]}, "register": {"name": "x"}})


def test_register_languages_are_validated_and_kept_sorted():
    """``register.languages`` in a training config: recorded on the new version for the language guard."""
    assert TrainSettings(name="x", languages=["pt", "en", "pt"]).languages == ("en", "pt")
    assert TrainSettings(name="x", languages="any").languages == ("any",)
    assert TrainSettings(name="x").languages is None
    with pytest.raises(ConfigError) as err:
        TrainSettings(name="x", languages=["EN"])
    assert (err.value.key, err.value.value) == ("languages", ["EN"]) and "ISO 639" in err.value.allowed
