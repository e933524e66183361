"""Clustering: every row assigned or given a reason, k by stability, lexical features joined where texts share
terms, c-TF-IDF keywords naming the clusters, MLflow run and registered centroids that assign new rows without
refitting, bad input and bad config named clearly."""
import math
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from pyspark.testing import assertDataFrameEqual

from jobs.cluster import main, parse_cluster_job, run
from udfs.clustering.config import parse_cluster_conf
from udfs.clustering.describe import keywords, representatives
from udfs.clustering.features import NON_FINITE, NULL_VECTOR, ZERO_VECTOR, embed_chunked, prepare
from udfs.clustering.fit import ClusteringError, fit
from udfs.clustering.metrics import nmi_purity
from udfs.clustering.model import Clustering, assign, load_registered
from udfs.clustering.plot import projection_png, projection_xy
from udfs.errors import ConfigError
from udfs.text import EMPTY_INPUT, NULL_INPUT

GROUPS = {
    "sport": "The match ended in a draw after a late goal.",
    "business": "Shares rose after the company reported strong profits.",
    "film": "The film won three awards at the festival.",
}
# each text's terms: lower-cased runs of 3+ letters, minus the stop words ('the', 'after'; 'three')
KEYWORDS = {
    "sport": ["draw", "ended", "goal", "late", "match"],
    "business": ["company", "profits", "reported", "rose", "shares", "strong"],
    "film": ["awards", "festival", "film", "won"],
}
NAMES = {"sport": "draw, ended, goal", "business": "company, profits, reported", "film": "awards, festival, film"}
COPIES = 5


def _job(path, out, **keys):
    return {"input": {"path": str(path), "id_column": "id", "text_column": "text"},
            "output": {"path": str(out)}, **keys}


@pytest.fixture(scope="module")
def texts_table(workdir):
    rows = [{"id": f"{g}-{i}", "text": t, "label": g} for g, t in GROUPS.items() for i in range(COPIES)]
    rows += [{"id": "null", "text": None, "label": None}, {"id": "empty", "text": "", "label": "sport"},
             {"id": "blank", "text": "  \n ", "label": "film"}]
    path = workdir / "cluster-texts.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path, rows


@pytest.fixture(scope="module")
def fitted(spark, tiny_encoder, texts_table, workdir):
    path, rows = texts_table
    conf, cc = parse_cluster_job(_job(path, workdir / "clusters-fit", k=3, embedding_model=tiny_encoder,
                                      label_column="label", name="test-clusters", examples=2))
    return run(conf, cc, spark=spark), conf, rows


def test_fit_assigns_every_row_and_null_text_gets_a_reason(spark, fitted):
    summary, conf, rows = fitted
    out = spark.read.parquet(f"{conf.output.path}/assignments")
    assert out.schema.simpleString() == ("struct<id:string,cluster:int,distance:double,error:string,"
                                         "model:string,embedding_model:string>")
    got = {r.id: r for r in out.collect()}
    assert sorted(got) == sorted(r["id"] for r in rows)  # every input row, once
    assert {i: (got[i].cluster, got[i].distance, got[i].error) for i in ("null", "empty", "blank")} == {
        "null": (None, None, NULL_INPUT), "empty": (None, None, EMPTY_INPUT), "blank": (None, None, EMPTY_INPUT)}
    by_group = {g: {got[f"{g}-{i}"].cluster for i in range(COPIES)} for g in GROUPS}
    assert all(len(c) == 1 for c in by_group.values()), by_group          # duplicates share a cluster...
    assert sorted(c.pop() for c in by_group.values()) == [0, 1, 2]        # ...and each theme has its own
    assert max(r.distance for r in got.values() if r.cluster is not None) < 1e-6  # each point is its centroid
    assert {(r.model, r.embedding_model) for r in got.values()} == {(summary["model"], "tiny-encoder/1")}
    assert summary["model"].startswith("test-clusters/")
    assert (summary["rows"], summary["rows_assigned"], summary["null_with_reason"]) == (len(rows), 15, 3)


