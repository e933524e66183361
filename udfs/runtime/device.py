"""Pick the torch device for the current Spark task."""
from __future__ import annotations

import functools
import logging
import os

log = logging.getLogger(__name__)
_warned = False


def assigned_gpus() -> list[str]:
    """GPU addresses Spark assigned to the running task (empty outside a task or without GPU scheduling)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return []
    info = ctx.resources().get("gpu")
    return list(info.addresses) if info is not None else []


def select_device(requested: str = "auto") -> str:
    """``cuda:<addr>`` for the task's assigned GPU when CUDA is usable, else ``cpu``.

    ``requested``: "auto" (as above), "cpu", or an explicit "cuda:N". A task that was given a GPU on a
    machine without CUDA runs on the CPU and logs one warning per worker.
    """
    global _warned
    torch = _torch()
    if requested == "cpu" or (torch is None and not requested.startswith("cuda")):
        return "cpu"  # without torch (a worker serving only fastText / Bergamot / lingua models): the CPU
    if requested.startswith("cuda"):
        if torch is None or not torch.cuda.is_available():
            raise RuntimeError(f"device: got {requested!r} but CUDA is not available on this worker")
        return requested
    addresses = assigned_gpus()
    if addresses:
        if torch.cuda.is_available():
            return assigned_device(addresses)
        if not _warned:
            log.warning("Spark assigned GPU %s to this task but CUDA is not available; running on the CPU",
                        ",".join(addresses))
            _warned = True
        return "cpu"
    return "cuda:0" if torch.cuda.is_available() and os.environ.get("TEXTSPARK_USE_UNASSIGNED_GPU") else "cpu"


def _torch():
    """torch, or None where it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def assigned_device(addresses: list[str]) -> str | None:
    """The torch device for Spark's assignment (first address), whether or not CUDA is usable here."""
    return f"cuda:{_local_index(addresses[0])}" if addresses else None


def _local_index(address: str) -> int:
    """Spark addresses are what the discovery script printed (physical indexes); map through
    CUDA_VISIBLE_DEVICES when the cluster manager already narrowed the visible devices."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if visible and address in visible:
        return visible.index(address)
    return int(address)


def configure_threads() -> int:
    """One torch thread per task CPU (spark.task.cpus, default 1): more oversubscribes the cores."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    n = int(os.environ.get("TEXTSPARK_TORCH_THREADS") or (ctx.cpus() if ctx is not None else 1) or 1)
    torch = _torch()
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this host (empty where /proc/cpuinfo does not exist)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def resolve_precision(precision: str, device: str) -> str:
    """``precision`` as it runs on ``device``: "auto" is :func:`auto_precision`, any other value stays."""
    return auto_precision(device) if precision == "auto" else precision


def auto_precision(device: str) -> str:
    """bf16 where the hardware computes it natively (CUDA with bf16, or a CPU with AMX-BF16 / AVX512-BF16),
    else fp32. Detected on each worker, so a mixed cluster does the right thing per host."""
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_flags() & {"amx_bf16", "avx512_bf16"} else "fp32"
