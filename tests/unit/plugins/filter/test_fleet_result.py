# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet plays' result document and the summary printed from it, in normal and check mode."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pfguard.macos.plugins.filter import fleet_result as plugin
from ansible_collections.pfguard.macos.plugins.filter.fleet_result import FilterModule, fleet_result, fleet_summary
from ansible_collections.pfguard.macos.tests.unit.plugins.filter.sidecar import sidecar_documentation

BAN = {
    "mac1": {"added": ["203.0.113.7"], "states_killed": 2, "entries": 3},
    "mac2": {"added": [], "states_killed": 0, "entries": 3},
}
ALL = ["mac1", "mac2", "mac3", "linux1"]


def test_ban_result_totals_and_the_hosts_without_a_result():
    result = fleet_result(BAN, "ban", False, ALL, ["linux1"], {"addresses": ["203.0.113.7"]})
    assert result["totals"] == {"hosts": 2, "hosts_changed": 1, "added": 1, "states_killed": 2, "skipped": 1}
    assert result["skipped"] == ["linux1"] and result["failed"] == ["mac3"]
    assert fleet_summary(result).splitlines() == [
        "ban: 203.0.113.7",
        "mac1: added 203.0.113.7; 2 state(s) killed; 3 entries in pfguard_blocklist",
        "mac2: already banned; 0 state(s) killed; 3 entries in pfguard_blocklist",
        "total: 1 entries added on 1 of 2 hosts, 2 state(s) killed",
        "linux1: not a Mac (skipped)",
    ]


def test_check_mode_words_every_change_as_one_that_would_be_made():
    text = fleet_summary(fleet_result(BAN, "ban", True, ALL, [], {"addresses": ["203.0.113.7"]}))
    assert text.splitlines()[0] == "ban (check mode, nothing changed): 203.0.113.7"
    assert "mac1: would be added 203.0.113.7; 2 state(s) would be killed" in text


def test_unban_and_sync_summaries():
    unban = {"mac1": {"removed": ["198.51.100.200"], "fail2ban_lifted": {"sshd": ["198.51.100.200"]},
                      "fail2ban_running": True},
             "mac2": {"removed": [], "fail2ban_lifted": {}, "fail2ban_running": False}}
    lines = fleet_summary(fleet_result(unban, "unban", False, ["mac1", "mac2"], [],
                                       {"addresses": ["198.51.100.200"]})).splitlines()
    assert lines[1] == "mac1: unbanned in fail2ban sshd 198.51.100.200; removed from pfguard_blocklist 198.51.100.200"
    assert lines[2] == "mac2: fail2ban is not running; nothing in pfguard_blocklist"
    assert lines[3] == "total: 1 blocklist entries removed, 1 fail2ban bans lifted"
    sync = {"mac1": {"added": [], "removed": ["203.0.113.9"], "states_killed": 0, "not_synced": ["198.51.100.1"]}}
    text = fleet_summary(fleet_result(sync, "sync", False, ["mac1"], [],
                                      {"selected": {"198.51.100.1": 1}, "min_hosts": 1, "silent_hosts": []}))
    assert "mac1: nothing to add; taken out 203.0.113.9 (no longer banned by fail2ban); not synced, trusted or the " \
        "controller: 198.51.100.1" in text


def test_doctor_table_lists_every_host_in_play_order():
    doctor = {"mac2": {"protected": False, "link": "pf_disabled", "verdict": "PF is disabled"},
              "mac1": {"protected": True, "link": "protected", "verdict": "protected"}}
    result = fleet_result(doctor, "doctor", False, ALL, ["linux1"], {"hosts_order": ALL})
    assert result["totals"] == {"hosts": 2, "protected": 1, "unprotected": 1, "skipped": 1}
    assert fleet_summary(result).splitlines() == [
        "host   | verdict",
        "mac1   | protected",
        "mac2   | PF is disabled",
        "mac3   | not checked: a task failed on it (see above)",
        "linux1 | not a Mac (skipped)",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (({"mac1": {}}, "shutdown"), "play must be one of ban, unban, sync, doctor, report"),
        (("mac1", "ban"), "fleet_result: hosts"),
        (({"mac1": {"added": "203.0.113.7"}}, "ban"), "hosts[mac1].added"),
        (({"mac1": {"added": [], "states_killed": -1}}, "ban"), "hosts[mac1].states_killed"),
        (({"mac1": {"protected": "yes", "link": "x", "verdict": "y"}}, "doctor"), "hosts[mac1].protected"),
    ],
)
def test_bad_results_are_refused_naming_the_field(args, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fleet_result(*args)


UNKNOWN_PLAY = {"play": "reboot", "check_mode": False, "hosts": {}, "totals": {}, "skipped": [], "failed": [],
                "details": {}}


@pytest.mark.parametrize("value", [None, "text", {"play": "ban"}, UNKNOWN_PLAY])
def test_summary_refuses_what_fleet_result_does_not_return(value):
    with pytest.raises(AnsibleFilterError, match="fleet_summary"):
        fleet_summary(value)


@pytest.mark.parametrize("name", sorted(FilterModule().filters()))
def test_each_filter_has_documentation_matching_its_signature(name):
    sidecar_documentation(plugin, FilterModule().filters(), name)
