"""TF-IDF + LSA features for clustering: the same numbers as scikit-learn's pipeline, from plain arrays."""
import numpy as np
import pytest

from udfs.clustering.features import decide_lexical
from udfs.clustering.lexical import LexicalFitError, LexicalProjection, combine, shared_term_share

DOCS = [
    "The striker scored twice and the match ended with a late goal from the captain.",
    "A late goal gave the visitors the match; the striker was booked.",
    "The captain and the striker trained before the cup match.",
    "Shares fell after the bank reported lower profits and the market slid.",
    "The bank's profits rose as shares in the market recovered.",
    "Investors sold shares when the bank warned on profits.",
    "The film won awards at the festival and the director thanked the cast.",
    "The director's new film opens the festival; the cast walked the red carpet.",
    "Critics praised the cast of the film shown at the festival.",
]


def test_transform_matches_scikit_learn_tfidf_and_truncated_svd():
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    lex = LexicalProjection.fit(DOCS, 4, seed=0)
    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True, min_df=2, max_df=0.5)
    x = vec.fit_transform(DOCS)
    svd = TruncatedSVD(4, random_state=0).fit(x)
    assert lex.vocabulary == vec.get_feature_names_out().tolist()
    np.testing.assert_allclose(lex.tfidf(DOCS).toarray(), x.toarray(), atol=1e-6)
    # the same 4-dimensional subspace as scikit-learn's (float64) SVD: projectors agree
    c = svd.components_
    np.testing.assert_allclose(lex.components.T @ lex.components, c.T @ c, atol=1e-4)
    new = ["A late goal by the striker.", "Profits at the bank.", None, "", "zebra quantum"]  # last: no known term
    want = normalize(vec.transform([t or "" for t in new]) @ lex.components.T)
    got = lex.transform(new)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.linalg.norm(got, axis=1).round(6).tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    topics = lex.transform(DOCS)
    sims = topics @ topics.T
    for i in range(9):  # each text is closest to the two others of its topic
        assert set(np.argsort(-sims[i])[:3]) == {3 * (i // 3), 3 * (i // 3) + 1, 3 * (i // 3) + 2}


def test_save_and_load_round_trip(tmp_path):
    lex = LexicalProjection.fit(DOCS, 3, seed=1)
    lex.save(tmp_path)
    back = LexicalProjection.load(tmp_path)
    assert back.vocabulary == lex.vocabulary and back.dims == 3
    np.testing.assert_array_equal(back.transform(DOCS), lex.transform(DOCS))
    assert LexicalProjection.load(tmp_path / "missing") is None


def test_too_few_texts_or_shared_terms_is_a_fit_error():
    with pytest.raises(LexicalFitError, match=r"2 text\(s\) in the sample; an LSA projection needs at least 3"):
        LexicalProjection.fit(["a b", "c d", None, ""])
    with pytest.raises(LexicalFitError, match=r"4 texts: "):  # every term in one text only (min_df=2)
        LexicalProjection.fit(["alpha beta", "gamma delta", "epsilon zeta", "eta theta"])


def test_combined_cosine_is_the_weighted_mean_of_the_two_cosines():
    rng = np.random.default_rng(0)
    e, l = rng.normal(size=(6, 8)) * 3.0, rng.normal(size=(6, 5))
    l /= np.linalg.norm(l, axis=1, keepdims=True)
    v = combine(e, l, 0.3)
    eu = e / np.linalg.norm(e, axis=1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0)
    np.testing.assert_allclose(v @ v.T, 0.7 * eu @ eu.T + 0.3 * l @ l.T, atol=1e-12)


def test_shared_term_share_counts_pairs_of_texts_with_a_common_term():
    from scipy import sparse

    # rows: terms {0, 1}, {1}, {2}, {} -> of the 6 pairs only (0, 1) shares a term
    x = sparse.csr_matrix(np.array([[0.5, 0.2, 0, 0], [0, 0.9, 0, 0], [0, 0, 0.3, 0], [0, 0, 0, 0]]))
    assert shared_term_share(x) == pytest.approx(1 / 6)
    assert shared_term_share(x[:1]) == 0.0
    # more pairs than asked for: that many random pairs of distinct rows, the same for a seed
    big = sparse.vstack([x] * 50)  # 200 rows: 1 in 4 rows each of kinds 0, 1, 2, 3
    sampled = shared_term_share(big, pairs=4000, seed=1)
    exact = (50 * 50 + 3 * 50 * 49 / 2) / (200 * 199 / 2)  # (0, 1) pairs, and pairs within kinds 0, 1, 2
    assert sampled == shared_term_share(big, pairs=4000, seed=1) and sampled == pytest.approx(exact, abs=0.03)


def test_auto_decision_keeps_lexical_features_only_where_texts_share_terms():
    heads = ["Striker signs for rivals", "Bank profits slump", "Captain ruled out of final", "Oil prices climb",
             "Keeper saves late penalty", "Retailer plans job cuts", "Coach names squad", "Airline shares tumble",
             "Striker injured", "Bank cuts rates"]
    lex = LexicalProjection.fit(heads, 4, seed=0)  # kept: striker, bank, cuts (each in 2 texts)
    assert decide_lexical(lex, heads, 5) == (0.0, (
        "lexical features off (auto: embeddings only): 6.7% of pairs of the 10 sampled texts share a term "
        "(need >= 10.0% = 1/(2k), k=5); 0.6 kept terms per text"))
    lex = LexicalProjection.fit(DOCS, 4, seed=0)  # three topics of three texts that share their topic's words
    assert decide_lexical(lex, DOCS, 3) == (0.5, (
        "lexical features on (auto, weight 0.5): 25.0% of pairs of the 9 sampled texts share a term "
        "(need >= 16.7% = 1/(2k), k=3); 3.8 kept terms per text"))
