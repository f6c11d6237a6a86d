# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Drive pfctl_table through AnsibleModule with pfctl's real outputs (docs/reference/pfctl.md)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest
from ansible_collections.pfguard.macos.plugins.module_utils import pfctl as pfctl_utils
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import CommandTimeout
from ansible_collections.pfguard.macos.plugins.modules import pfctl_table
from ansible_collections.pfguard.macos.tests.unit.plugins.modules.utils import run_module

ALTQ = "No ALTQ support in kernel\nALTQ related functions disabled\n"
F_WARNING = (
    "pfctl: Use of -f option, could result in flushing of rules\n"
    "present in the main ruleset added by the system at startup.\n"
    "See /etc/pf.conf for further details.\n\n"
)
MISSING = (255, "", ALTQ + "pfctl: Table does not exist.\n")
# docs/reference/pfctl.md#table-show-formats, plain show.
SHOW_SAMPLE = "   10.0.0.1\n   10.0.0.0/8\n  !192.168.1.5\n   2001:db8::/32\n"
# docs/reference/pfctl.md#state-listing, captured macOS state lines, plus an inbound SSH state from a banned host.
STATES_SAMPLE = (
    "ALL tcp 172.16.7.27:59833 -> 10.82.16.60:389       ESTABLISHED:ESTABLISHED\n"
    "ALL tcp 127.0.0.1:12300 <- 10.82.16.60:389 <- 172.16.7.27:59833       ESTABLISHED:ESTABLISHED\n"
    "ALL udp 192.168.100.3:55009 -> 192.168.100.1:53       SINGLE:NO_TRAFFIC\n"
    "ALL tcp 198.51.100.11:22 <- 203.0.113.7:50122       ESTABLISHED:ESTABLISHED\n"
    "ALL tcp 198.51.100.11:22 <- 203.0.113.7:50124       ESTABLISHED:ESTABLISHED\n"
)


class FakePfctl:
    """Answers run_command like macOS pfctl does and records every call."""

    def __init__(self, table=None, states="", add_rc=0, show_result=None):
        self.table = table  # None: the table does not exist
        self.states = states
        self.add_rc = add_rc
        self.show_result = show_result
        self.calls = []

    def __call__(self, args, data=None, environ_update=None, **kwargs):
        self.calls.append(dict(args=list(args), data=data, env=environ_update))
        argv = args[1:]
        if "-T" in argv:
            verb = argv[argv.index("-T") + 1]
            if verb == "show":
                if self.show_result:
                    return self.show_result
                if self.table is None:
                    return MISSING
                return 0, "".join("  %s\n" % (e if e.startswith("!") else " " + e) for e in self.table), ALTQ
            entries = data.split("\n") if data else []
            if verb == "add":
                if self.add_rc:
                    return self.add_rc, "", F_WARNING + ALTQ + "pfctl: Invalid argument.\n"
                created = "1 table created.\n" if self.table is None else ""
                self.table = list(self.table or [])
                new = [e for e in entries if e not in self.table]
                self.table.extend(new)
                return 0, "", F_WARNING + ALTQ + created + "%d/%d addresses added.\n" % (len(new), len(entries))
            if verb == "delete":
                gone = [e for e in entries if e in (self.table or [])]
                self.table = [e for e in (self.table or []) if e not in gone]
                return 0, "", F_WARNING + ALTQ + "%d/%d addresses deleted.\n" % (len(gone), len(entries))
        if argv == ["-s", "states"]:
            return 0, self.states, ALTQ
        if argv[0] == "-k":
            count = sum(1 for line in self.states.splitlines() if ("<- %s:" % argv[1]) in line)
            return 0, "", ALTQ + "killed %d states from 1 sources and 0 destinations\n" % count
        raise AssertionError("unexpected pfctl call %r" % (args,))

    def verbs(self):
        out = []
        for call in self.calls:
            argv = call["args"][1:]
            out.append(argv[argv.index("-T") + 1] if "-T" in argv else " ".join(argv))
        return out


@pytest.fixture(autouse=True)
def no_ssh_env(monkeypatch, tmp_path):
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    # The change lock lives in /var/run on a Mac; each test gets its own.
    monkeypatch.setattr(pfctl_table, "LOCK_PATH", str(tmp_path / "pfctl_table.lock"))


