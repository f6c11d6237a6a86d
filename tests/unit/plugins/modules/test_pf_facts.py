# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Drive pf_facts through AnsibleModule with pfctl's show formats (docs/reference/pfctl.md)
and rule lines as `pfctl -s rules` prints them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.module_utils import basic
from ansible_collections.pfguard.macos.plugins.module_utils import pfctl as pfctl_utils
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import CommandTimeout
from ansible_collections.pfguard.macos.plugins.modules import pf_facts
from ansible_collections.pfguard.macos.tests.unit.plugins.modules.utils import run_module


@pytest.fixture(autouse=True)
def bounded_runs_go_to_the_fake(monkeypatch):
    """pfctl runs through run_bounded; send each call to the fake that run_module puts in run_command."""

    def bounded(argv, timeout, data=None, environ_update=None):
        assert timeout == EXPECTED_TIMEOUT[0]
        return basic.AnsibleModule.run_command(None, argv, data=data, environ_update=environ_update)

    monkeypatch.setattr(pfctl_utils, "run_bounded", bounded)
    EXPECTED_TIMEOUT[0] = 30


EXPECTED_TIMEOUT = [30]

ALTQ = "No ALTQ support in kernel\nALTQ related functions disabled\n"
STATUS_ENABLED = "Enabled for 0 days 00:03:10"
# pfctl.md#rule-listing: the stock main ruleset and com.apple anchor, as `pfctl -sr` prints them.
STOCK = {
    "": ['scrub-anchor "com.apple/*" all fragment reassemble', 'anchor "com.apple/*" all'],
    "com.apple": ['anchor "200.AirDrop/*" all', 'anchor "250.ApplicationFirewall/*" all'],
    "com.apple/200.AirDrop": [],
    "com.apple/200.AirDrop/Bonjour": ["pass in quick on lo0 all no state"],
    "com.apple/250.ApplicationFirewall": [],
}
HOOK = ['anchor "pfguard" all', 'anchor "f2b/*" all']
PFGUARD_RULES = [
    "pass in quick from <pfguard_trusted> to any no state",
    "block drop in log quick from <pfguard_blocklist> to any",
]
F2B_RULES = ["block drop quick proto tcp from <f2b-sshd> to any port = ssh"]
PFGUARD_TABLES = [("pfguard_trusted", 1), ("pfguard_blocklist", 1)]
# pfctl.md#limits: pfctl_show_limits prints `%-13s hard limit %8u` per pool.
MEMORY = (
    "states        hard limit    10000\n"
    "app-states    hard limit    10000\n"
    "src-nodes     hard limit    10000\n"
    "frags         hard limit     5000\n"
    "tables        hard limit     1000\n"
    "table-entries hard limit   200000\n"
)


def hooked(**extra):
    """The converged Mac: stock ruleset with pfguard's hook, pfguard's anchor and fail2ban's sshd jail."""
    rulesets = dict(STOCK)
    rulesets[""] = STOCK[""] + HOOK
    rulesets.update({"pfguard": PFGUARD_RULES, "f2b": [], "f2b/sshd": F2B_RULES})
    rulesets.update(extra)
    return rulesets