def test_clusters_table_sizes_keywords_examples(spark, fitted):
    summary, conf, _ = fitted
    table = spark.read.parquet(f"{conf.output.path}/clusters")
    assert table.schema.simpleString() == ("struct<cluster:int,name:string,size:bigint,keywords:array<string>,"
                                           "examples:array<string>,example_ids:array<string>>")
    cluster_of = {r.id.split("-")[0]: r.cluster
                  for r in spark.read.parquet(f"{conf.output.path}/assignments").where("id LIKE '%-0'").collect()}
    # every term of a group occurs COPIES times in its cluster and nowhere else: equal scores, A-Z;
    # one distinct text per cluster: one example; the name: the top 3 keywords
    expected = spark.createDataFrame([(cluster_of[g], NAMES[g], COPIES, KEYWORDS[g], [text])
                                      for g, text in GROUPS.items()],
                                     "cluster int, name string, size long, keywords array<string>, examples array<string>")
    assertDataFrameEqual(table.drop("example_ids"), expected)
    for r in table.collect():
        group = next(g for g, c in cluster_of.items() if c == r.cluster)
        assert len(r.example_ids) == 1 and r.example_ids[0].startswith(f"{group}-")
    assert summary["names"] == {str(cluster_of[g]): NAMES[g] for g in GROUPS}