def run(monkeypatch, fake, args, check_mode=False, diff=False):
    """The module's result; every pfctl call goes through run_bounded, answered by `fake`."""
    seen = {}

    def bounded(argv, timeout, data=None, environ_update=None):
        seen["timeout"] = timeout
        return fake(argv, data=data, environ_update=environ_update)

    monkeypatch.setattr(pfctl_utils, "run_bounded", bounded)
    result = run_module(monkeypatch, pfctl_table, fake, args, check_mode=check_mode, diff=diff)
    fake.timeout = seen.get("timeout")
    return result


def test_adds_to_a_missing_table_and_reports_counts(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=None)
    result = run(monkeypatch, fake, dict(table="t", addresses=["203.0.113.7", "2001:db8::1"], pfctl_path=pfctl_bin))
    assert result["changed"] is True
    assert result["added"] == ["203.0.113.7", "2001:db8::1"]
    assert result["removed"] == []
    assert result["entries"] == 2
    assert fake.verbs() == ["show", "add", "-s states"]
    add = fake.calls[1]
    assert add["args"] == [pfctl_bin, "-t", "t", "-T", "add", "-f", "-"]
    assert add["data"] == "203.0.113.7\n2001:db8::1"
    assert add["env"] == {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}


def test_second_identical_run_changes_nothing(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=["203.0.113.7"])
    result = run(monkeypatch, fake, dict(table="t", addresses=["203.0.113.7"], pfctl_path=pfctl_bin))
    assert result["changed"] is False
    assert result["added"] == [] and result["removed"] == []
    assert result["entries"] == 1
    assert fake.verbs() == ["show", "-s states"]


def test_anchor_is_passed_to_every_table_command(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=[])
    run(monkeypatch, fake, dict(table="f2b-sshd", anchor="f2b/sshd", addresses=["192.0.2.1"], pfctl_path=pfctl_bin))
    assert fake.calls[0]["args"][:5] == [pfctl_bin, "-a", "f2b/sshd", "-t", "f2b-sshd"]
    assert fake.calls[1]["args"][:5] == [pfctl_bin, "-a", "f2b/sshd", "-t", "f2b-sshd"]


@pytest.mark.parametrize(
    "given, stored",
    [
        ("10.1.2.3/9", "10.0.0.0/9"),
        ("192.0.2.9/32", "192.0.2.9"),
        ("2001:DB8:0:0:0:0:0:1/128", "2001:db8::1"),
        ("2001:db8:0:0:1::/64", "2001:db8::/64"),
        ("2001:db8::77/33", "2001:db8::/33"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        (" 198.51.100.0/24 ", "198.51.100.0/24"),
    ],
)
def test_addresses_are_normalised_like_pfctl(monkeypatch, pfctl_bin, given, stored):
    fake = FakePfctl(table=[stored])
    result = run(monkeypatch, fake, dict(table="t", addresses=[given], pfctl_path=pfctl_bin, kill_states=False))
    assert result["changed"] is False, result


def test_duplicates_collapse(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=None)
    result = run(
        monkeypatch, fake, dict(table="t", addresses=["10.1.2.3/9", "10.0.0.0/9", "10.9.9.9/9"], pfctl_path=pfctl_bin)
    )
    assert result["added"] == ["10.0.0.0/9"]
    assert fake.calls[1]["data"] == "10.0.0.0/9"


@pytest.mark.parametrize(
    "bad",
    [
        "example.com",
        "en0",
        "lo0",
        "!192.0.2.1",
        "1.2.3.4/33",
        "2001:db8::/129",
        "1.2.3.4/x",
        "",
        "300.1.1.1",
        "fe80::1%en0",
    ],
)
def test_bad_input_fails_naming_the_value_and_runs_nothing(monkeypatch, pfctl_bin, bad):
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.0.2.1", bad], pfctl_path=pfctl_bin))
    assert result["failed"] is True
    assert "'%s'" % bad in result["msg"]
    assert result["invalid"] == [bad]
    assert fake.calls == []


def test_every_bad_value_is_named(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=[])
    result = run(
        monkeypatch, fake, dict(table="t", addresses=["host.example", "10.0.0.1", "!1.2.3.4"], pfctl_path=pfctl_bin)
    )
    assert result["invalid"] == ["host.example", "!1.2.3.4"]
    assert "host.example" in result["msg"] and "!1.2.3.4" in result["msg"]


@pytest.mark.parametrize(
    "address, protect",
    [
        ("198.51.100.7", ["198.51.100.0/24"]),
        ("198.51.100.0/23", ["198.51.100.0/24"]),
        ("0.0.0.0/0", ["198.51.100.0/24"]),
        ("::/0", ["2001:db8::/32"]),
        ("2001:db8:1::/48", ["2001:db8::/32"]),
    ],
)
def test_protected_addresses_never_enter_the_table(monkeypatch, pfctl_bin, address, protect):
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=[address], protect=protect, pfctl_path=pfctl_bin))
    assert result["failed"] is True
    assert address in result["msg"] and protect[0] in result["msg"]
    assert fake.calls == []


