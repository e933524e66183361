"""Tiny randomly initialised encoder-decoder models (T5, BART, Marian) with tokenizers trained on the fly.

Each saves in Hugging Face layout in well under a second; generation output is gibberish but
deterministic, which is all the tests need: they compare paths (batched vs one by one, chunked vs manual).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from tests.tiny_models import CORPUS

PT_CORPUS = [
    "O jogo terminou empatado depois de um gol no fim.", "As ações subiram depois de lucros fortes.",
    "O ministro anunciou uma nova política para as escolas.", "Um novo telefone foi lançado hoje.",
    "O filme ganhou três prêmios no festival.", "Eu amo este produto, funciona muito bem!",
] * 4
MAX_TOKENS = 64


def _unigram_tokenizer(specials: list[str], template: str, vocab_size: int = 300):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(CORPUS + PT_CORPUS, trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                                        unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(s, tok.token_to_id(s)) for s in specials if s in template])
    names = {"<pad>": "pad_token", "</s>": "eos_token", "<unk>": "unk_token", "<s>": "bos_token"}
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=MAX_TOKENS,
                                   **{names[s]: s for s in specials})


def build_tiny_t5(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    tokenizer = _unigram_tokenizer(["<pad>", "</s>", "<unk>"], "$A </s>")
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return _save(folder, tokenizer, T5ForConditionalGeneration(config))


def build_tiny_bart(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    tokenizer = _unigram_tokenizer(["<s>", "<pad>", "</s>", "<unk>"], "<s> $A </s>")
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                        decoder_ffn_dim=64, max_position_embeddings=MAX_TOKENS, bos_token_id=0, pad_token_id=1,
                        eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2)
    return _save(folder, tokenizer, BartForConditionalGeneration(config))


def build_tiny_marian(folder: Path, seed: int = 0) -> Path:
    """Marian with the real MarianTokenizer (sentencepiece source/target models + vocab.json)."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS + PT_CORPUS), model_writer=buf, vocab_size=150,
                                   model_type="unigram", unk_id=2, bos_id=-1, eos_id=0, pad_id=1,
                                   unk_piece="<unk>", eos_piece="</s>", pad_piece="<pad>", minloglevel=2)
    staging = folder / "_spm"
    staging.mkdir(exist_ok=True)
    (staging / "source.spm").write_bytes(buf.getvalue())
    (staging / "target.spm").write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    (staging / "vocab.json").write_text(json.dumps({sp.id_to_piece(i): i for i in range(sp.get_piece_size())}))
    tokenizer = MarianTokenizer(source_spm=str(staging / "source.spm"), target_spm=str(staging / "target.spm"),
                                vocab=str(staging / "vocab.json"), source_lang="en", target_lang="pt",
                                model_max_length=MAX_TOKENS)
    config = MarianConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2,
                          encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                          decoder_ffn_dim=64, max_position_embeddings=MAX_TOKENS, pad_token_id=1, eos_token_id=0,
                          decoder_start_token_id=1, forced_eos_token_id=0)
    _save(folder, tokenizer, MarianMTModel(config))
    for f in staging.iterdir():
        f.unlink()
    staging.rmdir()
    return folder


def _save(folder: Path, tokenizer, model) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder
