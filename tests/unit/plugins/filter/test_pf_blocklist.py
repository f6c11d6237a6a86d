# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pull mode's parsing: the fleet blocklist file filters and the doctor's reading of the pull status file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pfguard.macos.plugins.filter.pf_addresses import pf_invalid, pf_normalize
from ansible_collections.pfguard.macos.plugins.filter.pf_blocklist import pf_blocklist_lines, pf_blocklist_text
from ansible_collections.pfguard.macos.plugins.filter.protection_verdict import broken_link_items

FILE = "# fleet bans\n203.0.113.7  # scanner\n\n   \n2001:db8::/64\n198.51.100.200/32\n# 192.0.2.1\n"


def test_text_gives_one_entry_a_line_without_comments_or_blanks():
    assert pf_blocklist_text(FILE) == ["203.0.113.7", "2001:db8::/64", "198.51.100.200/32"]
    assert pf_blocklist_text("") == []
    assert pf_blocklist_text("# only a comment") == []


def test_bad_lines_are_entries_pf_invalid_names():
    entries = pf_blocklist_text("203.0.113.7\nnot-an-address\n192.0.2.1 192.0.2.2\n300.1.1.1\n")
    assert entries == ["203.0.113.7", "not-an-address", "192.0.2.1 192.0.2.2", "300.1.1.1"]
    named = " ".join(pf_invalid(entries))
    for bad in ("not-an-address", "192.0.2.1 192.0.2.2", "300.1.1.1"):
        assert bad in named
    assert "203.0.113.7'" not in named


@pytest.mark.parametrize("value", [None, 7, ["203.0.113.7"], {"a": 1}, b"203.0.113.7"])
def test_text_refuses_what_is_not_text(value):
    with pytest.raises(AnsibleFilterError, match="pf_blocklist_text"):
        pf_blocklist_text(value)


def test_lines_match_as_pfctl_stores_addresses():
    lines = FILE.splitlines()
    assert pf_blocklist_lines(lines, ["198.51.100.200"]) == ["198.51.100.200/32"]
    found = pf_blocklist_lines(lines, ["203.0.113.7/32", "2001:db8:0::/64"])
    assert found == ["203.0.113.7  # scanner", "2001:db8::/64"]
    assert pf_blocklist_lines(lines, ["192.0.2.1"]) == []  # only commented out
    assert pf_blocklist_lines(lines, []) == []
    assert pf_blocklist_lines(["garbage", "203.0.113.7"], ["203.0.113.7"]) == ["203.0.113.7"]


@pytest.mark.parametrize("lines, addresses", [
    ("203.0.113.7", ["203.0.113.7"]), ([1], ["203.0.113.7"]),
    (["203.0.113.7"], "203.0.113.7"), (["203.0.113.7"], ["nope"]),
])  # fmt: skip
def test_lines_refuse_bad_arguments(lines, addresses):
    with pytest.raises(AnsibleFilterError, match="pf_blocklist_lines"):
        pf_blocklist_lines(lines, addresses)


def test_normalized_file_entries_drop_duplicates():
    assert pf_normalize(pf_blocklist_text("203.0.113.7\n203.0.113.7/32\n")) == ["203.0.113.7"]


# --- the doctor's pull links ----------------------------------------------------------------------

PROTECTED = {
    "pf": {"enabled": True, "reachable_anchors": ["pfguard"], "blocking_tables": ["pfguard:pfguard_blocklist"]},
    "launchd": {"loaded": ["org.pfguard.pf"], "installed": ["org.pfguard.pf"]},
}
NOW = 1800000000


def status(**fields):
    base = {"interval": 60, "result": "ok", "last_success": "2027-01-15T08:00:00Z", "last_success_epoch": NOW - 30,
            "last_attempt": "2027-01-15T08:00:00Z", "last_attempt_epoch": NOW - 30, "failing_since": None,
            "failing_since_epoch": None, "reason": "unchanged"}  # fmt: skip
    base.update(fields)
    return json.dumps(base)


def links(pull):
    return broken_link_items(dict(PROTECTED, pull=pull), jails=[])


def test_no_pull_role_no_pull_links():
    assert links(None) == [] and links({"installed": False, "status": "garbage"}) == []


def test_a_recent_successful_pull_is_protected():
    assert links({"installed": True, "status": status(), "now": NOW, "max_intervals": 3}) == []


def test_a_failed_pull_names_since_when_and_why():
    failed = status(result="failed", failing_since="2027-01-15T07:00:00Z", reason="ansible-pull exited 2: fatal: x")
    assert links({"installed": True, "status": failed, "now": NOW, "max_intervals": 3}) == [
        ("pull_failing", "pull failing since 2027-01-15T07:00:00Z: ansible-pull exited 2: fatal: x")]


def test_a_pull_older_than_the_intervals_is_stale():
    old = status(last_success_epoch=NOW - 181)
    assert links({"installed": True, "status": old, "now": NOW, "max_intervals": 3}) == [
        ("pull_stale", "no successful pull since 2027-01-15T08:00:00Z (more than 3 intervals of 60 s)")]
    recent = status(last_success_epoch=NOW - 180)
    assert links({"installed": True, "status": recent, "now": NOW, "max_intervals": 3}) == []


@pytest.mark.parametrize("text", ["", "{", "[]", status(result="maybe"), status(interval="60"),
                                  status(last_success_epoch=-1), status(last_success_epoch=True)])  # fmt: skip
def test_an_unreadable_status_file_is_a_broken_link(text):
    (name, message), = links({"installed": True, "status": text, "now": NOW, "max_intervals": 3})
    assert name == "pull_status_unreadable" and message.startswith("pull status file /var/db/pfguard/pull.json")


def test_a_status_path_that_is_not_a_regular_file_is_a_broken_link():
    problem = {"installed": True, "status": None, "status_problem": "it is not a regular file", "now": NOW}
    assert links(problem) == [("pull_status_unreadable",
                               "pull status file /var/db/pfguard/pull.json cannot be read: it is not a regular file")]


def test_no_status_file_yet():
    assert links({"installed": True, "status": None, "now": NOW}) == [
        ("pull_never_ran", "no pull has finished yet (no /var/db/pfguard/pull.json)")]


def test_a_long_reason_is_cut_and_control_characters_replaced():
    failed = status(result="failed", reason="x\x1b" + "y" * 500)
    (dummy, message), = links({"installed": True, "status": failed, "now": NOW})
    assert "\x1b" not in message and message.endswith("...") and len(message) < 300


@pytest.mark.parametrize("now", ["1800000000", True, -5])
def test_a_bad_clock_is_refused(now):
    with pytest.raises(AnsibleFilterError, match="pull.now"):
        links({"installed": True, "status": status(), "now": now})