def test_fit_logs_an_mlflow_run_and_registers_the_centroids(fitted):
    import mlflow

    from udfs.models.registry import client

    summary, conf, _ = fitted
    r = client().get_run(summary["run_id"])
    started = datetime.fromtimestamp(r.info.start_time / 1000).isoformat(timespec="seconds")
    assert (r.info.run_name, r.info.status) == (f"cluster {conf.output.path} {started}", "FINISHED")
    assert (r.data.tags["textspark.job"], r.data.tags["textspark.model_versions"]) == \
        ("cluster", ",".join(sorted([summary["embedding_model"], *([summary["language_model"]]
                                                                    if summary["language_model"] else [])])))
    assert r.data.params["k"] == "3" and r.data.params["embedding_model"] == "tiny-encoder/1"
    m = r.data.metrics
    assert (m["k"], m["nmi"], m["purity"], m["rows_assigned"]) == (3, 1.0, 1.0, 15)
    assert sorted(v for k, v in m.items() if k.startswith("size.")) == [5, 5, 5]
    assert m["silhouette"] == pytest.approx(1.0, abs=1e-6)  # every point sits on its centroid
    png = mlflow.artifacts.download_artifacts(run_id=summary["run_id"], artifact_path="projection.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    name, version = summary["model"].split("/")
    mv = client().get_model_version(name, version)
    assert (mv.tags["textspark.task"], mv.tags["textspark.kind"], mv.run_id) == ("cluster", "kmeans_centroids",
                                                                                summary["run_id"])
    assert str(dict(client().get_registered_model(name).aliases)["champion"]) == version
    clustering, _ = load_registered(f"models:/{name}@champion")
    # 3 distinct texts: TF-IDF of rank 3, so 3 LSA dimensions beside the encoder's 32
    assert (clustering.k, clustering.dim, clustering.embedding_dim, clustering.embedding_model, clustering.chunk_words,
            clustering.lexical.dims, clustering.lexical_weight) == (3, 35, 32, "models:/tiny-encoder/1", 150, 3, 0.5)
    # lexical_weight auto: 30 of the 105 pairs of the 15 texts share terms (those of a group), >= 1/(2k)
    decision = ("lexical features on (auto, weight 0.5): 28.6% of pairs of the 15 sampled texts share a term "
                "(need >= 16.7% = 1/(2k), k=3); 5.0 kept terms per text")
    assert (summary["lexical_dims"], summary["lexical_weight"], summary["lexical_note"]) == (3, 0.5, decision)
    assert {k: r.data.params[k] for k in ("lexical_weight", "lexical_weight_used", "lexical_dims",
                                          "lexical_decision")} == {
        "lexical_weight": "auto", "lexical_weight_used": "0.5", "lexical_dims": "3", "lexical_decision": decision}
    assert clustering.keywords == {int(c): w for c, w in summary["keywords"].items()}


def test_assign_mode_puts_new_rows_in_the_registered_clusters_without_refitting(spark, fitted, workdir):
    from udfs.models.registry import client

    summary, conf, _ = fitted
    fit_rows = {r.id: r.cluster for r in spark.read.parquet(f"{conf.output.path}/assignments").collect()}
    versions = len(client().search_model_versions("name='test-clusters'"))
    new = pd.DataFrame({"id": ["n1", "n2", "n3", "n4", "n5"],
                        "text": [GROUPS["film"], GROUPS["sport"], None, GROUPS["business"], GROUPS["film"]]})
    path = workdir / "cluster-new.parquet"
    new.to_parquet(path, index=False)
    aconf, acc = parse_cluster_job(_job(path, workdir / "clusters-assign", mode="assign",
                                        model="models:/test-clusters@champion"))
    s = run(aconf, acc, spark=spark)
    got = {r.id: r for r in spark.read.parquet(f"{aconf.output.path}/assignments").collect()}
    assert {i: r.cluster for i, r in got.items()} == {
        "n1": fit_rows["film-0"], "n2": fit_rows["sport-0"], "n3": None, "n4": fit_rows["business-0"],
        "n5": fit_rows["film-0"]}
    assert got["n3"].error == NULL_INPUT
    assert {r.model for r in got.values()} == {summary["model"]} and s["model"] == summary["model"]
    assert len(client().search_model_versions("name='test-clusters'")) == versions  # nothing refitted/registered
    table = {r.cluster: r for r in spark.read.parquet(f"{aconf.output.path}/clusters").collect()}
    assert {c: (r.size, r.keywords) for c, r in table.items()} == {
        c: ({fit_rows["film-0"]: 2}.get(c, 1), summary["keywords"][str(c)]) for c in range(3)}


def test_registered_clustering_works_as_a_plain_mlflow_model(fitted):
    import mlflow.pyfunc

    summary, conf, _ = fitted
    model = mlflow.pyfunc.load_model(f"models:/{summary['model']}")
    got = model.predict(pd.DataFrame({"text": [GROUPS["film"], GROUPS["sport"]]}))
    clusters = {r["cluster"] for r in got}
    assert len(clusters) == 2 and all(r["distance"] < 1e-5 for r in got)


def test_long_texts_are_the_mean_of_their_word_windows(spark, tiny_encoder):
    from tests.tiny_models import CORPUS
    from udfs.models.loading import build, local_folder
    from udfs.models.registry import resolve
    from udfs.tasks.embed import embed_plan

    direct = build(local_folder(resolve(tiny_encoder)), device="cpu", precision="fp32")
    words = " ".join(CORPUS).split()
    long_text, short = " ".join(words[:230]), "Shares rose."
    df = spark.createDataFrame([("long", long_text), ("short", short), ("blank", " \t ")], "id string, text string")
    prepared = prepare(df, id_column="id", text_column="text", embed_plan=embed_plan(model=tiny_encoder),
                       chunk_words=50, max_chunks=4)
    got = {r._id: r for r in prepared.collect()}
    windows = [" ".join(words[i:i + 50]) for i in (0, 50, 100, 150)]  # 5 windows of 230 words, first 4 kept
    np.testing.assert_allclose(got["long"].vector, direct.embed(windows).mean(0), atol=1e-5)
    np.testing.assert_allclose(got["short"].vector, direct.embed([short])[0], atol=1e-5)
    np.testing.assert_allclose(embed_chunked(direct, [long_text], 50, 4)[0], got["long"].vector, atol=1e-5)
    assert (got["blank"].vector, got["blank"].error) == (None, EMPTY_INPUT)
    assert all(got[i].error is None for i in ("long", "short"))


# ---- vectors given as an input column: exact geometry --------------------------------------------

def _vector_frame(spark, directions, per=6, noise=0.02, seed=0, extra=()):
    rng = np.random.default_rng(seed)
    rows = []
    for g, angle in enumerate(directions):
        for i in range(per):
            a = angle + rng.normal(0, noise)
            rows.append((f"g{g}-{i}", f"group {g} text {i}", [math.cos(a), math.sin(a), 0.0], f"g{g}"))
    rows += list(extra)
    return spark.createDataFrame(rows, "id string, text string, vec array<double>, label string")


def test_k_range_picks_the_most_stable_k(spark):
    df = _vector_frame(spark, [0.0, math.pi / 2, math.pi, 3 * math.pi / 2])
    cc = parse_cluster_conf({"k_range": [3, 5], "embedding_column": "vec"})
    prepared = prepare(df, id_column="id", text_column="text", embedding_column="vec").cache()
    result = fit(prepared, cc, embedding_model=None)
    assert result.k == 4
    assert sorted(result.candidates) == [3, 4, 5]  # 24 distinct points: every candidate tried
    # 4 groups: every resample gives the same 4 clusters (ARI 1); 3 or 5 cut a group differently each time
    assert result.candidates[4] == pytest.approx(1.0) and max(result.candidates[3], result.candidates[5]) < 0.9
    assigned = assign(prepared, result.clustering)
    labels = {(r._id[:2], r.cluster) for r in assigned.collect()}
    assert len(labels) == 4 and len({c for _, c in labels}) == 4  # each group is one cluster
    prepared.unpersist()


def test_stability_finds_two_near_groups_where_the_silhouette_merges_them(spark):
    """Groups at 0 and 0.35 rad (each point within ~0.1 rad of its group's direction) and one opposite:
    three clearly separated groups. The silhouette prefers k=2 (the near pair is small next to the far
    one); 2 and 3 clusters are both perfectly stable, and the finer 3 is kept."""
    df = _vector_frame(spark, [0.0, 0.35, math.pi], per=8, noise=0.05)
    prepared = prepare(df, id_column="id", text_column="text", embedding_column="vec", label_column="label").cache()
    picked = {}
    for rule in ("silhouette", "stability"):
        result = fit(prepared, parse_cluster_conf({"k_range": [2, 5], "embedding_column": "vec", "k_selection": rule}),
                     embedding_model=None)
        picked[rule] = result.k
        if rule == "stability":
            assert [round(result.candidates[k], 6) for k in (2, 3)] == [1.0, 1.0]
            assert max(result.candidates[4], result.candidates[5]) < 0.9, result.candidates
            assigned = assign(prepared, result.clustering).collect()
            assert len({(r._label, r.cluster) for r in assigned}) == 3  # each group is one cluster
    assert picked == {"silhouette": 2, "stability": 3}
    prepared.unpersist()


def test_bad_vectors_get_reasons_and_distances_match_numpy(spark):
    extra = [("null-vec", "x", None, "g0"), ("nan", "x", [float("nan"), 0.0, 1.0], "g0"),
             ("short", "x", [1.0, 0.0], "g0"), ("zero", "x", [0.0, 0.0, 0.0], "g0"),
             ("inf", "x", [float("inf"), 0.0, 0.0], "g0"), ("null-text", None, [1.0, 0.0, 0.0], "g0")]
    df = _vector_frame(spark, [0.0, math.pi], extra=extra)
    cc = parse_cluster_conf({"k": 2, "embedding_column": "vec"})
    prepared = prepare(df, id_column="id", text_column="text", embedding_column="vec").cache()
    result = fit(prepared, cc, embedding_model=None)
    rows = {r._id: r for r in assign(prepared, result.clustering).collect()}
    assert {i: (rows[i].cluster, rows[i].error) for i, *_ in extra} == {
        "null-vec": (None, NULL_VECTOR), "nan": (None, NON_FINITE), "short": (None, "embedding has 2 values; expected 3"),
        "zero": (None, ZERO_VECTOR), "inf": (None, NON_FINITE),
        "null-text": (rows["g0-0"].cluster, None)}  # a vector column does not need the text
    c = result.clustering.centroids
    for r in rows.values():
        if r.cluster is not None:
            v = np.array(r.vector)
            cos = 1 - (c @ v) / (np.linalg.norm(c, axis=1) * np.linalg.norm(v))
            assert (r.cluster, r.distance) == (int(cos.argmin()), pytest.approx(cos.min(), abs=1e-9))
    prepared.unpersist()


def test_representatives_are_the_distinct_texts_nearest_each_centroid(spark):
    rows = [(0, 0.30, "a", "alpha"), (0, 0.10, "b", "beta"), (0, 0.10, "c", "beta"),  # a tie: by id; a repeat
            (0, 0.05, "d", None), (0, 0.20, "e", "gamma long text"), (1, 0.90, "f", "delta"),
            (None, 0.0, "g", "no cluster")]
    assigned = spark.createDataFrame(rows, "cluster int, distance double, _id string, _text string")
    assert representatives(assigned, 2) == {0: [("b", "beta"), ("e", "gamma long text")], 1: [("f", "delta")]}
    assert representatives(assigned, 3, chars=5) == {0: [("b", "beta"), ("e", "gamma"), ("a", "alpha")],
                                                     1: [("f", "delta")]}
    assert representatives(assigned, 0) == {}


SPORT = ["The striker scored a late goal to win the match.", "A goal from the striker settled the cup match.",
         "The captain scored the winning goal of the match.", "The match went to extra time before the goal.",
         "Fans cheered the striker after the goal in the match.", "The cup match ended with a goal by the captain."]
MARKETS = ["Shares in the bank fell as profits dropped.", "The bank reported higher profits and shares rose.",
           "Investors sold bank shares after the profits warning.", "Profits at the bank lifted its shares.",
           "The market cheered the bank's profits; shares jumped.", "Shares slid when the bank cut its profits forecast."]


def test_lexical_features_separate_texts_whose_embeddings_do_not(spark):
    """Vectors that are all nearly the same direction, texts about two topics: the TF-IDF + LSA half of each
    row's vector finds the topics; the embeddings alone (lexical_weight 0) cannot."""
    rng = np.random.default_rng(0)
    texts = [("sport", t) for t in SPORT] + [("markets", t) for t in MARKETS]
    rows = [(f"r{i}", t, (np.array([1.0, 0.0, 0.0]) + rng.normal(0, 0.01, 3)).tolist(), topic)
            for i, (topic, t) in enumerate(texts)]
    df = spark.createDataFrame(rows, "id string, text string, vec array<double>, label string")
    prepared = prepare(df, id_column="id", text_column="text", embedding_column="vec", label_column="label").cache()
    scores = {}
    for weight in (0.5, 0.0, "auto"):
        result = fit(prepared, parse_cluster_conf({"k": 2, "embedding_column": "vec", "lexical_weight": weight}),
                     embedding_model=None)
        assigned = assign(prepared, result.clustering).collect()
        scores[weight] = nmi_purity(np.array([[sum(r.cluster == c and r._label == g for r in assigned)
                                               for g in ("sport", "markets")] for c in (0, 1)]))[0]
        lexical = result.clustering.lexical
        assert (lexical is not None, result.clustering.lexical_weight) == (weight != 0, 0.0 if weight == 0 else 0.5)
        assert result.lexical_note == (None if weight != "auto" else (  # the texts of a topic share terms: on
            "lexical features on (auto, weight 0.5): 47.0% of pairs of the 12 sampled texts share a term "
            "(need >= 25.0% = 1/(2k), k=2); 3.4 kept terms per text"))
        assert {len(r.vector) for r in assigned} == {3 + (lexical.dims if lexical else 0)}
    assert scores[0.5] == scores["auto"] == 1.0 and scores[0.0] < 0.5, scores
    prepared.unpersist()


HEADLINES = {  # short texts, two topics; few words repeat, and those that do ("new", "plan") cross topics
    "sport": ["Striker signs for rivals", "Captain ruled out of final", "Keeper saves late penalty",
              "Coach names new squad", "Rugby side wins title"],
    "markets": ["Bank profits slump", "Oil prices climb again", "Retailer plans job cuts",
                "Airline shares tumble", "Carmaker unveils new plan"],
}


def test_auto_keeps_the_embeddings_alone_on_short_texts_that_share_no_terms(spark):
    """Short texts whose embeddings find the topics but whose words do not: auto leaves the lexical features
    out (a weight of 0.5 would mix noise in) and says why, in the result and the job summary."""
    rows = [(f"{topic}-{i}", text, [math.cos(a), math.sin(a), 0.0], topic)
            for topic, a in (("sport", 0.0), ("markets", math.pi / 2))
            for i, text in enumerate(HEADLINES[topic] * 2)]
    df = spark.createDataFrame(rows, "id string, text string, vec array<double>, label string")
    prepared = prepare(df, id_column="id", text_column="text", embedding_column="vec", label_column="label").cache()
    result = fit(prepared, parse_cluster_conf({"k": 2, "embedding_column": "vec"}), embedding_model=None)
    assert (result.clustering.lexical, result.clustering.lexical_weight, result.clustering.dim) == (None, 0.0, 3)
    # each text twice (so every term is in 2 texts and kept): 10 of the 190 pairs are a text and its copy;
    # "new" links 4 more pairs
    assert result.lexical_note == ("lexical features off (auto: embeddings only): 7.4% of pairs of the 20 sampled "
                                   "texts share a term (need >= 25.0% = 1/(2k), k=2); 3.4 kept terms per text")
    forced = fit(prepared, parse_cluster_conf({"k": 2, "embedding_column": "vec", "lexical_weight": 0.5}),
                 embedding_model=None)  # a number given by the user wins
    assert (forced.clustering.lexical is not None, forced.clustering.lexical_weight, forced.lexical_note) == (
        True, 0.5, None)
    prepared.unpersist()


def test_lexical_features_are_off_with_a_note_when_the_texts_share_no_terms(spark):
    df = _vector_frame(spark, [0.0, math.pi])  # texts "group <g> text <i>": every kept word is in every text
    prepared = prepare(df, id_column="id", text_column="text", embedding_column="vec")
    result = fit(prepared, parse_cluster_conf({"k": 2, "embedding_column": "vec"}), embedding_model=None)
    assert (result.clustering.lexical, result.clustering.lexical_weight, result.clustering.dim) == (None, 0.0, 3)
    assert result.lexical_note.startswith("lexical features off (embeddings only): 12 texts: ")


def test_euclidean_distance_is_plain_euclidean():
    c = Clustering(centroids=np.array([[0.0, 0.0], [10.0, 0.0]]), distance="euclidean")
    best, d = c.assign(np.array([[3.0, 4.0], [9.0, 0.0]]))
    assert best.tolist() == [0, 1] and d == pytest.approx([5.0, 1.0])


def test_projection_draws_cosine_centroids_among_their_members(tmp_path):
    rng = np.random.default_rng(0)
    vectors = np.vstack([np.eye(3)[c] + rng.normal(0, 0.3, (10, 3)) for c in (0, 1)]) * 7.0  # cluster 2: no row
    clusters = np.repeat([0, 1], 10)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    means = np.vstack([unit[clusters == c].mean(0) for c in (0, 1)])
    # as Spark's cosine k-means makes them: the unit direction of the members' mean of unit vectors
    centers = np.vstack([means / np.linalg.norm(means, axis=1, keepdims=True), [[0.0, 0.0, 1.0]]])
    xy, cxy = projection_xy(vectors, clusters, centers, "cosine")
    for c in (0, 1):  # each centroid is drawn at the 2-D mean of its (unit) members
        np.testing.assert_allclose(cxy[c], xy[clusters == c].mean(0), atol=1e-9)
    assert np.isfinite(cxy).all()
    xy_e, cxy_e = projection_xy(vectors, clusters, vectors[:3], "euclidean")  # euclidean: drawn as they are
    np.testing.assert_allclose(cxy_e, xy_e[:3])
    png = projection_png(vectors, clusters, centers, tmp_path / "p.png", distance="cosine")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- keywords and scores ------------------------------------------------------------------------

def test_keywords_are_class_based_tfidf(spark):
    docs = [(0, "Goal goal match referee"), (0, "The match and the goal"), (1, "Profit shares market"),
            (1, "Market profit goal"), (1, "Shares shares shares, he said")]
    df = spark.createDataFrame(docs, "cluster int, _text string")
    # texts with each term (a repeated word counts once per text; 'the', 'and', 'he', 'said' are stop words):
    # cluster 0: goal 2, match 2, referee 1 (5 words); cluster 1: profit, shares, market 2 each, goal 1 (7);
    # A = 6. score = count / words * ln(1 + A / count in all clusters):
    # 0: match .4 ln 4 = .555 > goal .4 ln 3 = .439 > referee .2 ln 7 = .389
    # 1: market = profit = shares 2/7 ln 4 = .396 (ties A-Z) > goal 1/7 ln 3 = .157
    assert keywords(df, 3) == {0: ["match", "goal", "referee"], 1: ["market", "profit", "shares"]}
    assert keywords(df, 10) == {0: ["match", "goal", "referee"], 1: ["market", "profit", "shares", "goal"]}
    # without the extra stop words 'said' counts: cluster 1 has 8 words, A = 6.5;
    # 1: market, profit, shares .25 ln 4.25 = .362 > said 1/8 ln 7.5 = .252 > goal 1/8 ln(1 + 6.5/3) = .144
    # ('said', in one text only, comes after 'goal', in 3: a term in fewer than 2 texts comes last)
    assert keywords(df, 10, stop_words=()) == {0: ["match", "goal", "referee"],
                                               1: ["market", "profit", "shares", "goal", "said"]}


def test_keywords_leave_out_stop_words_and_one_off_terms(spark):
    docs = [(0, "New year, new striker: he scored, the club said"), (0, "The striker called it a new year"),
            (0, "Club striker may score again, one would say"), (1, "New year bank profits: the bank said"),
            (1, "Bank profits called a new record"), (1, "Bank profits rose again this year, one would say")]
    df = spark.createDataFrame(docs, "cluster int, _text string")
    # stop words (new, year, said, called, one, would, may, say, the, it, he, a, this) name nothing; terms in
    # one text only (scored, score, record, rose) come after those in 2+: club 2, striker 3 / bank 3, profits 3
    assert keywords(df, 4) == {0: ["striker", "club", "score", "scored"], 1: ["bank", "profits", "record", "rose"]}


def test_nmi_and_purity_match_scikit_learn():
    from sklearn.metrics import normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    rng = np.random.default_rng(3)
    for _ in range(5):
        pred, true = rng.integers(0, 4, 200), rng.integers(0, 3, 200)
        nmi, purity = nmi_purity(contingency_matrix(pred, true))  # clusters x labels
        assert nmi == pytest.approx(normalized_mutual_info_score(true, pred), abs=1e-9)
        assert purity == pytest.approx(sum(np.bincount(true[pred == c]).max() for c in range(4) if (pred == c).any()) / 200)
    assert nmi_purity(np.array([[5, 0], [0, 5]])) == (1.0, 1.0)
    assert nmi_purity(np.array([[5, 5]])) == (0.0, 0.5)


# ---- bad input and bad config -------------------------------------------------------------------

def test_fewer_distinct_rows_than_k_is_a_clear_error(spark):
    df = _vector_frame(spark, [0.0, math.pi / 2, math.pi], noise=0.0)  # 18 rows, 3 distinct vectors
    prepared = prepare(df, id_column="id", text_column="text", embedding_column="vec")
    with pytest.raises(ClusteringError, match=r"k: got 4, but the input has only 3 distinct embedding\(s\) "
                                              r"among 18 row\(s\) with text \(15 duplicate\(s\)"):
        fit(prepared, parse_cluster_conf({"k": 4, "embedding_column": "vec"}), embedding_model=None)
    with pytest.raises(ClusteringError, match=r"k_range: got \[5, 8\], but the input has only 3 distinct"):
        fit(prepared, parse_cluster_conf({"k_range": [5, 8], "embedding_column": "vec"}), embedding_model=None)
    # a range reaching past the distinct points is capped, not an error
    result = fit(prepared, parse_cluster_conf({"k_range": [2, 8], "embedding_column": "vec"}),
                 embedding_model=None)
    assert (result.k, sorted(result.candidates)) == (3, [2, 3])


def test_all_null_text_is_a_clear_error(spark, tiny_encoder, workdir):
    path = workdir / "cluster-null.parquet"
    pd.DataFrame({"id": ["a", "b", "c"], "text": [None, "", " "]}).to_parquet(path, index=False)
    conf, cc = parse_cluster_job(_job(path, workdir / "clusters-null", k=2, embedding_model=tiny_encoder))
    with pytest.raises(ClusteringError, match=r"no row can be clustered: 3 input row\(s\), none with an "
                                              r"embedding; reasons: ") as info:
        run(conf, cc, spark=spark)
    assert f"'{NULL_INPUT}': 1" in str(info.value) and f"'{EMPTY_INPUT}': 2" in str(info.value)


@pytest.mark.parametrize("keys, message", [
    ({}, r"k: got \{'k': None, 'k_range': None\}; allowed: exactly one of k"),
    ({"k": 3, "k_range": [2, 4]}, r"k: got \{'k': 3, 'k_range': \[2, 4\]\}; allowed: exactly one of k"),
    ({"k": 1}, r"k: got 1; allowed: an integer from 2 to 1000"),
    ({"k": "five"}, r"k: got 'five'"),
    ({"k": True}, r"k: got True"),
    ({"k_range": [6, 2]}, r"k_range: got \[6, 2\]; allowed: \[lo, hi\] with integers 2 <= lo <= hi <= 1000"),
    ({"k_range": [1, 4]}, r"k_range: got \[1, 4\]"),
    ({"k_range": [3]}, r"k_range: got \[3\]"),
    ({"k_range": [2.5, 4]}, r"k_range: got \[2.5, 4\]"),
    ({"k": 3, "distance": "manhattan"}, r"distance: got 'manhattan'; allowed: cosine, euclidean"),
    ({"k": 3, "mode": "predict"}, r"mode: got 'predict'; allowed: fit, assign"),
    ({"mode": "assign"}, r"model: got None; allowed: models:/<name>@<alias> of a registered clustering"),
    ({"mode": "assign", "model": "models:/x@champion", "k": 3}, r"k: got 3; allowed: nothing in mode: assign"),
    ({"k": 3, "model": "models:/x@champion"}, r"model: got 'models:/x@champion'; allowed: no model in mode: fit"),
    ({"k": 3, "embedding_model": "models:/a@b", "embedding_column": "v"}, r"embedding_model: got 'models:/a@b'"),
    ({"k": 3, "keywords": 0}, r"keywords: got 0; allowed: an integer from 1 to 100"),
    ({"k": 3, "name": "a/b"}, r"name: got 'a/b'"),
    ({"k": 3, "chunk_words": -1}, r"chunk_words: got -1; allowed: an integer from 0 to 100000"),
    ({"k": 3, "lexical_weight": 1}, r"lexical_weight: got 1; allowed: auto, or a number from 0 \(embeddings only\) up"),
    ({"k": 3, "lexical_weight": "half"}, r"lexical_weight: got 'half'"),
    ({"k": 3, "lexical_dims": 1}, r"lexical_dims: got 1; allowed: an integer from 2 to 1000"),
    ({"mode": "assign", "model": "models:/x@champion", "lexical_weight": 0.2},
     r"lexical_weight: got 0.2; allowed: nothing in mode: assign"),
    ({"mode": "assign", "model": "models:/x@champion", "chunk_words": 50}, r"chunk_words: got 50; allowed: nothing"),
    ({"k": 3, "clusters": 4}, r"\(top level\).clusters: got 4"),
    ({"k": 3, "tasks": [{"task": "embed"}]}, r"tasks: got .*; allowed: no tasks in a cluster job"),
])
def test_bad_config_names_key_value_and_allowed(texts_table, workdir, keys, message):
    path, _ = texts_table
    with pytest.raises(ConfigError, match=message):
        parse_cluster_job(_job(path, workdir / "never", **keys))


def test_a_table_output_is_refused_in_one_line(texts_table, workdir):
    path, _ = texts_table
    job = {**_job(path, workdir / "never", k=2), "output": {"table": "default.clusters"}}
    with pytest.raises(ConfigError, match=r"^output.table: got 'default.clusters'; allowed: output.path \(a cluster "
                                          r"job writes a folder\)$"):
        parse_cluster_job(job)


def test_id_column_is_required_and_columns_must_exist(spark, texts_table, workdir, tiny_encoder):
    path, _ = texts_table
    job = _job(path, workdir / "never", k=2)
    del job["input"]["id_column"]
    with pytest.raises(ConfigError, match=r"input.id_column: got None; allowed: the column that identifies a row"):
        parse_cluster_job(job)
    conf, cc = parse_cluster_job(_job(path, workdir / "never", k=2, label_column="topic", embedding_model=tiny_encoder))
    with pytest.raises(ConfigError, match=r"label_column: got 'topic'; allowed: id, text, label"):
        run(conf, cc, spark=spark)
    conf, cc = parse_cluster_job(_job(path, workdir / "never", k=2, embedding_model="models:/nope@champion"))
    with pytest.raises(ConfigError, match=r"embedding_model: got 'models:/nope@champion'; .*no registered model 'nope'"):
        run(conf, cc, spark=spark)


def test_command_line_runs_and_config_errors_exit_2(fitted, texts_table, workdir, tiny_encoder, capsys):
    import yaml

    path, _ = texts_table
    good, bad = workdir / "cluster-good.yml", workdir / "cluster-bad.yml"
    good.write_text(yaml.safe_dump(_job(path, workdir / "clusters-cli", mode="assign",
                                        model="models:/test-clusters@champion")))
    bad.write_text(yaml.safe_dump(_job(path, workdir / "never", k_range=[9, 3])))
    assert main(["--conf", str(bad)]) == 2
    assert "configuration error: " in capsys.readouterr().err
    assert main(["--conf", str(good)]) == 0
    assert f"assign: {len(fitted[2])} rows" in capsys.readouterr().out


def test_sample_config_parses(texts_table):
    import yaml

    from udfs.platform import PROJECT_ROOT

    data = yaml.safe_load((PROJECT_ROOT / "conf" / "jobs" / "cluster_sample.yml").read_text())
    data["input"]["path"] = str(texts_table[0])  # the BBC sample is built by `make run`
    conf, cc = parse_cluster_job(data)
    assert (cc.mode, cc.k_range, cc.label_column, cc.name, conf.input.id_column) == (
        "fit", (3, 8), "label", "textspark-bbc-topics", "id")


# ---- the real default embedder on real news ------------------------------------------------------

@pytest.mark.real
def test_real_minilm_finds_the_bbc_topics(spark, workdir):
    from udfs.io.datasets import bbc_news
    from jobs.register_models import register_entry
    from udfs.models.catalog import load_catalog

    register_entry(load_catalog()["textspark-minilm"])
    register_entry(load_catalog()["textspark-lid176"])  # MiniLM reads en: its guard identifies each row's language
    news = bbc_news().groupby("label").sample(20, random_state=1)[["id", "text", "label"]]
    path = workdir / "bbc-100.parquet"
    news.to_parquet(path, index=False)
    conf, cc = parse_cluster_job(_job(path, workdir / "clusters-bbc", k=5, label_column="label",
                                      name="test-bbc-topics", projection_size=100,
                                      embedding_model="models:/textspark-minilm@champion"))  # not the default: e5
    summary = run(conf, cc, spark=spark)
    assert (summary["rows"], summary["rows_assigned"], summary["embedding_model"]) == (100, 100, "textspark-minilm/1")
    # 100 articles is a small sample (the bench scores all 2,225); chance level here is NMI ~0.06, purity ~0.3
    assert summary["nmi"] > 0.5 and summary["purity"] > 0.6, summary
    words = {w for ws in summary["keywords"].values() for w in ws}
    assert {"film", "election"} & words, summary["keywords"]
