"""Throughput of textspark's embed and sentiment UDFs against the usual ways to run a transformer on Spark.

    .venv/bin/python bench/throughput.py [--rows 1100] [--article-share 0.1] [--skip-slow]   (also: make bench)
    .venv/bin/python bench/throughput.py --batch-shapes [--rows 2000] [--token-budgets 4096,512]
                                         (only the fixed vs variable batch shapes section, in process)

One process, one SparkSession (local[2]: the machine's 2 cores, the project's conf/spark/local.yml settings),
one real mixed-length corpus (tweets with a share of BBC articles; the default one article in ten is the mix
the issue measured: sorting by length alone gave x4.4 there), one model (``--encoder``: the registered
all-MiniLM-L6-v2, or textspark-e5-small, the multilingual default, 12 layers: run both for the pair of rows/s).
Prints rows/s and ratios for:
  textspark       embed() UDF: token-budget length-sorted batches, auto precision, 1 torch thread per worker
  plain loop      HF tokenizer + model in this process, fp32, fixed batches of 64 in input order, 2 threads
  naive UDF       pandas UDF that loads the model inside its body, batches of 64 in input order
  predict_batch   pyspark.ml.functions.predict_batch_udf, batch_size 64 (model cached per worker)
  mlflow          mlflow.pyfunc.spark_udf on the same registered model version (textspark's own pyfunc: fp32)
  mlflow (ST)     mlflow.pyfunc.spark_udf on the same weights saved with mlflow's sentence_transformers flavor
                  (the usual MLflow way to serve this model; SentenceTransformer.encode, batch_size 32)
then useful FLOP/s (2 x non-embedding params x real tokens + attention) against this machine's measured
fp32 and bf16 matmul FLOP/s on 2 threads, the bf16-vs-fp32 accuracy delta (embedding cosine, labels), and
one worker's view in process (tokenizing's share; fp32 / bf16 / int8 dynamic quantization: speed, cosine),
the encoder's fixed batch shapes against variable ones (speed, and rows whose vector differs between two
batchings of the same rows),
the default sentiment model (textspark vs mlflow spark_udf), and unless --skip-slow: embed + sentiment +
zero-shot together vs each alone (bench/multitask.py) and the fixed cost per Spark task (bench/fixed_cost.py).
Every Spark variant gets a warm-up pass on 64 rows in 2 partitions first (JVM and Python workers started; models
cached where the variant caches them), and each timed pass evaluates the UDF exactly once per row (a plain
collect, sorted by id afterwards in Python: an ``orderBy`` would run the UDF a second time in Spark's
range-partition sampling job). Ratios come from one run; absolute numbers on a shared machine mean little.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.register_models import register_entry  # noqa: E402
from udfs.models.catalog import load_catalog  # noqa: E402
from udfs.platform import get_spark, setup_environment  # noqa: E402
from bench.common import corpus, matmul_flops, useful_flops  # noqa: E402

BATCH = 64


def registered_weights(reference: str) -> Path:
    """The Hugging Face folder of a registered version, from this host's model cache (a converted model has no
    source folder of its own)."""
    from udfs.models.loading import local_folder
    from udfs.models.registry import resolve

    return local_folder(resolve(reference)) / "weights"


def mean_pool(torch, hidden, mask):
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def plain_loop(weights: Path, texts: list[str], threads: int = 2) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(str(weights))
    model = AutoModel.from_pretrained(str(weights)).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), BATCH):
            enc = tok(texts[i:i + BATCH], padding=True, truncation=True, max_length=256, return_tensors="pt")
            out.append(mean_pool(torch, model(**enc).last_hidden_state, enc["attention_mask"]).numpy())
    return np.concatenate(out)


def naive_udf(weights: str):
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<float>")
    def naive(texts: pd.Series) -> pd.Series:
        import torch
        from transformers import AutoModel, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(weights)  # loaded again for every Arrow batch
        model = AutoModel.from_pretrained(weights).eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), BATCH):
                enc = tok(texts.iloc[i:i + BATCH].tolist(), padding=True, truncation=True, max_length=256,
                          return_tensors="pt")
                out.extend(mean_pool(torch, model(**enc).last_hidden_state, enc["attention_mask"]).numpy())
        return pd.Series(out)

    return naive


def predict_batch(weights: str):
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    def make_predict_fn():
        import torch
        from transformers import AutoModel, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(weights)
        model = AutoModel.from_pretrained(weights).eval()

        def predict(inputs: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                enc = tok(inputs.tolist(), padding=True, truncation=True, max_length=256, return_tensors="pt")
                return mean_pool(torch, model(**enc).last_hidden_state, enc["attention_mask"]).numpy()

        return predict

    return predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()), batch_size=BATCH)


def sentence_transformers_model(weights: Path) -> str:
    """The same weights saved (not registered) with mlflow's sentence_transformers flavor, in a temp folder
    removed when the bench exits."""
    import atexit
    import shutil
    import tempfile

    import mlflow.sentence_transformers
    from sentence_transformers import SentenceTransformer

    folder = tempfile.mkdtemp(prefix="textspark-bench-st-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = str(Path(folder) / "model")
    mlflow.sentence_transformers.save_model(SentenceTransformer(str(weights), device="cpu"), path,
                                           pip_requirements=["sentence-transformers"])
    return path


def one_worker(weights: Path, texts: list[str]) -> None:
    """What one worker does with one partition's rows, in process on 1 thread: the share of tokenizing (done
    once per Arrow batch, before the model runs), and fp32 / bf16 / int8 (torch dynamic quantization of every
    Linear layer) in speed and in embedding cosine to fp32."""
    import torch

    from udfs.models.backends.hf import Encoder

    torch.set_num_threads(1)
    encoders = {"fp32": Encoder(weights, precision="fp32"), "bf16": Encoder(weights, precision="bf16")}
    int8 = Encoder(weights, precision="fp32")
    int8.model = torch.ao.quantization.quantize_dynamic(int8.model, {torch.nn.Linear}, dtype=torch.qint8)
    encoders["int8 (dynamic)"] = int8
    print(f"\none worker in process, {len(texts)} rows (one partition's worth), 1 thread:")
    start = time.perf_counter()
    encoders["bf16"].tokenize(texts)
    tokenize = time.perf_counter() - start
    seconds, vectors = {}, {}
    for name, encoder in encoders.items():
        encoder.embed(texts[:32])
        start = time.perf_counter()
        vectors[name] = encoder.embed(texts)  # tokenizes, then runs the model
        seconds[name] = time.perf_counter() - start
    for name in encoders:
        cos = np.sum(vectors[name] * vectors["fp32"], axis=1)
        print(f"  {name:<16} {len(texts) / seconds[name]:7.1f} rows/s (x{seconds['fp32'] / seconds[name]:.2f} fp32); "
              f"cosine to fp32 min {cos.min():.6f} mean {cos.mean():.6f}")
    print(f"  tokenizing: {tokenize * 1000:.0f} ms = {tokenize / seconds['bf16']:.1%} of the bf16 pass")


def batch_shapes(weights: Path, texts: list[str], *, precision: str = "auto", budgets=(4096, 512)) -> None:
    """Fixed batch shapes (udfs.models.backends.batching) against the variable ones they replaced, one worker
    in process on 1 thread: every variant encodes the same rows twice, as two batchings that Spark could hand
    a worker (input order in calls of 1024 rows, an Arrow batch; a shuffled order in calls of 300 rows,
    another partitioning), each call afresh (the encoder's memory of recent calls cleared, so no row is
    timed from memory), the variants taking turns call by call. Prints rows/s and the rows whose vector
    differs, bit for bit, between the two batchings."""
    import torch

    from udfs.models.backends.hf import Encoder
    from udfs.runtime.device import resolve_precision

    torch.set_num_threads(1)
    precision = resolve_precision(precision, "cpu")
    encoders = {}
    for budget in budgets:  # the first budget's variable shapes are the baseline (the catalog's MiniLM: 4096)
        for fixed in (False, True):
            encoders[f"{'fixed' if fixed else 'variable'} shapes, budget {budget}"] = Encoder(
                weights, precision=precision, token_budget=budget, fixed_shapes=fixed)
    order = np.random.default_rng(0).permutation(len(texts))
    batchings = {"input order, calls of 1024": [np.arange(i, min(i + 1024, len(texts)))
                                                for i in range(0, len(texts), 1024)],
                 "shuffled, calls of 300": [order[i:i + 300] for i in range(0, len(texts), 300)]}
    seconds = {name: dict.fromkeys(batchings, 0.0) for name in encoders}
    vectors = {name: {} for name in encoders}
    for encoder in encoders.values():
        encoder.embed(texts[:32])  # warm-up
    turn = 0
    for batching, calls in batchings.items():
        out = {name: np.zeros((len(texts), encoders[name].dim), dtype=np.float32) for name in encoders}
        for idx in calls:
            rows = [texts[i] for i in idx]
            names = list(encoders)
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                encoders[name].forget()
                start = time.perf_counter()
                out[name][idx] = encoders[name].embed(rows)
                seconds[name][batching] += time.perf_counter() - start
            turn += 1
        for name in encoders:
            vectors[name][batching] = out[name]
    print(f"\nbatch shapes, one worker in process, 1 thread, {precision}, {len(texts)} rows x 2 batchings "
          f"({' / '.join(batchings)}):")
    print(f"  {'':<30}" + "".join(f"{b:>28}" for b in batchings) + f"{'both':>16}   rows differing")
    base = next(iter(seconds.values()))
    for name in encoders:
        cells = [f"{len(texts) / seconds[name][b]:8.1f} rows/s (x{base[b] / seconds[name][b]:.3f})"
                 for b in batchings]
        both = sum(seconds[name].values())
        a, b = vectors[name].values()
        differ = int((a != b).any(axis=1).sum())
        print(f"  {name:<30}" + "".join(f"{c:>28}" for c in cells) + f"{2 * len(texts) / both:8.1f} (x"
              f"{sum(base.values()) / both:.3f})   {differ} of {len(texts)} (max |diff| {np.abs(a - b).max():.1e})")
    print("  (x: rows/s against the first line; rows differing: bit for bit, between the two batchings)")


def timed_spark(df, column) -> tuple[float, list]:
    """Seconds for one pass of ``column`` over ``df`` and its values in id order (one UDF call per row)."""
    start = time.perf_counter()
    rows = df.select("id", column.alias("v")).collect()
    seconds = time.perf_counter() - start
    return seconds, [r.v for r in sorted(rows, key=lambda r: r.id)]


def vectors(values: list) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def sentiment_section(spark, df, warm, texts: list[str], weights: Path | None) -> None:
    """The default sentiment model (MiniLM fine-tuned): textspark auto vs fp32 (speed, label agreement), and
    mlflow spark_udf on the same registered version."""
    from udfs import sentiment
    from udfs.models.catalog import load_catalog
    from udfs.errors import ModelReferenceError
    from udfs.models.registry import resolve

    try:
        resolved = resolve(load_catalog().default_reference("sentiment"))
    except ModelReferenceError as exc:
        print(f"\nsentiment: skipped ({exc})")
        return
    print(f"\nsentiment task, model {resolved.uri}:")
    timings, labels = {}, {}
    for precision in ("auto", "fp32"):
        column = lambda: sentiment("text", model=resolved.uri, precision=precision).label  # noqa: E731
        timed_spark(warm, column())
        timings[precision], labels[precision] = timed_spark(df, column())
        print(f"  textspark ({precision})     {len(texts) / timings[precision]:8.1f} rows/s  "
              f"({timings[precision]:.1f} s)")
    agree = np.mean([a == b for a, b in zip(labels["auto"], labels["fp32"])])
    print(f"  label agreement auto vs fp32: {agree:.4f} ({len(texts)} rows)")
    if weights is not None:
        import mlflow.pyfunc

        udf = mlflow.pyfunc.spark_udf(spark, resolved.uri, result_type="string", env_manager="local")
        timed_spark(warm, udf("text"))
        seconds, mlflow_labels = timed_spark(df, udf("text"))
        agree = np.mean([a == b for a, b in zip(mlflow_labels, labels["fp32"])])
        print(f"  mlflow spark_udf      {len(texts) / seconds:8.1f} rows/s  ({seconds:.1f} s); "
              f"textspark (auto) x{seconds / timings['auto']:.2f}; labels equal to textspark fp32: {agree:.4f}")


def more_sections(spark, ref: str) -> None:
    """The multi-task row (bench/multitask.py) and the fixed cost per Spark task (bench/fixed_cost.py), in
    this session; the sample job before/after and int8 have benches of their own."""
    from bench import fixed_cost, multitask
    from udfs.errors import ModelReferenceError
    from udfs.models.registry import resolve

    try:
        resolve(multitask.HEAD)  # the head shares MiniLM's pass with embed and zero-shot
        print(f"\nsentiment model: {multitask.HEAD}")
        multitask.report(multitask.measure(spark, 1000, multitask.HEAD), 1000)
    except ModelReferenceError as exc:
        print(f"\nmulti-task row: skipped ({exc}; bench/multitask.py trains it)")
    fixed_cost.report(*fixed_cost.measure(spark, ref, 1000, 200), 1000, 200)
    print("\nthe sample job before/after: bench/sample_job.py (exports an earlier commit with git); "
          "int8: bench/int8.py (not offered: no configuration keeps label agreement >= 99%)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1100)
    parser.add_argument("--article-share", type=float, default=0.1,
                        help="share of BBC articles in the corpus (the rest are tweets); 0.5 = half and half")
    parser.add_argument("--skip-slow", action="store_true", help="only textspark and the plain loop")
    parser.add_argument("--batch-shapes", action="store_true",
                        help="only the fixed vs variable batch shapes section (in process, no Spark)")
    parser.add_argument("--encoder", default="textspark-minilm",
                        help="catalog entry of the embedding model every variant runs (textspark-e5-small: the "
                             "multilingual default; its \"query: \" prefix is added to the baselines' texts)")
    parser.add_argument("--token-budgets", default="4096,512",
                        help="batch shapes section: the encoder token budgets to compare (the first: the baseline)")
    args = parser.parse_args(argv)
    budgets = tuple(int(b) for b in args.token_budgets.split(","))
    setup_environment()
    entry = load_catalog()[args.encoder]
    version, _ = register_entry(entry)
    ref = f"models:/{entry.name}/{version}"
    weights = registered_weights(ref)
    prefix = entry.params.get("prefix", "")  # textspark's encoder adds it; the baselines get prefixed texts
    data = corpus(args.rows, article_share=args.article_share)
    data["prefixed"] = prefix + data["text"]
    if args.batch_shapes:
        batch_shapes(weights, data["prefixed"].tolist(), budgets=budgets)
        return 0
    texts, prefixed = data["text"].tolist(), data["prefixed"].tolist()
    articles = int(round(args.rows * args.article_share))
    spark = get_spark("local")
    df = spark.createDataFrame(data).repartition(2).cache()
    df.count()
    # warm-up data spread over the same 2 partitions, so both Python workers start (and cache) before timing
    warm = spark.createDataFrame(data.head(64)).repartition(2)
    from udfs import embed

    results: dict[str, tuple[float, np.ndarray]] = {}

    def run(name, column_factory):
        timed_spark(warm, column_factory())  # warm-up: JVM, workers, per-worker caches
        seconds, values = timed_spark(df, column_factory())
        results[name] = (seconds, vectors(values))
        print(f"  {name:<22} {len(texts) / results[name][0]:8.1f} rows/s  ({results[name][0]:.1f} s)", flush=True)

    print(f"corpus: {len(texts)} rows ({len(texts) - articles} tweets + {articles} BBC articles), "
          f"model {ref}, Spark local[2], torch CPU")
    run("textspark (auto)", lambda: embed("text", model=ref, precision="auto"))
    run("textspark (fp32)", lambda: embed("text", model=ref, precision="fp32"))
    start = time.perf_counter()
    loop_vectors = plain_loop(weights, prefixed)
    results["plain loop"] = (time.perf_counter() - start, loop_vectors)
    print(f"  {'plain loop':<22} {len(texts) / results['plain loop'][0]:8.1f} rows/s  ({results['plain loop'][0]:.1f} s)")
    if not args.skip_slow:
        run("naive pandas UDF", lambda: naive_udf(str(weights))("prefixed"))
        run("predict_batch_udf", lambda: predict_batch(str(weights))("prefixed"))
        import mlflow.pyfunc

        run("mlflow spark_udf", lambda: mlflow.pyfunc.spark_udf(spark, ref, result_type="array<float>",
                                                               env_manager="local")("text"))
        st_path = sentence_transformers_model(weights)
        run("mlflow spark_udf (ST)", lambda: mlflow.pyfunc.spark_udf(spark, st_path, result_type="array<float>",
                                                                    env_manager="local")("prefixed"))

    ours = results["textspark (auto)"][0]
    print("\nratio textspark (auto) vs each (higher = textspark faster):")
    for name, (seconds, _) in results.items():
        if name != "textspark (auto)":
            print(f"  vs {name:<22} x{seconds / ours:6.2f}")

    flops = useful_flops(weights, prefixed)
    fp32_peak, bf16_peak = matmul_flops("fp32"), matmul_flops("bf16")
    from udfs.runtime.device import auto_precision

    print(f"\nuseful work: {flops / 1e9:.0f} GFLOP for the corpus; machine matmul peak on 2 threads: "
          f"fp32 {fp32_peak / 1e9:.0f} GFLOP/s, bf16 {bf16_peak / 1e9:.0f} GFLOP/s; auto precision here = "
          f"{auto_precision('cpu')}")
    for name in ("textspark (auto)", "textspark (fp32)", "plain loop"):
        achieved = flops / results[name][0]
        print(f"  {name:<22} {achieved / 1e9:7.1f} GFLOP/s = {achieved / bf16_peak:6.1%} of bf16 peak, "
              f"{achieved / fp32_peak:6.1%} of fp32 peak")

    from udfs.text import clean_texts

    # textspark (and its pyfunc) replace control characters with spaces before tokenizing; the baselines do not
    unchanged = (clean_texts(data["text"])[0] == data["text"]).to_numpy()
    print(f"  cosine to textspark fp32 ({int(unchanged.sum())} rows that cleaning leaves unchanged; "
          f"all {len(texts)} rows):")
    reference = results["textspark (fp32)"][1]
    for name in results:
        if name == "textspark (fp32)":
            continue
        other = results[name][1]
        cos = np.sum(reference * other, axis=1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(other, axis=1))
        print(f"    {name:<22} min {cos[unchanged].min():.6f} mean {cos[unchanged].mean():.6f}; "
              f"all rows min {cos.min():.6f}")
    one_worker(weights, prefixed[: len(prefixed) // 2])
    batch_shapes(weights, prefixed, budgets=budgets)
    sentiment_section(spark, df, warm, texts, weights if not args.skip_slow else None)
    if not args.skip_slow:
        more_sections(spark, ref)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
