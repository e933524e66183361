"""What every notebooks/_build_*.py shares: write cells as a notebook (no outputs) for the python3 kernel."""
from pathlib import Path

import nbformat

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(cells: list, filename: str) -> Path:
    """Write ``cells`` to notebooks/<filename>; tests/test_notebooks.py executes it."""
    out = Path(__file__).with_name(filename)
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNELSPEC}), out)
    return out
