# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The doctor's verdict: every link of the chain, and that the first broken one wins."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pfguard.macos.plugins.filter.protection_verdict import (
    FilterModule,
    broken_links,
    protection_verdict,
)

LABELS = ("org.pfguard.pf", "org.pfguard.fail2ban", "org.pfguard.logstream")

# A converged lab Mac, shaped like pf_facts / fail2ban_facts / jail_log_facts return it.
PROTECTED_FACTS = {
    "pf": {
        "enabled": True,
        "status": "Enabled for 0 days 00:03:10",
        "tokens": [{"pid": 4077, "process": "pfctl", "token": "9084387343160548126", "age": "0 days 00:00:00"}],
        "anchors": ["com.apple", "com.apple/200.AirDrop", "f2b", "f2b/sshd", "pfguard"],
        "reachable_anchors": ["com.apple/200.AirDrop", "pfguard", "f2b/sshd"],
        "rulesets": {
            "": ['scrub-anchor "com.apple/*" all fragment reassemble', 'anchor "com.apple/*" all',
                 'anchor "pfguard" all', 'anchor "f2b/*" all'],
            "pfguard": ["pass in quick from <pfguard_trusted> to any flags S/SA keep state",
                        "block drop in log quick from <pfguard_blocklist> to any"],
            "f2b/sshd": ["block drop quick proto tcp from <f2b-sshd> to any port = 22"],
        },
        "tables": [
            {"anchor": "pfguard", "name": "pfguard_trusted", "count": 1, "blocking": False},
            {"anchor": "pfguard", "name": "pfguard_blocklist", "count": 0, "blocking": True},
            {"anchor": "f2b/sshd", "name": "f2b-sshd", "count": 0, "blocking": True},
        ],
        "blocking_tables": ["pfguard:pfguard_blocklist", "f2b/sshd:f2b-sshd"],
    },
    "fail2ban": {
        "installed": True,
        "running": True,
        "client": "/opt/homebrew/bin/fail2ban-client",
        "config_dir": "/opt/homebrew/etc/fail2ban",
        "version": "1.0.2",
        "dbfile": "/opt/homebrew/var/lib/fail2ban/fail2ban.sqlite3",
        "jails": {
            "sshd": {"currently_failed": 0, "total_failed": 0, "currently_banned": 0, "total_banned": 0,
                     "banned": [], "logpaths": ["/var/log/pfguard/auth.log"]},
        },
        "history": [],
    },
    "launchd": {"loaded": list(LABELS), "disabled": [], "installed": list(LABELS)},
    "sshd_log": {
        "paths": ["/var/log/pfguard/auth.log"],
        "newest": {"path": "/var/log/pfguard/auth.log", "time": 1763800000.5, "age": 1.2,
                   "line": "2025-11-22 08:26:40.500000+0000  localhost sshd[812]: Connection closed by "
                           "127.0.0.1 port 50122 [preauth]"},
        "probe": {"sent": True, "seen": True, "wait": 10, "error": None, "time": 1763800000.1},
    },
}  # fmt: skip


MAIN_WITHOUT_F2B = ['anchor "com.apple/*" all', 'anchor "pfguard" all']
# One way to break each link, and the verdict it must give; listed in chain order.
BREAKS = [
    ("PF is disabled", {"pf.enabled": False, "pf.status": "Disabled", "pf.tokens": []}),
    ("anchor pfguard is not referenced from the main ruleset",
     {"pf.reachable_anchors": ["com.apple/200.AirDrop", "f2b/sshd"],
      "pf.blocking_tables": ["f2b/sshd:f2b-sshd"]}),
    ("table pfguard_blocklist is not referenced by any block rule", {"pf.blocking_tables": ["f2b/sshd:f2b-sshd"]}),
    ("anchor f2b/* is not referenced from the main ruleset",
     {"pf.rulesets.": MAIN_WITHOUT_F2B, "pf.blocking_tables": ["pfguard:pfguard_blocklist"]}),
    ("fail2ban is not installed", {"fail2ban.installed": False, "fail2ban.running": False, "fail2ban.jails": {}}),
    ("fail2ban is not running", {"fail2ban.running": False, "fail2ban.jails": {}}),
    ("jail sshd is not running in fail2ban", {"fail2ban.jails": {}}),
    ("table f2b-sshd is not referenced by any block rule", {"pf.blocking_tables": ["pfguard:pfguard_blocklist"]}),
    ("no sshd line reached the jail's log in the last 10 minutes",
     {"sshd_log.newest": None, "sshd_log.probe.seen": False}),
    ("sshd's line for the doctor's test connection did not reach the jail's log within 10 s",
     {"sshd_log.probe.seen": False}),
    ("launchd job org.pfguard.pf is not loaded: nothing keeps PF enabled and pfguard's anchor hooked",
     {"launchd.loaded": list(LABELS[1:])}),
    ("launchd job org.pfguard.pf is disabled: it will not start after a reboot",
     {"launchd.disabled": ["org.pfguard.pf"]}),
    ("launchd job org.pfguard.pf has no plist in /Library/LaunchDaemons: it will not start after a reboot",
     {"launchd.installed": list(LABELS[1:])}),
    ("launchd job org.pfguard.fail2ban is not loaded: nothing restarts fail2ban when it dies",
     {"launchd.loaded": ["org.pfguard.pf", "org.pfguard.logstream"]}),
    ("launchd job org.pfguard.fail2ban is disabled: it will not start after a reboot",
     {"launchd.disabled": ["org.pfguard.fail2ban"]}),
    ("launchd job org.pfguard.logstream is not loaded: nothing writes sshd's lines into the jail's log",
     {"launchd.loaded": ["org.pfguard.pf", "org.pfguard.fail2ban"]}),
]  # fmt: skip


