"""What each task of a job cost: model loads and compute per task, timed in the workers, summed on the driver.

Worker side: ``udfs.runtime.worker`` times each model load and each task's Arrow batch (CPU seconds of the
Python worker process, all its threads: ``time.process_time``; wall seconds; GPU seconds between two CUDA
events where the worker already uses CUDA: a CPU worker never imports torch for it) and adds them to the
task's counter (``udfs.runtime.progress.RowCounter``), one Spark accumulator per task: its value reaches the
driver as each Spark task ends. Driver side: :func:`entry` turns a task's sums into its ``costs`` entry of
the job's manifest; :func:`account` lays the job's wall time next to them; :func:`record` appends each run's
costs to the cost store (:func:`store_path`), which ``--plan`` reads (:func:`estimate`).

How the figures add up to the job's wall time (``wall.total``: the job's start to its manifest, the atomic
rename excepted): ``total = setup + spark_start + read + stage + commit (+ fit, cluster) + other``, parts
timed back to back (``other``: what falls between them, about 0; ``read`` also opens the MLflow run and
counts the rows; ``fit``: the cluster job's k-means, description and MLflow logging). The inference
``stage`` is the Spark job that reads, runs every task (fused in one stage) and writes; inside it ``tasks =
sum over tasks of (worker start + load seconds + compute wall seconds) / workers`` (the worker figures,
spread over ``workers`` parallel Python workers; a worker's start, from its fork to its first model request,
goes to the task that asked first) and ``stage_other = stage - tasks`` (Arrow transfer, writing rows).
``accounted = total - stage_other - other``: the cost figures; ``accounted / total`` is how far they explain
the job's wall time. For the store, ``fixed = total - spark_start - sum over tasks of (wall / workers +
load seconds per load)``: what a run costs beside its tasks, which ``--plan`` adds to the Spark start.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)
COSTS_ENV = "TEXTSPARK_COSTS"  # the cost store's path (default: costs.jsonl beside the MLflow registry)
FIELDS = ("loads", "gpu_loads", "load_seconds", "cpu_seconds", "wall_seconds", "gpu_seconds", "rows", "chars",
          "batches", "starts", "start_seconds")
_first_request = True  # worker side: this Python worker process has not asked for a model yet


class CostParam:
    """Spark accumulator param: element-wise sums of a task's cost vector (``FIELDS``)."""

    def zero(self, value):
        return [0.0] * len(FIELDS)

    def addInPlace(self, a, b):  # noqa: N802 - pyspark.AccumulatorParam's name
        return [x + y for x, y in zip(a, b)]


def accumulators(sc, n: int) -> list:
    """One cost accumulator per task."""
    return [sc.accumulator([0.0] * len(FIELDS), CostParam()) for _ in range(n)]


def vector(**values: float) -> list[float]:
    return [float(values.get(name, 0.0)) for name in FIELDS]


def load_vector(seconds: float, device: str) -> list[float]:
    """One model load on ``device`` (``cuda:0``, ``cpu``) that took ``seconds``."""
    return vector(loads=1, gpu_loads=str(device).startswith("cuda"), load_seconds=seconds)


def worker_start(since: float) -> list[float] | None:
    """Once per Python worker process, at its first model request: the seconds since the process started
    (fork, imports, unpickling the UDF, the first rows' arrival), where it started after ``since`` (the
    driver's ``time.time()`` when the job's counters were made: a worker an earlier job started is not this
    job's cost). None elsewhere, and where /proc cannot tell (not Linux)."""
    global _first_request
    if not _first_request:
        return None
    _first_request = False
    try:
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        with open("/proc/self/stat") as fh:  # field 22, starttime: clock ticks after boot
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return vector(starts=1, start_seconds=age) if time.time() - age >= since - 1 else None


class Clock:
    """Worker side: started before a task's batch, :meth:`spent` after it."""

    def __init__(self):
        self.gpu = _gpu_event()
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def spent(self, rows: int, texts) -> list[float]:
        gpu = _gpu_seconds(self.gpu)
        return vector(cpu_seconds=time.process_time() - self.cpu, wall_seconds=time.perf_counter() - self.wall,
                      gpu_seconds=gpu, rows=rows, chars=_chars(texts), batches=1)


def _gpu_event():
    torch = sys.modules.get("torch")  # never imports torch, nor initialises CUDA, on a CPU worker
    if torch is None or not torch.cuda.is_initialized():
        return None
    start = torch.cuda.Event(enable_timing=True)
    start.record()
    return start


def _gpu_seconds(start) -> float:
    if start is None:
        return 0.0
    end = sys.modules["torch"].cuda.Event(enable_timing=True)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def _chars(texts) -> int:
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        length = pc.binary_length if pa.types.is_binary(texts.type) or pa.types.is_large_binary(texts.type) \
            else pc.utf8_length
        return int(pc.sum(length(texts)).as_py() or 0)
    except Exception:  # noqa: BLE001 - a cost figure must never fail a batch
        return 0


