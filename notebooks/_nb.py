"""What every notebooks/_build_*.py shares: write cells as a notebook (no outputs) for the python3 kernel."""
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# First code cell of the notebooks that train or fit: project root, offline settings, the base model, Spark.
SETUP_SOURCE = (
    "import os, tempfile\n"
    "from pathlib import Path\n"
    "os.chdir(os.environ.get('TEXTSPARK_HOME', os.getcwd()))  # run from the project root\n"
    "from udfs.platform import get_spark, setup_environment\n"
    "setup_environment()  # offline; MLflow at $MLFLOW_TRACKING_URI (the tests set a temp one)\n"
    "from jobs.register_models import register_entry\n"
    "from udfs.models.catalog import load_catalog\n"
    "register_entry(load_catalog()['textspark-minilm'])  # the base embedding model (idempotent: an unchanged "
    "model adds no version)\n"
    "spark = get_spark('local')")


def write_notebook(cells: list, filename: str) -> Path:
    """Write ``cells`` to notebooks/<filename>; tests/test_notebooks.py executes it."""
    out = Path(__file__).with_name(filename)
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC}), out)
    return out