class FakePfctl:
    """Answers pfctl's show commands the way macOS pfctl prints them, and records every call.
    `rulesets` maps an anchor ("" = main) to its rule lines; every key but "" is an anchor;
    `tables` maps an anchor to [(name, addresses)] (its active tables)."""

    def __init__(self, rulesets, tables=None, enabled=True, tokens=(), failure=None):
        self.rulesets = rulesets
        self.tables = tables or {}
        self.enabled = enabled
        self.tokens = tokens
        self.failure = failure  # (rc, stderr) of every call
        self.calls = []

    def __call__(self, args, data=None, environ_update=None, **kwargs):
        self.calls.append(list(args))
        if self.failure:
            return self.failure[0], "", self.failure[1]
        argv = list(args[1:])
        assert argv[0] == "-q", argv  # -q keeps ALTQ noise off stderr, so stderr means an error
        verbose = argv.count("-v")
        anchor = argv[argv.index("-a") + 1] if "-a" in argv else ""
        what = argv[argv.index("-s") + 1]
        if anchor and anchor not in self.rulesets and anchor not in self.tables:
            if what == "rules":
                return 0, "", "pfctl: DIOCGETRULES: Invalid argument\n"
            return 0, "", "pfctl: Anchor or Ruleset does not exist.\n"
        if what == "info":
            return 0, self.info(), ""
        if what == "References":
            return 0, self.references(), ""
        if what == "memory":
            return 0, MEMORY, ""
        if what == "Anchors":
            assert verbose == 1 and not anchor
            names = sorted(set(a for a in list(self.rulesets) + list(self.tables) if a))
            return 0, "".join("  %s\n" % name for name in names), ""
        if what == "rules":
            return 0, "".join(rule + "\n" for rule in self.rulesets.get(anchor, [])), ""
        if what == "Tables":
            assert verbose == 2
            return 0, self.show_tables(anchor), ""
        raise AssertionError("unexpected pfctl call %r" % (args,))

    def info(self):
        # pfctl.md#status-output: printf("%-44s", statline) then printf("%15s\n\n", "Debug: Urgent").
        statline = "Status: %s" % (STATUS_ENABLED if self.enabled else "Disabled")
        header = "State Table                          Total             Rate\n"
        return "%-44s%15s\n\n" % (statline, "Debug: Urgent") + header

    def references(self):
        if not self.tokens:
            return "No pf starter references held\n"
        out = "TOKENS:\n" + "%-8s %-28s %-24s %-s\n" % ("PID", "Process Name", "TOKEN", "TIMESTAMP")
        for pid, name, token in self.tokens:
            out += "%-8s %-28s %-24s %s\n" % (pid, name, token, "0 days 00:01:02")
        return out

    def show_tables(self, anchor):
        # pfctl.md#table-show-formats: `-vv -s Tables` header `flags\tname[\tANCHOR]`, then the Addresses
        # line and counters.
        out = ""
        for name, count in self.tables.get(anchor, []):
            out += "-pa-r-\t%s%s\n" % (name, "\t" + anchor if anchor else "")
            out += "\tAddresses:   %d\n" % count
            out += "\tCleared:     Sun Nov 22 06:21:46 2026\n"
            out += "\tReferences:  [ Anchors: %-18d Rules: %-18d ]\n" % (0, 1)
        return out


def facts(monkeypatch, fake, pfctl_bin, check_mode=False):
    result = run_module(monkeypatch, pf_facts, fake, dict(pfctl_path=pfctl_bin), check_mode=check_mode)
    assert not result.get("failed"), result
    assert result["changed"] is False
    return result["ansible_facts"]["pf"]


def test_converged_mac_blocks_with_both_tables(monkeypatch, pfctl_bin):
    fake = FakePfctl(
        hooked(),
        tables={"pfguard": PFGUARD_TABLES, "f2b/sshd": [("f2b-sshd", 2)]},
        tokens=[(4077, "pfctl", "9084387343160548126")],
    )
    pf = facts(monkeypatch, fake, pfctl_bin)
    assert pf["enabled"] is True
    assert pf["status"] == STATUS_ENABLED
    assert pf["tokens"] == [dict(pid=4077, process="pfctl", token="9084387343160548126", age="0 days 00:01:02")]
    assert pf["anchors"] == [
        "com.apple",
        "com.apple/200.AirDrop",
        "com.apple/200.AirDrop/Bonjour",
        "com.apple/250.ApplicationFirewall",
        "f2b",
        "f2b/sshd",
        "pfguard",
    ]
    assert pf["reachable_anchors"] == [
        "com.apple/200.AirDrop",
        "com.apple/250.ApplicationFirewall",
        "pfguard",
        "f2b/sshd",
    ]
    assert pf["rulesets"][""] == ['anchor "com.apple/*" all'] + HOOK
    assert pf["rulesets"]["pfguard"] == PFGUARD_RULES
    assert pf["blocking_tables"] == ["pfguard:pfguard_blocklist", "f2b/sshd:f2b-sshd"]
    assert pf["tables"] == [
        dict(anchor="f2b/sshd", name="f2b-sshd", count=2, blocking=True),
        dict(anchor="pfguard", name="pfguard_trusted", count=1, blocking=False),
        dict(anchor="pfguard", name="pfguard_blocklist", count=1, blocking=True),
    ]
    assert pf["limits"] == dict(states=10000, app_states=10000, src_nodes=10000, frags=5000, tables=1000,
                                table_entries=200000)
    assert pf["table_entries"] == 4


