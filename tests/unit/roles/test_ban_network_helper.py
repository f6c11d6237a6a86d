# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""roles/fail2ban/files/org.pfguard.fail2ban-ban-network.py: the PF table entry a fail2ban ban and unban
use for an address (pfguard_fail2ban_ipv6_ban_prefix), run as fail2ban's pf action runs it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sqlite3
import subprocess
import sys
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
HELPER = os.path.join(ROOT, "roles", "fail2ban", "files", "org.pfguard.fail2ban-ban-network.py")
KEEP = "198.51.100.0/25,2001:db8:100::/64"


def helper(*args, **kwargs):
    """Run the helper as the action does (python3 -I, argv only); (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-I", HELPER] + [str(a) for a in args], input=kwargs.get("stdin", ""),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30,
                          check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("prefix, address, entry", [
    (64, "2001:db8:100:ff::200", "2001:db8:100:ff::/64"),
    (64, "2001:DB8:100:FF:0:0:0:201", "2001:db8:100:ff::/64"),
    (48, "2001:db8:7:8::1", "2001:db8:7::/48"),
    (128, "2001:db8:100:ff::200", "2001:db8:100:ff::200"),
    (64, "198.51.100.200", "198.51.100.200"),  # IPv4: always the address
    (1, "203.0.113.9", "203.0.113.9"),
    (64, "::ffff:203.0.113.9", "203.0.113.9"),  # PF sees an IPv4-mapped client as IPv4
    (128, "fe80::1%en0", "fe80::1"),  # a scope is not part of a PF address
    (64, "2001:db8:100::99", "2001:db8:100::99"),  # its /64 is trusted: never banned whole
    (56, "2001:db8:100:ff::200", "2001:db8:100:ff::200"),  # the /56 holds the trusted /64
])  # fmt: skip
def test_ban_entry(prefix, address, entry):
    assert helper("ban", prefix, "--keep", KEEP, address) == (0, entry + "\n", "")


@pytest.mark.parametrize("args, message", [
    (["ban", "64", "x; rm -rf /"], "'x; rm -rf /' is not an IPv4 or IPv6 address"),
    (["ban", "64", "mac1.example.com"], "'mac1.example.com' is not an IPv4 or IPv6 address"),
    (["ban", "64", "2001:db8::/64"], "'2001:db8::/64' is not an IPv4 or IPv6 address"),
    (["ban", "64", "--keep", "10.0.0.0/33", "10.0.0.1"], "--keep: '10.0.0.0/33' is not an IPv4 or IPv6 network"),
    (["ban", "0", "2001:db8::1"], "prefix length 0 is outside 1..128"),
    (["ban", "129", "2001:db8::1"], "prefix length 129 is outside 1..128"),
    (["ban", "sixty-four", "2001:db8::1"], "'sixty-four' is not a prefix length"),
    (["unban", "64", "2001:db8::1"], "--database"),
])  # fmt: skip
def test_bad_input_is_refused_by_name_without_a_traceback(args, message):
    code, out, err = helper(*args)
    assert code == 2 and out == "" and message in err, err
    assert "Traceback" not in err


def test_bans_from_stdin_each_entry_once_and_bad_lines_named():
    code, out, err = helper("bans", 64, "--keep", KEEP,
                            stdin="2001:db8:ff::1\n2001:db8:ff::2\n\n198.51.100.200\nbogus\n2001:db8:100::7\n")
    assert out == "2001:db8:ff::/64\n198.51.100.200\n2001:db8:100::7\n"
    assert code == 1 and err == "org.pfguard.fail2ban-ban-network: skipped: 'bogus' is not an IPv4 or IPv6 address\n"


def make_database(path, rows):
    """fail2ban's bips table (fail2ban/server/database.py) holding (ip, jail, timeofban, bantime)."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE bips(ip TEXT NOT NULL, jail TEXT NOT NULL, timeofban INTEGER NOT NULL, "
               "bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON, PRIMARY KEY(ip, jail))")
    db.executemany("INSERT INTO bips(ip, jail, timeofban, bantime) VALUES(?, ?, ?, ?)", rows)
    db.commit()
    db.close()


def test_unban_keeps_a_network_another_active_ban_still_needs(tmp_path):
    now = int(time.time())
    database = str(tmp_path / "fail2ban.sqlite3")
    make_database(database, [
        ("2001:db8:ff::1", "sshd", now - 10, 600),  # the one being unbanned
        ("2001:db8:ff::2", "sshd", now - 5, 600),  # same /64, still banned
        ("2001:db8:ee::1", "sshd", now - 900, 600),  # expired
        ("2001:db8:dd::1", "screensharingd", now, -1),  # another jail
    ])  # fmt: skip
    unban = ["unban", "64", "--keep", KEEP, "--database", database, "--jail", "sshd"]
    assert helper(*unban + ["2001:db8:ff::1"]) == (0, "", "")  # 2001:db8:ff::2 still needs the /64
    assert helper(*unban + ["2001:db8:ee::5"]) == (0, "2001:db8:ee::/64\n", "")  # only an expired ban there
    assert helper(*unban + ["2001:db8:dd::5"]) == (0, "2001:db8:dd::/64\n", "")  # another jail's ban
    assert helper(*unban + ["198.51.100.200"]) == (0, "198.51.100.200\n", "")
    # With a /128 policy every address is its own entry.
    assert helper("unban", 128, "--database", database, "--jail", "sshd", "2001:db8:ff::1") == (
        0, "2001:db8:ff::1\n", "")  # fmt: skip


def test_unban_without_a_readable_database_lifts_the_network(tmp_path):
    missing = str(tmp_path / "none" / "fail2ban.sqlite3")
    code, out, err = helper("unban", 64, "--database", missing, "--jail", "sshd", "2001:db8:ff::1")
    assert (code, out) == (0, "2001:db8:ff::/64\n")
    assert "cannot read %s" % missing in err and "Traceback" not in err
