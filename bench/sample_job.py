"""The sample job (`make run`: embed, sentiment, zero-shot classify, language, summarize, translate) before
and after: the same job, the same table, this working tree against an earlier commit of the project.

    .venv/bin/python bench/sample_job.py [--baseline 16893c8] [--articles 60] [--tweets 140] [--repeats 2] [--each]
        [--work DIR]

The baseline (default 16893c8: the last commit before issue 17's work, where the job ran one Arrow UDF per
task) is exported with ``git archive`` into a temp folder. One table is built once (jobs.make_sample with
the given mix; the defaults are `make run`'s 200 rows), and each tree then registers the catalog's models in
a registry of its own (not timed) and runs ``python -m jobs.analyze`` on it with conf/jobs/sample.yml's tasks
and the same Python, the runs of the two trees alternating, ``--repeats`` each. Printed per tree, best of
its runs: the job's rows/s over its whole run (the manifest's ``seconds``: Spark session, model resolution,
inference, writing, MLflow logging) and over the inference write alone (``inference_seconds``), and the
ratio this tree / baseline. A process of its own per run: each starts cold (JVM, Python workers, models).
``--baseline none`` runs this tree only. ``--work DIR`` keeps each tree's registry in DIR and reuses it on the
next run with the same baseline (delete DIR when a catalog changes). ``--each`` then also runs this tree's job
with one task at a time (one cold run each): where the time goes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def export(rev: str, into: Path) -> Path:
    """The project at ``rev`` as plain files under ``into`` (no .git)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def job_conf(table: Path, out: Path) -> dict:
    conf = yaml.safe_load((ROOT / "conf/jobs/sample.yml").read_text())
    conf["input"]["path"] = str(table)
    conf["output"]["path"] = str(out)
    return conf


def run_job(tree: Path, work: Path, conf: dict, attempt) -> dict:
    """One cold run of the analyze job from ``tree``; its manifest."""
    path = work / f"job-{attempt}.yml"
    out = work / f"out-{attempt}"
    shutil.rmtree(out, ignore_errors=True)  # --work: a kept folder from an earlier run
    conf = {**conf, "output": {**conf["output"], "path": str(out)}}
    path.write_text(yaml.safe_dump(conf))
    subprocess.run([sys.executable, "-m", "jobs.analyze", "--conf", str(path)], cwd=tree, env=_env(tree, work),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((out / "_textspark_manifest.json").read_text())


def _env(tree: Path, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db",
           "TEXTSPARK_CACHE": str(work / "cache"), "PYSPARK_PYTHON": sys.executable,
           "HF_HUB_OFFLINE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="16893c8")
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--tweets", type=int, default=140)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--each", action="store_true", help="also run this tree's job with one task at a time")
    parser.add_argument("--work", type=Path, help="keep the trees' registries here and reuse them on the next run "
                        "(registering the baseline's models trains its sentiment model: tens of minutes)")
    args = parser.parse_args(argv)
    tmp = args.work or Path(tempfile.mkdtemp(prefix="textspark-samplejob-"))
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp / "baseline", ignore_errors=True)
    trees = {f"baseline {args.baseline}": export(args.baseline, tmp / "baseline" / "tree")} \
        if args.baseline != "none" else {}
    trees["this tree"] = ROOT
    table = tmp / "sample.parquet"
    shutil.rmtree(table, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "jobs.make_sample", "--out", str(table), "--articles", str(args.articles),
                    "--tweets", str(args.tweets)], cwd=ROOT, env=_env(ROOT, tmp), check=True)
    works = {}
    for i, (name, tree) in enumerate(trees.items()):
        works[name] = tmp / f"work-{i}"
        marker = works[name] / "registered"
        if marker.exists() and marker.read_text() == f"{name}\n":  # --work: an earlier run of the same tree
            continue
        works[name].mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "jobs.register_models"], cwd=tree, env=_env(tree, works[name]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        marker.write_text(f"{name}\n")
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    for attempt in range(args.repeats):
        for name, tree in trees.items():
            manifest = run_job(tree, works[name], job_conf(table, works[name] / "out"), attempt)
            runs[name].append(manifest)
            print(f"  {name:<20} run {attempt + 1}: {manifest['rows']} rows in {manifest['seconds']} s "
                  f"(inference write {manifest['inference_seconds']} s)", flush=True)
    best = {name: (min(m["seconds"] for m in ms), min(m["inference_seconds"] for m in ms), ms[0]["rows"])
            for name, ms in runs.items()}
    print(f"\nsample job, 6 tasks, {args.articles} BBC articles + {args.tweets} tweets, Spark local[2], "
          f"best of {args.repeats} cold runs each")
    for name, (whole, inference, rows) in best.items():
        print(f"  {name:<20} {rows / whole:6.2f} rows/s whole job ({whole} s)   "
              f"{rows / inference:6.2f} rows/s inference write ({inference} s)")
    (base_whole, base_inf, _), (whole, inference, _) = best[next(iter(trees))], best["this tree"]
    if len(trees) > 1:
        print(f"  this tree / baseline: x{base_whole / whole:.2f} whole job, x{base_inf / inference:.2f} inference write "
              f"(targets: issue 17 >= 2 against 16893c8; issue 26 >= 0.6 against the English defaults, f762f6c)")
    if args.each:
        print("\nthis tree, one task per job (one cold run each):")
        conf = job_conf(table, works["this tree"] / "out")
        for task in conf["tasks"]:
            manifest = run_job(ROOT, works["this tree"], {**conf, "tasks": [task]}, f"each-{task['column']}")
            print(f"  {task['task']:<10} {manifest['seconds']:6.1f} s whole job, {manifest['inference_seconds']:6.1f} s "
                  f"inference write", flush=True)


if __name__ == "__main__":
    main()
