# pfguard: `make demo` runs the main job on the lab, `make test` runs every test.
# Both work on a fresh Debian machine as root: they install what they need first.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The current ansible-core release (2.21) wants Python >= 3.12: pyenv's 3.13 if there, else PATH's.
PYTHON_CURRENT ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3.13)
VENV_CURRENT := .venv-current
BIN_CURRENT := $(VENV_CURRENT)/bin
APT_PACKAGES := nftables openssh-server openssh-client fail2ban conntrack iproute2 rsync util-linux procps sudo sqlite3 openssl
# ansible-test insists on running from .../ansible_collections/<namespace>/<name>/.
COLLECTION_ROOT ?= $(or $(TMPDIR),/tmp)/pfguard-ansible-test
COLLECTION_COPY := $(COLLECTION_ROOT)/ansible_collections/pfguard/macos
# ansible-test of a virtualenv ($(1)) on its own Python ($(2)): the oldest supported ansible-core
# (.venv, 2.19, Python 3.11) and the current release (.venv-current, 2.21, Python 3.13).
ansible_test = cd $(COLLECTION_COPY) && $(CURDIR)/$(1)/bin/ansible-test $(3) --venv --python $(2) --color no
# `make collection` builds the Galaxy artifact here (gitignored; galaxy.yml build_ignore leaves it out).
BUILD_DIR := build
COLLECTION_TARBALL = $(BUILD_DIR)/pfguard-macos-$(shell sed -n 's/^version: *//p' galaxy.yml).tar.gz

.PHONY: help deps venv venv-current test test-static test-lab sanity sanity-floor sanity-current units units-floor units-current lint \
	collection packaging-tests cli-tests emulator-tests test-fast test-fast-checks lab-tests fleet-tests fleet-extended test-extended molecule demo bench bench-fleet bench-feeds pull-fleet clean collection-copy

help:
	@echo "make demo   - bring up a lab of emulated Macs, run pfguard on it, tear it down"
	@echo "make test   - install dependencies, run lint, unit, sanity (ansible-core 2.19 and 2.21), packaging,"
	@echo "              emulator and lab tests and Molecule"
	@echo "make test-fast - lint, units and sanity (2.19), the pfguard command and the emulator tests; no lab"
	@echo "make collection - build the Galaxy artifact into build/"
	@echo "make bench  - pfctl_table benchmark (writes nothing; copy figures into docs/benchmarks.md)"
	@echo "make bench-fleet [SIZES=1,5] - the fleet plays on 1..40 lab Macs, defaults against tuned settings"
	@echo "make pull-fleet [PULL_MACS=20] - pull mode's lab tests on a lab of 20 Macs"
	@echo "make bench-feeds [FEED_MACS=20] - a 150 000-entry feed through feeds.yml on lab Macs at once"

# Debian packages, then the fail2ban releases the lab's Macs pour besides the machine's 1.0.2 (1.1.0: Debian's
# build and the upstream source, pinned by SHA256, cached in /var/cache/pfguard-lab; nothing when there).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@$(PYTHON) lab/pfguard_lab/fail2ban_dist.py fetch >/dev/null

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: deps $(BIN)/.installed

$(BIN_CURRENT)/.installed: pyproject.toml
	$(PYTHON_CURRENT) -m venv $(VENV_CURRENT)
	$(BIN_CURRENT)/pip install -q --upgrade pip
	$(BIN_CURRENT)/pip install -q -e '.[current]'
	touch $@

venv-current: deps $(BIN_CURRENT)/.installed

# ansible-test --venv downloads a get-pip script from a host outside the package index; when it
# is not cached, seed the cache with .ci/ansible_test_get_pip.py, which installs the same pip from
# PyPI. Each ansible-test names its own pip version: $(call seed_get_pip,<virtualenv>).
seed_get_pip = f=$(HOME)/.ansible/test/cache/get_pip_$$(sed -n "s/^ *pip='\([0-9.]*\)',/\1/p" \
	$(1)/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | tr . _).py; \
	[ -s "$$f" ] || install -D -m 0644 .ci/ansible_test_get_pip.py "$$f"

# The Galaxy artifact: what `ansible-galaxy collection install` gets (galaxy.yml build_ignore).
collection: venv
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD_DIR) .

# ansible-test runs on the artifact itself, unpacked where ansible-test wants it.
collection-copy: collection
	rm -rf $(COLLECTION_ROOT)
	mkdir -p $(COLLECTION_COPY)
	tar -xzf $(COLLECTION_TARBALL) -C $(COLLECTION_COPY)

sanity: sanity-floor sanity-current
units: units-floor units-current

sanity-floor: venv collection-copy
	@$(call seed_get_pip,$(VENV))
	$(call ansible_test,$(VENV),3.11,sanity)

sanity-current: venv-current collection-copy
	@$(call seed_get_pip,$(VENV_CURRENT))
	$(call ansible_test,$(VENV_CURRENT),3.13,sanity)

units-floor: venv collection-copy
	@$(call seed_get_pip,$(VENV))
	$(call ansible_test,$(VENV),3.11,units)

units-current: venv-current collection-copy
	@$(call seed_get_pip,$(VENV_CURRENT))
	$(call ansible_test,$(VENV_CURRENT),3.13,units)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ansible-lint --profile production
	$(BIN)/antsibull-changelog lint
	$(BIN)/antsibull-changelog lint-changelog-yaml --strict changelogs/changelog.yaml

