"""Int8 for the default embedding model (all-MiniLM-L6-v2): which layers carry the error, which configuration pays.

    .venv/bin/python bench/int8.py [--rows 600] [--speed-rows 300] [--repeats 3] [--article-share 0.1] [--onnx]

One process, one torch thread, the catalog's textspark-minilm weights and encoder params through textspark's own
Encoder (token-budget length-sorted batches, 256 tokens max), ``--rows`` real texts (bench/common.corpus). Int8 =
torch dynamic quantization (x86 engine) of the encoder's Linear layers. Two schemes: "default" (what
quantize_dynamic gives: per-tensor weights, 7-bit activations, as nn.quantized.dynamic.Linear passes
reduce_range=True) and "pc8" (per-channel weights, full 8-bit activations: safe on VNNI CPUs).
  1. Sensitivity: ONE group (a layer's q/k/v, attention output, FFN input, FFN output; or that group in every
     layer) int8, the rest fp32: embedding cosine to fp32 (mean, min). Layers before the quantized one are not
     rerun (their fp32 outputs are cached). "sensitive": the fewest cells holding half the summed solo error.
  2. Configurations: speed on the first ``--speed-rows`` texts (best of ``--repeats``, configs interleaved) vs
     fp32 and vs bf16 (autocast: what "auto" picks on this AVX512-BF16 CPU); cosine to fp32; zero-shot agreement
     with fp32 (argmax cosine to the 5 BBC topics, each embedded with classify's default prompts by the same
     configuration; all rows, and the BBC articles alone); agreement with fp32 of a logistic regression head
     fitted on fp32 embeddings of the even rows (tweet sentiment / BBC topic labels), applied to the odd rows.
     Target: cosine mean >= 0.99, min >= 0.97, both agreements (all rows) >= 0.99.
  3. --onnx (onnxruntime + onnx from ``pip install --target /tmp/ort onnxruntime onnx``, on sys.path only then):
     torch.onnx.export; fp32 and quantize_dynamic int8 (per-tensor, per-channel), 1 thread, same Encoder.
Absolute rows/s on a shared machine mean little; ratios come from one run."""
from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import corpus  # noqa: E402

GROUPS = {"q/k/v": ("attention.self.query", "attention.self.key", "attention.self.value"),
          "attn.out": ("attention.output.dense",), "ffn.in": ("intermediate.dense",), "ffn.out": ("output.dense",)}
SCHEMES = {"default": dict(per_channel=False, reduce_range=True), "pc8": dict(per_channel=True, reduce_range=False)}
TOPICS = ["business", "entertainment", "politics", "sport", "tech"]


class Int8Linear(DynamicLinear):
    """torch's dynamic int8 Linear with the activation range as a choice (the stock module always passes
    reduce_range=True: 7-bit activations, needed against int16 saturation on CPUs without VNNI); a bf16 input
    (under autocast) is quantized from float32 and the output cast back."""
    reduce_range = True

    def forward(self, x):
        y = torch.ops.quantized.linear_dynamic(x.float(), self._packed_params._packed_params,
                                               reduce_range=self.reduce_range)
        return y.to(x.dtype)


def int8_linear(linear: torch.nn.Linear, per_channel: bool, reduce_range: bool) -> Int8Linear:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    linear.qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    q = Int8Linear.from_float(linear)
    del linear.qconfig
    q.reduce_range = reduce_range
    return q


def names(model, groups=tuple(GROUPS), skip=()) -> list[str]:
    """Names of the Linear modules of ``groups`` in every layer, but the (layer, group) cells in ``skip``."""
    return [f"encoder.layer.{i}.{s}" for i in range(len(model.encoder.layer)) for g in groups if (i, g) not in skip
            for s in GROUPS[g]]


def quantized(model, which: list[str], per_channel: bool, reduce_range: bool):
    """A copy of ``model`` with the Linear modules named in ``which`` replaced by int8 ones."""
    model = copy.deepcopy(model)
    for name in which:
        parent, child = name.rsplit(".", 1)
        owner = model.get_submodule(parent)
        setattr(owner, child, int8_linear(getattr(owner, child), per_channel, reduce_range))
    return model