@pytest.mark.parametrize("variable", ["SSH_CONNECTION", "SSH_CLIENT"])
@pytest.mark.parametrize("address", ["192.0.2.10", "192.0.2.0/24", "0.0.0.0/0"])
def test_controller_address_is_protected(monkeypatch, pfctl_bin, variable, address):
    value = "192.0.2.10 50222 198.51.100.11 22" if variable == "SSH_CONNECTION" else "192.0.2.10 50222 22"
    monkeypatch.setenv(variable, value)
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=[address], pfctl_path=pfctl_bin))
    assert result["failed"] is True
    assert "controller" in result["msg"] and "192.0.2.10" in result["msg"]
    assert fake.calls == []


def test_protect_controller_false_allows_the_controller_network(monkeypatch, pfctl_bin):
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.10 50222 198.51.100.11 22")
    fake = FakePfctl(table=[])
    result = run(
        monkeypatch,
        fake,
        dict(
            table="trusted",
            addresses=["192.0.2.0/24"],
            protect_controller=False,
            kill_states=False,
            pfctl_path=pfctl_bin,
        ),
    )
    assert result["added"] == ["192.0.2.0/24"]
    refused = run(
        monkeypatch,
        FakePfctl(table=[]),
        dict(
            table="trusted",
            addresses=["192.0.2.0/24"],
            protect=["192.0.2.0/28"],
            protect_controller=False,
            pfctl_path=pfctl_bin,
        ),
    )
    assert refused["failed"] is True and "192.0.2.0/28" in refused["msg"]


def test_ipv4_mapped_controller_address_is_unwrapped(monkeypatch, pfctl_bin):
    monkeypatch.setenv("SSH_CONNECTION", "::ffff:192.0.2.10 50222 ::ffff:198.51.100.11 22")
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.0.2.0/28"], pfctl_path=pfctl_bin))
    assert result["failed"] is True


def test_controller_guard_does_not_block_other_addresses_or_removal(monkeypatch, pfctl_bin):
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.10 50222 198.51.100.11 22")
    fake = FakePfctl(table=["192.0.2.10"])
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.0.2.10"], state="absent", pfctl_path=pfctl_bin))
    assert result["removed"] == ["192.0.2.10"]
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.0.2.11"], pfctl_path=pfctl_bin))
    assert result["added"] == ["192.0.2.11"]


@pytest.mark.parametrize("where", ["nope/pfctl", "."], ids=["missing", "a directory"])
def test_unusable_pfctl_path_fails_naming_it_and_runs_nothing(monkeypatch, tmp_path, where):
    fake = FakePfctl(table=["192.0.2.1"])
    path = str(tmp_path / where)
    result = run(monkeypatch, fake, dict(table="t", addresses=["203.0.113.7"], pfctl_path=path))
    assert result["failed"] is True
    assert result["msg"] == "pfctl not found or not executable at %s" % path
    assert fake.calls == []


def test_check_mode_reports_without_writing(monkeypatch, pfctl_bin, tmp_path):
    persist = tmp_path / "blocklist.txt"
    fake = FakePfctl(table=["192.0.2.1"], states=STATES_SAMPLE)
    result = run(
        monkeypatch,
        fake,
        dict(
            table="t",
            addresses=["203.0.113.7", "192.0.2.1"],
            state="exact",
            pfctl_path=pfctl_bin,
            persist_file=str(persist),
        ),
        check_mode=True,
    )
    assert result["changed"] is True
    assert result["added"] == ["203.0.113.7"]
    assert result["states_killed"] == 2
    assert fake.verbs() == ["show", "-s states"]
    assert not persist.exists()


def test_diff_mode_shows_entries_before_and_after(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=["2001:db8::/32", "10.0.0.1"])
    result = run(
        monkeypatch, fake, dict(table="t", anchor="pfguard", addresses=["10.0.0.2"], pfctl_path=pfctl_bin), diff=True
    )
    assert result["diff"]["before"] == "10.0.0.1\n2001:db8::/32\n"
    assert result["diff"]["after"] == "10.0.0.1\n10.0.0.2\n2001:db8::/32\n"
    assert result["diff"]["before_header"] == "<t> in anchor pfguard"


