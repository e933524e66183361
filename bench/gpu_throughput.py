"""GPU throughput: rows/s per task, batch size, and achieved FLOP/s against the device's measured matmul peak.

    .venv/bin/python bench/gpu_throughput.py [--rows 4000] [--tasks embed,sentiment,classify]

Ready for a GPU machine: when CUDA is available it starts Spark in local mode with the driver's GPUs
(conf/spark/gpu_discovery.sh) and one GPU per task, so the runtime takes the device Spark assigned; without
CUDA it measures the same on the CPU (what the test machine can do). For each task it prints rows/s through
the textspark UDF, the batches the token budget formed over the corpus (rows per forward pass), and for the
encoder-based tasks the useful FLOP/s (2 x non-embedding params x real tokens + attention) as a share of the
measured fp32 and bf16/fp16 matmul peak of the same device.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import corpus, matmul_flops, useful_flops  # noqa: E402
from udfs.platform import PROJECT_ROOT, get_spark, setup_environment  # noqa: E402


def spark_conf(cuda: bool) -> dict:
    if not cuda:
        return {}
    script = str(PROJECT_ROOT / "conf" / "spark" / "gpu_discovery.sh")
    return {"spark.driver.resource.gpu.amount": 1, "spark.driver.resource.gpu.discoveryScript": script,
            "spark.task.resource.gpu.amount": 1, "spark.sql.execution.arrow.maxRecordsPerBatch": 4096}


def batch_shape(resolved, texts: list[str]) -> str:
    """Rows per forward pass that the model's token budget forms over this corpus."""
    from transformers import AutoTokenizer

    from udfs.models.backends.batching import token_budget_batches
    from udfs.models.loading import local_folder

    folder = local_folder(resolved) / "weights"
    if not (folder / "tokenizer_config.json").exists():
        return "n/a"
    params = resolved.params
    max_tokens = int(params.get("max_tokens", 256))
    lengths = [len(x) for x in AutoTokenizer.from_pretrained(str(folder))(texts, truncation=True,
                                                                          max_length=max_tokens)["input_ids"]]
    budget, max_batch = int(params.get("token_budget", 8192)), int(params.get("max_batch_size", 128))
    sizes = [len(b) for b in token_budget_batches(lengths, token_budget=budget, max_batch_size=max_batch)]
    return f"{np.mean(sizes):.0f} rows/batch (min {min(sizes)}, max {max(sizes)}; budget {budget} tokens)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--tasks", default="embed,sentiment,classify")
    args = parser.parse_args(argv)
    setup_environment()
    import torch

    import udfs
    from udfs.models.catalog import load_catalog
    from udfs.models.loading import local_folder
    from udfs.models.registry import resolve

    cuda = torch.cuda.is_available()
    device = "cuda:0" if cuda else "cpu"
    reduced = "bf16" if not cuda or torch.cuda.is_bf16_supported() else "fp16"
    peaks = {p: matmul_flops(p, device=device, n=8192 if cuda else 2048) for p in ("fp32", reduced)}
    print(f"device {torch.cuda.get_device_name(0) if cuda else 'CPU'}: matmul peak fp32 {peaks['fp32'] / 1e12:.2f} "
          f"TFLOP/s, {reduced} {peaks[reduced] / 1e12:.2f} TFLOP/s")
    catalog = load_catalog()
    data = corpus(args.rows)
    texts = data["text"].tolist()
    spark = get_spark("local", conf=spark_conf(cuda))
    df = spark.createDataFrame(data).repartition(spark.sparkContext.defaultParallelism).cache()
    df.count()
    calls = {"embed": lambda: udfs.embed("text", precision="auto"),
             "sentiment": lambda: udfs.sentiment("text", precision="auto"),
             "classify": lambda: udfs.classify("text", labels=["business", "entertainment", "politics", "sport",
                                                               "tech"], precision="auto")}
    for task in args.tasks.split(","):
        resolved = resolve(catalog.default_reference(task))
        column = calls[task]()
        df.limit(64).select(column).write.format("noop").mode("overwrite").save()  # warm-up
        start = time.perf_counter()
        df.select(calls[task]()).write.format("noop").mode("overwrite").save()
        seconds = time.perf_counter() - start
        line = f"{task:<10} {resolved.label:<28} {len(texts) / seconds:9.1f} rows/s  {batch_shape(resolved, texts)}"
        weights = local_folder(resolved) / "weights"
        if (weights / "config.json").exists():
            achieved = useful_flops(weights, texts) / seconds
            line += (f"\n{'':<10} useful {achieved / 1e9:.1f} GFLOP/s = {achieved / peaks[reduced]:.1%} of {reduced} "
                     f"peak, {achieved / peaks['fp32']:.1%} of fp32 peak")
        print(line, flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
