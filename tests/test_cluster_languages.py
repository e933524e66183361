"""Clustering a table of several languages: the embeddings centered per language (means stored with the
registered clustering and applied again by mode: assign and predict), the stop words of every language the
table holds left out of the keywords and the TF-IDF features, center_languages validated."""
import numpy as np
import pandas as pd
import pytest

from jobs.cluster import parse_cluster_job, run
from tests.helpers import register_catalog_entry
from udfs.clustering import languages as langs
from udfs.clustering.describe import EXTRA_STOP_WORDS, keywords, stop_words_for
from udfs.clustering.languages import LanguageCentering, decide, stop_word_languages, stop_words
from udfs.clustering.lexical import LexicalProjection
from udfs.errors import ConfigError
from udfs.text import NULL_INPUT

EN = ["The striker scored a late goal to win the cup final.", "The home side lost the match after a red card.",
      "The coach named a young squad for the summer tour.", "Fans cheered as the captain lifted the trophy.",
      "The keeper saved a penalty in the last minute.", "Shares in the bank fell after profits dropped sharply.",
      "The central bank raised interest rates again this month.", "Oil prices climbed as supply fell short of demand.",
      "The retailer will cut jobs after weak holiday sales.", "Investors sold government bonds on fears of inflation."]
ES = ["El delantero marcó un gol en el último minuto de la final.",
      "El equipo local perdió el partido tras una tarjeta roja.",
      "El entrenador convocó a una plantilla joven para la gira.",
      "Los aficionados celebraron cuando el capitán levantó la copa.",
      "El portero detuvo un penalti en el último minuto del partido.",
      "Las acciones del banco cayeron tras la caída de los beneficios.",
      "El banco central volvió a subir los tipos de interés este mes.",
      "El precio del petróleo subió porque la oferta no cubre la demanda.",
      "La cadena de tiendas recortará empleos tras unas ventas flojas.",
      "Los inversores vendieron bonos del Estado por miedo a la inflación."]
DE = "Die Mannschaft hat das Spiel in der letzten Minute gewonnen."  # one row: no mean of its own
IT = "La squadra ha vinto la partita all'ultimo minuto."             # not in the fit at all


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ---- stop words, decisions, the centering arithmetic (no Spark) ----------------------------------

def test_stop_words_are_the_stopwordsiso_lists_cut_into_tokens():
    import stopwordsiso

    got = stop_words(["fr", "es", "de", "en", "xx"])  # en: the project's own lists; xx: no list
    assert set(got) >= {"el", "los", "por", "und", "der", "wegen", "les", "avec", "aujourd", "hui"}
    assert "aujourd'hui" not in got and "por qué" not in got  # cut into what a tokenizer sees
    assert not {"world", "research", "information"} & set(got)  # in stopwordsiso's English list only
    want = {t for code in ("de", "es", "fr") for w in stopwordsiso.stopwords(code)
            for t in langs._TOKEN.findall(w.lower())}
    assert got == tuple(sorted(want)) and stop_words(["en"]) == () == stop_words([])
    assert stop_words_for(["es"]) == tuple(sorted(set(EXTRA_STOP_WORDS) | set(stop_words(["es"]))))


def test_stop_word_languages_need_a_few_rows():
    assert stop_word_languages({"en": 500, "es": 3, "de": 2, None: 9, "unidentified": 4}) == ["en", "es"]
    # 10,000 identified rows: a language needs 0.1% of them, 10 rows
    assert stop_word_languages({"en": 9_981, "fr": 10, "it": 9}) == ["en", "fr"]
    assert stop_word_languages({}) == []


def test_centering_decision_auto_true_false():
    four = {"de": 100, "en": 100, "es": 100, "fr": 100}
    assert decide("auto", four) == (True, "language centering on (auto: 4 languages with >= 20 fitted rows each)")
    assert decide("auto", {"en": 300, "es": 19, "unidentified": 40}) == (False, (
        "language centering off (auto: needs 2+ languages with >= 20 fitted rows each; found en 300, "
        "unidentified 40, es 19)"))
    assert decide(True, {"en": 5}) == (True, "language centering on (center_languages: true)")
    assert decide(False, four) == (False, "language centering off (center_languages: false)")
    assert decide("auto", {}, identified=False) == (False, (
        "language centering off: the rows' languages were not identified (no language model)"))


