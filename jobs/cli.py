"""``textspark <command>``: the jobs as one console script (``textspark analyze --conf job.yml``). Each job's
``--help`` lists its configuration keys with their defaults (udfs.config.config_help)."""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from pathlib import Path

COMMANDS = {"analyze": "jobs.analyze", "cluster": "jobs.cluster", "train": "jobs.train_classifier",
            "evaluate": "jobs.evaluate", "register": "jobs.register_models", "shadow": "jobs.shadow"}


def main(argv: list[str] | None = None) -> int:
    """Run ``textspark <command> [args]``: the command's own ``main`` gets the args; returns its exit status
    (2 for an unknown command or a bad option, as argparse exits)."""
    parser = argparse.ArgumentParser(prog="textspark", description="Run a textspark job, e.g. textspark analyze "
                                     "--conf job.yml", epilog="textspark <command> --help: the command's options "
                                     "and configuration keys with their defaults")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, module in COMMANDS.items():
        commands.add_parser(name, help=f"{_summary(module)} ({module})", add_help=False)
    try:
        args, rest = parser.parse_known_args(argv)
        job = importlib.import_module(COMMANDS[args.command])
        saved, sys.argv[0] = sys.argv[0], f"textspark {args.command}"  # the command's usage line names it
        try:
            return job.main(rest)
        finally:
            sys.argv[0] = saved
    except SystemExit as exc:  # argparse: --help (0), an unknown command or option (2)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1


def _summary(module: str) -> str:
    """The first line of a job module's docstring, read without importing the job (Spark, torch)."""
    source = Path(importlib.util.find_spec(module).origin).read_text()
    return (ast.get_docstring(ast.parse(source)) or module).splitlines()[0].rstrip(".")


if __name__ == "__main__":
    sys.exit(main())
