"""``method: finetune``: full fine-tuning of the encoder with a classification layer
(AutoModelForSequenceClassification), on the driver (its GPU where it has one); registered as kind
``hf_classifier``.

Rows from several domains (``domain_column``): ``finetune.domain_repeats`` repeats a small domain's training
rows (each epoch sees them that many times) and ``finetune.class_weight: balanced`` weighs every class of a
domain the same within it, each domain keeping its (repeated) row count as its share of the loss.

Cost: a batch is padded to its longest row, so random batches of short tweets mixed with long reviews are mostly
padding. ``finetune.group_by_length`` (Hugging Face Trainer's option of that name) batches rows of similar length
within windows of 50 batches and shuffles the batches; ``finetune.precision`` runs the forward pass in bf16
autocast (weights and optimizer stay fp32) where the hardware computes bf16 natively (a GPU without bf16 trains
in fp32: fp16 would need loss scaling).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from udfs.errors import ConfigError
from udfs.models.backends.heads import domain_weights
from udfs.models.backends.hf_classifier import SequenceClassifier
from udfs.models.loading import local_folder
from udfs.runtime.device import resolve_precision
from udfs.runtime.progress import Steps
from udfs.training.data import Prepared
from udfs.training.settings import KIND_OF_METHOD, TrainSettings


def _fit_finetune(data: Prepared, s: TrainSettings, base, stage: Path):
    """Fine-tune on the training split, weights to ``stage``; as :func:`udfs.training.head._fit_head` returns."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    hyper = s.finetune_params()
    rows = data.df.toPandas()  # in partition order, which varies: sorted so the seed alone decides the fit
    rows = rows.sort_values(["split", "label", "text"], kind="stable", ignore_index=True)
    train_rows, test_rows = rows[rows["split"] == "train"], rows[rows["split"] == "test"]
    index = {label: i for i, label in enumerate(data.labels)}
    texts, y, w = training_rows(train_rows, index, hyper["domain_repeats"], hyper["class_weight"])
    weights = local_folder(base) / "weights"
    depth = int(getattr(AutoConfig.from_pretrained(str(weights)), "num_hidden_layers", 0))
    if hyper["frozen_layers"] > depth:  # before the weights load
        raise ConfigError("finetune.frozen_layers", hyper["frozen_layers"], f"0 to {depth} (the base model's layers)")
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
    freeze_lower_layers(model, int(hyper["frozen_layers"]))
    bs, epochs, max_length = int(hyper["batch_size"]), int(hyper["epochs"]), int(hyper["max_length"])
    lengths = np.array([len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]])
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the driver's GPU where it has one
    bf16 = resolve_precision(hyper["precision"], device) == "bf16" and (  # a GPU's fp16 would need a scaler
        device == "cpu" or torch.cuda.is_bf16_supported())
    model.to(device)
    steps = max(1, epochs * math.ceil(len(texts) / bs))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=float(hyper["learning_rate"]),
                            weight_decay=float(hyper["weight_decay"]))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(steps, float(hyper["warmup"])))
    gen = torch.Generator().manual_seed(s.seed)
    meter = Steps(f"fine-tuning {s.name} on {len(texts):,} rows", steps, epochs)
    model.train()
    for epoch in range(1, epochs + 1):
        for idx in epoch_batches(lengths, bs, gen, bool(hyper["group_by_length"])):
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(device)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**batch).logits.float()
            target = torch.tensor(y[idx], dtype=torch.long, device=device)
            loss = (torch.nn.functional.cross_entropy(logits, target, reduction="none")
                    * torch.tensor(w[idx], dtype=torch.float32, device=device)).mean()
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            meter.step(epoch, loss.item())
    model.eval().to("cpu")
    stage.mkdir(parents=True)
    model.save_pretrained(stage)
    tokenizer.save_pretrained(stage)
    # served in the base model's precision (MiniLM's: auto, bf16 where native), as a head on it is; the held-out
    # rows are scored the way the UDFs will score them on this host
    params = {"labels": data.labels, "max_tokens": int(hyper["predict_max_length"] or hyper["max_length"]),
              "base_model": base.label, "precision": base.params.get("precision", "fp32")}
    served = SequenceClassifier(stage, **{**params, "precision": resolve_precision(params["precision"], "cpu")})
    proba = served.predict_proba(test_rows["text"].tolist())
    pred = [data.labels[j] for j in proba.argmax(axis=1)]
    return KIND_OF_METHOD["finetune"], params, test_rows["label"].tolist(), pred, {"hyper": hyper}