def test_an_unlimited_pool_is_null(monkeypatch, pfctl_bin):
    fake = Garbled("memory", "states        unlimited\ntable-entries hard limit   400000\n")
    assert facts(monkeypatch, fake, pfctl_bin)["limits"] == dict(states=None, table_entries=400000)


def test_only_show_commands_run_with_q_and_c_locale(monkeypatch, pfctl_bin):
    fake = FakePfctl(hooked(), tables={"pfguard": PFGUARD_TABLES})
    facts(monkeypatch, fake, pfctl_bin, check_mode=True)
    assert fake.calls[:4] == [
        [pfctl_bin, "-q", "-s", "info"],
        [pfctl_bin, "-q", "-s", "memory"],
        [pfctl_bin, "-q", "-s", "References"],
        [pfctl_bin, "-q", "-v", "-s", "Anchors"],
    ]
    assert [pfctl_bin, "-q", "-a", "f2b/sshd", "-s", "rules"] in fake.calls
    assert [pfctl_bin, "-q", "-v", "-v", "-a", "pfguard", "-s", "Tables"] in fake.calls
    assert [pfctl_bin, "-q", "-v", "-v", "-s", "Tables"] in fake.calls
    # main + 7 anchors, rules and tables each
    assert len(fake.calls) == 4 + 2 * 8


def test_disabled_pf_without_tokens(monkeypatch, pfctl_bin):
    pf = facts(monkeypatch, FakePfctl(hooked(), tables={"pfguard": PFGUARD_TABLES}, enabled=False), pfctl_bin)
    assert pf["enabled"] is False
    assert pf["status"] == "Disabled"
    assert pf["tokens"] == []
    # Rules stay loaded while PF is off: what would block is still reported.
    assert pf["blocking_tables"] == ["pfguard:pfguard_blocklist"]


def test_stock_apple_ruleset_leaves_pfguard_unreachable(monkeypatch, pfctl_bin):
    # After a macOS update reloads Apple's pf.conf, pfguard's anchor and tables still exist.
    rulesets = dict(STOCK, pfguard=PFGUARD_RULES)
    pf = facts(monkeypatch, FakePfctl(rulesets, tables={"pfguard": PFGUARD_TABLES}), pfctl_bin)
    assert "pfguard" in pf["anchors"]
    assert pf["reachable_anchors"] == ["com.apple/200.AirDrop", "com.apple/250.ApplicationFirewall"]
    assert pf["blocking_tables"] == []
    assert [t["blocking"] for t in pf["tables"]] == [False, False]


def test_f2b_wildcard_reaches_every_jail_but_not_f2b_itself(monkeypatch, pfctl_bin):
    jail = ["block drop quick from <f2b-ssd> to any"]
    rulesets = hooked(**{"f2b": ["block drop in all"], "f2b/screensharingd": jail})
    tables = {"f2b/sshd": [("f2b-sshd", 0)], "f2b/screensharingd": [("f2b-ssd", 4)]}
    pf = facts(monkeypatch, FakePfctl(rulesets, tables=tables), pfctl_bin)
    assert pf["reachable_anchors"][-2:] == ["f2b/screensharingd", "f2b/sshd"]
    assert "f2b" not in pf["reachable_anchors"]
    assert pf["blocking_tables"] == ["f2b/screensharingd:f2b-ssd", "f2b/sshd:f2b-sshd"]


def test_f2b_anchor_not_hooked(monkeypatch, pfctl_bin):
    rulesets = hooked(**{"": STOCK[""] + ['anchor "pfguard" all']})
    pf = facts(monkeypatch, FakePfctl(rulesets, tables={"f2b/sshd": [("f2b-sshd", 1)]}), pfctl_bin)
    assert "f2b/sshd" not in pf["reachable_anchors"]
    assert pf["blocking_tables"] == []


def test_table_only_in_the_main_ruleset(monkeypatch, pfctl_bin):
    # The rule in f2b/sshd references <f2b-sshd>, which exists only in the main ruleset: PF falls back to it.
    tables = {"": [("f2b-sshd", 3)], "pfguard": PFGUARD_TABLES}
    pf = facts(monkeypatch, FakePfctl(hooked(), tables=tables), pfctl_bin)
    assert "f2b/sshd:f2b-sshd" not in pf["blocking_tables"]
    assert ":f2b-sshd" in pf["blocking_tables"]
    assert pf["tables"][0] == dict(anchor="", name="f2b-sshd", count=3, blocking=True)