def test_exact_removes_every_other_entry_including_negated(monkeypatch, pfctl_bin):
    fake = FakePfctl(show_result=(0, SHOW_SAMPLE, ALTQ))
    result = run(
        monkeypatch,
        fake,
        dict(
            table="t",
            addresses=["10.0.0.0/8", "203.0.113.9"],
            allow_wide_networks=True,
            state="exact",
            pfctl_path=pfctl_bin,
            kill_states=False,
        ),
    )
    assert sorted(result["removed"]) == sorted(["10.0.0.1", "!192.168.1.5", "2001:db8::/32"])
    assert result["added"] == ["203.0.113.9"]
    assert result["entries"] == 2
    delete = [c for c in fake.calls if "delete" in c["args"]]
    assert len(delete) == 1 and sorted(delete[0]["data"].split("\n")) == sorted(result["removed"])


def test_present_replaces_a_negated_entry(monkeypatch, pfctl_bin):
    fake = FakePfctl(show_result=(0, SHOW_SAMPLE, ALTQ))
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.168.1.5"], pfctl_path=pfctl_bin, kill_states=False))
    assert result["removed"] == ["!192.168.1.5"]
    assert result["added"] == ["192.168.1.5"]
    assert fake.verbs() == ["show", "delete", "add"]


def test_absent_removes_only_listed_present_entries(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=["10.0.0.1", "10.0.0.2"])
    result = run(
        monkeypatch, fake, dict(table="t", addresses=["10.0.0.2", "10.0.0.3"], state="absent", pfctl_path=pfctl_bin)
    )
    assert result["removed"] == ["10.0.0.2"]
    assert result["entries"] == 1
    assert fake.table == ["10.0.0.1"]


def test_absent_match_inside_removes_every_entry_inside_the_listed_networks(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=["198.51.100.7", "198.51.100.64/26", "!198.51.100.9", "198.51.0.0/16", "203.0.113.7",
                            "2001:db8::1", "2001:db8:1::/48"])
    args = dict(table="t", addresses=["198.51.100.0/24", "2001:db8::/64", "203.0.113.8"], state="absent",
                match="inside", pfctl_path=pfctl_bin)
    result = run(monkeypatch, fake, args)
    # A wider network (/16) holding the listed one is not inside it; nor is a neighbour. The negated entry
    # stays: removing it would block 198.51.100.9 again through 198.51.0.0/16.
    assert sorted(result["removed"]) == ["198.51.100.64/26", "198.51.100.7", "2001:db8::1"]
    assert fake.table == ["!198.51.100.9", "198.51.0.0/16", "203.0.113.7", "2001:db8:1::/48"]
    assert run(monkeypatch, fake, args)["changed"] is False


def test_match_inside_goes_only_with_absent(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=["10.0.0.1"])
    result = run(monkeypatch, fake, dict(table="t", addresses=["10.0.0.0/8"], match="inside", pfctl_path=pfctl_bin))
    assert result["failed"] and "match=inside only goes with state=absent" in result["msg"]
    assert fake.calls == []


def test_absent_on_missing_table_is_a_no_op(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=None)
    result = run(monkeypatch, fake, dict(table="t", addresses=["10.0.0.2"], state="absent", pfctl_path=pfctl_bin))
    assert result["changed"] is False and result["entries"] == 0
    assert fake.verbs() == ["show"]


def test_kills_states_only_of_listed_addresses_that_have_them(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=["192.0.2.50"], states=STATES_SAMPLE)
    result = run(
        monkeypatch,
        fake,
        dict(table="t", addresses=["203.0.113.7", "203.0.113.8", "192.0.2.50"], pfctl_path=pfctl_bin),
    )
    assert result["states_killed"] == 2
    kills = [c["args"][1:] for c in fake.calls if c["args"][1] == "-k"]
    assert kills == [["-k", "203.0.113.7"]]
    assert fake.verbs().count("-s states") == 1


def test_states_of_a_listed_address_already_in_the_table_are_killed(monkeypatch, pfctl_bin):
    # A run whose kill failed after the add left the address in the table with its states: the next
    # run finishes the job and reports it as a change.
    fake = FakePfctl(table=["203.0.113.7"], states=STATES_SAMPLE)
    result = run(monkeypatch, fake, dict(table="t", addresses=["203.0.113.7"], pfctl_path=pfctl_bin))
    assert result["added"] == [] and result["states_killed"] == 2 and result["changed"] is True
    assert fake.verbs() == ["show", "-s states", "-k 203.0.113.7"]