def training_rows(rows: pd.DataFrame, index: dict[str, int], repeats: dict[str, int],
                  class_weight: str | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The training split as fine-tuning sees it: (texts, label indices, row weights of mean 1), each domain's
    rows repeated ``repeats[domain]`` times, classes balanced within each domain with ``class_weight``."""
    domains = rows["domain"] if "domain" in rows else pd.Series("", index=rows.index)
    present = sorted(set(domains))
    if repeats and ("domain" not in rows or set(repeats) - set(present)):
        raise ConfigError("finetune.domain_repeats", repeats,
                          f"domains of the training table: {', '.join(present)}" if "domain" in rows
                          else "an empty mapping (no domain_column)")
    parts = [rows[domains == d] for d in present for _ in range(repeats.get(d, 1))]
    table = pd.concat(parts, ignore_index=True) if parts else rows.iloc[:0]
    y = table["label"].map(index).to_numpy()
    w = np.ones(len(table), dtype=np.float32)
    if class_weight == "balanced":  # per domain, so each keeps its share: domain_weights of it alone
        dom = table["domain"].to_numpy() if "domain" in table else np.full(len(table), "")
        for d in set(dom.tolist()):
            w[dom == d] = domain_weights(y[dom == d], dom[dom == d])
    return table["text"].tolist(), y, w


def freeze_lower_layers(model, n: int) -> None:
    """Freeze the embeddings and the ``n`` lowest transformer layers of ``model`` (a Hugging Face model with a
    classification layer): only the layers above, the pooler and the classifier train, and the backward pass
    stops at the first trained layer."""
    import torch

    if n == 0:
        return
    base = model.base_model
    depth = int(getattr(model.config, "num_hidden_layers", 0))
    stack = next((m for m in base.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == depth), None)
    if stack is None:
        raise ConfigError("finetune.frozen_layers", n, "0: the base model's layers were not found")
    embeddings = getattr(base, "embeddings", None)
    for module in [base.get_input_embeddings() if embeddings is None else embeddings, *stack[:n]]:
        module.requires_grad_(False)


def epoch_batches(lengths: np.ndarray, batch_size: int, gen, group_by_length: bool) -> list[list[int]]:
    """One epoch's batches of row indices, from a seeded shuffle (``gen``: a torch.Generator). With
    ``group_by_length`` the shuffled rows are sorted by ``lengths`` within windows of 50 batches, cut into batches,
    and the batches shuffled: each batch pads little, every batch size but a window's last stays ``batch_size``."""
    import torch

    perm = torch.randperm(len(lengths), generator=gen).tolist()
    if not group_by_length:
        return [perm[s:s + batch_size] for s in range(0, len(perm), batch_size)]
    window, batches = 50 * batch_size, []
    for s in range(0, len(perm), window):
        rows = sorted(perm[s:s + window], key=lambda i: lengths[i])  # stable: equal lengths keep the shuffle
        batches += [rows[b:b + batch_size] for b in range(0, len(rows), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def schedule(steps: int, warmup: float):
    """Learning-rate factor per step: linear warm-up over the first ``warmup`` share of steps, then linear decay."""
    ramp = max(1.0, warmup * steps)
    return lambda step: min(1.0, (step + 1) / ramp) * max(0.0, 1.0 - step / steps)  # ramp 1: no warm-up
