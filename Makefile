# The two commands of the README: `make run` (set up + the default sweep) and `make test`.
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
BIN := $(VENV)/bin
STAMP := $(VENV)/.fsw-installed

# Real MNIST: the shared folder beside the checkout when it exists, else ./data (downloaded online).
SHARED_DATA := $(abspath ../shared/data)
FSW_DATA_ROOT ?= $(if $(wildcard $(SHARED_DATA)/MNIST/raw),$(SHARED_DATA),$(CURDIR)/data)
export FSW_DATA_ROOT

.PHONY: setup run smoke test readme clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

run: setup
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)

readme: setup
	$(BIN)/python -m fsw.readme --results results --readme README.md

smoke: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/smoke.yaml

test: setup
	$(BIN)/pytest

clean:
	rm -rf results .snakemake