def pooled(hidden, mask) -> np.ndarray:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), p=2, dim=1).numpy()


def layer_inputs(encoder, texts):
    """Per Encoder batch: (rows, mask, fp32 inputs of every layer), so a layer's sensitivity reruns only it and
    the layers after it."""
    from udfs.models.backends.batching import pad_batch, token_budget_batches

    ids = encoder.tokenize(texts)
    out = []
    for rows in token_budget_batches([len(x) for x in ids], token_budget=encoder.token_budget,
                                     max_batch_size=encoder.max_batch_size):
        input_ids, mask = (torch.from_numpy(a) for a in pad_batch([ids[i] for i in rows], encoder.pad_id))
        states = encoder.model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
        out.append((rows, mask, states[:-1]))
    return out


def from_layer(model, batches, start: int, n: int, dim: int) -> np.ndarray:
    from transformers.modeling_attn_mask_utils import _prepare_4d_attention_mask_for_sdpa

    out = np.zeros((n, dim), dtype=np.float32)
    for rows, mask, states in batches:
        hidden = states[start]
        mask4 = _prepare_4d_attention_mask_for_sdpa(mask, hidden.dtype, tgt_len=hidden.shape[1])
        for layer in model.encoder.layer[start:]:
            hidden = layer(hidden, attention_mask=mask4)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        out[rows] = pooled(hidden, mask)
    return out


def sensitivity(encoder, texts, ref) -> dict:
    """{(scheme, layer, group): cosines to fp32} with one group quantized; layer "all" = that group everywhere."""
    model, n = encoder.model, len(texts)
    batches = layer_inputs(encoder, texts)
    check = np.abs(from_layer(model, batches, 0, n, encoder.dim) - ref).max()
    print(f"  (layer-wise rerun from cached inputs reproduces the Encoder's fp32 vectors to {check:.1e})")
    out = {}
    print(f"\n1. sensitivity: ONE group int8, the rest fp32; cosine to fp32 over {n} texts (mean / min)")
    print(f"  {'layer':<6}{'group':<10}" + "".join(f"{s + ' mean':>14}{'min':>9}" for s in SCHEMES))
    for layer in [*range(len(model.encoder.layer)), "all"]:
        for group in GROUPS:
            cells = []
            for scheme, kw in SCHEMES.items():
                if layer == "all":
                    vec = embed(encoder, quantized(model, names(model, (group,)), **kw), "fp32", texts)
                else:
                    which = [f"encoder.layer.{layer}.{s}" for s in GROUPS[group]]
                    vec = from_layer(quantized(model, which, **kw), batches, layer, n, encoder.dim)
                out[scheme, layer, group] = c = np.sum(vec * ref, axis=1)
                cells.append(f"{c.mean():14.5f}{c.min():9.4f}")
            print(f"  {layer!s:<6}{group:<10}" + "".join(cells), flush=True)
    encoder.model = model
    return out


def sensitive(sens: dict, scheme: str, layers: int, share: float = 0.5) -> list:
    """The fewest (layer, group) cells whose solo errors (1 - mean cosine) add up to ``share`` of the total."""
    cells = sorted(((1 - sens[scheme, i, g].mean(), (i, g)) for i in range(layers) for g in GROUPS), reverse=True)
    summed = np.cumsum([err for err, _ in cells])
    return [cell for _, cell in cells[:int(np.searchsorted(summed, share * summed[-1])) + 1]]


def embed(encoder, model, precision: str, texts) -> np.ndarray:
    encoder.model, encoder.precision = model, precision
    encoder.forget()
    return encoder.embed(texts)


class OrtModel:
    """An onnxruntime session that answers like the HF model for Encoder._forward."""

    def __init__(self, path: str):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids, attention_mask):
        feed = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        return types.SimpleNamespace(last_hidden_state=torch.from_numpy(self.session.run(None, feed)[0]))


