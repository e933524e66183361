"""GPU scheduling for the inference stage: a Spark ResourceProfile for it, CPU-only profiles elsewhere.

Spark's stage-level scheduling (``mapInPandas(..., profile=...)``) lets the inference stage ask each task for
``gpus_per_task`` GPUs while reading, shuffling and writing keep the default profile, which asks for none:
CPU parallelism is then set by executor cores, not by the number of GPUs. With dynamic allocation off,
Spark supports this (as a TaskResourceProfile) on standalone, YARN and Kubernetes; local mode does not.
"""
from __future__ import annotations

import logging
import os
import subprocess
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, Field

from udfs.config import Allowed, Section, validate
from udfs.errors import ConfigError

log = logging.getLogger(__name__)
DISCOVERY_KEY = "spark.executor.resource.gpu.discoveryScript"
EXECUTOR_GPUS_KEY = "spark.executor.resource.gpu.amount"


def _gpu_amount(gpus: float) -> float:
    """Spark shares one GPU among floor(1/amount) tasks: a whole number, or a fraction of at most one half."""
    if 0.5 < gpus < 1 or gpus >= 1 and gpus != int(gpus):
        raise ConfigError("gpus_per_task", gpus, "a whole number, or a fraction <= 0.5 (Spark shares one GPU among "
                          "floor(1/amount) tasks), e.g. 1, 2, 0.5, 0.25")
    return gpus


class InferenceResources(Section):
    """``inference:``: what each inference task asks Spark for (GPUs through a stage-level profile)."""

    gpus_per_task: Annotated[float, Field(ge=0), AfterValidator(_gpu_amount),
                             Allowed("0 (CPU), a whole number of GPUs, or a fraction <= 0.5")] = 0.0
    cpus_per_task: Annotated[int, Field(ge=1), Allowed("a positive integer")] = 1
    stage_level: Annotated[Literal["auto"] | bool, Allowed("auto, true, false")] = "auto"
    partitions: Annotated[int | None, Field(ge=1), Allowed("a positive integer")] = None  # repartition first:
    # reading stays in its own CPU stage; None: as many as keep every core busy (udfs/runtime/parallelism.py)
    check_discovery: bool = True   # run the GPU discovery script on the driver before the job starts

    @property
    def wants_gpu(self) -> bool:
        return self.gpus_per_task > 0


def parse_inference(section: Mapping[str, Any] | None, *, source: str | None = None) -> InferenceResources:
    """Validate the job's ``inference:`` section (all checks that need no Spark)."""
    return validate(InferenceResources, section or {}, key="inference", source=source)


def supports_stage_level(master: str, conf: Mapping[str, str]) -> tuple[bool, str]:
    """(supported, why not) for task-level resource profiles on this cluster manager."""
    if conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true":
        return False, "spark.dynamicAllocation.enabled is true (task resource profiles need it off)"
    if master.startswith(("spark://", "yarn", "k8s://", "local-cluster")):
        return True, ""
    return False, f"master {master!r} does not support stage-level scheduling (standalone, YARN and Kubernetes do)"


def check_cluster_conf(spark, res: InferenceResources) -> bool:
    """Checks that need the session (no job runs). Returns whether to use a GPU stage profile."""
    if not res.wants_gpu:
        return False
    conf = session_conf(spark, ("spark.dynamicAllocation.enabled", EXECUTOR_GPUS_KEY, DISCOVERY_KEY))
    master = session_conf(spark, ("spark.master",)).get("spark.master", "")
    ok, why = supports_stage_level(master, conf)
    if not ok:
        if res.stage_level is True:
            raise ConfigError("inference.stage_level", True, f"auto or false here: {why}")
        log.warning("inference.gpus_per_task=%s requested but %s; running inference in the default profile "
                    "(GPUs Spark assigns through spark.task.resource.gpu.amount are still used)", res.gpus_per_task, why)
        return False
    if res.stage_level is False:
        return False
    executor_gpus = conf.get(EXECUTOR_GPUS_KEY)
    if executor_gpus is None:
        raise ConfigError(EXECUTOR_GPUS_KEY, None, f"a number of GPUs per executor (>= inference.gpus_per_task="
                          f"{res.gpus_per_task:g}); see conf/spark/gpu.yml")
    if float(executor_gpus) < res.gpus_per_task:
        raise ConfigError("inference.gpus_per_task", res.gpus_per_task,
                          f"at most {EXECUTOR_GPUS_KEY}={executor_gpus}")
    script = conf.get(DISCOVERY_KEY)
    if script and res.check_discovery:
        check_discovery_script(script)
    return True


def session_conf(spark, keys) -> dict[str, str]:
    """The settings among ``keys`` that the session has, read through ``spark.conf`` (a classic session and a
    Spark Connect one alike: a Connect client has no SparkContext)."""
    found = {key: spark.conf.get(key, None) for key in keys}
    return {key: value for key, value in found.items() if value is not None}


def check_discovery_script(script: str) -> list[str]:
    """Run the GPU discovery script as Spark would; its addresses, or a ConfigError naming the setting."""
    if not os.path.isfile(script) or not os.access(script, os.X_OK):
        raise ConfigError(DISCOVERY_KEY, script, "an executable file on every node (e.g. conf/spark/gpu_discovery.sh)")
    import json

    try:
        done = subprocess.run([script], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(DISCOVERY_KEY, script, f"a script that runs ({exc})") from None
    if done.returncode != 0:
        raise ConfigError(DISCOVERY_KEY, script, f"a script that exits 0 on GPU nodes; it exited {done.returncode}: "
                          f"{done.stderr.strip()[:300]} (set inference.check_discovery: false if the driver has no GPU)")
    try:
        info = json.loads(done.stdout)
        addresses = [str(a) for a in info["addresses"]]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(DISCOVERY_KEY, script, 'a script printing {"name": "gpu", "addresses": [...]}, '
                          f"it printed {done.stdout.strip()[:200]!r}") from None
    if not addresses:
        raise ConfigError(DISCOVERY_KEY, script, "a script that finds at least one GPU; it found none")
    return addresses


def resource_profile(res: InferenceResources):
    """The inference stage's profile: ``gpus_per_task`` GPUs and ``cpus_per_task`` CPUs per task."""
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    requests = TaskResourceRequests().cpus(res.cpus_per_task).resource("gpu", res.gpus_per_task)
    return ResourceProfileBuilder().require(requests).build
