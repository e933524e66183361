"""docs/translation.md's worked example, end to end, with tiny random models standing in for the hub ones:
a Marian "opus-mt-en-de" folder registered from a catalog entry (``python -m jobs.register_models --catalog``),
its version's languages tag and params, ``translate()`` over a local-Spark DataFrame whose rows are in the
registered pair, already in the target language, or in a pair the model does not serve (null + the exact
reason), the driver-side errors for a fixed source or target it does not serve, the job YAML; and the
NLLB / M2M100 note: the target language forced as the first generated token."""
import io
import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers import assert_frame_equal, register_catalog_entry
from tests.tiny_models import CORPUS
from tests.tiny_seq2seq import MAX_TOKENS, PT_CORPUS, build_tiny_marian
from udfs import translate
from udfs.errors import ConfigError
from udfs.models.registry import client, resolve

# the catalog of docs/translation.md, step 2 (paths relative to the catalog file's folder)
CATALOG = textwrap.dedent("""\
    models:
      opus-mt-en-de:
        task: translate
        kind: hf_seq2seq
        description: Helsinki-NLP/opus-mt-en-de (Marian), English -> German
        languages: [en]                  # what it reads: the pairs' source languages
        source: {path: models/opus-mt-en-de}   # relative to this file's folder
        params:
          pairs: [en-de]                 # the pairs it serves, source-target
          num_beams: 4
          max_new_tokens: 48             # the tiny stand-in decodes at most 64 positions; opus-mt has 512
          segment_words: 60
    """)
PARAMS = {"pairs": ["en-de"], "num_beams": 4, "max_new_tokens": 48, "segment_words": 60}
OPUS = "models:/opus-mt-en-de@champion"
# docs/translation.md, step 5: the job
JOB = textwrap.dedent("""\
    spark:
      profile: local
    input:
      path: texts.csv
      format: csv
      text_column: text
      id_column: id
    tasks:
      - {task: translate, target: de, source: auto, model: "models:/opus-mt-en-de@champion", column: text_de}
    output:
      path: output/texts_de
      format: parquet
      mode: overwrite
    """)
ROWS = [(1, "The weather is fine and the train was on time."),
        (2, "Quarterly profits at US media giant TimeWarner jumped 76% for the three months to December."),
        (3, "Die Regierung hat heute eine neue Schulpolitik angekündigt."),
        (4, "Le gouvernement a annoncé une nouvelle politique pour les écoles."),
        (5, "O tempo está bom hoje e o trem chegou na hora certa.")]


@pytest.fixture(scope="module")
def example(workdir) -> Path:
    """The example's folder: the model folder (the hub download's stand-in) and my_models.yml."""
    folder = workdir / "translate-example"
    build_tiny_marian(folder / "models" / "opus-mt-en-de")
    (folder / "my_models.yml").write_text(CATALOG)
    return folder


@pytest.fixture(scope="module")
def registered(example, mlflow_registry) -> list[str]:
    """``python -m jobs.register_models --catalog my_models.yml`` (in process): the lines it printed."""
    from jobs.register_models import register_all

    return register_all(str(example / "my_models.yml"), None)


def test_catalog_entry_registers_with_its_languages_and_params(example, registered, capsys):
    from jobs.register_models import main

    assert registered == ["opus-mt-en-de: registered new version 1 (@champion); task=translate; reads en"]
    assert main(["--catalog", str(example / "my_models.yml")]) == 0  # idempotent: the same folder adds nothing
    assert capsys.readouterr().out.splitlines()[-1] == \
        "opus-mt-en-de: unchanged, kept version 1 (@champion); task=translate; reads en"
    model = resolve(OPUS, task="translate")
    assert (model.label, model.task, model.kind, model.languages, model.params) == \
        ("opus-mt-en-de/1", "translate", "hf_seq2seq", ("en",), PARAMS)
    tags = client().get_model_version("opus-mt-en-de", "1").tags
    assert tags["textspark.languages"] == "en" and json.loads(tags["textspark.params"]) == PARAMS


