"""``method: finetune``: full fine-tuning of the encoder with a classification layer
(AutoModelForSequenceClassification), on the driver; registered as kind ``hf_classifier``."""
from __future__ import annotations

import math
from pathlib import Path

from udfs.models.backends.hf_classifier import SequenceClassifier
from udfs.models.loading import local_folder
from udfs.training.data import Prepared
from udfs.training.settings import TrainSettings


def _fit_finetune(data: Prepared, s: TrainSettings, base, stage: Path):
    """Fine-tune on the training split, weights to ``stage``; as :func:`udfs.training.head._fit_head` returns."""
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    hyper = s.finetune_params()
    rows = data.df.toPandas()
    train_rows, test_rows = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    index = {label: i for i, label in enumerate(data.labels)}
    weights = local_folder(base) / "weights"
    torch.manual_seed(s.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(weights))
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "some weights newly initialized": expected, it is the new head
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(weights), num_labels=len(data.labels), id2label=dict(enumerate(data.labels)), label2id=index,
            ignore_mismatched_sizes=True)
    finally:
        transformers.logging.set_verbosity(verbosity)
    texts, y = train_rows["text"].tolist(), train_rows["label"].map(index).to_numpy()
    bs, epochs = int(hyper["batch_size"]), int(hyper["epochs"])
    steps = max(1, epochs * math.ceil(len(texts) / bs))
    opt = torch.optim.AdamW(model.parameters(), lr=float(hyper["learning_rate"]),
                            weight_decay=float(hyper["weight_decay"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / steps))
    gen = torch.Generator().manual_seed(s.seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(texts), generator=gen).tolist()
        for start in range(0, len(texts), bs):
            idx = perm[start:start + bs]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=int(hyper["max_length"]), return_tensors="pt")
            loss = model(**batch, labels=torch.tensor(y[idx], dtype=torch.long)).loss
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
    model.eval()
    stage.mkdir(parents=True)
    model.save_pretrained(stage)
    tokenizer.save_pretrained(stage)
    params = {"labels": data.labels, "max_tokens": int(hyper["max_length"]), "base_model": base.label}
    served = SequenceClassifier(stage, **params)
    proba = served.predict_proba(test_rows["text"].tolist())
    pred = [data.labels[j] for j in proba.argmax(axis=1)]
    return "hf_classifier", params, test_rows["label"].tolist(), pred, {"hyper": hyper}
