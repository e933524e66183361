"""Fault injection on the analyze job: no row lost, none duplicated, none changed.

    python bench/faults.py [--rows 2000] [--cluster]

On ``--rows`` real texts (one BBC article in ten, the rest tweets: udfs/io/datasets.py) and the default catalog's
embed and language models (registered in a throw-away registry unless MLFLOW_TRACKING_URI is set), runs
``python -m jobs.analyze`` as a subprocess with the shipped ``local`` Spark profile (local[2,4]), 8 inference
partitions:
  1. undisturbed;
  2. one Python worker SIGKILLed by PID while it computes a task (once a first task's output is committed);
  3. over a previous output (the first half of run 1's rows), the driver and every process it started
     SIGKILLed mid-write (once a first task's output is committed), then the same job re-run;
  4. a second job (mode ignore) started on the output while the first stages it: it must refuse (exit 3) and
     the first commit every row;
  5. two incremental runs at once over a previous output of 96% of the rows: the second must refuse;
  then ``input.stream`` on the first 600 rows (``stream_scenarios``): the driver SIGKILLed mid-batch, the
  folder read with pandas before and after the restart (which must read every row once); and a dropped-in
  file without the text column: ``bad_files: stop`` must refuse (exit 3, one line), ``quarantine`` move it.
``--cluster`` adds 6. one executor JVM SIGKILLed mid-task on local-cluster[2,1,1024].
Prints for each: rows in, rows out, duplicate ids, rows differing from the undisturbed run (a missing or
extra id counts as differing; floats compared at 1e-5).
After the undisturbed run: a registry tag naming an outside path (``outside_tag``): the job must refuse in one
line, exit 2, write nothing and delete nothing.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_registry, corpus  # noqa: E402
from tests.helpers import (kill_driver, kill_executor, kill_stream_driver, kill_worker, run_job,  # noqa: E402
                           write_conf)


def second_job(output: Path, conf: Path, logs: Path):
    """Fault: once the running job stages its output, run a second job (``conf``) on the same output to its end
    (it must refuse in one line, exit 3, and leave the running job's staging alone)."""
    def fault(driver: int) -> str | None:
        if not any((output.parent / "_textspark_staging").glob(f"{output.name}-*")):
            return None
        second = run_job(conf, logs)
        line = (second["stderr"].strip().splitlines() or [""])[-1]
        return (f"second job rc {second['rc']} after {second['seconds']} s while the first ran: "
                f"{'yes' if os.path.exists(f'/proc/{driver}') else 'no'}; it said: {line[:160]}")
    return fault


def outside_tag(work: Path, table: Path, catalog) -> tuple[Path, dict]:
    """Fault: a registry tag naming an outside path. A version of its own, ``faults-outside-tag`` (the embed
    model's files, registered again without a copy), whose ``textspark.fingerprint`` tag is the absolute path
    of a folder holding a sentinel file. The job must refuse it on the driver: one line, exit 2, no output, the
    folder and its sentinel untouched. The version is deleted afterwards."""
    from udfs.models.registry import client, resolve

    mlc = client()
    model = resolve(catalog.default_reference("embed"), task="embed")
    mv = mlc.get_model_version(model.name, model.version)
    victim = work / "victim"
    victim.mkdir()
    (victim / "sentinel").write_text("keep me")
    out, name = work / "outside-tag", "faults-outside-tag"
    mlc.create_registered_model(name)
    try:
        version = mlc.create_model_version(name, mv.source, run_id=mv.run_id,
                                           tags={**mv.tags, "textspark.fingerprint": str(victim)}).version
        tasks = [{"task": "embed", "column": "embedding", "model": f"models:/{name}/{version}"}]
        result = run_job(write_conf(work, "outside-tag", table, out, tasks), work / "logs-outside-tag")
    finally:
        mlc.delete_registered_model(name)
    kept = sorted(os.listdir(victim)) == ["sentinel"] and (victim / "sentinel").read_text() == "keep me"
    said = result["stderr"].strip().splitlines()
    result["refused"] = result["rc"] == 2 and len(said) == 1 and kept and not out.exists()
    result["detail"] = f"stderr {len(said)} line(s); the outside folder and its sentinel kept: {kept}"
    return out, result


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


def stream_conf(work: Path, name: str, inbox: Path, output: Path, tasks: list[dict], checkpoint: Path,
                **stream) -> Path:
    """An analyze job reading ``inbox`` with ``input.stream`` (available_now, the shipped ``local`` profile)."""
    import yaml

    conf = work / f"{name}.yml"
    conf.write_text(yaml.safe_dump({
        "spark": {"profile": "local"}, "tasks": tasks, "inference": {"partitions": 8}, "output": {"path": str(output)},
        "input": {"path": str(inbox), "text_column": "text", "id_column": "id",
                  "stream": {"checkpoint": str(checkpoint), "trigger": "available_now", **stream}}}))
    return conf


def pandas_read(what) -> str:
    """What ``pd.read_parquet(what)`` gives: rows and duplicate ids, or the error it raises."""
    try:
        got = pd.read_parquet(what)
    except Exception as exc:  # noqa: BLE001 - the error a reader meets is the finding
        said = re.sub(r"'/[^']*/([^/']+)'", r"'\1'", str(exc).splitlines()[0])  # a file by its name
        return f"fails: {type(exc).__name__}: {said[:160]}"
    return f"rows {len(got)}  duplicate ids {int(got['id'].duplicated().sum())}"


def stream_scenarios(work: Path, table: Path, reference: pd.DataFrame, tasks: list[dict], report, rows: int):
    """A stream (``input.stream``, the first ``rows`` rows: a first file of a fifth of them, then the rest):
    its driver killed mid-batch, the folder read with pandas before and after the restart; then a dropped-in
    file without the text column, with ``bad_files: stop`` (exit 3, one line) and ``quarantine``."""
    from udfs.io.stream_log import committed_files

    data = pd.read_parquet(table).iloc[:rows]
    head, tail = data.iloc[: rows // 5], data.iloc[rows // 5:]

    def expected(frame):
        return reference[reference["id"].isin(frame["id"])]

    def land(frame, folder: Path, name: str):  # written beside the folder, renamed in: whole, as Spark needs
        frame.to_parquet(work / f".{name}")
        os.rename(work / f".{name}", folder / name)

    inbox, out = work / "stream-in", work / "stream-out"
    inbox.mkdir()
    land(head, inbox, "a.parquet")
    conf = stream_conf(work, "stream", inbox, out, tasks, work / "stream-checkpoint")
    report("stream: a first file", run_job(conf, work / "logs-stream-a"), out, expected(head), rows_in=len(head))
    land(tail, inbox, "b.parquet")
    killed = run_job(conf, work / "logs-stream-killed", fault=kill_stream_driver(out))
    print(f"{'stream: driver killed mid-batch':<46} rows in {rows}  pandas read of the folder: {pandas_read(out)}; "
          f"of committed_files: {pandas_read(committed_files(str(out)))}  ({killed['seconds']} s, rc {killed['rc']}, "
          f"killed {killed['fault']}; batch committed: {(out / '_spark_metadata' / '1').exists()})", flush=True)
    restart = run_job(conf, work / "logs-stream-restart")
    report("stream killed mid-batch: restart, pandas read", restart, out, expected(data), rows_in=rows)
    if restart["rc"] == 0:
        removed = json.loads((out / "_textspark_manifest.json").read_text())["uncommitted_removed"]
        print(f"{'':<46} the restart removed {removed} data files no micro-batch committed", flush=True)

    inbox, out = work / "drift-in", work / "drift-out"
    inbox.mkdir()
    land(head, inbox, "a.parquet")
    land(head.iloc[:50].rename(columns={"text": "body"}).assign(id=head["id"].iloc[:50] + 10**6), inbox,
         "no-text.parquet")
    checkpoint = work / "drift-checkpoint"
    stop = run_job(stream_conf(work, "drift", inbox, out, tasks, checkpoint), work / "logs-drift-stop")
    said = (stop["stderr"].strip().splitlines() or [""])[-1]
    stop["refused"] = stop["rc"] == 3 and said.startswith("input error:") and "has no column 'text'" in said
    report("stream schema drift: bad_files stop", stop, out, expected(head), rows_in=len(head) + 50)
    print(f"{'':<46} {said[:300]}", flush=True)
    held = run_job(stream_conf(work, "drift-quarantine", inbox, out, tasks, checkpoint, bad_files="quarantine"),
                   work / "logs-drift-quarantine")
    report("stream schema drift: bad_files quarantine", held, out, expected(head), rows_in=len(head))
    manifest = out / "_textspark_manifest.json"
    quarantined = json.loads(manifest.read_text())["quarantined"] if held["rc"] == 0 else []
    print(f"{'':<46} quarantined {len(quarantined)}: "
          + "; ".join(f"{Path(q['file']).name} -> {q['moved_to']} ({q['reason']})" for q in quarantined), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--cluster", action="store_true", help="also kill an executor on local-cluster[2,1,1024]")
    args = parser.parse_args()
    bench_registry("embed")
    catalog = bench_registry("language")
    tasks = [{"task": "embed", "column": "embedding"}, {"task": "language", "column": "language"}]
    work = Path(tempfile.mkdtemp(prefix="textspark-faults-"))
    table, table_head = work / "in.parquet", work / "in-head.parquet"
    corpus(args.rows, article_share=0.1).to_parquet(table)
    pd.read_parquet(table).iloc[: args.rows * 96 // 100].to_parquet(table_head)  # the incremental runs' previous
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

    out, result = outside_tag(work, table, catalog)
    report("a tag naming an outside path", result, out, reference)
    print(f"{'':<46} {result['detail']}", flush=True)

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

    out = work / "second"
    result = run_job(write_conf(work, "second", table, out, tasks), work / "logs-second",
                     fault=second_job(out, write_conf(work, "second-ignore", table, out, tasks, mode="ignore"),
                                      work / "logs-second-b"))
    report("a second job (mode ignore) on a path being written", result, out, reference)

    out = work / "incremental"
    first = write_conf(work, "inc-first", table_head, out, tasks, mode="incremental")
    run_job(first, work / "logs-inc-first")
    conf = write_conf(work, "inc", table, out, tasks, mode="incremental")
    result = run_job(conf, work / "logs-inc", fault=second_job(out, conf, work / "logs-inc-b"))
    report("two concurrent incremental runs", result, out, reference)

    stream_scenarios(work, table, reference, tasks, report, rows=min(args.rows, 600))

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
    bad = [name for name, figures, result in lines  # "refused": a job that must refuse, and did (or not)
           if not result.get("refused", figures.get("rows out") == figures["rows in"]
                             and not figures.get("duplicate ids") and not figures.get("differing"))]
    print("every scenario: rows in == rows out, no duplicate id, no differing row; every job that had to refuse "
          "refused" if not bad else f"FAILED: {bad}")
    if not bad:
        shutil.rmtree(work)  # kept for a look when a scenario failed
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