def test_centering_subtracts_the_language_mean_and_falls_back_to_the_mean_of_all_rows(tmp_path):
    means = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    c = LanguageCentering(languages=["de", "en"], means=means, rows={"de": 30, "en": 25}, total=60,
                          language_model="models:/lid/1")
    x = np.array([[3.0, 0.0, 4.0], [3.0, 0.0, 4.0], [3.0, 0.0, 4.0], [3.0, 0.0, 4.0], [2.0, 0.0, 0.0]])
    got = c.center(x, ["de", "en", "it", None, "de"])  # it (not in the fit) and None: the mean of all rows
    u = np.array([0.6, 0.0, 0.8])
    np.testing.assert_allclose(got, [_unit(u - means[0]), _unit(u - means[1]), _unit(u - means[2]),
                                     _unit(u - means[2]), [0.0, 0.0, 0.0]])  # last: nothing left
    c.save(tmp_path)
    back = LanguageCentering.load(tmp_path)
    assert (back.languages, back.rows, back.total, back.language_model) == (["de", "en"], {"de": 30, "en": 25}, 60,
                                                                           "models:/lid/1")
    np.testing.assert_array_equal(back.means, means)
    assert LanguageCentering.load(tmp_path / "missing") is None
    assert c.describe() == "de 30, en 25; every other row: the mean of all 60 fitted rows"


def test_lexical_features_leave_out_the_stop_words_given():
    docs = (EN + ES) * 2  # every term in 2+ texts, none in more than half of them
    english_only = LexicalProjection.fit(docs, 2, seed=0)
    multilingual = LexicalProjection.fit(docs, 2, seed=0, stop_words=stop_words(["es"]))
    assert multilingual.vocabulary == sorted(set(english_only.vocabulary) - set(stop_words(["es"])))
    # Spanish function words; 'final' and 'estado' are on stopwordsiso's Spanish list too (and 'final' goes
    # from the English texts as well: the price of a shared list)
    assert set(english_only.vocabulary) - set(multilingual.vocabulary) == {
        "cuando", "del", "el", "en", "estado", "este", "final", "la", "las", "los", "para", "por", "porque", "tras",
        "una", "unas", "último"}


# ---- keywords of a mixed-language table (Spark) ---------------------------------------------------

MIXED = [(0, "El equipo ganó el partido con un gol en el último minuto."),
         (0, "Die Mannschaft hat das Spiel mit einem Tor in der letzten Minute gewonnen."),
         (0, "L'équipe a gagné le match avec un but à la dernière minute."),
         (1, "El banco subió los tipos de interés por la inflación."),
         (1, "Die Bank hat die Zinsen wegen der Inflation erhöht."),
         (1, "La banque a relevé les taux d'intérêt à cause de l'inflation.")]


def test_keywords_leave_out_the_stop_words_of_every_language(spark):
    df = spark.createDataFrame(MIXED, "cluster int, _text string")
    # English stop words only: der, die, hat are in a text of each cluster (2 texts: not one-off terms)
    # and come right after minute / inflation (2 texts each, one cluster)
    assert keywords(df, 3) == {0: ["minute", "der", "die"], 1: ["inflation", "der", "die"]}
    # es/de/fr stop words too: what is left are the topics' words (one-off terms after minute / inflation, A-Z;
    # 'but' is an English stop word)
    assert keywords(df, 20, stop_words=stop_words_for(["de", "es", "fr"])) == {
        0: ["minute", "dernière", "equipo", "gagné", "ganó", "gewonnen", "gol", "letzten", "mannschaft", "match",
            "minuto", "partido", "spiel", "tor", "équipe"],
        1: ["inflation", "banco", "bank", "banque", "cause", "erhöht", "inflación", "interés", "intérêt",
            "relevé", "subió", "taux", "tipos", "zinsen"]}


# ---- fit, register, assign, predict: the same centering everywhere --------------------------------

def _job(path, out, **keys):
    return {"input": {"path": str(path), "id_column": "id", "text_column": "text"}, "output": {"path": str(out)},
            **keys}


