"""The ``textspark`` console script (jobs/cli.py): its commands, each job's --help with the configuration keys and
their defaults, the exit statuses; ``python -m jobs.<job>`` and ``spark-submit jobs/<job>.py`` keep working."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import cli

ROOT = Path(__file__).resolve().parents[1]
TEXTSPARK = Path(sys.executable).parent / "textspark"  # pip install -e . puts it beside the venv's python
ENV = {**os.environ, "COLUMNS": "200"}  # argparse wraps help at the terminal's width


def textspark(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    assert TEXTSPARK.exists(), "no textspark script: run pip install --no-deps --no-build-isolation -e ."
    return subprocess.run([str(TEXTSPARK), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def keys_block(help_text: str) -> list[str]:
    """The configuration keys section of a --help, each line's spacing collapsed."""
    lines = help_text.split("configuration keys (--conf YAML) and their defaults:\n", 1)[1].split("\ntask keys (", 1)[0]
    lines = lines.splitlines()
    return [" ".join(line.split()) for line in lines if line.strip()]


def test_textspark_help_lists_the_commands_and_the_job_each_runs():
    out = textspark("--help")
    assert (out.returncode, out.stderr) == (0, "")
    lines = out.stdout.splitlines()
    assert lines[0] == "usage: textspark [-h] <command> ..."
    commands = [line.split()[0] for line in lines[lines.index("positional arguments:") + 2:lines.index("options:") - 1]]
    assert commands == ["analyze", "cluster", "train", "evaluate", "register", "shadow"]
    modules = [line.split()[-1] for line in lines if line.startswith("    ")]
    assert modules == ["(jobs.analyze)", "(jobs.cluster)", "(jobs.train_classifier)", "(jobs.evaluate)",
                       "(jobs.register_models)", "(jobs.shadow)"]


def test_analyze_help_lists_the_configuration_keys_with_their_defaults():
    out = textspark("analyze", "--help")
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.startswith("usage: textspark analyze [-h] --conf CONF")
    keys = keys_block(out.stdout)
    for line in ("input required: a mapping",
                 "input.path required: a file or folder path",
                 "input.format parquet (parquet, csv, json, table)",
                 "input.stream.trigger available_now (available_now or \"<n> seconds\")",
                 "output.mode overwrite (overwrite, error, errorifexists, append, ignore, incremental)",
                 "output.lease_timeout 600 (seconds, at least 10)",
                 "tasks [] (a non-empty list of {task: ..., column: ...})",
                 "mlflow.experiment null (an experiment name)",
                 "inference.cpus_per_task 1 (a positive integer)",
                 "incremental.retry_errors true"):
        assert line in keys
    # each task's own keys follow, with their defaults and descriptions, read from the task's options model
    tasks = out.stdout.split("\ntask keys (", 1)[1].splitlines()
    assert "classify:" in [t.strip() for t in tasks] and "embed: none of its own" in [t.strip() for t in tasks]
    assert "threshold 0.5 (a number between 0 and 1)" in [" ".join(t.split()) for t in tasks]
    # python -m jobs.analyze and spark-submit jobs/analyze.py (a script run: no package) print the same keys
    for command in ([sys.executable, "-m", "jobs.analyze", "--help"], [sys.executable, "jobs/analyze.py", "--help"]):
        same = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        assert (same.returncode, keys_block(same.stdout)) == (0, keys), command


def test_each_jobs_help_lists_its_own_keys():
    cluster, train, evaluate = (keys_block(textspark(job, "--help").stdout) for job in ("cluster", "train", "evaluate"))
    assert "k_selection stability (stability, silhouette)" in cluster and "output.mode" in " ".join(cluster)
    assert not any(line.startswith("tasks") for line in cluster)  # a cluster job has no tasks
    assert "head.epochs 40 (a non-negative number)" in train and "register.alias candidate" in train
    assert "metric macro_f1 (macro_f1, accuracy, weighted_f1)" in evaluate


def test_a_bad_config_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("input: [a\n")
    out = textspark("analyze", "--conf", str(bad), cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (
        2, "", f"configuration error: {bad}: line 2, column 1: got \"expected ',' or ']', but got '<stream end>'\"; "
               "allowed: valid YAML\n")


def test_an_unknown_command_exits_2():
    out = textspark("analyse", "--conf", "job.yml")
    assert (out.returncode, out.stdout, out.stderr.splitlines()[-1]) == (
        2, "", "textspark: error: argument <command>: invalid choice: 'analyse' (choose from 'analyze', 'cluster', "
               "'train', 'evaluate', 'register', 'shadow')")


@pytest.mark.parametrize("command, module", [("analyze", "jobs.analyze"), ("cluster", "jobs.cluster"),
                                             ("train", "jobs.train_classifier"), ("evaluate", "jobs.evaluate"),
                                             ("register", "jobs.register_models"), ("shadow", "jobs.shadow")])
def test_a_command_runs_its_jobs_main_with_the_rest_of_the_line_and_returns_its_status(monkeypatch, command,
                                                                                        module):
    import importlib

    calls = []

    def job_main(argv):
        calls.append((argv, sys.argv[0]))
        return 3

    monkeypatch.setattr(importlib.import_module(module), "main", job_main)
    program = sys.argv[0]
    assert cli.main([command, "--conf", "job.yml", "--quiet"]) == 3
    assert calls == [(["--conf", "job.yml", "--quiet"], f"textspark {command}")]  # its usage line names it
    assert sys.argv[0] == program


def test_make_run_says_what_each_step_does_before_it_runs():
    """Each command of the Makefile's run target is preceded by a line naming the step and how long it
    usually takes (the first `make run` trains for about half an hour and printed nothing before)."""
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    recipe = makefile.split("\nrun: venv\n", 1)[1].split("\n\n", 1)[0].splitlines()
    steps = [line.strip() for line in recipe]
    assert [s.startswith("@echo ") for s in steps] == [True, False] * 4
    assert [s.split('"')[1].split(" ")[1] for s in steps[::2]] == ["1/4", "2/4", "3/4", "4/4"]
    assert [s.split()[2] for s in steps[1::2]] == ["jobs.register_models", "jobs.make_sample", "jobs.make_sample",
                                                   "jobs.analyze"]
