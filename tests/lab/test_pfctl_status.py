# SPDX-License-Identifier: GPL-3.0-or-later
"""pfctl -e/-d/-E/-X, -s References and -s info (docs/reference/pfctl.md)."""

from __future__ import annotations

import re

from pf_fixtures import ALTQ, USAGE

pytest_plugins = ["pf_fixtures"]

INFO_DISABLED = (  # pfctl.md#status-output capture; "current entries" ends in 15 spaces
    "Status: Disabled                              Debug: Urgent\n"
    "\n"
    "State Table                          Total             Rate\n"
    "  current entries                        0               \n"
    "  searches                               0            0.0/s\n"
    "  inserts                                0            0.0/s\n"
    "  removals                               0            0.0/s\n"
    "Counters\n"
)
COUNTERS = ("match", "bad-offset", "fragment", "short", "normalize", "memory", "bad-timestamp", "congestion",
            "ip-option", "proto-cksum", "state-mismatch", "state-insert", "state-limit", "src-limit", "synproxy",
            "dummynet", "invalid-port")


def token_of(stderr: str) -> str:
    match = re.search(r"^Token : (\d{1,20})$", stderr, re.M)
    assert match, stderr
    return match.group(1)


def test_enable_then_enable_again(pf_ctl):
    assert tuple(pf_ctl("-e")) == (0, "", ALTQ + "pf enabled\n")
    assert tuple(pf_ctl("-e")) == (1, "", ALTQ + "pfctl: pf already enabled\n")


def test_disable_then_disable_again(pf_ctl):
    pf_ctl.q("-e")
    assert tuple(pf_ctl("-d")) == (0, "", ALTQ + "pf disabled\n")
    assert tuple(pf_ctl("-d")) == (1, "", ALTQ + "pfctl: pf not enabled\n")


def test_enable_ref_prints_token_on_stderr_only(pf_ctl):
    rc, out, err = pf_ctl("-E")
    assert (rc, out) == (0, "")
    assert re.fullmatch(re.escape(ALTQ) + r"pf enabled\nToken : \d{1,20}\n", err), err
    # the kernel never refuses -E because pf is running: same text the second time
    rc, out, err2 = pf_ctl("-E")
    assert (rc, out) == (0, "") and err2.startswith(ALTQ + "pf enabled\nToken : ")
    assert token_of(err) != token_of(err2)


def test_release_tokens_one_by_one(pf_ctl):
    first = token_of(pf_ctl("-E").err)
    second = token_of(pf_ctl("-E").err)
    assert tuple(pf_ctl("-X", first)) == (0, "", ALTQ + "disable request successful. 1 more pf enable "
                                          "reference(s) remaining, pf still enabled.\n")
    assert tuple(pf_ctl("-X", first)) == (1, "", ALTQ + "pfctl: pf: token invalid\n")
    assert tuple(pf_ctl("-X", second)) == (0, "", ALTQ + "pf disabled\n")
    assert tuple(pf_ctl("-X", second)) == (1, "", ALTQ + "pfctl: pf not enabled\n")


def test_token_zero_is_invalid_and_non_numeric_is_usage(pf_ctl):
    pf_ctl.q("-E")
    assert tuple(pf_ctl("-X", "0")) == (1, "", ALTQ + "pfctl: pf: token invalid\n")
    assert tuple(pf_ctl("-X", "12x")) == (1, "", "pfctl: Invalid token value '12x'\n" + USAGE)


def test_disable_invalidates_every_token(pf_ctl):
    token = token_of(pf_ctl("-E").err)
    pf_ctl.q("-d")
    assert pf_ctl("-q", "-s", "References").out == "No pf starter references held\n"
    pf_ctl.q("-e")
    assert tuple(pf_ctl("-X", token)) == (1, "", ALTQ + "pfctl: pf: token invalid\n")


def test_plain_enable_takes_a_reference_that_outlives_tokens(pf_ctl):
    token = token_of(pf_ctl("-E").err)
    # running with one token and refcount 1: -e fails but adds the plain reference (xnu DIOCSTART)
    assert pf_ctl("-e").rc == 1
    assert pf_ctl("-X", token).err == ALTQ + (
        "disable request successful. 1 more pf enable reference(s) remaining, pf still enabled.\n")
    assert pf_ctl("-q", "-s", "info").out.startswith("Status: Enabled for ")


def test_references_listing_newest_first(pf_ctl):
    assert tuple(pf_ctl("-q", "-s", "References")) == (0, "No pf starter references held\n", "")
    first = token_of(pf_ctl("-E").err)
    second = token_of(pf_ctl("-E").err)
    lines = pf_ctl("-q", "-s", "References").out.splitlines()
    assert lines[:2] == ["TOKENS:", "PID      Process Name                 TOKEN                    TIMESTAMP"]
    assert len(lines) == 4
    for line, token in zip(lines[2:], (second, first)):
        assert re.fullmatch(rf"\d+ +pfctl {{24}}{token} +0 days 00:00:0\d", line), line
        assert line.index("pfctl") == 9 and line.index(token) == 38 and line.index(" 0 days") == 62


def test_info_disabled_matches_capture(pf_ctl):
    out = pf_ctl("-q", "-s", "info").out
    assert out == INFO_DISABLED + "".join(f"  {name:<25} {0:14d} {'0.0/s':>16}\n" for name in COUNTERS)
    assert out.splitlines()[3] == "  current entries                        0               "


def test_info_enabled_status_line(pf_ctl):
    pf_ctl.q("-e")
    first = pf_ctl("-q", "-s", "info").out.splitlines()[0]
    assert re.fullmatch(r"Status: Enabled for 0 days 00:00:0\d           Debug: Urgent", first), first


def test_info_verbose_adds_hostid_checksum_and_tables(pf_ctl):
    lines = pf_ctl("-q", "-v", "-s", "info").out.splitlines()
    assert re.fullmatch(r"Hostid:   0x[0-9a-f]{8}", lines[2])
    assert re.fullmatch(r"Checksum: 0x[0-9a-f]{32}", lines[3])
    assert "Source Tracking Table" in lines and "Limit Counters" in lines


def test_noaction_cancels_enable_and_disable(pf_ctl):
    assert tuple(pf_ctl("-n", "-e")) == (0, "", "")
    assert pf_ctl("-q", "-s", "info").out.startswith("Status: Disabled ")