@pytest.fixture(scope="module")
def lid(mlflow_registry):
    from udfs.models.registry import resolve

    return resolve(register_catalog_entry("textspark-lid176"), task="language").uri


@pytest.fixture(scope="module")
def fitted_mixed(spark, tiny_encoder, lid, workdir):
    rows = ([{"id": f"en-{i}-{c}", "text": t} for i, t in enumerate(EN) for c in range(2)]
            + [{"id": f"es-{i}-{c}", "text": t} for i, t in enumerate(ES) for c in range(2)]
            + [{"id": "de-0", "text": DE}])
    path = workdir / "cluster-mixed.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    conf, cc = parse_cluster_job(_job(path, workdir / "clusters-mixed", k=2, embedding_model=tiny_encoder,
                                      name="test-mixed-clusters", examples=1))
    return run(conf, cc, spark=spark), conf


@pytest.fixture(scope="module")
def direct(tiny_encoder):
    from udfs.models.loading import build, local_folder
    from udfs.models.registry import resolve

    return build(local_folder(resolve(tiny_encoder)), device="cpu", precision="fp32")


def test_fit_centers_each_language_and_registers_the_means(fitted_mixed, direct, lid):
    from udfs.clustering.model import load_registered

    summary, _ = fitted_mixed
    assert (summary["languages"], summary["stop_word_languages"], summary["center_languages"]) == (
        {"de": 1, "en": 20, "es": 20}, ["en", "es"], "auto")  # de: 1 row, too few for its stop words
    assert summary["centering_note"] == (
        "language centering on (auto: 2 languages with >= 20 fitted rows each): en 20, es 20; "
        "every other row: the mean of all 41 fitted rows")
    assert summary["language_centering"] == {"languages": {"en": 20, "es": 20}, "fitted_rows": 41,
                                             "language_model": lid}
    assert summary["lexical_note"].startswith("lexical features off (auto: the embeddings are centered per "
                                              "language, and TF-IDF terms belong to one language): ")
    assert summary["lexical_weight"] == 0.0
    clustering, _ = load_registered(f"models:/{summary['model']}")
    c = clustering.centering
    assert (c.languages, c.rows, c.total, c.language_model) == (["en", "es"], {"en": 20, "es": 20}, 41, lid)
    en, es, de = _unit(direct.embed(EN)), _unit(direct.embed(ES)), _unit(direct.embed([DE]))
    every = np.vstack([en, en, es, es, de]).mean(0)  # each text twice, the German row once
    np.testing.assert_allclose(c.means, [en.mean(0), es.mean(0), every], atol=1e-6)
    words = {w for ws in summary["keywords"].values() for w in ws}
    assert not words & set(stop_words(["es"])), words