def test_referenced_table_that_does_not_exist_blocks_nothing(monkeypatch, pfctl_bin):
    pf = facts(monkeypatch, FakePfctl(hooked(), tables={"pfguard": [("pfguard_trusted", 1)]}), pfctl_bin)
    assert pf["blocking_tables"] == []


def test_negated_table_does_not_block(monkeypatch, pfctl_bin):
    rulesets = hooked(pfguard=["block drop in quick from ! <pfguard_trusted> to any"])
    pf = facts(monkeypatch, FakePfctl(rulesets, tables={"pfguard": PFGUARD_TABLES}), pfctl_bin)
    assert pf["blocking_tables"] == []


def test_pass_only_anchor_does_not_block(monkeypatch, pfctl_bin):
    rulesets = hooked(pfguard=["pass in quick from <pfguard_blocklist> to any no state"])
    pf = facts(monkeypatch, FakePfctl(rulesets, tables={"pfguard": PFGUARD_TABLES}), pfctl_bin)
    assert "pfguard" in pf["reachable_anchors"]
    assert pf["blocking_tables"] == []


def test_anchor_that_vanishes_while_reading_is_empty(monkeypatch, pfctl_bin):
    fake = FakePfctl(hooked(), tables={"pfguard": PFGUARD_TABLES})
    listing = fake.__call__

    def vanish_f2b_sshd(args, **kwargs):
        if "-a" in args and args[args.index("-a") + 1] == "f2b/sshd":
            fake.rulesets.pop("f2b/sshd", None)
        return listing(args, **kwargs)

    pf = facts(monkeypatch, vanish_f2b_sshd, pfctl_bin)
    assert pf["rulesets"]["f2b/sshd"] == []
    assert pf["blocking_tables"] == ["pfguard:pfguard_blocklist"]


def test_not_root_fails_naming_the_command_and_its_error(monkeypatch, pfctl_bin):
    denied = "pfctl: /dev/pf: Permission denied\n"  # pfctl.md#device-access, exit 1
    fake = FakePfctl(hooked(), failure=(1, denied))
    result = run_module(monkeypatch, pf_facts, fake, dict(pfctl_path=pfctl_bin))
    assert result["failed"] is True
    assert result["msg"] == "%s -q -s info failed: pfctl: /dev/pf: Permission denied" % pfctl_bin
    assert result["cmd"] == [pfctl_bin, "-q", "-s", "info"]
    assert result["stderr"] == denied
    assert result["rc"] == 1


def test_error_on_stderr_with_exit_0_is_a_failure(monkeypatch, pfctl_bin):
    # -s ignores errors in the exit code (pfctl.md#exit-codes): stderr decides. ALTQ noise alone would not.
    fake = FakePfctl(hooked(), failure=(0, ALTQ + "pfctl: DIOCGETSTATUS: Operation not supported by device\n"))
    result = run_module(monkeypatch, pf_facts, fake, dict(pfctl_path=pfctl_bin))
    assert result["failed"] is True
    assert "DIOCGETSTATUS" in result["msg"]
    assert "ALTQ" not in result["msg"]


@pytest.mark.parametrize("where", ["nope/pfctl", "."], ids=["missing", "a directory"])
def test_missing_pfctl_fails_before_running_anything(monkeypatch, tmp_path, where):
    fake = FakePfctl(hooked())
    missing = str(tmp_path / where)
    result = run_module(monkeypatch, pf_facts, fake, dict(pfctl_path=missing))
    assert result["failed"] is True
    assert result["msg"] == "pfctl not found or not executable at %s" % missing
    assert fake.calls == []


# ---------------------------------------------------------------------------- hostile output


class Garbled(FakePfctl):
    """FakePfctl whose output for one show command is replaced."""

    def __init__(self, what, stdout, **kwargs):
        super(Garbled, self).__init__(hooked(), tables={"pfguard": PFGUARD_TABLES}, **kwargs)
        self.what = what
        self.stdout = stdout

    def __call__(self, args, data=None, environ_update=None, **kwargs):
        rc, stdout, stderr = super(Garbled, self).__call__(args, data, environ_update, **kwargs)
        if args[-1] == self.what and "-a" not in args:
            return rc, self.stdout, stderr
        return rc, stdout, stderr


