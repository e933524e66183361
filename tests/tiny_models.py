"""Tiny randomly initialised Hugging Face models built in a second, with tokenizers trained on the fly.

They exercise the real code paths (tokenizer, model.forward, pooling, batching) without any download.
"""
from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The match ended in a draw after a late goal.", "Shares rose after the company reported strong profits.",
    "The minister announced a new policy on schools.", "A new phone with a faster chip was released today.",
    "The film won three awards at the festival.", "I love this product, it works great!",
    "Terrible service, I will never come back.", "The weather is fine and the train was on time.",
    "Parliament debated the budget for hours.", "The band played their new album live.",
    "Prices of oil and gas fell sharply this week.", "Scientists built a faster computer network.",
] * 4


def train_wordpiece(sentences=CORPUS, vocab_size: int = 400):
    """A BERT-style WordPiece tokenizer (PreTrainedTokenizerFast) trained on ``sentences``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(sentences, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]", model_max_length=128)


def tiny_bert_config(vocab_size: int, **overrides):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128, **overrides)


def build_tiny_encoder(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT encoder + tokenizer saved in Hugging Face layout."""
    import torch
    from transformers import BertModel

    torch.manual_seed(seed)
    tokenizer = train_wordpiece()
    model = BertModel(tiny_bert_config(len(tokenizer)))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder
