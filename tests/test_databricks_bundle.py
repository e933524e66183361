"""The Databricks Asset Bundle (databricks.yml) cannot be deployed from here: check what can be checked,
that it parses, that every file it names exists, and that the job config it runs is valid."""
from __future__ import annotations

from pathlib import Path

import yaml

from udfs.io.jobconf import load_job

ROOT = Path(__file__).resolve().parents[1]


def bundle() -> dict:
    return yaml.safe_load((ROOT / "databricks.yml").read_text())


def resolve(value: str, variables: dict) -> str:
    """The bundle's ``${var.x}`` from its defaults and ``${workspace.file_path}`` as the bundle root."""
    value = value.replace("${workspace.file_path}", str(ROOT))
    for name, spec in variables.items():
        value = value.replace("${var.%s}" % name, str(spec["default"]))
    return value


def test_bundle_names_files_that_exist_and_a_valid_job_config():
    data = bundle()
    variables = data["variables"]
    assert data["bundle"]["name"] == "textspark"
    assert data["artifacts"]["textspark_wheel"]["build"].startswith("python -m pip wheel")
    tasks = [t for job in data["resources"]["jobs"].values() for t in job["tasks"]]
    assert [t["task_key"] for t in tasks] == ["analyze"]
    task = tasks[0]
    assert (ROOT / task["spark_python_task"]["python_file"]).is_file()
    assert task["libraries"] == [{"whl": "./dist/*.whl"}]
    flag, conf = [resolve(p, variables) for p in task["spark_python_task"]["parameters"]]
    assert flag == "--conf" and Path(conf).is_file()
    job = load_job(conf)
    assert (job.input.format, job.inference.stage_level) == ("table", False)
    assert [t.task for t in job.tasks] == ["embed", "sentiment", "language"]
    # results land in a Unity Catalog table, MERGEd into on each run (udfs/io/tables.py)
    assert (job.output.table, job.output.path, job.output.format, job.output.mode, job.output.delete_missing) == \
        ("main.reviews.scored", None, "delta", "incremental", True)
    assert task["new_cluster"]["spark_env_vars"] == {"MLFLOW_TRACKING_URI": "databricks"}
    assert "${var." not in resolve(str(task["new_cluster"]), variables)