# The artifact built, installed and used from outside the checkout, and the SPDX headers; no lab.
packaging-tests: venv
	$(BIN)/pytest -q -p no:cacheprovider tests/packaging

# The `pfguard` command (cli/): arguments, inventory discovery, exit codes and rendering, from
# recorded ansible-runner events; no lab (tests/fleet/test_pfguard_command.py runs it on the lab).
cli-tests: venv
	$(BIN)/pytest -q -p no:cacheprovider cli/tests

# tests/lab without the running lab (marker `lab`, tests/lab/conftest.py): the emulators against
# docs/reference/, the modules and filters run by real ansible against the emulated commands, PF
# enforcement between two namespaces of their own. Safe beside a running lab.
emulator-tests: venv
	$(BIN)/pytest -q -p no:cacheprovider --durations=10 -m "not lab" tests/lab

# tests/lab on the running lab: the roles and the lab end to end.
lab-tests: venv
	$(BIN)/pytest -q -p no:cacheprovider --durations=15 -m "lab and not extended" tests/lab

# The tests/lab cases kept out of `make test` for CI's time budget (marker `extended`).
lab-extended: venv
	$(BIN)/pytest -q -p no:cacheprovider --durations=15 -m "lab and extended" tests/lab

# Protection end to end, the fleet plays and the doctor, on a fresh lab after playbooks/site.yml
# (a pytest session of its own, so nothing from tests/lab carries over).
fleet-tests: venv
	$(BIN)/pytest -q -p no:cacheprovider --durations=25 -m "not extended" tests/fleet

# The fleet tests kept out of `make test` for CI's time budget (marker `extended`): the `pfguard`
# command on the lab, site.yml enabling disabled launchd jobs, the preflight's slower cases, the
# installed collection used end to end, a ban cut in the middle, the ban ending after bantime and
# the IPv6 prefix ban, a 150 000-entry feed, pull mode. `make test-extended` runs them and Molecule;
# run it before a release.
fleet-extended: venv
	$(BIN)/pytest -q -p no:cacheprovider --durations=25 -m extended tests/fleet

# Molecule on the lab fleet with the current ansible-core (create/destroy bring a lab up and down):
# default converges playbooks/site.yml, checks idempotence and verifies every link of the chain.
# The lab-smoke scenario (every emulated Mac reachable) repeats tests/lab/test_lab_network.py, so
# it stays out of `make test`: `make molecule MOLECULE_SCENARIOS="lab-smoke default"`.
MOLECULE_SCENARIOS ?= default
molecule: venv-current
	for s in $(MOLECULE_SCENARIOS); do PATH=$(CURDIR)/$(BIN_CURRENT):$$PATH $(BIN_CURRENT)/molecule test -s $$s; done

# Two lanes at once, each in order: the checks that need no lab (CPU-bound) beside the lab suites
# (mostly waiting on SSH, sshd and launchd), so the whole run fits CI's budget. Either lane failing
# fails `make test`, after both have finished.
# .venv-current is built in the first lane.
test: venv
	$(MAKE) --no-print-directory -j2 test-static test-lab

test-static:
	$(MAKE) --no-print-directory -j1 venv-current lint units sanity packaging-tests cli-tests emulator-tests

test-lab:
	$(MAKE) --no-print-directory -j1 lab-tests fleet-tests

# What `make test` leaves out for CI's 30 minutes: the extended lab and fleet tests and Molecule (the
# collection converged, re-run and verified by the doctor with the current ansible-core).
test-extended: venv
	$(MAKE) --no-print-directory -j1 lab-extended fleet-extended molecule

# No lab, one ansible-core: what a change can be checked with in a few minutes. Two lanes, as in
# `make test`: the emulator tests beside the rest.
test-fast: venv
	$(MAKE) --no-print-directory -j2 test-fast-checks emulator-tests

test-fast-checks:
	$(MAKE) --no-print-directory -j1 lint units-floor sanity-floor cli-tests

bench: venv
	$(BIN)/python bench/bench_pfctl_table.py

# Pull mode's acceptance on a lab of its own with PULL_MACS Macs (20 by default, about 20 minutes; the
# lab must be down): the first pull converges every Mac, a ban and an unban committed to the repository
# reach all of them within interval + 30 s by launchd's schedule, a failing pull is named by the doctor.
PULL_MACS ?= 20
pull-fleet: venv
	PFGUARD_LAB_HOSTS=$(PULL_MACS) flock /tmp/pfguard-lab.lock $(BIN)/pytest -q -p no:cacheprovider -s \
		--durations=10 -m extended tests/fleet/test_pull.py

# The fleet plays on 1..40 lab Macs, Ansible's defaults against the recommended settings (an hour or
# more; the lab must be down). Figures go into docs/benchmarks.md.
bench-fleet: venv
	flock /tmp/pfguard-lab.lock $(BIN)/python bench/fleet.py $(if $(SIZES),--sizes $(SIZES))

# A 150 000-entry blocklist feed through feeds.yml on FEED_MACS lab Macs at once (the lab must be down).
bench-feeds: venv
	flock /tmp/pfguard-lab.lock $(BIN)/python bench/feeds_fleet.py $(if $(FEED_MACS),--macs $(FEED_MACS))

demo: venv
	$(BIN)/python -m pfguard_lab.demo

clean:
	rm -rf $(COLLECTION_ROOT) $(BUILD_DIR) .pytest_cache .ruff_cache
