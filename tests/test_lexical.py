"""TF-IDF + LSA features for clustering: the same numbers as scikit-learn's pipeline, from plain arrays."""
import numpy as np
import pytest

from udfs.clustering.lexical import LexicalFitError, LexicalProjection, combine

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
