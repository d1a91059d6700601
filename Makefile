# Two entry points (see README): `make run` (set up, run the main job) and `make test` (set up, run tests).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= laptop

.PHONY: setup run test lint clean browser fashion-mnist

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH; install Python 3.11 or pass PYTHON=/path/to/python"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt torch torchvision
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

setup: $(VENV)/.installed fashion-mnist

# Fashion-MNIST, the offline real-image study, from Debian/Ubuntu's package (febm/images/fashion_mnist.py);
# installed when run as root, else a note (prepare-data can still download it where images.download allows).
FASHION_MNIST_FILE = /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
FASHION_MNIST_HOWTO = allow images.download on a machine with internet (the Fashion-MNIST tests need the Debian files)
fashion-mnist:
	@test -f $(FASHION_MNIST_FILE) || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq >/dev/null 2>&1; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	    echo "note: 'apt-get install dataset-fashion-mnist' failed; $(FASHION_MNIST_HOWTO)"; \
	  else echo "note: Fashion-MNIST is not installed; run 'sudo apt-get install -y dataset-fashion-mnist' (Debian/Ubuntu) or $(FASHION_MNIST_HOWTO)"; fi; }

# The main job: the whole workflow with one preset (laptop: offline, 1-D study + Fashion-MNIST; quick:
# CIFAR-10 download; smoke: minutes, stand-in data;
# paper: config/config.yaml alone). Snakemake skips what is already up to date.
PRESET_CONFIG = $(if $(filter paper,$(PRESET)),,--configfile config/$(PRESET).yaml)
run: setup
	$(VENV)/bin/snakemake --cores all $(PRESET_CONFIG)
	@echo "Report: $(CURDIR)/results/report/index.html"

# The report test opens the report in Debian's chromium; install it on a fresh (root) CI machine.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "error: the report tests need chromium: run 'sudo apt-get install -y chromium'"; exit 1; fi; }

test: setup browser
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV)

# The smoke preset through `--profile profiles/slurm` on a real one-node SLURM that the script installs
# (Debian's packages, as root), starts and stops itself; about 3 minutes. CI runs it after `make test`.
# slurm-test-nogpu: the same on a node without GPUs, through profiles/slurm-cpu.
.PHONY: slurm-test slurm-test-nogpu
slurm-test: setup
	bash tests/slurm/run_slurm_smoke.sh gpu
slurm-test-nogpu: setup
	bash tests/slurm/run_slurm_smoke.sh nogpu
