"""lingua_lid: lingua on short texts, and the hybrid that sends long rows to fastText lid.176 (both real)."""
import shutil
from importlib import metadata

import pytest

pytest.importorskip("lingua")

from udfs.errors import ConfigError  # noqa: E402
from udfs.models.backends.fasttext_lid import LanguageDetector  # noqa: E402
from udfs.models.backends.lingua_lid import (  # noqa: E402
    LONG_CHARS, HybridDetector, LinguaDetector, lingua_code, load_hybrid_detector)
from udfs.models.catalog import load_catalog  # noqa: E402

pytestmark = pytest.mark.real

# Written for this test (none is in bench/data/short_langid.csv); 2-5 words, close languages included.
SHORT = [
    ("Where is the train station?", "en"),
    ("¿Dónde está la estación de tren?", "es"),
    ("Onde fica a estação de comboios?", "pt"),
    ("Wo ist der Bahnhof?", "de"),
    ("Où se trouve la gare ?", "fr"),
    ("Gdzie jest dworzec kolejowy?", "pl"),
    ("Где находится вокзал?", "ru"),
    ("Де знаходиться вокзал?", "uk"),         # lid.176 says ru
    ("Kde je železničná stanica?", "sk"),      # lid.176 says sl
    ("Waar is die treinstasie?", "af"),
    ("Hvor ligger jernbanestasjonen?", "no"),  # lingua's nb (Bokmål), the project's no
]
LONG = ("A Eslováquia e a República Checa separaram-se pacificamente em 1993, e as duas línguas continuam "
        "a ser mutuamente inteligíveis para a maioria dos falantes.")
NO_LETTERS = ["12345 !!! 😀😀", "   ", "3.14 + 2.71 = 5.85", "🙂🙃"]


@pytest.fixture(scope="module")
def lingua() -> LinguaDetector:
    # lazily loaded models (preload=False) give the same answers as preloaded ones, in less memory and time
    return LinguaDetector(preload=False)


@pytest.fixture(scope="module")
def fasttext_dir(tmp_path_factory):
    """A registered-version-like folder: ``weights/`` holding the installed lid.176, as the catalog registers it."""
    entry = load_catalog()["textspark-lid176"]
    folder = tmp_path_factory.mktemp("hybrid")
    (folder / "weights").mkdir()
    shutil.copy(entry.source_dir() / entry.params["file"], folder / "weights" / entry.params["file"])
    return folder


@pytest.fixture(scope="module")
def fasttext(fasttext_dir) -> LanguageDetector:
    return LanguageDetector(fasttext_dir / "weights")


def test_short_texts_get_their_language(lingua):
    got = [best[0][0] for best in lingua.detect([t for t, _ in SHORT])]
    assert got == [code for _, code in SHORT]


def test_confidences_are_linguas_probabilities_best_first(lingua):
    for best in lingua.detect([t for t, _ in SHORT], k=3):
        values = [p for _, p in best]
        assert len(best) == 3 and values == sorted(values, reverse=True)
        assert 0.0 < sum(values) <= 1.0 + 1e-9 and all(0.0 < p <= 1.0 for p in values)
    assert lingua.predict(["Wo ist der Bahnhof?"]) == ["de"]


def test_text_without_letters_gets_no_language(lingua, fasttext):
    assert lingua.detect(NO_LETTERS, k=3) == [[]] * len(NO_LETTERS)
    assert lingua.predict(NO_LETTERS) == [None] * len(NO_LETTERS)
    hybrid = HybridDetector(fasttext, lingua)
    assert hybrid.detect(NO_LETTERS + ["  " + "1234567890 " * 10]) == [[]] * (len(NO_LETTERS) + 1)


def test_bokmal_is_no_and_nynorsk_nn():
    from lingua import Language

    assert (lingua_code(Language.BOKMAL), lingua_code(Language.NYNORSK), lingua_code(Language.ENGLISH)) == \
        ("no", "nn", "en")


def test_hybrid_sends_long_rows_to_fasttext_and_short_rows_to_lingua(lingua, fasttext):
    hybrid = HybridDetector(fasttext, lingua)
    short, code = SHORT[8]  # Slovak: fastText's answer (sl) differs from lingua's (sk)
    assert len(LONG) >= LONG_CHARS > len(short)
    out = hybrid.detect([short, LONG, short], k=2)
    assert out[1] == fasttext.detect([LONG], k=2)[0]        # exactly fastText's pairs, probabilities included
    assert out[1] != lingua.detect([LONG], k=2)[0]
    # lingua's confidences can differ in the last bits between two calls on the same text (its sums run in
    # hash-map order), so lingua's answers compare with a tolerance and fastText's exactly
    expected = lingua.detect([short], k=2)[0]
    for got in (out[0], out[2]):
        assert [c for c, _ in got] == [c for c, _ in expected]
        assert [p for _, p in got] == pytest.approx([p for _, p in expected], rel=1e-9)
    assert out[0][0][0] == code != fasttext.detect([short])[0][0][0]
    assert hybrid.predict([LONG, short]) == ["pt", "sk"]


def test_hybrid_switch_point_is_a_param(lingua, fasttext):
    short = SHORT[8][0]
    everything_long = HybridDetector(fasttext, lingua, long_chars=0)
    assert everything_long.detect([short]) == fasttext.detect([short])
    with pytest.raises(ConfigError, match=r"params.long_chars: got -1; allowed: a whole number"):
        HybridDetector(fasttext, lingua, long_chars=-1)


def test_builder_loads_the_hybrid_from_a_registered_folder(fasttext_dir):
    hybrid = load_hybrid_detector(fasttext_dir, device="cpu", precision="fp32", file="lid.176.ftz", max_chars=4000,
                                  long_chars=40, lingua_mode="low", lingua_languages=["pt", "es", "sk", "cs"],
                                  lingua_version=metadata.version("lingua-language-detector"))
    assert (hybrid.long_chars, hybrid.lingua.mode) == (40, "low")
    assert hybrid.predict([LONG, "Kde je železničná stanica?"]) == ["pt", "sk"]


def test_settings_errors_name_the_key_and_what_is_allowed():
    with pytest.raises(ConfigError, match=r"params.mode: got 'best'; allowed: high, low"):
        LinguaDetector(mode="best", preload=False)
    with pytest.raises(ConfigError, match=r"params.languages: got \['xx'\]; allowed: af, ar"):
        LinguaDetector(languages=["en", "xx"], preload=False)
    with pytest.raises(ConfigError, match=r"params.languages: got \['en'\]; allowed: all, or a list of at least two"):
        LinguaDetector(languages=["en"], preload=False)
    installed = metadata.version("lingua-language-detector").replace(".", r"\.")
    with pytest.raises(ConfigError, match=rf"params.lingua_version: got '0.1'; allowed: the installed "
                                          rf"lingua-language-detector, {installed} "):
        LinguaDetector(languages=["en", "de"], lingua_version="0.1", preload=False)
