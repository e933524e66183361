"""Fault injection on the analyze job: no row lost, none duplicated, none changed.

    python bench/faults.py [--rows 2000] [--cluster]

On ``--rows`` real texts (one BBC article in ten, the rest tweets: jobs/datasets.py) and the default catalog's
embed and language models (registered in a throw-away registry unless MLFLOW_TRACKING_URI is set), runs
``python -m jobs.analyze`` as a subprocess with the shipped ``local`` Spark profile (local[2,4]), 8 inference
partitions:
  1. undisturbed;
  2. one Python worker SIGKILLed by PID while it computes a task (once a first task's output is committed);
  3. over a previous output (the first half of run 1's rows), the driver and every process it started
     SIGKILLed mid-write (once a first task's output is committed), then the same job re-run.
``--cluster`` adds 4. one executor JVM SIGKILLed mid-task on local-cluster[2,1,1024].
Prints for each: rows in, rows out, duplicate ids, rows differing from the undisturbed run (a missing or
extra id counts as differing; floats compared at 1e-5).
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_registry, corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def process_tree(root: int) -> dict[int, int]:
    """Every live descendant of ``root`` (pid -> parent pid), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        for child in (c for c, p in parents.items() if p == pid):
            tree[child] = pid
            todo.append(child)
    return tree


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def python_workers(root: int) -> dict[int, int]:
    """The Python workers under ``root`` (pid -> parent): processes a ``pyspark.daemon`` forked (not the
    daemon itself), or ``pyspark.worker`` processes started without a daemon."""
    tree = process_tree(root)
    return {pid: parent for pid, parent in tree.items()
            if "pyspark.daemon" in cmdline(parent)
            or ("pyspark.worker" in cmdline(pid) and "pyspark.daemon" not in cmdline(pid))}


def busy(pids, window: float = 0.5, share: float = 0.1) -> int | None:
    """Among ``pids``, the one that used the most CPU over ``window`` seconds if it used at least ``share``
    of a core (a worker computing a task, not one idle between tasks); else None."""
    pids = list(pids)
    before = {pid: cpu_ticks(pid) for pid in pids}
    time.sleep(window)
    used = {pid: (cpu_ticks(pid) - before[pid]) / os.sysconf("SC_CLK_TCK") for pid in pids}
    best = max(pids, key=used.get, default=None)
    return best if best is not None and used[best] >= share * window else None


def committed_parts(output: Path) -> list[Path]:
    """Data files a finished task has committed into the output's staging folder (not a running attempt's)."""
    return [p for p in (output.parent / "_textspark_staging").glob(f"{output.name}-*/**/*.parquet")
            if "/_temporary/0/_temporary/" not in str(p)]


def kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_worker(output: Path, after_tasks: int = 1):
    """Fault: once ``after_tasks`` tasks have committed their output, SIGKILL a Python worker that is
    computing (the busiest one, if it uses CPU)."""
    def fault(driver: int) -> str | None:
        if len(committed_parts(output)) < after_tasks:
            return None
        pid = busy(python_workers(driver))
        if pid is None:
            return None
        kill([pid])
        return f"python worker {pid}"
    return fault


def kill_executor(output: Path, after_tasks: int = 1):
    """Fault: once ``after_tasks`` tasks have committed, SIGKILL the executor JVM of a computing Python worker."""
    def fault(driver: int) -> str | None:
        if len(committed_parts(output)) < after_tasks:
            return None
        tree, pid = process_tree(driver), busy(python_workers(driver))
        while pid in tree and "CoarseGrainedExecutorBackend" not in cmdline(pid):
            pid = tree[pid]
        if pid not in tree:
            return None
        kill([pid])
        return f"executor JVM {pid}"
    return fault


def kill_driver(output: Path):
    """Fault: once a task has committed, SIGKILL the driver and every process it started (a lost machine)."""
    def fault(driver: int) -> str | None:
        if not committed_parts(output):
            return None
        tree = process_tree(driver)
        kill([driver, *tree])
        return f"driver {driver} and its {len(tree)} processes"
    return fault


def run_job(conf: Path, logs: Path, *, fault=None, timeout: float = 600) -> dict:
    """``python -m jobs.analyze --conf conf`` in its own session; ``fault(driver_pid)`` is polled until it
    returns what it killed. Returns rc, seconds, stdout, stderr and the fault."""
    logs.mkdir(parents=True, exist_ok=True)
    started, injected = time.time(), None
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "jobs.analyze", "--conf", str(conf)], cwd=ROOT,
                                stdout=out, stderr=err, env=os.environ.copy(), start_new_session=True)
        while proc.poll() is None:
            if fault is not None and injected is None:
                injected = fault(proc.pid)
            if time.time() - started > timeout:
                kill([proc.pid, *process_tree(proc.pid)])
                raise TimeoutError(f"{conf}: still running after {timeout} s")
            time.sleep(0.05)
    return {"rc": proc.returncode, "seconds": round(time.time() - started, 1), "fault": injected,
            "stdout": (logs / "stdout").read_text(), "stderr": (logs / "stderr").read_text()}


