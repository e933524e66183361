"""How many partitions the inference stage gets: enough to keep every core busy, whatever the file layout.

A table stored as one file is read as one partition (a small Parquet file is one row group; a multi-line CSV
cannot be split), so without help one task on one core scores every row while the other cores wait. The
job therefore counts the rows of each input partition (one small Spark job: no model runs) and, when the
input's layout would leave cores idle, spreads the rows round-robin over ``slots`` partitions, where
``slots`` is the cluster's parallelism capped at one partition per ``MIN_ROWS_PER_PARTITION`` rows (a
30-row table stays in one partition: a second worker would only load a second model copy). An input whose
partitions already keep every slot busy (Spark runs partitions in index order on free slots; simulated
here) is left as it is: no shuffle. ``inference.partitions`` overrides the decision.

The cluster's parallelism is read without a SparkContext (works over Spark Connect): ``spark.default.
parallelism`` when set; else from ``spark.master`` (``local[N]``, ``local[N,F]``: N; ``local[*]``: this
machine's cores; ``local``: 1; ``local-cluster[n,c,m]``: n x c); else ``spark.executor.instances`` x
``spark.executor.cores`` (1 when unset). When none of these is readable (a remote Connect server that
hides them), the input's layout is kept and a warning names the settings that would spread it.
"""
from __future__ import annotations

import heapq
import logging
import math
import os
import re
from typing import Mapping

log = logging.getLogger(__name__)
MIN_ROWS_PER_PARTITION = 64  # below this many rows per core, spreading saves less than a model load costs
TOLERANCE = 1.1  # keep the input's layout when its slowest core has at most 10% more rows than an even split
PARALLELISM_KEYS = ("spark.default.parallelism", "spark.master", "spark.executor.instances", "spark.executor.cores")


def parallelism_from_conf(conf: Mapping[str, str | None], *, local_cores: int | None = None) -> int | None:
    """Task slots of the cluster from its settings (see the module docstring); None when they do not say."""
    if conf.get("spark.default.parallelism"):
        return int(conf["spark.default.parallelism"])
    master = (conf.get("spark.master") or "").strip()
    local = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master)
    if local:
        given = local.group(1)
        if given is None:
            return 1
        return int(given) if given != "*" else (local_cores or _local_cores())
    cluster = re.fullmatch(r"local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*\d+\s*\]", master)
    if cluster:
        return int(cluster.group(1)) * int(cluster.group(2))
    if conf.get("spark.executor.instances"):
        return int(conf["spark.executor.instances"]) * int(conf.get("spark.executor.cores") or 1)
    return None


def cluster_parallelism(spark) -> int | None:
    """The session's task slots, read through ``spark.conf`` (a classic or a Spark Connect session)."""
    conf = {}
    for key in PARALLELISM_KEYS:
        try:
            conf[key] = spark.conf.get(key, None)
        except Exception as exc:  # noqa: BLE001 - a Connect server may refuse to show a setting
            log.debug("cannot read %s: %s", key, exc)
    return parallelism_from_conf(conf)


def spread_to(sizes: list[int], slots: int | None, *, min_rows: int = MIN_ROWS_PER_PARTITION) -> int | None:
    """The number of partitions to spread ``sizes`` (rows per input partition, in partition order) over, or
    None when the input's layout already keeps ``min(slots, rows // min_rows)`` cores about equally busy."""
    rows = sum(sizes)
    if not slots:
        return None
    target = max(1, min(slots, rows // min_rows))
    if _makespan(sizes, target) <= TOLERANCE * math.ceil(rows / target):
        return None
    return target


def _makespan(sizes: list[int], slots: int) -> int:
    """Rows the busiest of ``slots`` cores scores when Spark hands partitions, in order, to the first free core."""
    finish = [0] * slots  # a min-heap of each core's finishing row count
    for size in sizes:
        heapq.heapreplace(finish, finish[0] + size)
    return max(finish)


def partition_sizes(df) -> list[int]:
    """Rows per non-empty partition of ``df``, in partition order (one Spark job that runs no model)."""
    from pyspark.sql import functions as F

    counts = df.groupBy(F.spark_partition_id().alias("partition")).count().collect()
    return [row["count"] for row in sorted(counts, key=lambda row: row["partition"])]


def inference_partitions(spark, df, partitions: int | None) -> int | None:
    """``partitions`` when given (``inference.partitions``); else how many partitions ``df`` should be spread
    over before inference, or None to keep its layout (see the module docstring). A streaming ``df`` keeps its
    layout: its rows cannot be counted ahead."""
    if partitions or df.isStreaming:
        return partitions
    slots = cluster_parallelism(spark)
    if slots is None:
        log.warning("the cluster's parallelism is unknown (none of %s is readable): inference keeps the input's "
                    "partitions; set inference.partitions or spark.default.parallelism", ", ".join(PARALLELISM_KEYS))
        return None
    sizes = partition_sizes(df)
    target = spread_to(sizes, slots)
    log.info("inference: %d rows in %d input partitions, %d task slots -> %s", sum(sizes), len(sizes), slots,
             f"{target} partitions" if target else "the input's partitions")
    return target


def _local_cores() -> int:
    """Cores this process may run on (``local[*]``: what the JVM's availableProcessors also reports)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
