"""The embedded platform's defaults: where the registry goes when the user names none."""
from __future__ import annotations

import os
import subprocess
import sys

CODE = "import os; from udfs.platform import setup_environment; setup_environment(); print(os.environ['MLFLOW_TRACKING_URI'])"


def tracking_uri_in_fresh_process(env: dict, cwd) -> str:
    return subprocess.run([sys.executable, "-c", CODE], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_default_registry_is_per_user_not_the_install_folder_or_the_working_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    uri = tracking_uri_in_fresh_process({**env, "XDG_DATA_HOME": str(tmp_path / "data")}, tmp_path)
    assert uri == f"sqlite:///{tmp_path / 'data' / 'textspark' / 'mlflow.db'}"


def test_mlflow_tracking_uri_wins(tmp_path):
    uri = tracking_uri_in_fresh_process({**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mine.db'}"},
                                        tmp_path)
    assert uri == f"sqlite:///{tmp_path / 'mine.db'}"
