# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet ban report, from facts shaped like pfguard.macos.fail2ban_facts returns them (history=true)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pfguard.macos.plugins.filter.ban_report import FilterModule, ban_report

ATTACKER = "198.51.100.200"
T0 = 1763800000  # 2025-11-22 08:26:40 UTC


def facts(jails=None, history=None, running=True, installed=True):
    return {
        "installed": installed,
        "running": running,
        "client": "/opt/homebrew/bin/fail2ban-client",
        "config_dir": "/opt/homebrew/etc/fail2ban",
        "version": "1.0.2",
        "dbfile": "/opt/homebrew/var/lib/fail2ban/fail2ban.sqlite3",
        "jails": jails or {},
        "history": history or [],
    }


def jail(banned=(), total_banned=None, currently_banned=None):
    return {
        "currently_failed": 0,
        "total_failed": 3 * len(banned),
        "currently_banned": len(banned) if currently_banned is None else currently_banned,
        "total_banned": len(banned) if total_banned is None else total_banned,
        "banned": list(banned),
        "logpaths": ["/var/log/pfguard/auth.log"],
    }


def record(ip, when, jail_name="sshd"):
    return {"jail": jail_name, "ip": ip, "timeofban": when, "bantime": 600, "bancount": 1}


# The lab after the attacker failed three logins on mac1 and then on mac2, and one IPv6 ban on mac2.
FLEET = {
    "mac2": {
        "blocklist": 2,
        "fail2ban": facts(
            jails={"sshd": jail([ATTACKER, "2001:db8:5::9"]), "screensharingd": jail()},
            history=[record("2001:db8:5::9", T0 - 50), record(ATTACKER, T0 + 40)],
        ),
    },
    "mac1": {"blocklist": 0, "fail2ban": facts(jails={"sshd": jail([ATTACKER])}, history=[record(ATTACKER, T0)])},
    "mac3": {"blocklist": 0, "fail2ban": facts(jails={"sshd": jail()})},
}


def test_is_exposed_as_a_filter():
    assert FilterModule().filters() == {"ban_report": ban_report}


def test_per_host_and_jail():
    report = ban_report(FLEET)
    assert [host["host"] for host in report["hosts"]] == ["mac1", "mac2", "mac3"]
    mac2 = report["hosts"][1]
    assert mac2["fail2ban"] == "running"
    assert mac2["blocklist"] == 2
    assert [j["jail"] for j in mac2["jails"]] == ["screensharingd", "sshd"]
    sshd = mac2["jails"][1]
    assert sshd == {
        "jail": "sshd", "currently_banned": 2, "banned": [ATTACKER, "2001:db8:5::9"], "ban_records": 2,
        "total_banned": 2,
    }  # fmt: skip
    assert (mac2["currently_banned"], mac2["ban_records"], mac2["total_banned"]) == (2, 2, 2)
    assert report["totals"] == {
        "hosts": 3, "jails": 4, "currently_banned": 3, "ban_records": 3, "total_banned": 3, "blocklist": 2,
        "addresses": 2,
    }  # fmt: skip


def test_top_offender_and_network_across_hosts():
    report = ban_report(FLEET)
    top = report["addresses"][0]
    assert top == {"address": ATTACKER, "bans": 2, "hosts": ["mac1", "mac2"], "last_ban": T0 + 40,
                   "last_ban_utc": "2025-11-22 08:27:20 UTC"}  # fmt: skip
    assert [n["network"] for n in report["networks"]] == ["198.51.100.0/24", "2001:db8:5::/64"]
    assert report["networks"][0]["hosts"] == ["mac1", "mac2"]
    assert report["newest_ban"] == T0 + 40
    assert report["newest_ban_utc"] == "2025-11-22 08:27:20 UTC"


def test_ipv6_addresses_group_by_64():
    history = [record("2001:db8:1:2::a", T0), record("2001:db8:1:2:ffff::1", T0 + 1), record("2001:db8:1:3::a", T0)]
    report = ban_report({"mac1": {"blocklist": None, "fail2ban": facts(jails={"sshd": jail()}, history=history)}})
    assert [(n["network"], n["bans"], n["addresses"]) for n in report["networks"]] == [
        ("2001:db8:1:2::/64", 2, 2),
        ("2001:db8:1:3::/64", 1, 1),
    ]
    assert report["totals"]["blocklist"] is None


def test_ipv4_addresses_group_by_24():
    history = [record("203.0.113.7", T0), record("203.0.113.250", T0), record("203.0.114.1", T0)]
    report = ban_report({"mac1": {"blocklist": 0, "fail2ban": facts(history=history)}})
    assert [(n["network"], n["bans"]) for n in report["networks"]] == [("203.0.113.0/24", 2), ("203.0.114.0/24", 1)]


def test_ties_are_broken_by_hosts_then_newest_then_numeric_address():
    fleet = {
        "b": {"blocklist": 0, "fail2ban": facts(history=[
            record("10.0.0.10", T0), record("10.0.0.9", T0), record("2001:db8::1", T0), record("10.0.0.8", T0 + 5),
            record("10.0.0.1", T0 + 9), record("10.0.0.1", T0 + 8),
        ])},
        "a": {"blocklist": 0, "fail2ban": facts(history=[record("10.0.0.100", T0)])},
        "c": {"blocklist": 0, "fail2ban": facts(history=[record("10.0.0.100", T0 - 99)])},
    }  # fmt: skip
    # 2 bans on 2 hosts, 2 bans on 1 host (newer), then 1 ban each: newest first, then numeric order.
    expected = ["10.0.0.100", "10.0.0.1", "10.0.0.8", "10.0.0.9", "10.0.0.10", "2001:db8::1"]
    assert [a["address"] for a in ban_report(fleet)["addresses"]] == expected
    # The input's order does not matter: the same bans give the same report.
    shuffled = {name: copy.deepcopy(fleet[name]) for name in ("c", "a", "b")}
    for entry in shuffled.values():
        entry["fail2ban"]["history"].reverse()
    assert ban_report(shuffled) == ban_report(fleet)