def onnx_configs(model, folder: str) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class Hidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids, mask = torch.randint(1000, 5000, (2, 8)), torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0  # padding in the example, or the exporter traces the no-mask path
    fp32, axes = f"{folder}/fp32.onnx", {0: "batch", 1: "tokens"}
    # .eval() on the wrapper: the exporter restores the wrapper's training flag recursively afterwards
    torch.onnx.export(Hidden(model).eval(), (ids, mask), fp32, dynamo=False, opset_version=17,
                      input_names=["input_ids", "attention_mask"], output_names=["hidden"],
                      dynamic_axes={"input_ids": axes, "attention_mask": axes, "hidden": axes})
    out = {"ORT fp32": (OrtModel(fp32), "fp32")}
    for per_channel in (False, True):
        path = f"{folder}/int8{'_pc' if per_channel else ''}.onnx"
        with contextlib.chdir(folder):  # the quantizer leaves shape-inference temp files in the working directory
            quantize_dynamic(fp32, path, per_channel=per_channel, weight_type=QuantType.QInt8)
        out[f"ORT int8{', per-channel' if per_channel else ''}"] = (OrtModel(path), "fp32")
    return out


def text_labels(texts) -> np.ndarray:
    from udfs.io.datasets import bbc_news, tweets

    tw, bbc = tweets(), bbc_news()
    known = {t: f"tweet {lab}" for t, lab in zip(tw["text"], tw["label"])}
    known.update({t: f"bbc {lab}" for t, lab in zip(bbc["text"], bbc["label"])})
    return np.array([known[t] for t in texts])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--speed-rows", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--article-share", type=float, default=0.1)
    parser.add_argument("--onnx", action="store_true", help="also ONNX Runtime fp32 / int8 (needs --ort-path)")
    parser.add_argument("--ort-path", default="/tmp/ort", help="folder holding onnxruntime and onnx")
    args = parser.parse_args(argv)
    from sklearn.linear_model import LogisticRegression

    from udfs.models.backends.hf import ENCODER_KEYS, Encoder
    from udfs.models.catalog import load_catalog
    from udfs.tasks.classify import DEFAULT_TEMPLATES

    torch.set_num_threads(1)
    torch.backends.quantized.engine = "x86"
    entry = load_catalog()["textspark-minilm"]
    encoder = Encoder(entry.source_dir(), precision="fp32", **{k: v for k, v in entry.params.items()
                                                               if k in ENCODER_KEYS})
    texts = corpus(args.rows, article_share=args.article_share)["text"].tolist()
    speed_texts = texts[:args.speed_rows]
    fp32, layers = encoder.model, len(encoder.model.encoder.layer)
    print(f"model {entry.name} ({entry.source_dir()}), {len(texts)} texts "
          f"({sum(map(len, encoder.tokenize(texts)))} tokens), 1 torch thread, quantized engine "
          f"{torch.backends.quantized.engine}, {torch.backends.cpu.get_cpu_capability()}")
    with torch.inference_mode():
        ref = embed(encoder, fp32, "fp32", texts)
        sens = sensitivity(encoder, texts, ref)
    worst = {s: sensitive(sens, s, layers) for s in SCHEMES}
    for scheme, cells in worst.items():
        print(f"  {scheme}: half of the summed solo error is in {', '.join(f'L{i} {g}' for i, g in cells)}")

    def q(scheme="pc8", groups=tuple(GROUPS), skip=(), **kw):
        return quantized(fp32, names(fp32, groups, skip=skip), **(kw or SCHEMES[scheme]))

    no_ffn_out = ("q/k/v", "attn.out", "ffn.in")
    configs = {
        "fp32": (fp32, "fp32"), "bf16 (autocast = auto)": (fp32, "bf16"),
        "int8 all (torch default)": (q("default"), "fp32"),
        "int8 all but sensitive (default)": (q("default", skip=worst["default"]), "fp32"),
        "int8 ffn.in only (default)": (q("default", ("ffn.in",)), "fp32"),
        "int8 all, per-channel w": (q(per_channel=True, reduce_range=True), "fp32"),
        "int8 all, 8-bit act": (q(per_channel=False, reduce_range=False), "fp32"),
        "int8 all, pc8": (q(), "fp32"),
        "int8 all but sensitive (pc8)": (q(skip=worst["pc8"]), "fp32"),
        "int8 pc8 but ffn.out (fp32)": (q(groups=no_ffn_out), "fp32"),
        "int8 pc8 but ffn.out; bf16 rest": (q(groups=no_ffn_out), "bf16"),
        "int8 all pc8; bf16 rest": (q(), "bf16"),
    }
    if args.onnx:
        sys.path.append(args.ort_path)  # appended: the venv's numpy etc. stay first
        configs.update(onnx_configs(fp32, tempfile.mkdtemp(prefix="textspark-int8-")))

    prompts = [t.format(label) for label in TOPICS for t in DEFAULT_TEMPLATES["embedding"]]
    labels = text_labels(texts)
    bbc = np.char.startswith(labels, "bbc")
    train, test = np.arange(0, len(texts), 2), np.arange(1, len(texts), 2)
    head = LogisticRegression(max_iter=3000).fit(ref[train], labels[train])
    results, seconds = {}, {name: float("inf") for name in configs}
    with torch.inference_mode():
        for name, (model, precision) in configs.items():
            vec = embed(encoder, model, precision, texts)
            lab = embed(encoder, model, precision, prompts).reshape(len(TOPICS), -1, encoder.dim).mean(1)
            results[name] = (vec, vec @ lab.T, head.predict(vec[test]))
            embed(encoder, model, precision, texts[:32])  # warm-up at this config
        for _ in range(args.repeats):  # interleaved, so a noisy neighbour hits every config alike
            for name, (model, precision) in configs.items():
                start = time.perf_counter()
                embed(encoder, model, precision, speed_texts)
                seconds[name] = min(seconds[name], time.perf_counter() - start)

    _, zs_ref, lr_ref = results["fp32"]
    margin, zs_ref = np.ptp(np.sort(zs_ref, axis=1)[:, -2:], axis=1), zs_ref.argmax(1)  # fp32 top-1 minus top-2
    print(f"\n2. configurations: speed on {len(speed_texts)} texts (best of {args.repeats}, 1 thread), accuracy on "
          f"{len(texts)} (zero-shot: all rows, and the {bbc.sum()} BBC articles; LR head: {len(test)} odd rows,"
          f" fp32 accuracy {np.mean(lr_ref == labels[test]):.3f} on {len(set(labels))} labels)")
    print(f"  {'configuration':<34}{'rows/s':>7}{'x fp32':>8}{'x bf16':>8}{'cos mean':>10}{'cos min':>9}"
          f"{'zero-shot':>10}{'(bbc)':>7}{'LR head':>9}  meets")
    bf16 = seconds["bf16 (autocast = auto)"]
    for name, (vec, zs, lr) in results.items():
        c, same = np.sum(vec * ref, axis=1), zs.argmax(1) == zs_ref
        zs_agree, zs_bbc, lr_agree = same.mean(), same[bbc].mean(), np.mean(lr == lr_ref)
        ok = c.mean() >= 0.99 and c.min() >= 0.97 and zs_agree >= 0.99 and lr_agree >= 0.99
        print(f"  {name:<34}{len(speed_texts) / seconds[name]:7.1f}{seconds['fp32'] / seconds[name]:8.2f}"
              f"{bf16 / seconds[name]:8.2f}{c.mean():10.5f}{c.min():9.4f}{zs_agree:10.4f}{zs_bbc:7.3f}{lr_agree:9.4f}  "
              f"{'yes' if ok else 'no'}")
    print(f"  fp32 zero-shot top-1 minus top-2 cosine: tweets median {np.median(margin[~bbc]):.4f} (under 0.005: "
          f"{np.mean(margin[~bbc] < 0.005):.1%}), BBC articles median {np.median(margin[bbc]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