def entry(value, model: str) -> dict:
    """A task's ``costs`` entry from its accumulated vector: seconds per 1,000 rows is compute wall seconds
    (in the workers, load excluded) per 1,000 rows the model scored."""
    v = dict(zip(FIELDS, value))
    rows, gpu = int(v["rows"]), v["gpu_loads"] > 0
    return {"model": model, "device": "gpu" if gpu else "cpu", "loads": int(v["loads"]),
            "load_seconds": round(v["load_seconds"], 3), "cpu_seconds": round(v["cpu_seconds"], 3),
            "wall_seconds": round(v["wall_seconds"], 3), "gpu_seconds": round(v["gpu_seconds"], 3) if gpu else None,
            "rows": rows, "seconds_per_1000_rows": round(1000 * v["wall_seconds"] / rows, 4) if rows else None,
            "mean_chars": round(v["chars"] / rows, 1) if rows else None,
            "worker_starts": int(v["starts"]), "worker_start_seconds": round(v["start_seconds"], 3)}


def account(parts: dict[str, float], total: float, costs: dict[str, dict], workers: int, cores: int | None) -> dict:
    """The job's wall split (see the module docstring): ``parts`` (setup, spark_start, read, stage, commit...)
    timed back to back over ``total`` seconds; ``workers`` Python workers ran the stage in parallel."""
    workers = max(int(workers or 1), 1)
    spent = [c["load_seconds"] + c["wall_seconds"] + c.get("worker_start_seconds", 0) for c in costs.values()]
    tasks = sum(spent) / workers
    other = total - sum(parts.values())
    stage_other = parts.get("stage", 0.0) - tasks
    wall = {**{k: round(v, 2) for k, v in parts.items()}, "other": round(other, 2), "total": round(total, 2),
            "workers": workers, "cores": cores, "tasks": round(tasks, 2), "stage_other": round(stage_other, 2)}
    wall["accounted"] = round(total - stage_other - other, 2)
    return wall


def lines(summary: dict) -> list[str]:
    """The printed cost lines: one per task, then the job's wall split."""
    out = []
    for column, c in (summary.get("costs") or {}).items():
        gpu = f" / {c['gpu_seconds']:.1f} s GPU" if c.get("gpu_seconds") is not None else ""
        per = f", {c['seconds_per_1000_rows']:.2f} s per 1,000 rows" if c["seconds_per_1000_rows"] is not None else ""
        start = f" (+ Python worker start {c['worker_start_seconds']:.1f} s)" if c.get("worker_starts") else ""
        out.append(f"  {column:<12} cost: load {c['load_seconds']:.1f} s ({c['loads']} load(s)), compute "
                   f"{c['cpu_seconds']:.1f} s CPU / {c['wall_seconds']:.1f} s wall{gpu}, {c['rows']:,} rows{per}"
                   + start)
    w = summary.get("wall")
    if w:
        named = [("setup", "setup"), ("spark_start", "Spark start"), ("read", "reading"),
                 ("stage", "inference stage"), ("fit", "fit and describe"), ("commit", "writing and commit")]
        split = ", ".join(f"{label} {w[k]:.1f} s" for k, label in named if k in w)
        out.append(f"  wall {w['total']:.1f} s: {split}, other {w['other']:.1f} s; in the stage, worker starts + "
                   f"loads + compute over {w['workers']} worker(s) {w['tasks']:.1f} s; cost figures "
                   f"{w['accounted']:.1f} s = {w['accounted'] / max(w['total'], 1e-9):.0%} of the wall time")
    return out


def metrics(summary: dict) -> dict[str, float]:
    """MLflow metrics: ``cost.<column>.<figure>`` and ``wall.<part>``."""
    found = {f"cost.{column}.{k}": v for column, c in (summary.get("costs") or {}).items() for k, v in c.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)}
    found.update({f"wall.{k}": v for k, v in (summary.get("wall") or {}).items() if isinstance(v, (int, float))})
    return found


def store_path() -> Path:
    """``$TEXTSPARK_COSTS``; else ``costs.jsonl`` beside the sqlite MLflow registry; else in the user's data
    folder (``$XDG_DATA_HOME/textspark``, by default ``~/.local/share/textspark``)."""
    if os.environ.get(COSTS_ENV):
        return Path(os.environ[COSTS_ENV])
    uri = os.environ.get("MLFLOW_TRACKING_URI") or ""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent / "costs.jsonl"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "textspark" / "costs.jsonl"