def test_top_limits_addresses_and_networks():
    history = [record("192.0.2.%d" % n, T0 + n) for n in range(1, 6)] + [record("198.51.100.7", T0)]
    report = ban_report({"mac1": {"blocklist": 0, "fail2ban": facts(history=history)}}, top=2)
    assert [a["address"] for a in report["addresses"]] == ["192.0.2.5", "192.0.2.4"]
    assert [n["network"] for n in report["networks"]] == ["192.0.2.0/24", "198.51.100.0/24"]
    assert report["totals"]["addresses"] == 6


def test_current_ban_without_a_record_counts_once_with_no_time():
    report = ban_report({"mac1": {"blocklist": 0, "fail2ban": facts(jails={"sshd": jail([ATTACKER])})}})
    assert report["addresses"] == [
        {"address": ATTACKER, "bans": 1, "hosts": ["mac1"], "last_ban": None, "last_ban_utc": ""},
    ]
    assert report["hosts"][0]["ban_records"] == 0
    assert report["newest_ban"] is None


def test_jail_known_only_from_records():
    history = [record(ATTACKER, T0, jail_name="screensharingd")]
    report = ban_report({"mac1": {"blocklist": 0, "fail2ban": facts(jails={"sshd": jail()}, history=history)}})
    old = report["hosts"][0]["jails"][0]
    assert old == {"jail": "screensharingd", "currently_banned": None, "banned": [], "ban_records": 1,
                   "total_banned": None}  # fmt: skip
    assert "screensharingd" in report["table"]


def test_empty_fleet():
    report = ban_report({})
    assert report["hosts"] == [] and report["addresses"] == [] and report["networks"] == []
    assert report["totals"] == {
        "hosts": 0, "jails": 0, "currently_banned": 0, "ban_records": 0, "total_banned": 0, "blocklist": None,
        "addresses": 0,
    }  # fmt: skip
    assert report["newest_ban"] is None and report["newest_ban_utc"] == ""
    assert "(no bans)" in report["table"]


def test_hosts_without_data_are_listed_as_such():
    fleet = {
        "down": {},
        "stopped": {"blocklist": 0, "fail2ban": facts(running=False)},
        "bare": {"blocklist": None, "fail2ban": facts(installed=False, running=False)},
    }
    states = {host["host"]: (host["fail2ban"], host["jails"], host["blocklist"]) for host in ban_report(fleet)["hosts"]}
    assert states == {"bare": ("not installed", [], None), "down": ("unknown", [], None),
                      "stopped": ("not running", [], 0)}  # fmt: skip


def test_terminal_table_is_aligned():
    lines = ban_report(FLEET)["table"].splitlines()
    assert lines[0] == ("pfguard ban report: 3 hosts, 3 addresses banned now, 3 ban records, "
                        "newest ban 2025-11-22 08:27:20 UTC")  # fmt: skip
    header = lines[2]
    assert header.split() == ["host", "jail", "fail2ban", "banned", "now", "bans", "total", "banned",
                              "pfguard_blocklist"]  # fmt: skip
    rows = lines[3:8]
    assert rows[0].split() == ["mac1", "sshd", "running", "1", "1", "1", "0"]
    assert rows[1].split() == ["mac2", "screensharingd", "running", "0", "0", "0", "2"]
    assert rows[2].split() == ["sshd", "2", "2", "2"]
    assert rows[4].split() == ["fleet", "3", "3", "3", "2"]
    # Numbers right-aligned under their headers: every row's "bans" figure ends where the header does.
    bans_end = header.index(" bans") + len(" bans")
    assert all(row[bans_end - 1].isdigit() and row[bans_end:bans_end + 1] == " " for row in rows)
    top = lines[lines.index("top offending addresses") + 2]
    assert top.split() == [ATTACKER, "2", "2", "2025-11-22", "08:27:20", "UTC", "mac1,", "mac2"]
    assert lines[lines.index("top networks") + 2].split() == ["198.51.100.0/24", "2", "1", "2"]


@pytest.mark.parametrize(
    "fleet, top, message",
    [
        (["mac1"], 10, "the input must be a dictionary of hosts, got ['mac1']"),
        ({"mac1": "x"}, 10, "host mac1 must map to a dictionary, got 'x'"),
        ({"mac1": {"fail2ban": "up"}}, 10, "mac1: fail2ban facts must be a dictionary, got 'up'"),
        ({"mac1": {"blocklist": "many"}}, 10, "mac1: blocklist must be a number, got 'many'"),
        ({"mac1": {"fail2ban": facts(history=[{"ip": ATTACKER}])}}, 10, "mac1: a history record needs jail and ip"),
        ({"mac1": {"fail2ban": facts(history=[record(ATTACKER, "soon")])}}, 10,
         "mac1: timeofban of 198.51.100.200 in jail sshd must be a number, got 'soon'"),
        ({"mac1": {"fail2ban": facts(jails={"sshd": jail(currently_banned=-1)})}}, 10,
         "mac1: jail sshd currently_banned must not be negative, got -1"),
        ({}, 0, "top must be a positive number, got 0"),
    ],
)  # fmt: skip
def test_bad_input_names_the_bad_value(fleet, top, message):
    with pytest.raises(AnsibleFilterError) as caught:
        ban_report(fleet, top=top)
    assert message in str(caught.value)
