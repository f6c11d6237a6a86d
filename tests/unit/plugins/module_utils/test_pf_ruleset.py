# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""pf_ruleset's parsers and PF's reachability rules, on pfctl's output formats (docs/reference/pfctl.md)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible_collections.pfguard.macos.plugins.module_utils import pf_ruleset

# docs/reference/pfctl.md#status-output, `-s info` as captured (first lines) and the enabled status line's format.
INFO_DISABLED = (
    "Status: Disabled                              Debug: Urgent\n"
    "\n"
    "State Table                          Total             Rate\n"
    "  current entries                        0               \n"
    "  searches                               0            0.0/s\n"
)
INFO_ENABLED = "Status: Enabled for 0 days 00:03:10           Debug: Urgent\n\nState Table\n"
# pfctl.md#references-listing, exact.
REFERENCES = (
    "TOKENS:\n"
    "PID      Process Name                 TOKEN                    TIMESTAMP\n"
    "4077     pfctl                        9084387343160548126      0 days 00:00:00\n"
    "4063     pfctl                        15053025338191571182     0 days 00:00:00\n"
)
# pfctl.md#anchor-listing: `-v -s Anchors` on a stock Mac with ALF on.
STOCK_ANCHORS = (
    "  com.apple\n  com.apple/200.AirDrop\n  com.apple/200.AirDrop/Bonjour\n  com.apple/250.ApplicationFirewall\n"
)


def test_status_disabled():
    assert pf_ruleset.parse_status(INFO_DISABLED) == (False, "Disabled")


def test_status_enabled_keeps_the_uptime():
    assert pf_ruleset.parse_status(INFO_ENABLED) == (True, "Enabled for 0 days 00:03:10")


def test_status_without_a_status_line_is_an_error():
    with pytest.raises(ValueError, match="Status"):
        pf_ruleset.parse_status("pfctl: /dev/pf: Permission denied\n")


def test_references_newest_first():
    assert pf_ruleset.parse_references(REFERENCES) == [
        dict(pid=4077, process="pfctl", token="9084387343160548126", age="0 days 00:00:00"),
        dict(pid=4063, process="pfctl", token="15053025338191571182", age="0 days 00:00:00"),
    ]


def test_no_references():
    assert pf_ruleset.parse_references("No pf starter references held\n") == []


def test_process_names_with_spaces():
    line = "%-8s %-28s %-24s %s\n" % ("312", "Application Firewall", "77", "1 days 02:03:04")
    assert pf_ruleset.parse_references("TOKENS:\n" + line) == [
        dict(pid=312, process="Application Firewall", token="77", age="1 days 02:03:04")
    ]


def test_anchors_are_full_paths_and_hide_the_reserved_one():
    assert pf_ruleset.parse_anchors(STOCK_ANCHORS + "  _pf\n") == [
        "com.apple",
        "com.apple/200.AirDrop",
        "com.apple/200.AirDrop/Bonjour",
        "com.apple/250.ApplicationFirewall",
    ]


def test_rules_leave_out_scrub_rules():
    # pfctl.md#rule-listing: `pfctl -sr` on the stock ruleset.
    shown = 'scrub-anchor "com.apple/*" all fragment reassemble\nanchor "com.apple/*" all\n'
    assert pf_ruleset.parse_rules(shown) == ['anchor "com.apple/*" all']


def test_rules_of_a_brace_anchor_stay_with_it():
    shown = (
        'anchor "com.apple/*" all\n'
        "anchor in all {\n"
        "  block drop in quick from <inner> to any\n"
        "  anchor all {\n"
        "    pass all flags S/SA keep state\n"
        "  }\n"
        "}\n"
        "block drop in all\n"
    )
    assert pf_ruleset.parse_rules(shown) == ['anchor "com.apple/*" all', "anchor in all", "block drop in all"]


def test_tables_with_counts_and_their_anchor():
    shown = (
        "-pa-r-\tf2b-sshd\tf2b/sshd\n"
        "\tAddresses:   3\n"
        "\tCleared:     Sun Nov 22 06:21:46 2026\n"
        "\tReferences:  [ Anchors: 0                  Rules: 1                  ]\n"
        "\tEvaluations: [ NoMatch: 0                  Match: 0                  ]\n"
        "\tIn/Block:    [ Packets: 0                  Bytes: 0                  ]\n"
        "--a-r-\tother\n"
        "\tAddresses:   0\n"
    )
    assert pf_ruleset.parse_tables(shown, "f2b/sshd") == [
        dict(anchor="f2b/sshd", name="f2b-sshd", count=3),
        dict(anchor="f2b/sshd", name="other", count=0),
    ]