def test_outbound_state_source_is_the_local_host(monkeypatch, pfctl_bin):
    # "172.16.7.27:59833 -> 10.82.16.60:389": initiated by 172.16.7.27, so banning 10.82.16.60 kills nothing.
    fake = FakePfctl(table=[], states=STATES_SAMPLE.splitlines()[0] + "\n")
    result = run(monkeypatch, fake, dict(table="t", addresses=["10.82.16.60"], pfctl_path=pfctl_bin))
    assert result["states_killed"] == 0
    assert "-k" not in [c["args"][1] for c in fake.calls]


def test_kill_states_false_skips_the_state_listing(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=[], states=STATES_SAMPLE)
    run(monkeypatch, fake, dict(table="t", addresses=["203.0.113.7"], kill_states=False, pfctl_path=pfctl_bin))
    assert fake.verbs() == ["show", "add"]


def test_ten_thousand_addresses_take_one_show_and_one_add(monkeypatch, pfctl_bin):
    addresses = ["10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255) for i in range(10000)]
    fake = FakePfctl(table=None)
    result = run(monkeypatch, fake, dict(table="t", addresses=addresses, pfctl_path=pfctl_bin))
    assert result["entries"] == 10000 and len(result["added"]) == 10000
    assert fake.verbs() == ["show", "add", "-s states"]
    assert fake.calls[1]["data"].count("\n") == 9999
    fake_again = FakePfctl(table=list(fake.table))
    again = run(monkeypatch, fake_again, dict(table="t", addresses=addresses, pfctl_path=pfctl_bin))
    assert again["changed"] is False and fake_again.verbs() == ["show", "-s states"]


def test_pfctl_failure_reports_cmd_rc_stderr(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=[], add_rc=255)
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.0.2.1"], pfctl_path=pfctl_bin))
    assert result["failed"] is True
    assert result["rc"] == 255
    assert result["cmd"][-4:] == ["-T", "add", "-f", "-"]
    assert "Invalid argument" in result["msg"]
    assert "ALTQ" not in result["msg"]
    assert "Invalid argument" in result["stderr"]


def test_show_error_other_than_missing_table_fails(monkeypatch, pfctl_bin):
    fake = FakePfctl(show_result=(1, "", "pfctl: /dev/pf: Permission denied\n"))
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.0.2.1"], pfctl_path=pfctl_bin))
    assert result["failed"] is True and result["rc"] == 1
    assert fake.verbs() == ["show"]


def test_persist_file_follows_the_table(monkeypatch, pfctl_bin, tmp_path):
    persist = tmp_path / "blocklist.txt"
    fake = FakePfctl(table=["2001:db8::/32", "10.0.0.9"])
    result = run(
        monkeypatch, fake, dict(table="t", addresses=["10.0.0.1"], pfctl_path=pfctl_bin, persist_file=str(persist))
    )
    assert result["changed"] is True
    assert persist.read_text() == "10.0.0.1\n10.0.0.9\n2001:db8::/32\n"
    assert stat.S_IMODE(os.stat(str(persist)).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pfctl_table")] == []
    again = run(
        monkeypatch,
        FakePfctl(table=list(fake.table)),
        dict(table="t", addresses=["10.0.0.1"], pfctl_path=pfctl_bin, persist_file=str(persist)),
    )
    assert again["changed"] is False


def test_persist_file_alone_can_be_the_change(monkeypatch, pfctl_bin, tmp_path):
    persist = tmp_path / "blocklist.txt"
    persist.write_text("stale\n")
    result = run(
        monkeypatch,
        FakePfctl(table=["10.0.0.1"]),
        dict(table="t", addresses=["10.0.0.1"], pfctl_path=pfctl_bin, persist_file=str(persist)),
    )
    assert result["changed"] is True and result["added"] == []
    assert persist.read_text() == "10.0.0.1\n"


@pytest.mark.parametrize(
    "args, words",
    [
        (dict(table="x" * 32), "31"),
        (dict(table="bad name"), "bad name"),
        (dict(table="t", anchor="a/" + "b" * 64), "at most 63"),
        (dict(table="t", anchor="_pf"), "'_'"),
        (dict(table="t", anchor="f2b/*"), "wildcard"),
        (dict(table="t", anchor="f2b//sshd"), "empty path component"),
        (dict(table="t", protect=["trusted.example"]), "trusted.example"),
    ],
)
def test_bad_table_anchor_or_protect_fail_before_pfctl(monkeypatch, pfctl_bin, args, words):
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(args, addresses=["192.0.2.1"], pfctl_path=pfctl_bin))
    assert result["failed"] is True
    assert words in result["msg"]
    assert fake.calls == []


def test_missing_pfctl_is_reported(monkeypatch, tmp_path):
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.0.2.1"], pfctl_path=str(tmp_path / "nope")))
    assert result["failed"] is True and "nope" in result["msg"]


def test_result_is_json_serialisable(monkeypatch, pfctl_bin):
    result = run(monkeypatch, FakePfctl(table=None), dict(table="t", addresses=["192.0.2.1"], pfctl_path=pfctl_bin))
    json.dumps(result)


# ---------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("203.0.113.0/\u0662\u0664", "ASCII digits"),  # Arabic-Indic 24: str.isdigit() says yes
        ("1.2.3.4/010", "leading zero"),  # pfctl: strtol(.., 0) reads octal, /8
        ("1.2.3.4/00", "leading zero"),
        ("1.2.3.4/0x8", "hexadecimal"),
        ("1.2.3.4/+8", "sign or blanks"),
        ("1.2.3.4/-1", "sign or blanks"),
        ("1.2.3.4/ 8", "sign or blanks"),
        ("1.2.3.4 /8", "not an IPv4 or IPv6 address"),
        ("1.2.3.4/", "invalid netmask"),
        ("1.2.3.4/1234", "invalid netmask"),
        ("\u0661.2.3.4", "not an IPv4 or IPv6 address"),
        ("1.2.3.4\x00", "not an IPv4 or IPv6 address"),
        ("1.2.3.4\n5.6.7.8", "not an IPv4 or IPv6 address"),
        ("1.2.3.4\u00a0", "not an IPv4 or IPv6 address"),  # no-break space: not pfctl's isspace()
        ("01.2.3.4", "not an IPv4 or IPv6 address"),
    ],
)
def test_addresses_pfctl_would_read_differently_are_refused_by_name(monkeypatch, pfctl_bin, bad, reason):
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=[bad], pfctl_path=pfctl_bin))
    assert result["failed"] is True and result["invalid"] == [bad]
    assert repr(bad) in result["msg"] and reason in result["msg"]
    assert fake.calls == []