def test_register_folder_from_python_is_the_same_version(example, registered):
    from udfs.models.registry import register_folder

    assert register_folder("opus-mt-en-de", task="translate", kind="hf_seq2seq",
                           weights=example / "models" / "opus-mt-en-de", params=PARAMS,
                           languages=["en"]) == ("1", False)


def test_a_fixed_source_or_target_outside_the_pairs_fails_before_spark_work(registered):
    with pytest.raises(ConfigError) as target:
        translate("text", target="fr", source="en", model=OPUS)
    assert str(target.value) == "target: got 'fr'; allowed: de (model opus-mt-en-de/1 supports en->de)"
    with pytest.raises(ConfigError) as source:
        translate("text", target="de", source="fr", model=OPUS)
    assert str(source.value) == ("source: got 'fr'; allowed: auto or a source paired with 'de' by model "
                                 "opus-mt-en-de/1: en->de")


def _shown(out):
    """The output struct's fields, the generated text replaced by a marker (a tiny random model's words mean
    nothing) and the detector's confidence by whether it is above 0.5."""
    from pyspark.sql import functions as F

    t = lambda f: F.col(f"t.{f}")  # noqa: E731
    generated = t("translated") & (F.length(t("translation")) > 0)
    return out.select("id", F.when(generated, F.lit("<generated>")).otherwise(t("translation")).alias("translation"),
                      "t.source_language", "t.target_language", (t("source_confidence") > 0.5).alias("confident"),
                      "t.translated", "t.detector", "t.model", "t.error")


@pytest.mark.real  # source="auto": the real lid.176 detector (0.9 MB) says which rows are in en->de
def test_rows_in_the_registered_pair_translate_others_keep_a_reason(spark, registered):
    detector = f"textspark-lid176/{resolve(register_catalog_entry('textspark-lid176')).version}"
    df = spark.createDataFrame(ROWS, "id int, text string").coalesce(1)  # one Python worker loads the models
    out = df.select("id", translate("text", target="de", model=OPUS).alias("t"))
    expected = [(1, "<generated>", "en", "de", True, True, detector, "opus-mt-en-de/1", None),
                (2, "<generated>", "en", "de", True, True, detector, "opus-mt-en-de/1", None),
                (3, ROWS[2][1], "de", "de", True, False, detector, "opus-mt-en-de/1", None),
                (4, None, "fr", "de", True, None, detector, "opus-mt-en-de/1",
                 "unsupported language pair fr->de; supported pairs: en->de"),
                (5, None, "pt", "de", True, None, detector, "opus-mt-en-de/1",
                 "unsupported language pair pt->de; supported pairs: en->de")]
    assert_frame_equal(_shown(out), spark.createDataFrame(
        expected, "id int, translation string, source_language string, target_language string, confident boolean, "
                  "translated boolean, detector string, model string, error string"))


@pytest.mark.real
def test_the_job_yaml_writes_every_row(spark, registered, example, monkeypatch):
    import jobs.analyze as analyze
    from udfs.io.jobconf import load_job

    register_catalog_entry("textspark-lid176")
    monkeypatch.chdir(example)
    (example / "texts.csv").write_text("id,text\n1,The weather is fine and the train was on time.\n"
                                       "2,Die Regierung hat heute eine neue Schulpolitik angekündigt.\n"
                                       '3,"Le gouvernement a annoncé une nouvelle politique pour les écoles."\n')
    (example / "translate_de.yml").write_text(JOB)
    summary = analyze.run(load_job("translate_de.yml"), spark=spark)
    assert summary["rows"] == 3
    out = spark.read.parquet(str(example / "output" / "texts_de")).withColumnRenamed("text_de", "t")
    got = [(r.id, r.translation, r.source_language, r.translated, r.model, r.error)
           for r in _shown(out).orderBy("id").collect()]
    assert got == [("1", "<generated>", "en", True, "opus-mt-en-de/1", None),
                   ("2", "Die Regierung hat heute eine neue Schulpolitik angekündigt.", "de", False,
                    "opus-mt-en-de/1", None),
                   ("3", None, "fr", None, "opus-mt-en-de/1",
                    "unsupported language pair fr->de; supported pairs: en->de")]


