"""Where the MLflow pyfunc face (``udfs.models.pyfunc``) gets its rows: a hook the tasks room fills.

The face sits in the models room, below the runtime and the tasks, so it cannot import the batch core or a
task's plan; ``udfs.tasks.serving`` registers :data:`Serve` here when the tasks room is imported (unpickling
the face imports ``udfs``, whose ``__init__`` imports the tasks). A module of its own, without MLflow, so
registering costs no MLflow import in a Spark worker.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

# (version folder, its textspark.json, the model built from it, model_config) -> (texts -> the core's rows)
Serve = Callable[[Path, dict, Any, "dict | None"], Callable[[Any], Any]]
_serve: list[Serve] = []


def serve_with(serve: Serve) -> None:
    """Make ``serve`` the way a loaded version plans and runs its rows (``udfs.tasks.serving.serve``)."""
    _serve[:] = [serve]


def server() -> Serve:
    """The registered ``serve``; LookupError where the tasks room was not imported in this process."""
    if not _serve:
        raise LookupError("textspark pyfunc: no batch core registered in this process; udfs.tasks registers it "
                          "when imported (importing udfs does)")
    return _serve[0]
