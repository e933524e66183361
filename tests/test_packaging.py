"""The wheel carries what the library reads at run time: the catalog, the Spark profiles, the discovery script."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {"udfs/conf/models.yml", "udfs/conf/spark/local.yml", "udfs/conf/spark/gpu.yml",
           "udfs/conf/spark/databricks.yml", "udfs/conf/spark/gpu_discovery.sh", "udfs/conf/jobs/sample.yml"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the source tree (links kept), so no build/ is left in the checkout and
    no stale build/ of the checkout's ends up in it."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "output", "data", "mlruns", "spark-warehouse"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, cwd=out)
    return next(out.glob("textspark-*.whl"))


@pytest.mark.slow
def test_wheel_ships_the_configuration_and_no_tests(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        script_mode = whl.getinfo("udfs/conf/spark/gpu_discovery.sh").external_attr >> 16
    assert SHIPPED <= names
    assert "jobs/datasets.py" in names and "udfs/config.py" in names
    assert not any(n.startswith(("tests/", "bench/", "notebooks/")) for n in names)
    assert script_mode & 0o111, "the discovery script must stay executable"


@pytest.mark.slow
def test_unpacked_wheel_reads_its_own_configuration_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as whl:
        whl.extractall(site)
    code = ("from udfs.models.catalog import load_catalog; from udfs.platform import CONF_DIR, load_spark_profile;"
            "print(CONF_DIR); print(load_spark_profile('local')['master']);"
            "print(load_catalog().default_reference('embed'))")
    env = {k: v for k, v in os.environ.items() if k not in ("TEXTSPARK_HOME", "TEXTSPARK_MODELS", "PYTHONPATH")}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(site)},
                            capture_output=True, text=True, check=True)
    conf_dir, master, reference = result.stdout.split("\n")[:3]
    assert Path(conf_dir) == site / "udfs" / "conf"
    assert master.startswith("local[")
    assert reference == "models:/textspark-minilm@champion"