def records(path: Path | None = None) -> list[dict]:
    """The store's records, oldest first (a line that does not parse is skipped)."""
    path = path or store_path()
    if not path.is_file():
        return []
    found = []
    for line in path.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def record(job: str, summary: dict, path: Path | None = None) -> list[dict]:
    """Append a finished run's costs to the store: one ``task`` record per task (keyed by model version,
    device and cores), one ``job`` record (its Spark start and fixed seconds). Never raises."""
    costs, wall = summary.get("costs") or {}, summary.get("wall")
    if not costs or not wall:
        return []
    at = datetime.now().isoformat(timespec="seconds")
    workers, cores = wall["workers"], wall.get("cores")
    new = []
    for column, c in costs.items():
        if not c["rows"]:
            continue
        per_load = c["load_seconds"] / max(c["loads"], 1)
        new.append({"kind": "task", "at": at, "job": job, "column": column, "model": c["model"],
                    "device": c["device"], "cores": cores, "workers": workers,
                    "seconds_per_1000_rows": c["seconds_per_1000_rows"], "load_seconds": round(per_load, 3),
                    "rows": c["rows"], "mean_chars": c["mean_chars"]})
    tasks = sum(r["rows"] * r["seconds_per_1000_rows"] / 1000 / workers + r["load_seconds"] for r in new)
    fixed = max(wall["total"] - wall.get("spark_start", 0.0) - tasks, 0.0)
    new.append({"kind": "job", "at": at, "job": job, "cores": cores, "workers": workers,
                "rows": summary.get("input_rows", summary.get("rows")), "total_seconds": wall["total"],
                "spark_start_seconds": wall.get("spark_start", 0.0), "fixed_seconds": round(fixed, 2)})
    path = path or store_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in new)
    except OSError as exc:
        log.warning("cannot record this run's costs in %s: %s", path, exc)
    return new


def _latest(found: list[dict], *prefer) -> dict | None:
    """The latest of ``found``, from the first ``prefer`` filter that keeps any."""
    for keep in prefer:
        kept = [r for r in found if keep(r)]
        if kept:
            return kept[-1]
    return found[-1] if found else None


def lookup(store: list[dict], model: str, device: str, cores: int | None) -> dict | None:
    """The recorded cost of ``model`` (``name/version``) on ``device``: the same version and device (the
    same cores preferred); else the same model name (the same device preferred); else None."""
    tasks = [r for r in store if r.get("kind") == "task" and r.get("seconds_per_1000_rows") is not None]
    same = [r for r in tasks if r["model"] == model and r["device"] == device]
    if same:
        return _latest(same, lambda r: r.get("cores") == cores)
    name = model.rsplit("/", 1)[0]
    return _latest([r for r in tasks if r["model"].rsplit("/", 1)[0] == name], lambda r: r["device"] == device)


def estimate(job: str, tasks: list[tuple[str, str]], rows: int, workers: int, device: str, cores: int | None,
             store: list[dict]) -> tuple[list[str], float | None]:
    """``--plan``: per task (column, model label) ``rows / 1000 x seconds per 1,000 rows / workers + load
    seconds`` from the store, plus the job's recorded Spark start and fixed seconds. The lines to print and
    the total (None when nothing is recorded)."""
    out, total, missing = [], 0.0, []
    for column, model in tasks:
        r = lookup(store, model, device, cores)
        if r is None:
            out.append(f"  {column:<12} no recorded cost for {model} ({device}): run once")
            missing.append(column)
            continue
        seconds = rows / 1000 * r["seconds_per_1000_rows"] / workers + r["load_seconds"]
        total += seconds
        basis = "" if r["model"] == model and r["device"] == device else f" (recorded for {r['model']}, {r['device']})"
        out.append(f"  {column:<12} {model}: {rows:,} rows x {r['seconds_per_1000_rows']:.2f} s per 1,000 rows / "
                   f"{workers} worker(s) + {r['load_seconds']:.1f} s load = {seconds:.1f} s{basis}")
    runs = [r for r in store if r.get("kind") == "job"]
    fixed = _latest([r for r in runs if r.get("job") == job], lambda r: r.get("cores") == cores)
    if fixed is None:
        out.append(f"  no recorded {job} run for the Spark start and fixed costs: run once")
    else:
        start, rest = fixed["spark_start_seconds"], fixed["fixed_seconds"]
        total += start + rest
        out.append(f"  Spark start {start:.1f} s + reading, writing and other fixed costs {rest:.1f} s "
                   f"(the {job} run of {fixed['at']})")
    if fixed is None and len(missing) == len(tasks):
        return out + ["  total: nothing recorded to estimate from"], None
    left = f" (without {', '.join(missing)}: no recorded cost)" if missing else ""
    return out + [f"  total: {total:.1f} s{left}"], round(total, 2)
