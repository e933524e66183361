"""textspark as its users get it: the wheel carries what the library reads at run time (the catalog, the Spark
profiles, the discovery script), and installed into a fresh virtualenv outside the checkout it runs a job with a
user YAML, the Python API and the quickstart notebook from a folder that is not the checkout; a registered
version loads in a second fresh virtualenv where textspark is not installed at all.

The fresh virtualenvs borrow the project venv's third-party packages (torch, pyspark, mlflow...) through a .pth
*path line*: installing them afresh would take minutes and the network. A path line adds a folder to sys.path
without running that folder's own .pth files, so the project venv's editable install of textspark (a .pth
that runs a finder) stays inactive there; each test checks where ``udfs`` comes from, or that it is absent.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import assert_frame_equal, build_wheel

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {"udfs/conf/models.yml", "udfs/conf/spark/local.yml", "udfs/conf/spark/gpu.yml",
           "udfs/conf/spark/databricks.yml", "udfs/conf/spark/gpu_discovery.sh", "udfs/conf/jobs/sample.yml",
           "udfs/data/handwritten_reviews.csv"}  # the sentiment default trains on it from the wheel too
PROJECT_SITE = Path(sysconfig.get_paths()["purelib"])  # the project venv's third-party packages
TEXTS = ["the match and the goal", "shares and profits fell", None, "a new phone with a faster chip"]
# Variables of the test session that would point a child at the checkout or at this interpreter.
NOT_INHERITED = ("PYTHONPATH", "TEXTSPARK_HOME", "TEXTSPARK_MODELS", "TEXTSPARK_SPARK_PROFILE", "VIRTUAL_ENV",
                 "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_REMOTE", "PYSPARK_GATEWAY_PORT",
                 "PYSPARK_GATEWAY_SECRET")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the source tree (links kept), so no build/ is left in the checkout and
    no stale build/ of the checkout's ends up in it."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def fresh_venv(path: Path, wheel: Path | None) -> Path:
    """A new virtualenv at ``path`` seeing the project venv's third-party packages, with ``wheel`` installed
    (no dependencies, no index: never the network); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "project-dependencies.pth").write_text(f"{PROJECT_SITE}\n")
    if wheel is not None:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                        "--no-index", str(wheel)], check=True)
    return python


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The python of a fresh virtualenv (outside the checkout) with the wheel installed."""
    return fresh_venv(tmp_path_factory.mktemp("venvs") / "with-textspark", wheel)


def child_env(python: Path) -> dict[str, str]:
    """The test session's environment (its MLflow registry, model cache, offline settings) for a process of
    ``python``'s virtualenv: Spark's Python workers run that python too."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return {**env, "PYSPARK_PYTHON": str(python), "PYSPARK_DRIVER_PYTHON": str(python),
            "PATH": f"{python.parent}{os.pathsep}{env.get('PATH', '')}"}