def test_assign_and_predict_center_new_rows_as_the_fit_did(spark, fitted_mixed, direct, workdir):
    import mlflow.pyfunc

    from udfs.clustering.model import load_registered

    summary, conf = fitted_mixed
    fit_rows = {r.id: (r.cluster, r.distance) for r in spark.read.parquet(f"{conf.output.path}/assignments").collect()}
    clustering, _ = load_registered(f"models:/{summary['model']}")
    texts = [EN[0], ES[6], DE, IT]  # it: a language not in the fit; de: one with no mean of its own
    new = pd.DataFrame({"id": ["n-en", "n-es", "n-de", "n-it", "n-null"], "text": texts + [None]})
    path = workdir / "cluster-mixed-new.parquet"
    new.to_parquet(path, index=False)
    aconf, acc = parse_cluster_job(_job(path, workdir / "clusters-mixed-assign", mode="assign",
                                        model=f"models:/{summary['model']}"))
    s = run(aconf, acc, spark=spark)
    assert s["centering_note"] == ("centered per language as fitted: en 20, es 20; every other row: the mean of "
                                   "all 41 fitted rows")
    got = {r.id: r for r in spark.read.parquet(f"{aconf.output.path}/assignments").collect()}
    # by hand: unit(unit(e) - mean of its language, or of all fitted rows), nearest centroid by cosine
    means = clustering.centering.means
    x = _unit(_unit(direct.embed(texts)) - means[[0, 1, 2, 2]])
    cos = 1.0 - x @ _unit(clustering.centroids).T
    want = {i: (int(cos[j].argmin()), float(cos[j].min())) for j, i in enumerate(["n-en", "n-es", "n-de", "n-it"])}
    assert {i: got[i].cluster for i in want} == {i: c for i, (c, _) in want.items()}
    for i, (_, d) in want.items():
        assert got[i].distance == pytest.approx(d, abs=1e-5)
    assert (got["n-null"].cluster, got["n-null"].error) == (None, NULL_INPUT)
    # the same texts as fitted rows: the same cluster and distance as in the fit
    assert (got["n-en"].cluster, got["n-de"].cluster) == (fit_rows["en-0-0"][0], fit_rows["de-0"][0])
    assert got["n-en"].distance == pytest.approx(fit_rows["en-0-0"][1], abs=1e-6)
    # the plain MLflow model identifies the languages itself and centers the same way
    model = mlflow.pyfunc.load_model(f"models:/{summary['model']}")
    predicted = model.predict(pd.DataFrame({"text": texts}))
    assert [p["cluster"] for p in predicted] == [want[i][0] for i in ("n-en", "n-es", "n-de", "n-it")]
    np.testing.assert_allclose([p["distance"] for p in predicted],
                               [want[i][1] for i in ("n-en", "n-es", "n-de", "n-it")], atol=1e-5)


def test_center_languages_false_keeps_the_embeddings_and_still_drops_every_languages_stop_words(
        spark, tiny_encoder, lid):
    from udfs.clustering.config import parse_cluster_conf
    from udfs.clustering.features import prepare
    from udfs.clustering.fit import ClusteringError, fit
    from udfs.clustering.languages import language_plan_for
    from udfs.tasks.embed import embed_plan

    df = spark.createDataFrame([(f"r{i}", t) for i, t in enumerate(EN + ES + ES)], "id string, text string")
    prepared = prepare(df, id_column="id", text_column="text", embed_plan=embed_plan(model=tiny_encoder),
                       language_plan=language_plan_for(lid)).cache()
    result = fit(prepared, parse_cluster_conf({"k": 2, "center_languages": False}), embedding_model=tiny_encoder,
                 language_model=lid)
    assert (result.clustering.centering, result.centering_note, result.languages, result.stop_word_languages) == (
        None, "language centering off (center_languages: false)", {"en": 10, "es": 20}, ["en", "es"])
    auto = fit(prepared, parse_cluster_conf({"k": 2}), embedding_model=tiny_encoder, language_model=lid)
    assert (auto.clustering.centering, auto.centering_note) == (None, (
        "language centering off (auto: needs 2+ languages with >= 20 fitted rows each; found es 20, en 10)"))
    with pytest.raises(ClusteringError, match=r"^center_languages: true, but the rows' languages were not "
                                              r"identified \(no language model\)$"):
        fit(prepared, parse_cluster_conf({"k": 2, "center_languages": True}), embedding_model=tiny_encoder)
    prepared.unpersist()


@pytest.mark.parametrize("keys, message", [
    ({"k": 3, "center_languages": "yes"}, "center_languages: got 'yes'; allowed: auto, true or false"),
    ({"k": 3, "center_languages": 1}, "center_languages: got 1; allowed: auto, true or false"),
    ({"k": 3, "center_languages": None}, "center_languages: got None; allowed: auto, true or false"),
    ({"mode": "assign", "model": "models:/x@champion", "center_languages": True},
     "center_languages: got True; allowed: nothing in mode: assign (it comes from models:/x@champion)"),
])
def test_center_languages_is_validated(tmp_path, keys, message):
    (tmp_path / "in.csv").write_text("id,text\n1,a\n")
    with pytest.raises(ConfigError) as info:
        parse_cluster_job(_job(tmp_path / "in.csv", tmp_path / "out", **keys))
    assert str(info.value) == message
    for ok in ("auto", True, False):
        assert parse_cluster_job(_job(tmp_path / "in.csv", tmp_path / "out", k=3,
                                      center_languages=ok))[1].center_languages == ok