@pytest.mark.parametrize(
    "what, stdout, line",
    [
        ("References", "TOKENS:\nwhat is this\n", "what is this"),
        ("Anchors", "  pfguard\nevil\n", "evil"),
        ("Anchors", "pfguard\n", "pfguard"),
        ("rules", 'anchor "pfguard" all\n\x1b[31mRED\n', "\x1b[31mRED"),
        ("Tables", "-pa-r-\tt\n\tAddresses:   1\nnonsense here\n", "nonsense here"),
        ("Tables", "-pa-r-\tt\n   1.2.3.4\n", "   1.2.3.4"),
        ("info", "garbage\n", "Status"),
        ("memory", "states        hard limit    10000\nfoo\n", "foo"),
        ("memory", "states        hard limit    10000\n", "table-entries"),
    ],
)
def test_output_pf_facts_cannot_read_fails_naming_the_line(monkeypatch, pfctl_bin, what, stdout, line):
    result = run_module(monkeypatch, pf_facts, Garbled(what, stdout), dict(pfctl_path=pfctl_bin))
    assert result["failed"] is True
    assert (repr(line) if what not in ("info", "memory") or line == "foo" else line) in result["msg"]
    assert "-s %s" % what in result["msg"]


def test_anchor_names_with_control_characters_are_escaped_and_not_read(monkeypatch, pfctl_bin):
    odd = "f2b/ev\x1b[2Jil\u00e9\\x"
    fake = FakePfctl(hooked(**{odd: ["block drop all"], "com.apple/\rcr": []}), tables={"pfguard": PFGUARD_TABLES})
    result = run_module(monkeypatch, pf_facts, fake, dict(pfctl_path=pfctl_bin))
    pf = result["ansible_facts"]["pf"]
    assert "f2b/ev\\x1b[2Jil\\xe9\\\\x" in pf["anchors"] and "com.apple/\\x0dcr" in pf["anchors"]
    assert not any(c < " " or c > "~" for name in pf["anchors"] for c in name)
    assert all(odd not in call for call in fake.calls)
    assert pf["blocking_tables"] == ["pfguard:pfguard_blocklist"]


def test_table_names_and_rules_are_escaped(monkeypatch, pfctl_bin):
    fake = FakePfctl(
        hooked(pfguard=['block drop quick from <t\x07> to any label "\x1b]0;x\x07"']),
        tables={"pfguard": [("t\x07", 1)]},
    )
    pf = run_module(monkeypatch, pf_facts, fake, dict(pfctl_path=pfctl_bin))["ansible_facts"]["pf"]
    assert pf["rulesets"]["pfguard"] == ['block drop quick from <t\\x07> to any label "\\x1b]0;x\\x07"']
    assert pf["tables"][0]["name"] == "t\\x07"
    assert pf["blocking_tables"] == ["pfguard:t\\x07"]


def test_a_hung_pfctl_fails_naming_the_command(monkeypatch, pfctl_bin):
    EXPECTED_TIMEOUT[0] = 3

    def hung(args, data=None, environ_update=None):
        raise CommandTimeout("%s did not finish within 3 seconds and was killed (command_timeout)" % " ".join(args))

    result = run_module(monkeypatch, pf_facts, hung, dict(pfctl_path=pfctl_bin, command_timeout=3))
    assert result["failed"] is True
    assert result["msg"] == "%s -q -s info did not finish within 3 seconds and was killed (command_timeout)" % pfctl_bin


@pytest.mark.parametrize("timeout", [0, -1, 99999])
def test_command_timeout_out_of_range_is_refused(monkeypatch, pfctl_bin, timeout):
    fake = FakePfctl(hooked())
    result = run_module(monkeypatch, pf_facts, fake, dict(pfctl_path=pfctl_bin, command_timeout=timeout))
    assert result["failed"] is True and "command_timeout %d" % timeout in result["msg"]
    assert fake.calls == []


@pytest.mark.parametrize("path", ["sbin/pfctl", "/sbin/pf\nctl"])
def test_pfctl_path_must_be_absolute_without_control_characters(monkeypatch, path):
    fake = FakePfctl(hooked())
    result = run_module(monkeypatch, pf_facts, fake, dict(pfctl_path=path))
    assert result["failed"] is True and repr(path) in result["msg"]
    assert fake.calls == []
