"""Cost per row (issue 30): do a job's recorded cost figures add up to its wall time, and does ``--plan``
estimate the next run's time from them?

    .venv/bin/python bench/costs.py [--rows 400] [--rows2 800] [--tiny]

A sample-like analyze job (embed, sentiment, language: the catalog's defaults, as `make run` registers them
in the user's registry ~/.local/share/textspark/mlflow.db; where they are not registered there, or with
--tiny, the tests' tiny encoder registered in a throw-away registry) runs twice, each a cold process of its
own (``python -m jobs.analyze --conf ... --quiet``) on fresh rows of the mixed real corpus (bench.common:
tweets and BBC articles; the two runs share no row), with a throw-away cost store (TEXTSPARK_COSTS):

1. run 1 on --rows rows records its costs;
2. ``--plan`` for run 2, a table of --rows2 rows, estimates its time from them;
3. run 2.

Printed per run: each task's cost line and the wall split (the manifest's ``wall``, udfs/runtime/costs.py),
and the cost figures over the job's wall time (``wall.accounted / wall.total``; target 0.85-1.15); then the
plan's estimate over run 2's wall time (target 0.70-1.30). Exit 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import corpus  # noqa: E402

REAL_TASKS = [{"task": "embed", "column": "embedding"}, {"task": "sentiment", "column": "sentiment"},
              {"task": "language", "column": "lang"}]


def user_registry() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "textspark" / "mlflow.db"


def real_defaults_registered() -> bool:
    """The catalog's default embed, sentiment and language models are in the user's registry."""
    import sqlite3

    from udfs.models.catalog import load_catalog
    from udfs.models.reference import parse_reference

    if not user_registry().is_file():
        return False
    catalog = load_catalog()
    names = {parse_reference(catalog.default_reference(t["task"]))[0] for t in REAL_TASKS}
    with sqlite3.connect(user_registry()) as db:
        found = {row[0] for row in db.execute("select name from model_versions")}
    return names <= found


def tiny_setup(work: Path) -> tuple[list[dict], dict]:
    """The tests' tiny encoder in a throw-away registry: the tasks and the environment the jobs run with."""
    from tests.tiny_models import build_tiny_encoder

    uri = f"sqlite:///{work}/mlflow.db"
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "TEXTSPARK_CACHE": str(work / "cache")}
    os.environ.update(env)
    from udfs.models.registry import register_folder
    from udfs.platform import setup_environment

    setup_environment()
    register_folder("tiny-encoder", task="embed", kind="hf_encoder", weights=build_tiny_encoder(work / "tiny"),
                    params={"max_tokens": 64, "pooling": "mean", "normalize": True, "token_budget": 256})
    return [{"task": "embed", "column": "embedding", "model": "models:/tiny-encoder@champion", "languages": "any"}], env


def write_job(work: Path, name: str, rows, tasks: list[dict]) -> Path:
    table = work / f"{name}.parquet"
    rows.to_parquet(table, index=False)
    conf = work / f"{name}.yml"
    conf.write_text(yaml.safe_dump({
        "spark": {"profile": "local"}, "input": {"path": str(table), "text_column": "text", "id_column": "id"},
        "tasks": tasks, "output": {"path": str(work / f"out-{name}"), "mode": "overwrite"},
        "mlflow": {"experiment": "textspark-bench-costs"}}))
    return conf


def job(conf: Path, env: dict, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "jobs.analyze", "--conf", str(conf), "--quiet", *extra], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        sys.exit(f"{conf.name}{' ' + ' '.join(extra) if extra else ''} failed ({done.returncode}):\n"
                 f"{done.stderr[-3000:]}")
    return done, time.perf_counter() - started


def run(name: str, conf: Path, env: dict, rows: int) -> dict:
    done, process = job(conf, env)
    manifest = json.loads((conf.parent / f"out-{name}" / "_textspark_manifest.json").read_text())
    wall = manifest["wall"]
    ratio = wall["accounted"] / wall["total"]
    print(f"\n{name}: {rows:,} rows, job wall {wall['total']:.1f} s (process {process:.1f} s, Python start and "
          f"MLflow logging included)")
    for line in done.stdout.splitlines():
        if " cost: " in line or line.startswith("  wall "):
            print(line)
    print(f"  cost figures / job wall time: {wall['accounted']:.1f} / {wall['total']:.1f} s = {ratio:.2f} "
          f"(target 0.85-1.15)")
    return {"wall": wall, "ratio": ratio}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--rows2", type=int, default=800)
    parser.add_argument("--tiny", action="store_true", help="the tiny test encoder, whatever is registered")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    work = Path(tempfile.mkdtemp(prefix="textspark-bench-costs-"))
    if not args.tiny and real_defaults_registered():
        tasks, env, models = REAL_TASKS, {}, f"the catalog's defaults in {user_registry()}"
    else:
        tasks, env = tiny_setup(work)
        models = "the tests' tiny encoder in a throw-away registry"
    env = {**os.environ, **env, "TEXTSPARK_COSTS": str(work / "costs.jsonl")}
    texts = corpus(args.rows + args.rows2, seed=30, article_share=0.1)
    first = write_job(work, "run1", texts.iloc[:args.rows], tasks)
    second = write_job(work, "run2", texts.iloc[args.rows:], tasks)
    print(f"bench/costs.py: {', '.join(t['task'] for t in tasks)} with {models}; conf/spark/local.yml; "
          f"cost store {env['TEXTSPARK_COSTS']}")
    one = run("run1", first, env, args.rows)
    planned, _ = job(second, env, "--plan")
    print(f"\n--plan for run2:\n{planned.stdout.rstrip()}")
    found = re.search(r"total: ([\d.]+) s", planned.stdout)
    two = run("run2", second, env, args.rows2)
    estimate = float(found.group(1)) if found else None
    plan_ratio = estimate / two["wall"]["total"] if estimate else None
    print(f"\nplan / actual (run2): {estimate} / {two['wall']['total']:.1f} s = "
          f"{plan_ratio:.2f} (target 0.70-1.30)" if plan_ratio else "\nplan: no estimate")
    missed = [f"{name} cost figures {r['ratio']:.2f}" for name, r in (("run1", one), ("run2", two))
              if abs(r["ratio"] - 1) > 0.15]
    if plan_ratio is None or abs(plan_ratio - 1) > 0.30:
        missed.append(f"plan/actual {plan_ratio}")
    print("targets met" if not missed else f"targets missed: {'; '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