def test_inactive_tables_are_left_out():
    shown = "-p----\tghost\n\tAddresses:   5\n--a-r-\treal\n\tAddresses:   2\n"
    assert pf_ruleset.parse_tables(shown, "") == [dict(anchor="", name="real", count=2)]


@pytest.mark.parametrize(
    "current, name, expected",
    [
        ("", "com.apple/*", ("com.apple", True)),
        ("", "pfguard", ("pfguard", False)),
        ("com.apple", "200.AirDrop/*", ("com.apple/200.AirDrop", True)),
        ("com.apple", "/pfguard", ("pfguard", False)),
        ("a/b", "../c", ("a/c", False)),
        ("a/b", "../../c/*", ("c", True)),
        ("", "*", ("", True)),
    ],
)
def test_anchor_calls_resolve_like_pf(current, name, expected):
    assert pf_ruleset.resolve_anchor_call(current, name) == expected


@pytest.mark.parametrize(
    "rule, refs",
    [
        ("block drop in log quick from <pfguard_blocklist> to any", ["pfguard_blocklist"]),
        ("block drop in quick from ! <pfguard_trusted> to any", []),
        ("block return in from <a> to ! <b>", ["a"]),
        ("block drop in from any to <dst> port = ssh", ["dst"]),
        ('block drop in all label "<not_a_table>"', []),
    ],
)
def test_table_refs_skip_negated_and_quoted(rule, refs):
    assert pf_ruleset.table_refs(rule) == refs


@pytest.mark.parametrize(
    "rule, block",
    [
        ("block drop in all", True),
        ("block return out log quick on en0 all", True),
        ("pass in quick from <t> to any no state", False),
        ('anchor "blocky" all', False),
    ],
)
def test_block_rules(rule, block):
    assert pf_ruleset.is_block_rule(rule) is block


def test_wildcard_reaches_children_not_the_anchor_itself():
    anchors = pf_ruleset.parse_anchors(STOCK_ANCHORS)
    rulesets = {
        "": ['anchor "com.apple/*" all'],
        "com.apple": ['anchor "200.AirDrop/*" all', 'anchor "250.ApplicationFirewall/*" all'],
    }
    assert pf_ruleset.reachable_anchors(rulesets, anchors) == [
        "com.apple/200.AirDrop",
        "com.apple/250.ApplicationFirewall",
    ]


def test_nested_calls_are_followed_relative_to_their_ruleset():
    anchors = ["a", "a/b", "a/b/c", "a/d", "x"]
    rulesets = {"": ['anchor "a" all'], "a": ['anchor "b/*" all', 'anchor "/x" all'], "a/b/c": ['anchor "../../d" all']}
    assert pf_ruleset.reachable_anchors(rulesets, anchors) == ["a", "a/b/c", "a/d", "x"]


def test_calls_to_missing_anchors_reach_nothing():
    assert pf_ruleset.reachable_anchors({"": ['anchor "gone" all', 'anchor "gone/*" all']}, ["other"]) == []


def test_brace_anchors_pair_with_their_underscore_children_in_order():
    anchors = ["_1", "_2", "_10", "named"]
    rulesets = {"": ["anchor in all", 'anchor "named" all', "anchor out all"]}
    # `_10` is listed (name order) before `_2` but was opened after it.
    assert pf_ruleset.reachable_anchors(rulesets, anchors) == ["_1", "named", "_2"]


def test_blocking_tables_resolve_to_the_anchor_then_the_main_ruleset():
    rulesets = {
        "": ['anchor "a" all', "block drop in from <main_only> to any"],
        "a": ["block drop in from <both> to any", "block drop in from <main_only> to any", "block drop from <none>"],
        "unreached": ["block drop in from <unreached_t> to any"],
    }
    tables = [
        dict(anchor="", name="main_only", count=1),
        dict(anchor="", name="both", count=1),
        dict(anchor="a", name="both", count=2),
        dict(anchor="unreached", name="unreached_t", count=1),
    ]
    reachable = pf_ruleset.reachable_anchors(rulesets, ["a", "unreached"])
    assert pf_ruleset.blocking_tables(rulesets, reachable, tables) == [":main_only", "a:both"]