@pytest.mark.parametrize(
    "table, words",
    [
        ("t\x00x", "control character"),
        ("t\nx", "control character"),
        ("t\tx", "control character"),
        ("\u00e9" * 20, "40 bytes"),  # 20 characters, 40 bytes of UTF-8
        ("\u00e9" * 10, "non-ASCII"),  # 20 bytes: fits, but not ASCII
        ("a(b)", "cannot hold"),
    ],
)
def test_table_names_are_refused_by_bytes_and_characters(monkeypatch, pfctl_bin, table, words):
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table=table, addresses=["192.0.2.1"], pfctl_path=pfctl_bin))
    assert result["failed"] is True and words in result["msg"] and repr(table) in result["msg"]
    assert fake.calls == []


@pytest.mark.parametrize(
    "anchor, words",
    [
        ("f2b/../pfguard", "'..' component"),
        ("./pfguard", "'.' component"),
        ("pfguard\nevil/x", "control character"),
        ("pf\x00guard", "control character"),
        ("pf guard", "whitespace"),
        ('pf"guard', "quote"),
        ("caf\u00e9", "non-ASCII"),
        ("/".join(["a" * 63] * 17), "1023 bytes"),  # 1087 bytes
    ],
)
def test_anchor_paths_are_refused(monkeypatch, pfctl_bin, anchor, words):
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", anchor=anchor, addresses=["192.0.2.1"], pfctl_path=pfctl_bin))
    assert result["failed"] is True and words in result["msg"]
    assert fake.calls == []


def test_longest_names_pf_allows_are_accepted(monkeypatch, pfctl_bin):
    anchor = "/".join(["a" * 63] * 15) + "/" + "b" * 63  # 1023 bytes
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="x" * 31, anchor=anchor, addresses=["192.0.2.1"], pfctl_path=pfctl_bin))
    assert result["added"] == ["192.0.2.1"]
    assert fake.calls[0]["args"][1:5] == ["-a", anchor, "-t", "x" * 31]


