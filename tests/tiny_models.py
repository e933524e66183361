"""Tiny randomly initialised models built in a second, with tokenizers trained on the fly: a BERT encoder,
BERT sequence classifiers (NLI, N-star ratings) and the layers of an embedding head.

They exercise the real code paths (tokenizer, model.forward, pooling, batching) without any download.
Encoder-decoder models (T5, BART, Marian) are in tests/tiny_seq2seq.py.
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


def build_tiny_classifier(folder: Path, labels: list[str], seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT sequence classifier whose config names ``labels`` (id2label in order) +
    tokenizer, saved in Hugging Face layout."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = train_wordpiece()
    id2label = dict(enumerate(labels))
    config = tiny_bert_config(len(tokenizer), num_labels=len(labels), id2label=id2label,
                              label2id={v: k for k, v in id2label.items()})
    folder.mkdir(parents=True, exist_ok=True)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_nli(folder: Path, seed: int = 0) -> Path:
    """A tiny random NLI model: entailment / neutral / contradiction (zero-shot classification by NLI)."""
    return build_tiny_classifier(folder, ["entailment", "neutral", "contradiction"], seed=seed)


STAR_LABELS = [f"{i} stars" for i in range(1, 6)]


def build_tiny_stars(folder: Path, seed: int = 2) -> Path:
    """A tiny random 5-class "N stars" rating model (labels STAR_LABELS)."""
    return build_tiny_classifier(folder, STAR_LABELS, seed=seed)


def random_head_layers(seed: int, widths: list[int]):
    """Dense layers [(W, b), ...] with normal random float32 weights for an embedding head whose layer
    widths are ``widths`` (input first): [32, 8, 3] -> W 32x8, b 8, W 8x3, b 3, drawn in that order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(n_in, n_out)).astype(np.float32), rng.normal(size=n_out).astype(np.float32))
            for n_in, n_out in zip(widths, widths[1:])]
