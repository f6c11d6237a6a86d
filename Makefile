# pfguard: `make demo` runs the main job on the lab, `make test` runs every test.
# Both work on a fresh Debian machine as root: they install what they need first.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := nftables openssh-server openssh-client fail2ban conntrack iproute2 rsync util-linux procps sudo sqlite3 openssl
# ansible-test insists on running from .../ansible_collections/<namespace>/<name>/.
COLLECTION_ROOT ?= $(or $(TMPDIR),/tmp)/pfguard-ansible-test
COLLECTION_COPY := $(COLLECTION_ROOT)/ansible_collections/pfguard/macos
ANSIBLE_TEST := cd $(COLLECTION_COPY) && $(CURDIR)/$(BIN)/ansible-test

.PHONY: help deps venv test sanity units lint lab-tests fleet-tests molecule demo bench clean collection-copy

help:
	@echo "make demo   - bring up a lab of emulated Macs, run pfguard on it, tear it down"
	@echo "make test   - install dependencies, run unit, sanity, lint, emulator and lab tests"
	@echo "make bench  - pfctl_table benchmark (writes nothing; copy figures into docs/benchmarks.md)"

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: deps $(BIN)/.installed

# ansible-test --venv downloads a get-pip script from a host outside the package index; when it
# is not cached, seed the cache with .ci/ansible_test_get_pip.py, which installs the same pip from PyPI.
PIP_BOOTSTRAP = $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(shell sed -n "s/^ *pip='\([0-9.]*\)',/\1/p" $(VENV)/lib/python3.11/site-packages/ansible_test/_internal/python_requirements.py 2>/dev/null)).py

collection-copy: venv
	@[ -s "$(PIP_BOOTSTRAP)" ] || install -D -m 0644 .ci/ansible_test_get_pip.py "$(PIP_BOOTSTRAP)"
	rm -rf $(COLLECTION_ROOT)
	mkdir -p $(COLLECTION_COPY)
	rsync -a --exclude-from=.ci/collection-excludes ./ $(COLLECTION_COPY)/

sanity: collection-copy
	$(ANSIBLE_TEST) sanity --venv --python 3.11 --color no

units: collection-copy
	$(ANSIBLE_TEST) units --venv --python 3.11 --color no

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ansible-lint --profile production

# Emulator conformance tests, the module against the emulated pfctl, and the lab end to end.
lab-tests: venv
	$(BIN)/pytest -q -p no:cacheprovider tests/lab

# Protection end to end, the fleet plays and the doctor, on a fresh lab after playbooks/site.yml
# (a pytest session of its own, so nothing from tests/lab carries over).
fleet-tests: venv
	$(BIN)/pytest -q -p no:cacheprovider tests/fleet

# Molecule on the lab fleet (create/destroy bring a lab up and down around each scenario):
# lab-smoke reaches every emulated Mac; default converges playbooks/site.yml, checks idempotence
# and verifies every link of the chain.
molecule: venv
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s lab-smoke
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/molecule test -s default

test: venv lint units sanity lab-tests fleet-tests molecule

bench: venv
	$(BIN)/python bench/bench_pfctl_table.py

demo: venv
	$(BIN)/python -m pfguard_lab.demo

clean:
	rm -rf $(COLLECTION_ROOT) .pytest_cache .ruff_cache
