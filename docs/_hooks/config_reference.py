"""MkDocs hook: replaces ``<!-- textspark:config-reference -->`` in a page with each job's ``--help`` output
(its options and every configuration key with its default, read from the job's configuration models), so the
reference is generated from the code each time the site is built and cannot drift from it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MARKER = "<!-- textspark:config-reference -->"
# (title, module): the jobs whose --help lists configuration keys (jobs/cli.py COMMANDS, but register)
JOBS = [("analyze", "jobs.analyze"), ("cluster", "jobs.cluster"), ("train", "jobs.train_classifier"),
        ("evaluate", "jobs.evaluate"), ("shadow", "jobs.shadow")]


def job_help(module: str, root: Path) -> str:
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=root, capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"python -m {module} --help exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout.rstrip()


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    root = Path(config.config_file_path).parent
    sections = [f"### `textspark {name}` (`python -m {module} --help`)\n\n```text\n{job_help(module, root)}\n```"
                for name, module in JOBS]
    return markdown.replace(MARKER, "\n\n".join(sections))