# ---- NLLB / M2M100: src_lang and the target language forced as the first generated token ----------------

def _spm() -> bytes:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS + PT_CORPUS), model_writer=buf, vocab_size=150,
                                   model_type="unigram", minloglevel=2, bos_id=0, pad_id=1, eos_id=2, unk_id=3)
    return buf.getvalue()


def _m2m_model(tokenizer, folder: Path) -> Path:
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    torch.manual_seed(0)
    config = M2M100Config(vocab_size=len(tokenizer) + 256, d_model=32, encoder_layers=2, decoder_layers=2,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                          max_position_embeddings=MAX_TOKENS, bos_token_id=0, pad_token_id=1, eos_token_id=2,
                          decoder_start_token_id=2)  # + 256: room for the language tokens
    tokenizer.save_pretrained(folder)
    M2M100ForConditionalGeneration(config).save_pretrained(folder)
    return folder


def build_tiny_nllb(folder: Path) -> Path:
    """A tiny random NLLB: the real NllbTokenizer (FLORES-200 codes eng_Latn, deu_Latn, ...) on a tiny
    sentencepiece model; loads back as NllbTokenizerFast."""
    from transformers import NllbTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    spm_file = folder.parent / f"{folder.name}.spm"
    spm_file.write_bytes(_spm())
    tokenizer = NllbTokenizer(vocab_file=str(spm_file), src_lang="eng_Latn", tgt_lang="deu_Latn",
                              model_max_length=MAX_TOKENS)
    _m2m_model(tokenizer, folder)
    spm_file.unlink()
    return folder


def build_tiny_m2m100(folder: Path) -> Path:
    """A tiny random M2M100: the real M2M100Tokenizer (``__de__`` language tokens, special as in the hub's
    facebook/m2m100_418M) on a tiny sentencepiece model."""
    from transformers import M2M100Tokenizer
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

    folder.mkdir(parents=True, exist_ok=True)
    spm_bytes = _spm()
    (folder / "sentencepiece.bpe.model").write_bytes(spm_bytes)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    (folder / "vocab.json").write_text(json.dumps({sp.id_to_piece(i): i for i in range(sp.get_piece_size())}))
    tokenizer = M2M100Tokenizer(vocab_file=str(folder / "vocab.json"), spm_file=str(folder / "sentencepiece.bpe.model"),
                                src_lang="en", tgt_lang="de", model_max_length=MAX_TOKENS,
                                additional_special_tokens=[f"__{c}__" for c in FAIRSEQ_LANGUAGE_CODES["m2m100"]])
    return _m2m_model(tokenizer, folder)


def _first_tokens(model, source: str, target: str, text: str) -> tuple[list[str], list[str]]:
    """(first and last input token, first two generated tokens) for ``text`` in ``source``->``target``."""
    import torch

    prefix, forced = model._language_setup(source, target)
    ids = model._ids([text], prefix)[0]
    out = model.model.generate(input_ids=torch.tensor([ids]), forced_bos_token_id=forced, max_new_tokens=3,
                               num_beams=1, do_sample=False)[0].tolist()
    tokens = model.tokenizer.convert_ids_to_tokens
    return tokens([ids[0], ids[-1]]), tokens(out[:2])