def run_python(python: Path, args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    out = subprocess.run([str(python), *args], cwd=cwd, env=child_env(python), capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def result_line(out: subprocess.CompletedProcess):
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, out.stderr[-3000:]
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow
def test_wheel_ships_the_configuration_and_no_tests(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        script_mode = whl.getinfo("udfs/conf/spark/gpu_discovery.sh").external_attr >> 16
        entry_points = next(whl.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert SHIPPED <= names
    assert {"udfs/io/datasets.py", "jobs/cli.py", "udfs/io/tracking.py", "udfs/config.py"} <= names
    assert not any(n.startswith(("tests/", "bench/", "notebooks/")) for n in names)
    assert script_mode & 0o111, "the discovery script must stay executable"
    assert entry_points.split() == ["[console_scripts]", "textspark", "=", "jobs.cli:main"]  # textspark <command>


@pytest.mark.slow
def test_the_wheel_leaves_a_clusters_torch_and_pyspark_alone(wheel):
    """Installed on a Databricks runtime, the wheel must not replace the runtime's torch or pyspark."""
    with zipfile.ZipFile(wheel) as whl:
        meta = next(whl.read(n).decode() for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [line.removeprefix("Requires-Dist: ") for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if r.startswith("torch")] == ["torch>=2.4"]
    assert [r for r in requires if r.startswith("pyspark")] == ['pyspark[connect]<4.4,>=4.3; extra == "spark"']


@pytest.mark.slow
def test_the_installed_wheel_reads_its_own_configuration(installed, tmp_path):
    code = ("import json; from udfs.models.catalog import load_catalog; from udfs.platform import CONF_DIR, "
            "load_spark_profile; print('RESULT ' + json.dumps([str(CONF_DIR), load_spark_profile()['master'], "
            "load_catalog().default_reference('embed')]))")
    conf_dir, master, reference = result_line(run_python(installed, ["-c", code], tmp_path))
    assert Path(conf_dir).is_relative_to(installed.parents[1])  # the virtualenv's copy, not the checkout's
    assert Path(conf_dir).parts[-3:] == ("site-packages", "udfs", "conf")
    assert (master, reference) == ("local[2,4]", "models:/textspark-e5-small@champion")


@pytest.fixture(scope="module")
def job_run(installed, tiny_encoder, tmp_path_factory):
    """``python -m jobs.analyze --conf user.yml`` of the installed wheel, run in a folder of the user's: the
    folder, the job as a dict, and the finished process."""
    folder = tmp_path_factory.mktemp("user")
    pd.DataFrame({"id": range(len(TEXTS)), "text": TEXTS}).to_parquet(folder / "reviews.parquet", index=False)
    job = {"input": {"path": str(folder / "reviews.parquet"), "format": "parquet", "text_column": "text",
                     "id_column": "id"},
           "tasks": [{"task": "embed", "column": "embedding", "model": tiny_encoder, "precision": "fp32"}],
           "output": {"path": str(folder / "out"), "mode": "overwrite"}}
    (folder / "user.yml").write_text(yaml.safe_dump(job))
    return folder, job, run_python(installed, ["-m", "jobs.analyze", "--conf", "user.yml"], folder)


def manifest(path: Path) -> dict:
    """A job's manifest without what differs from run to run (where, when, how long, what it cost)."""
    data = json.loads((path / "_textspark_manifest.json").read_text())
    return {k: v for k, v in data.items()
            if k not in ("output", "write_id", "costs", "wall") and not k.endswith("seconds")}


@pytest.mark.slow
def test_a_job_with_a_user_yaml_runs_from_the_installed_wheel(job_run, spark, tmp_path):
    from jobs import analyze
    from udfs.io.jobconf import parse_job

    folder, job, _ = job_run
    analyze.run(parse_job({**job, "output": {"path": str(tmp_path / "classic"), "mode": "overwrite"}}), spark=spark)
    assert_frame_equal(spark.read.parquet(str(folder / "out")), spark.read.parquet(str(tmp_path / "classic")))
    assert manifest(folder / "out") == manifest(tmp_path / "classic")


API = """
import json, sys
import jobs, udfs
from udfs import embed
from udfs.platform import get_spark
spark = get_spark()
df = spark.createDataFrame(list(enumerate(json.loads(sys.argv[2]))), "id long, text string")
rows = df.select("id", embed("text", model=sys.argv[1], precision="fp32").alias("v")).orderBy("id").collect()
print("RESULT " + json.dumps({"udfs": udfs.__file__, "jobs": jobs.__file__, "sys_path": sys.path,
                              "master": spark.sparkContext.master, "same_session": get_spark() is spark,
                              "vectors": [r.v for r in rows]}))
"""


@pytest.mark.slow
def test_the_python_api_runs_from_the_installed_wheel(installed, tiny_encoder, spark, tmp_path):
    from udfs import embed
    from udfs.platform import load_spark_profile

    result = result_line(run_python(installed, ["-c", API, tiny_encoder, json.dumps(TEXTS)], tmp_path))
    site = installed.parents[1]
    assert Path(result.pop("udfs")).is_relative_to(site) and Path(result.pop("jobs")).is_relative_to(site)
    assert str(ROOT) not in result.pop("sys_path")
    df = spark.createDataFrame(list(enumerate(TEXTS)), "id long, text string")
    expected = [r.v for r in df.select(embed("text", model=tiny_encoder, precision="fp32").alias("v"))
                .orderBy("id").collect()]
    vectors = result.pop("vectors")
    assert [v is None for v in vectors] == [v is None for v in expected] == [t is None for t in TEXTS]
    np.testing.assert_allclose([v for v in vectors if v], [v for v in expected if v], atol=1e-6)
    assert result == {"master": load_spark_profile("local")["master"], "same_session": True}  # the shipped profile


NOT_INSTALLED = """
import json, sys
try:
    import udfs
    print("RESULT " + json.dumps({"udfs": udfs.__file__}))
    sys.exit()
except ModuleNotFoundError:
    pass
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.DataFrame({"id": [7, 8, 9], "text": json.loads(sys.argv[2])}))
print("RESULT " + json.dumps({"udfs": None, "vectors": [list(map(float, v)) for v in out]}))
"""


@pytest.mark.slow
def test_a_registered_version_loads_in_a_fresh_venv_without_textspark(job_run, tiny_encoder, tmp_path):
    """mlflow.pyfunc.load_model needs only what the model carries (udfs as code_paths): its predictions are
    the vectors the installed wheel's job wrote."""
    python = fresh_venv(tmp_path / "without-textspark", None)
    texts = [t for t in TEXTS if t is not None]
    result = result_line(run_python(python, ["-c", NOT_INSTALLED, tiny_encoder, json.dumps(texts)], tmp_path))
    assert result["udfs"] is None, "textspark is importable there: the test would prove nothing"
    written = pd.read_parquet(job_run[0] / "out").dropna(subset=["text"]).set_index("text").loc[texts, "embedding"]
    np.testing.assert_allclose(result["vectors"], np.stack(written.to_list()), atol=1e-6)


@pytest.mark.real
@pytest.mark.slow  # a Jupyter kernel and, inside it, Spark and the real embedding model
def test_the_quickstart_notebook_runs_from_the_installed_wheel(installed, mlflow_registry, tmp_path):
    """`jupyter nbconvert --execute` in the wheel's virtualenv, in a folder that is not the checkout: a first
    cell added here checks where textspark comes from; the notebook's own cells assert their results."""
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "01_quickstart.ipynb", as_version=4)
    check = ("import sys, udfs\n"
             f"assert sys.executable == {str(installed)!r}, sys.executable\n"
             f"assert udfs.__file__.startswith({str(installed.parents[1])!r}), udfs.__file__")
    nb.cells.insert(0, nbformat.v4.new_code_cell(check))
    nbformat.write(nb, tmp_path / "quickstart.ipynb")
    run_python(installed, ["-m", "nbconvert", "--to", "notebook", "--execute", "--output", "executed.ipynb",
                           "--ExecutePreprocessor.timeout=600", "quickstart.ipynb"], tmp_path, timeout=900)
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [o.output_type for c in code for o in c.outputs if o.output_type == "error"] == []
    assert all(c.execution_count for c in code), "every cell ran"