def broken(changes):
    """The protected facts with `changes` applied; keys are dotted paths ("pf.enabled", "pf.rulesets." for
    the main ruleset's rules)."""
    result = copy.deepcopy(PROTECTED_FACTS)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        target = result
        for parent in parents:
            target = target[parent]
        target[key] = copy.deepcopy(value)
    return result


def test_converged_mac_is_protected():
    assert protection_verdict(PROTECTED_FACTS) == "protected"
    assert broken_links(PROTECTED_FACTS) == []


@pytest.mark.parametrize("verdict,changes", BREAKS, ids=[verdict for verdict, _changes in BREAKS])
def test_each_broken_link_gives_its_verdict(verdict, changes):
    assert protection_verdict(broken(changes)) == verdict


def test_every_verdict_is_distinct():
    verdicts = [verdict for verdict, _changes in BREAKS]
    assert len(set(verdicts)) == len(verdicts)


@pytest.mark.parametrize("earlier", range(len(BREAKS) - 1), ids=[verdict for verdict, _changes in BREAKS[:-1]])
def test_the_first_broken_link_wins(earlier):
    # Break this link and every later one at once: the verdict is still this link.
    combined = {}
    for _verdict, changes in reversed(BREAKS[earlier:]):
        combined.update(changes)
    # The earlier link's own changes take precedence where two breaks touch the same key.
    combined.update(BREAKS[earlier][1])
    assert protection_verdict(broken(combined)) == BREAKS[earlier][0]


def test_broken_links_lists_every_break_in_chain_order():
    both = broken({"pf.enabled": False, "launchd.loaded": ["org.pfguard.pf", "org.pfguard.fail2ban"]})
    assert broken_links(both) == [
        "PF is disabled",
        "launchd job org.pfguard.logstream is not loaded: nothing writes sshd's lines into the jail's log",
    ]


def test_log_window_is_the_given_minutes():
    stale = broken({"sshd_log.newest.age": 301.0, "sshd_log.probe.seen": False})
    assert protection_verdict(stale, log_minutes=5) == "no sshd line reached the jail's log in the last 5 minutes"
    assert protection_verdict(stale, log_minutes="6") == (
        "sshd's line for the doctor's test connection did not reach the jail's log within 10 s"
    )


def test_log_not_checked_is_broken_when_sshd_is_expected():
    assert protection_verdict(broken({"sshd_log": {}})) == "no sshd line reached the jail's log in the last 10 minutes"


def test_no_probe_needs_only_a_fresh_line():
    assert protection_verdict(broken({"sshd_log.probe": {"sent": False, "seen": False}})) == "protected"


def test_screensharingd_expected_but_missing():
    verdict = protection_verdict(PROTECTED_FACTS, jails=["sshd", "screensharingd"])
    assert verdict == "jail screensharingd is not running in fail2ban"


def test_screensharingd_table_must_block():
    with_jail = broken({})
    with_jail["fail2ban"]["jails"]["screensharingd"] = dict(with_jail["fail2ban"]["jails"]["sshd"])
    verdict = protection_verdict(with_jail, jails=["sshd", "screensharingd"])
    assert verdict == "table f2b-screensharingd is not referenced by any block rule"