def test_nllb_registered_from_a_catalog_forces_the_flores_code(workdir, mlflow_registry):
    from jobs.register_models import register_all
    from tests.helpers import load_direct

    folder = workdir / "nllb-example"
    build_tiny_nllb(folder / "models" / "nllb-200-distilled-600M")
    (folder / "nllb.yml").write_text(textwrap.dedent("""\
        models:
          nllb-en-de:
            task: translate
            kind: hf_seq2seq
            languages: [en, de]
            source: {path: models/nllb-200-distilled-600M}
            params:
              pairs: [en-de, de-en]      # ISO 639-1 pairs; the backend maps en -> eng_Latn, de -> deu_Latn
              max_new_tokens: 48
        """))
    assert register_all(str(folder / "nllb.yml"), None) == [
        "nllb-en-de: registered new version 1 (@champion); task=translate; reads de, en"]
    model = load_direct("models:/nllb-en-de@champion")
    assert (type(model.tokenizer).__name__, model.family, model.pairs) == \
        ("NllbTokenizerFast", "nllb", ("en-de", "de-en"))
    assert _first_tokens(model, "en", "de", "The match ended in a draw.") == (["eng_Latn", "</s>"],
                                                                               ["</s>", "deu_Latn"])
    assert _first_tokens(model, "de", "en", "Die Regierung hat heute.") == (["deu_Latn", "</s>"],
                                                                            ["</s>", "eng_Latn"])
    assert isinstance(model.translate(["The match ended in a draw."], "en", "de")[0], str)
    with pytest.raises(ValueError, match=r"^unsupported language pair en->fr; supported: en-de, de-en$"):
        model.translate(["x"], "en", "fr")


def test_m2m100_forces_the_language_token_and_needs_declared_pairs(workdir):
    from udfs.models.backends.seq2seq import Seq2Seq

    folder = build_tiny_m2m100(workdir / "tiny-m2m100")
    model = Seq2Seq(folder, pairs=["en-de"], num_beams=2, max_new_tokens=8)
    assert (model.family, model.pairs) == ("m2m_100", ("en-de",))
    assert _first_tokens(model, "en", "de", "The match ended in a draw.") == (["__en__", "</s>"], ["</s>", "__de__"])
    out = model.translate(["The match ended in a draw."], "en", "de")[0]
    assert "__de__" not in out  # the language token is special: not in the text
    # no pairs declared: an M2M100 serves none (an NLLB gets every pair of its built-in FLORES codes)
    assert Seq2Seq(folder, num_beams=1, max_new_tokens=4).pairs == ()


def test_a_pair_whose_code_is_no_language_token_is_refused_not_forced_as_a_word(workdir):
    """NLLB maps ISO codes through a built-in table (en -> eng_Latn); a code outside it (fi) used to be passed
    as is, and "fi" is an ordinary subword of the vocabulary: the model was silently forced to start with it."""
    from udfs.models.backends.seq2seq import Seq2Seq

    folder = build_tiny_nllb(workdir / "tiny-nllb-fi")
    unmapped = Seq2Seq(folder, pairs=["en-fi"], num_beams=1, max_new_tokens=4)
    assert unmapped.tokenizer.convert_tokens_to_ids("fi") != unmapped.tokenizer.unk_token_id  # a real subword
    with pytest.raises(ValueError) as refused:
        unmapped.translate(["The match ended in a draw."], "en", "fi")
    assert str(refused.value) == ("language 'fi' maps to 'fi', not one of this nllb model's language codes; map it "
                                  "in the catalog entry's params.languages (NLLB: a FLORES-200 code, e.g. "
                                  "{fi: fin_Latn})")
    mapped = Seq2Seq(folder, pairs=["en-fi"], languages={"fi": "fin_Latn"}, num_beams=1, max_new_tokens=4)
    assert _first_tokens(mapped, "en", "fi", "The match ended in a draw.") == (["eng_Latn", "</s>"],
                                                                               ["</s>", "fin_Latn"])
    m2m = Seq2Seq(build_tiny_m2m100(workdir / "tiny-m2m100-xx"), pairs=["en-xx"], num_beams=1, max_new_tokens=4)
    with pytest.raises(ValueError, match=r"^language 'xx' maps to 'xx', not one of this m2m_100 model's"):
        m2m.translate(["The match ended in a draw."], "en", "xx")