@pytest.mark.parametrize(
    "address, allowed",
    [
        ("10.0.0.0/8", False),
        ("128.0.0.0/1", False),
        ("10.0.0.0/9", True),
        ("2001:db8::/32", False),
        ("2001:db8::/33", True),
    ],
)
def test_wide_networks_need_allow_wide_networks(monkeypatch, pfctl_bin, address, allowed):
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=[address], kill_states=False, pfctl_path=pfctl_bin))
    if allowed:
        assert result["added"] == [address]
        return
    assert result["failed"] is True and address in result["msg"] and "allow_wide_networks" in result["msg"]
    assert "unknown" in result["msg"]  # the controller's address, or that it is not known
    assert fake.calls == []
    fake = FakePfctl(table=[])
    args = dict(table="t", addresses=[address], kill_states=False, allow_wide_networks=True, pfctl_path=pfctl_bin)
    assert run(monkeypatch, fake, args)["added"] == [address]


@pytest.mark.parametrize("address", ["0.0.0.0/0", "::/0"])
def test_default_route_is_refused_even_with_allow_wide_networks(monkeypatch, pfctl_bin, address):
    fake = FakePfctl(table=[])
    args = dict(table="t", addresses=[address], allow_wide_networks=True, pfctl_path=pfctl_bin)
    result = run(monkeypatch, fake, args)
    assert result["failed"] is True and "covers every" in result["msg"]
    assert fake.calls == []


def test_pass_tables_may_hold_wide_networks(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=[])
    args = dict(table="trusted", addresses=["10.0.0.0/8"], protect_controller=False, kill_states=False)
    assert run(monkeypatch, fake, dict(args, pfctl_path=pfctl_bin))["added"] == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    "given, address",
    [
        (["192.0.2.10"], "192.0.2.0/24"),
        ("192.0.2.10", "192.0.2.10"),
        (["::ffff:192.0.2.10"], "192.0.2.0/28"),
        (["fe80::1%en0"], "fe80::/64"),
        (["2001:db8::10"], "2001:db8::/48"),
    ],
)
def test_controller_address_option_is_protected(monkeypatch, pfctl_bin, given, address):
    fake = FakePfctl(table=[])
    result = run(
        monkeypatch, fake, dict(table="t", addresses=[address], controller_address=given, pfctl_path=pfctl_bin)
    )
    assert result["failed"] is True and "the controller's address" in result["msg"]
    assert fake.calls == []


@pytest.mark.parametrize("given", [["controller.example"], ["192.0.2.10/24"], [""], ["192.0.2.1\n"]])
def test_bad_controller_address_is_refused_by_name(monkeypatch, pfctl_bin, given):
    fake = FakePfctl(table=[])
    result = run(
        monkeypatch, fake, dict(table="t", addresses=["203.0.113.7"], controller_address=given, pfctl_path=pfctl_bin)
    )
    if given == ["192.0.2.1\n"]:  # surrounding blanks are not part of the address
        assert result["controller_address"] == ["192.0.2.1"]
        return
    assert result["failed"] is True and repr(given[0]) in result["msg"] and result["invalid"] == given
    assert fake.calls == []


@pytest.mark.parametrize(
    "garbage",
    [
        "   203.0.113.7\nGARBAGE\n",
        "   10.0.0.1/08\n",
        "   10.0.0.1/8\n",  # host bits set: not what pfctl prints
        "   2001:DB8::1\n",
        "\t10.0.0.1\n",
        "   10.0.0.1\t(host.example)\n",
        "   \ufffd\n",
    ],
)
def test_show_output_that_is_not_pfctls_fails_naming_the_line_before_any_change(monkeypatch, pfctl_bin, garbage):
    fake = FakePfctl(show_result=(0, garbage, ALTQ))
    args = dict(table="t", addresses=["192.0.2.1"], state="exact", pfctl_path=pfctl_bin)
    result = run(monkeypatch, fake, args)
    assert result["failed"] is True and "not a table entry" in result["msg"] and "nothing was changed" in result["msg"]
    bad = [line for line in garbage.split("\n") if line and line != "   203.0.113.7"][0]
    assert repr(bad) in result["msg"]
    assert fake.verbs() == ["show"]


def test_state_listing_that_is_not_pfctls_fails_after_saying_what_changed(monkeypatch, pfctl_bin, tmp_path):
    persist = tmp_path / "t.txt"
    fake = FakePfctl(
        table=[], states="ALL tcp 198.51.100.11:22 <- 203.0.113.7:50122 ESTABLISHED:ESTABLISHED\nnonsense\n"
    )
    args = dict(table="t", addresses=["203.0.113.7"], persist_file=str(persist), pfctl_path=pfctl_bin)
    result = run(monkeypatch, fake, args)
    assert result["failed"] is True
    assert (
        "'nonsense'" in result["msg"] and "was changed (1 added, 0 removed) and persist_file written" in result["msg"]
    )
    assert persist.read_text() == "203.0.113.7\n" and fake.table == ["203.0.113.7"]