def write_conf(work: Path, name: str, table: Path, output: Path, tasks: list[dict], profile: str = "local",
               partitions: int = 8) -> Path:
    import yaml

    conf = work / f"{name}.yml"
    conf.write_text(yaml.safe_dump({
        "spark": {"profile": profile}, "input": {"path": str(table), "text_column": "text", "id_column": "id"},
        "tasks": tasks, "inference": {"partitions": partitions},
        "output": {"path": str(output), "mode": "overwrite"}}))
    return conf


def same(a, b) -> bool:
    """Equal values, floats at 1e-5 (relative) / 1e-6 (absolute), through arrays and structs."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple, np.ndarray)) and isinstance(b, (list, tuple, np.ndarray)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    return (a is None and b is None) or a == b


def compare(output: Path, reference: pd.DataFrame, rows_in: int) -> dict:
    """rows in, rows out, duplicate ids and rows differing from ``reference`` (missing/extra ids count)."""
    got = pd.read_parquet(output)
    a, b = reference.set_index("id"), got.drop_duplicates("id").set_index("id")
    common = a.index.intersection(b.index)
    changed = sum(not all(same(a.at[i, c], b.at[i, c]) for c in a.columns) for i in common)
    return {"rows in": rows_in, "rows out": len(got), "duplicate ids": int(got["id"].duplicated().sum()),
            "differing": changed + len(a.index.difference(b.index)) + len(b.index.difference(a.index))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--cluster", action="store_true", help="also kill an executor on local-cluster[2,1,1024]")
    args = parser.parse_args()
    bench_registry("embed")
    catalog = bench_registry("language")
    tasks = [{"task": "embed", "column": "embedding"}, {"task": "language", "column": "language"}]
    work = Path(tempfile.mkdtemp(prefix="textspark-faults-"))
    table = work / "in.parquet"
    corpus(args.rows, article_share=0.1).to_parquet(table)
    print(f"{args.rows} rows, tasks embed ({catalog.default_reference('embed')}) + language "
          f"({catalog.default_reference('language')}), 8 inference partitions; work folder {work}", flush=True)

    lines = []

    def report(name, result, output, reference, rows_in=args.rows):
        figures = compare(output, reference, rows_in) if output.exists() else {"rows in": rows_in, "rows out": 0}
        lines.append((name, figures, result))
        print(f"{name:<46} " + "  ".join(f"{k} {v}" for k, v in figures.items())
              + f"  ({result['seconds']} s, rc {result['rc']}" + (f", killed {result['fault']}" if result["fault"]
                                                                  else "") + ")", flush=True)
        if result["rc"] not in (0, -signal.SIGKILL):
            print(result["stderr"][-3000:])

    base = work / "undisturbed"
    result = run_job(write_conf(work, "undisturbed", table, base, tasks), work / "logs-undisturbed")
    reference = pd.read_parquet(base)
    report("undisturbed", result, base, reference)

    out = work / "worker"
    result = run_job(write_conf(work, "worker", table, out, tasks), work / "logs-worker", fault=kill_worker(out))
    result["fault"] = f"{result['fault']}; Spark retried: {'Lost task' in result['stderr']}"
    report("python worker killed mid-stage", result, out, reference)

    out = work / "driver"
    out.mkdir()
    previous = reference.iloc[: args.rows // 2]
    previous.to_parquet(out / "part-00000-previous.parquet")
    (out / "_textspark_manifest.json").write_text('{"previous": true}')
    conf = write_conf(work, "driver", table, out, tasks)
    result = run_job(conf, work / "logs-driver", fault=kill_driver(out))
    report("driver killed mid-write: the previous output", result, out, previous, rows_in=len(previous))
    report("driver killed mid-write: re-run", run_job(conf, work / "logs-rerun"), out, reference)

    if args.cluster:
        profile = work / "local_cluster.yml"
        profile.write_text("master: local-cluster[2,1,1024]\nlog_level: WARN\nconf:\n  spark.ui.enabled: false\n"
                           "  spark.executor.memory: 900m\n  spark.python.worker.reuse: true\n"
                           "  spark.sql.shuffle.partitions: 4\n  spark.sql.execution.arrow.maxRecordsPerBatch: 1024\n")
        out = work / "executor"
        result = run_job(write_conf(work, "executor", table, out, tasks, profile=str(profile)),
                         work / "logs-executor", fault=kill_executor(out))
        result["fault"] = f"{result['fault']}; Spark retried: {'Lost task' in result['stderr']}"
        report("executor JVM killed mid-stage (local-cluster)", result, out, reference)
    bad = [name for name, figures, _ in lines
           if figures.get("rows out") != figures["rows in"] or figures.get("duplicate ids") or figures.get("differing")]
    print("every scenario: rows in == rows out, no duplicate id, no differing row" if not bad else f"FAILED: {bad}")
    if not bad:
        shutil.rmtree(work)  # kept for a look when a scenario failed
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
