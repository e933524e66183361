"""Every notebook under notebooks/ runs top to bottom (against the test registry), so none can rot; a cell
that raises fails the test, whatever the cell's tags."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


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
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
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
