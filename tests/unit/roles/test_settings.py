# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""One place for every setting: the defaults of pfguard.macos.common, which every role's argument spec
and docs/variables.md agree with, and which no play overrides with play variables."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULTS_FILE = os.path.join(ROOT, "roles", "common", "defaults", "main.yml")
ROLES = sorted(os.path.basename(os.path.dirname(path)) for path in glob.glob(os.path.join(ROOT, "roles", "*", "meta")))
PLAYS = sorted(glob.glob(os.path.join(ROOT, "playbooks", "*.yml")))


def load(path):
    with open(path) as stream:
        return yaml.safe_load(stream)


DEFAULTS = load(DEFAULTS_FILE)


def specs(role):
    return load(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml"))["argument_specs"]["main"]["options"]


def test_only_common_has_defaults():
    assert [role for role in ROLES if os.path.exists(os.path.join(ROOT, "roles", role, "defaults"))] == ["common"]


@pytest.mark.parametrize("role", ROLES)
def test_every_documented_option_defaults_to_the_common_default(role):
    for name, option in specs(role).items():
        if name in DEFAULTS:
            assert option.get("default") == DEFAULTS[name], "%s: %s" % (role, name)


def test_every_default_is_documented_in_an_argument_spec():
    documented = set()
    for role in ROLES:
        documented.update(specs(role))
    assert sorted(set(DEFAULTS) - documented) == []


def test_every_default_is_in_the_settings_table():
    with open(os.path.join(ROOT, "docs", "variables.md")) as stream:
        table = set(re.findall(r"^\| `(pfguard_[a-z0-9_]+)` \|", stream.read(), re.MULTILINE))
    assert sorted(set(DEFAULTS) - table) == []


@pytest.mark.parametrize("path", PLAYS, ids=os.path.basename)
def test_plays_target_pfguard_hosts_and_set_no_play_variables(path):
    for play in load(path):
        assert play["hosts"] == "{{ pfguard_hosts | default('macs') }}"
        assert "vars" not in play and "vars_files" not in play
        roles = [entry["role"] if isinstance(entry, dict) else entry for entry in play.get("roles", [])]
        assert roles and (roles[0] == "pfguard.macos.common" or roles[0] == "pfguard.macos.preflight"
                          or all(r.startswith("pfguard.macos.") for r in roles)), roles


@pytest.mark.parametrize("role", [role for role in ROLES if role != "common"])
def test_every_other_role_depends_on_common(role):
    meta = load(os.path.join(ROOT, "roles", role, "meta", "main.yml"))
    assert {"role": "pfguard.macos.common"} in meta["dependencies"]


def test_no_role_or_play_ends_the_host():
    files = glob.glob(os.path.join(ROOT, "roles", "*", "tasks", "*.yml")) + PLAYS
    files += glob.glob(os.path.join(ROOT, "playbooks", "tasks", "*.yml"))
    for path in files:
        with open(path) as stream:
            code = [line.split("#")[0] for line in stream]
        assert not any(re.search(r"meta:\s*end_host", line) for line in code), path
