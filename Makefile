# The two commands of the README: `make run` (set up + the default sweep) and `make test`.
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
BIN := $(VENV)/bin
STAMP := $(VENV)/.fsw-installed

# The data root: MNIST is read from MNIST/raw/ below it, Fashion-MNIST from FashionMNIST/raw/
# (config/README.md, "Data"); each is downloaded there when missing and online.
FSW_DATA_ROOT ?= $(CURDIR)/data
export FSW_DATA_ROOT

.PHONY: setup run smoke compare test readme clean

setup: $(STAMP)

# Installed files are byte-compiled by compileall on every core; pip does it on one (~90 s of the
# ~180 s setup on 2 cores). Skipping it would cost every job ~15 s where PYTHONDONTWRITEBYTECODE
# is set. A few files are for newer Pythons (torch's py312 helpers) and fail, as under pip.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install --no-compile -e '.[test]'
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	touch $(STAMP)

# The sweep, then what a reader sees of it: the HTML report, the README's results and docs/results.md.
run: setup
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	$(BIN)/snakemake --profile profiles/local --report results/report.html
	$(BIN)/python tools/readme.py --results results --readme README.md

readme: setup
	$(BIN)/python tools/readme.py --results results --readme README.md

smoke: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/smoke.yaml

# The ownership schemes on MNIST (reusing the default sweep's models) and on Fashion-MNIST, then one
# table and figure of both: results/compare/schemes.{csv,html,png}.
compare: setup
	$(BIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/compare.yaml
	$(BIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/compare.yaml config/fashion.yaml \
	  --config results=results/compare/fashion models=results/compare/fashion/train
	$(BIN)/python -m tools.compare results/compare/mnist results/compare/fashion --out results/compare --readme README.md

test: setup
	$(BIN)/pytest

clean:
	rm -rf results .snakemake