def test_no_jails_expected_skips_fail2ban_links():
    no_fail2ban = broken({"fail2ban": {"installed": False, "running": False, "jails": {}}, "sshd_log": {},
                          "pf.rulesets.": MAIN_WITHOUT_F2B,
                          "launchd": {"loaded": ["org.pfguard.pf"], "installed": ["org.pfguard.pf"]}})
    assert protection_verdict(no_fail2ban, jails=[]) == "protected"
    assert protection_verdict(broken({"pf.enabled": False}), jails=[]) == "PF is disabled"


@pytest.mark.parametrize("bad", [0, -3, "ten", None, True, 1.5])
def test_bad_log_minutes_is_refused_by_value(bad):
    with pytest.raises(AnsibleFilterError, match="log_minutes must be a positive integer, got %s" % repr(bad)
                       .replace("(", r"\(").replace(".", r"\.")):
        protection_verdict(PROTECTED_FACTS, log_minutes=bad)


@pytest.mark.parametrize("bad", [None, ["pf"], "protected"])
def test_facts_must_be_a_dictionary(bad):
    with pytest.raises(AnsibleFilterError, match="expected a dictionary of facts"):
        protection_verdict(bad)


def test_a_fact_that_is_not_a_dictionary_is_named():
    with pytest.raises(AnsibleFilterError, match="fail2ban must be a dictionary"):
        protection_verdict(broken({"fail2ban": "running"}))


def test_filter_is_exposed_by_name():
    assert FilterModule().filters()["protection_verdict"] is protection_verdict


def test_protection_status_of_a_protected_mac():
    assert FilterModule().filters()["protection_status"](copy.deepcopy(PROTECTED_FACTS)) == {
        "protected": True, "link": "protected", "verdict": "protected", "broken": [],
    }


def test_protection_status_names_every_broken_link_in_chain_order():
    facts = copy.deepcopy(PROTECTED_FACTS)
    facts["pf"]["enabled"] = False
    facts["fail2ban"]["running"] = False
    facts["launchd"]["disabled"] = ["org.pfguard.pf"]
    status = FilterModule().filters()["protection_status"](facts)
    assert status["protected"] is False
    assert status["link"] == "pf_disabled" and status["verdict"] == "PF is disabled"
    names = [item["link"] for item in status["broken"]]
    assert names == ["pf_disabled", "fail2ban_not_running", "launchd_job_disabled"]
    assert status["broken"][2]["message"] == "launchd job org.pfguard.pf is disabled: it will not start after a reboot"


def test_protection_status_refuses_what_the_verdict_refuses():
    with pytest.raises(AnsibleFilterError, match="expected a dictionary of facts"):
        FilterModule().filters()["protection_status"]("pf is fine")


# ---------------------------------------------------------------------------- the feeds table (feeds.yml)

FEEDS_TABLE = {"anchor": "pfguard", "name": "pfguard_feeds", "count": 0, "blocking": True}


def with_feeds(blocking):
    facts = copy.deepcopy(PROTECTED_FACTS)
    facts["pf"]["tables"].append(dict(FEEDS_TABLE, blocking=blocking))
    if blocking:
        facts["pf"]["blocking_tables"].insert(1, "pfguard:pfguard_feeds")
    return facts


def test_an_empty_feeds_table_that_blocks_is_protected():
    assert protection_verdict(with_feeds(True)) == "protected"


def test_a_feeds_table_no_block_rule_references_is_the_verdict():
    assert protection_verdict(with_feeds(False)) == "table pfguard_feeds is not referenced by any block rule"
    status = FilterModule().filters()["protection_status"](with_feeds(False))
    assert status["link"] == "table_not_referenced"


def test_the_blocklist_verdict_comes_before_the_feeds_one():
    facts = with_feeds(False)
    facts["pf"]["blocking_tables"] = ["f2b/sshd:f2b-sshd"]
    assert broken_links(facts)[:2] == ["table pfguard_blocklist is not referenced by any block rule",
                                       "table pfguard_feeds is not referenced by any block rule"]


@pytest.mark.parametrize("bad", ["pfguard:pfguard_feeds", ["pfguard_feeds"], None])
def test_tables_of_another_shape_are_refused(bad):
    facts = copy.deepcopy(PROTECTED_FACTS)
    facts["pf"]["tables"] = bad
    with pytest.raises(AnsibleFilterError, match="pf.tables"):
        protection_verdict(facts)