def test_a_hung_pfctl_fails_naming_the_command(monkeypatch, pfctl_bin):
    def hung(args, data=None, environ_update=None):
        raise CommandTimeout(
            "%s did not finish within 7 seconds and was killed (command_timeout)" % " ".join(args), cmd=args
        )

    hung.verbs = lambda: []
    result = run(monkeypatch, hung, dict(table="t", addresses=["192.0.2.1"], command_timeout=7, pfctl_path=pfctl_bin))
    assert result["failed"] is True
    assert (
        result["msg"] == "%s -t t -T show did not finish within 7 seconds and was killed (command_timeout)" % pfctl_bin
    )
    assert hung.timeout == 7


@pytest.mark.parametrize("timeout", [0, -1, 3601, 10**12])
def test_command_timeout_out_of_range_is_refused(monkeypatch, pfctl_bin, timeout):
    fake = FakePfctl(table=[])
    result = run(
        monkeypatch, fake, dict(table="t", addresses=["192.0.2.1"], command_timeout=timeout, pfctl_path=pfctl_bin)
    )
    assert result["failed"] is True and "command_timeout %d" % timeout in result["msg"]
    assert fake.calls == []


@pytest.mark.parametrize("path", ["pfctl", "./pfctl", "/sbin/pf\nctl", "/sbin/pf\x00ctl"])
def test_pfctl_path_must_be_absolute_without_control_characters(monkeypatch, path):
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.0.2.1"], pfctl_path=path))
    assert result["failed"] is True and "pfctl_path %r" % path in result["msg"]
    assert fake.calls == []


def test_pfctl_path_is_not_expanded(monkeypatch, pfctl_bin):
    monkeypatch.setenv("PFCTL_DIR", os.path.dirname(pfctl_bin))
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.0.2.1"], pfctl_path="$PFCTL_DIR/pfctl"))
    assert result["failed"] is True and "$PFCTL_DIR/pfctl" in result["msg"]


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: os.mkfifo(str(p)), "is a FIFO"),
        (lambda p: os.symlink("/etc/hostname", str(p)), "is a symbolic link"),
        (lambda p: None, "does not exist"),  # persist_file in a missing directory
    ],
)
def test_unsafe_persist_file_is_refused_before_pfctl_runs(monkeypatch, pfctl_bin, tmp_path, make, words):
    target = tmp_path / "persist"
    make(target)
    path = str(target) if words != "does not exist" else str(tmp_path / "missing" / "persist")
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses=["192.0.2.1"], persist_file=path, pfctl_path=pfctl_bin))
    assert result["failed"] is True and path in result["msg"] and words in result["msg"]
    assert fake.calls == []


def test_persist_file_that_cannot_be_staged_changes_nothing(monkeypatch, pfctl_bin, tmp_path):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pfctl_table, "StagedFile", full)
    fake = FakePfctl(table=["192.0.2.9"])
    persist = tmp_path / "t.txt"
    result = run(
        monkeypatch, fake, dict(table="t", addresses=["192.0.2.1"], persist_file=str(persist), pfctl_path=pfctl_bin)
    )
    assert result["failed"] is True and "No space left on device" in result["msg"]
    assert "nothing was changed" in result["msg"]
    assert fake.verbs() == ["show"] and fake.table == ["192.0.2.9"]


def test_failed_add_discards_the_staged_persist_file(monkeypatch, pfctl_bin, tmp_path):
    persist = tmp_path / "t.txt"
    persist.write_text("192.0.2.9\n")
    fake = FakePfctl(table=["192.0.2.9"], add_rc=255)
    result = run(
        monkeypatch, fake, dict(table="t", addresses=["192.0.2.1"], persist_file=str(persist), pfctl_path=pfctl_bin)
    )
    assert result["failed"] is True and "table t is unchanged; persist_file was not written" in result["msg"]
    assert persist.read_text() == "192.0.2.9\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pfctl", "pfctl_table.lock", "t.txt"]


def test_wrong_types_fail_cleanly(monkeypatch, pfctl_bin):
    fake = FakePfctl(table=[])
    result = run(monkeypatch, fake, dict(table="t", addresses={"a": 1}, pfctl_path=pfctl_bin))
    assert result["failed"] is True and "addresses" in result["msg"]
    assert fake.calls == []
