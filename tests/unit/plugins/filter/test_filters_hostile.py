# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Hostile and wrong-typed input to every filter: each is refused with an AnsibleFilterError whose message names
the filter, the argument or field and the value (shown short and printable); nothing else ever escapes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pfguard.macos.plugins.filter.ban_report import ban_report
from ansible_collections.pfguard.macos.plugins.filter.pf_addresses import (
    pf_inside,
    pf_invalid,
    pf_normalize,
    pf_overlapping,
)
from ansible_collections.pfguard.macos.plugins.filter.protection_verdict import protection_verdict
from ansible_collections.pfguard.macos.tests.unit.plugins.filter.test_ban_report import FLEET, T0
from ansible_collections.pfguard.macos.tests.unit.plugins.filter.test_protection_verdict import PROTECTED_FACTS

ATTACKER = "198.51.100.200"
TRUSTED = ["198.51.100.0/25"]
NAN = float("nan")
INF = float("inf")
HUGE = 10**5000  # more digits than Python turns into text (int max str digits is 4300)
MESSAGE_MAX = 1000


def nested(depth):
    """A list nested `depth` deep: far deeper than Python's recursion limit."""
    outer = inner = []
    for _level in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


def self_containing():
    loop = ["203.0.113.7"]
    loop.append(loop)
    return loop


def facts_with(dotted, value):
    """PROTECTED_FACTS with the field at the dotted path (a list index as a number) set to `value`."""
    result = copy.deepcopy(PROTECTED_FACTS)
    *parents, key = dotted.split(".")
    target = result
    for parent in parents:
        target = target[int(parent) if parent.isdigit() else parent]
    target[key] = value
    return result


def fleet_with(dotted, value):
    """FLEET (mac1, mac2, mac3) with the field at the dotted path set to `value`."""
    result = copy.deepcopy(FLEET)
    *parents, key = dotted.split(".")
    target = result
    for parent in parents:
        target = target[int(parent) if parent.isdigit() else parent]
    target[int(key) if key.isdigit() else key] = value
    return result


def mac1(**fail2ban):
    """A fleet of one host, mac1, with these fail2ban facts."""
    return {"mac1": {"blocklist": 0, "fail2ban": dict({"installed": True, "running": True}, **fail2ban)}}


def record(ip=ATTACKER, when=T0, jail="sshd"):
    return {"jail": jail, "ip": ip, "timeofban": when, "bantime": 600, "bancount": 1}


PV = "protection_verdict: "
BR = "ban_report: "
# (id, filter, positional arguments, keyword arguments, fragments the message must hold: the filter and the
# argument or field, and the value as the message shows it)
HOSTILE = [
    # pf_normalize: a string, null or another type where the list of addresses belongs
    ("normalize-string", pf_normalize, ("203.0.113.7",), {},
     ["pf_normalize must be a list of addresses, got '203.0.113.7'"]),
    ("normalize-null", pf_normalize, (None,), {}, ["pf_normalize must be a list of addresses, got None"]),
    ("normalize-dict", pf_normalize, ({"203.0.113.7": 1},), {}, ["pf_normalize", "got {'203.0.113.7': 1}"]),
    ("normalize-bool", pf_normalize, (True,), {}, ["pf_normalize must be a list of addresses, got True"]),
    ("normalize-bytes", pf_normalize, (b"203.0.113.7",), {}, ["pf_normalize", "got b'203.0.113.7'"]),
    ("normalize-set", pf_normalize, ({"203.0.113.7"},), {}, ["pf_normalize", "got {'203.0.113.7'}"]),
    # ... and elements that are no address
    ("normalize-arabic-indic-digits", pf_normalize, (["١٩٢.٠.٢.١"],), {},
     ["pf_normalize: not valid addresses: '١٩٢.٠.٢.١'"]),
    ("normalize-arabic-indic-netmask", pf_normalize, (["10.0.0.0/٢٤"],), {},
     ["pf_normalize: not valid addresses: '10.0.0.0/٢٤'"]),
    ("normalize-superscript-netmask", pf_normalize, (["10.0.0.0/²"],), {}, ["'10.0.0.0/²'"]),
    ("normalize-nul", pf_normalize, (["203.0.113.7\x00"],), {}, ["pf_normalize", r"'203.0.113.7\x00'"]),
    ("normalize-newline", pf_normalize, (["203.0.113.7\n10.0.0.1"],), {}, [r"'203.0.113.7\n10.0.0.1'"]),
    ("normalize-escape-sequence", pf_normalize, (["\x1b[2J203.0.113.7"],), {}, [r"'\x1b[2J203.0.113.7'"]),
    ("normalize-surrogate", pf_normalize, (["203.0.113.\udcff"],), {}, [r"'203.0.113.\udcff'"]),
    ("normalize-very-long", pf_normalize, (["1" * 100000],), {}, ["'" + "1" * 80 + "...'"]),
    ("normalize-huge-netmask", pf_normalize, (["10.0.0.0/" + "9" * 5000],), {}, ["'10.0.0.0/999"]),
    ("normalize-nested-list", pf_normalize, ([["203.0.113.7"]],), {}, ["'['203.0.113.7']' (not a string)"]),
    ("normalize-null-element", pf_normalize, ([None],), {}, ["'None' (not a string)"]),
    ("normalize-huge-int-element", pf_normalize, ([HUGE],), {}, ["'an integer of about 5000 digits' (not a string)"]),
    ("normalize-nan-element", pf_normalize, ([NAN],), {}, ["'nan' (not a string)"]),
    ("normalize-deeply-nested", pf_normalize, ([nested(100000)],), {}, ["'[[[...]]]' (not a string)"]),
    ("normalize-self-containing", pf_normalize, ([self_containing()],), {},
     ["'['203.0.113.7', ['203.0.113.7', [...]]]'"]),
    ("normalize-many-bad", pf_normalize, (["bad%d" % n for n in range(1000)],), {},
     ["'bad0'", "'bad9' (", "; and 990 more"]),
    ("normalize-extra-argument", pf_normalize, (["203.0.113.7"], "x"), {},
     ["pf_normalize: too many positional arguments"]),
    # pf_overlapping and pf_inside: either list
    ("overlapping-networks-string", pf_overlapping, ([ATTACKER], "198.51.100.0/25"), {},
     ["pf_overlapping networks must be a list of addresses, got '198.51.100.0/25'"]),
    ("overlapping-networks-null", pf_overlapping, ([ATTACKER], None), {},
     ["pf_overlapping networks must be a list of addresses, got None"]),
    ("overlapping-networks-bool-element", pf_overlapping, ([ATTACKER], [True]), {},
     ["pf_overlapping networks: not valid addresses: 'True' (not a string)"]),
    ("overlapping-values-int", pf_overlapping, (3325256904, TRUSTED), {},
     ["pf_overlapping must be a list of addresses, got 3325256904"]),
    ("overlapping-without-networks", pf_overlapping, ([ATTACKER],), {},
     ["pf_overlapping: missing a required argument: 'networks'"]),
    ("inside-networks-dict", pf_inside, ([ATTACKER], {"net": "0.0.0.0/0"}), {},
     ["pf_inside networks must be a list of addresses, got {'net': '0.0.0.0/0'}"]),
    ("inside-values-control", pf_inside, (["198.51.100.7\x7f"], TRUSTED), {}, [r"'198.51.100.7\x7f'"]),
    ("inside-unknown-keyword", pf_inside, ([ATTACKER], TRUSTED), {"network": TRUSTED},
     ["pf_inside: got an unexpected keyword argument 'network'"]),
    # protection_verdict: its arguments
    ("verdict-jails-string", protection_verdict, (PROTECTED_FACTS,), {"jails": "sshd"},
     [PV + "jails must be a list of jail names, got 'sshd'"]),
    ("verdict-jails-null", protection_verdict, (PROTECTED_FACTS,), {"jails": None},
     [PV + "jails must be a list of jail names, got None"]),
    ("verdict-jails-dict", protection_verdict, (PROTECTED_FACTS,), {"jails": {"sshd": True}},
     [PV + "jails must be a list of jail names, got {'sshd': True}"]),
    ("verdict-jail-null", protection_verdict, (PROTECTED_FACTS,), {"jails": ["sshd", None]},
     [PV + "jails[1] must be a non-empty string, got None"]),
    ("verdict-jail-space", protection_verdict, (PROTECTED_FACTS,), {"jails": ["ssh d"]},
     [PV + "jails[0] must be a jail name without spaces, got 'ssh d'"]),
    ("verdict-jail-control", protection_verdict, (PROTECTED_FACTS,), {"jails": ["sshd\x07"]},
     [PV + "jails[0] must not hold control characters, got 'sshd\\x07'"]),
    ("verdict-jail-long", protection_verdict, (PROTECTED_FACTS,), {"jails": ["j" * 10000]},
     [PV + "jails[0] must be at most 64 characters long, got '" + "j" * 79 + "..."]),
    ("verdict-log-minutes-bool", protection_verdict, (PROTECTED_FACTS,), {"log_minutes": True},
     [PV + "log_minutes must be a positive integer, got True"]),
    ("verdict-log-minutes-arabic-indic", protection_verdict, (PROTECTED_FACTS,), {"log_minutes": "٢٤"},
     [PV + "log_minutes must be a positive integer, got '٢٤'"]),
    ("verdict-log-minutes-huge", protection_verdict, (PROTECTED_FACTS,), {"log_minutes": HUGE},
     [PV + "log_minutes must be at most 525600, got an integer of about 5000 digits"]),
    ("verdict-log-minutes-huge-text", protection_verdict, (PROTECTED_FACTS,), {"log_minutes": "9" * 5000},
     [PV + "log_minutes must be at most 525600, got '" + "9" * 79]),
    ("verdict-log-minutes-nan", protection_verdict, (PROTECTED_FACTS,), {"log_minutes": NAN},
     [PV + "log_minutes must be a positive integer, got nan"]),
    ("verdict-log-minutes-infinite", protection_verdict, (PROTECTED_FACTS,), {"log_minutes": INF},
     [PV + "log_minutes must be a positive integer, got inf"]),
    ("verdict-unknown-keyword", protection_verdict, (PROTECTED_FACTS,), {"jail": ["sshd"]},
     [PV + "got an unexpected keyword argument 'jail'"]),
    # protection_verdict: the facts
    ("verdict-facts-string", protection_verdict, ("protected",), {},
     [PV + "expected a dictionary of facts as the input, got 'protected'"]),
    ("verdict-pf-list", protection_verdict, (facts_with("pf", ["enabled"]),), {},
     [PV + "pf must be a dictionary, got ['enabled']"]),
    ("verdict-pf-enabled-string", protection_verdict, (facts_with("pf.enabled", "false"),), {},
     [PV + "pf.enabled must be true or false, got 'false'"]),
    ("verdict-pf-enabled-int", protection_verdict, (facts_with("pf.enabled", 1),), {},
     [PV + "pf.enabled must be true or false, got 1"]),
    ("verdict-reachable-anchors-null", protection_verdict, (facts_with("pf.reachable_anchors", None),), {},
     [PV + "pf.reachable_anchors must be a list of strings, got None"]),
    ("verdict-reachable-anchors-string", protection_verdict, (facts_with("pf.reachable_anchors", "pfguard"),), {},
     [PV + "pf.reachable_anchors must be a list of strings, got 'pfguard'"]),
    ("verdict-blocking-tables-int", protection_verdict, (facts_with("pf.blocking_tables", [1]),), {},
     [PV + "pf.blocking_tables[0] must be a string, got 1"]),
    ("verdict-rulesets-list", protection_verdict, (facts_with("pf.rulesets", []),), {},
     [PV + "pf.rulesets must be a dictionary, got []"]),
    ("verdict-main-ruleset-string", protection_verdict, (facts_with("pf.rulesets.", 'anchor "f2b/*" all'),), {},
     [PV + 'pf.rulesets[""] must be a list of strings, got \'anchor "f2b/*" all\'']),
    ("verdict-fail2ban-jails-list", protection_verdict, (facts_with("fail2ban.jails", ["sshd"]),), {},
     [PV + "fail2ban.jails must be a dictionary, got ['sshd']"]),
    ("verdict-fail2ban-running-string", protection_verdict, (facts_with("fail2ban.running", "yes"),), {},
     [PV + "fail2ban.running must be true or false, got 'yes'"]),
    ("verdict-age-nan", protection_verdict, (facts_with("sshd_log.newest.age", NAN),), {},
     [PV + "sshd_log.newest.age must be a number of seconds from 0 to 1000000000, got nan"]),
    ("verdict-age-negative", protection_verdict, (facts_with("sshd_log.newest.age", -5.0),), {},
     [PV + "sshd_log.newest.age must be a number of seconds from 0 to 1000000000, got -5.0"]),
    ("verdict-age-huge", protection_verdict, (facts_with("sshd_log.newest.age", -HUGE),), {},
     [PV + "sshd_log.newest.age must be a number of seconds from 0 to 1000000000, "
           "got a negative integer of about 5000 digits"]),
    ("verdict-age-bool", protection_verdict, (facts_with("sshd_log.newest.age", True),), {},
     [PV + "sshd_log.newest.age must be a number of seconds, got True"]),
    ("verdict-age-string", protection_verdict, (facts_with("sshd_log.newest.age", "1.2"),), {},
     [PV + "sshd_log.newest.age must be a number of seconds, got '1.2'"]),
    ("verdict-probe-string", protection_verdict, (facts_with("sshd_log.probe", "sent"),), {},
     [PV + "sshd_log.probe must be a dictionary, got 'sent'"]),
    ("verdict-launchd-disabled-string", protection_verdict, (facts_with("launchd.disabled", "org.pfguard.pf"),), {},
     [PV + "launchd.disabled must be a list of strings, got 'org.pfguard.pf'"]),
    ("verdict-launchd-loaded-null", protection_verdict, (facts_with("launchd.loaded", None),), {},
     [PV + "launchd.loaded must be a list of strings, got None"]),
    # ban_report: the fleet and its hosts
    ("report-fleet-string", ban_report, ("mac1",), {}, [BR + "the input must be a dictionary of hosts, got 'mac1'"]),
    ("report-fleet-null", ban_report, (None,), {}, [BR + "the input must be a dictionary of hosts, got None"]),
    ("report-host-int", ban_report, ({1: {}},), {}, [BR + "a host name must be a non-empty string, got 1"]),
    ("report-host-blank", ban_report, ({" ": {}},), {}, [BR + "a host name must be a non-empty string, got ' '"]),
    ("report-host-escape", ban_report, ({"mac\x1b[31m": {}},), {},
     [BR + "a host name must not hold control characters, got 'mac\\x1b[31m'"]),
    ("report-host-surrogate", ban_report, ({"mac\udcff": {}},), {},
     [BR + "a host name must not hold control characters, got 'mac\\udcff'"]),
    ("report-host-long", ban_report, ({"m" * 300: {}},), {},
     [BR + "a host name must be at most 255 characters long, got '" + "m" * 79]),
    ("report-entry-list", ban_report, ({"mac1": []},), {}, [BR + "host mac1 must map to a dictionary, got []"]),
    ("report-fail2ban-string", ban_report, ({"mac1": {"fail2ban": "running"}},), {},
     [BR + "mac1: fail2ban facts must be a dictionary, got 'running'"]),
    ("report-running-string", ban_report, (fleet_with("mac1.fail2ban.running", "false"),), {},
     [BR + "mac1: fail2ban.running must be true or false, got 'false'"]),
    ("report-installed-null", ban_report, (fleet_with("mac1.fail2ban.installed", None),), {},
     [BR + "mac1: fail2ban.installed must be true or false, got None"]),
    ("report-jails-string", ban_report, (fleet_with("mac1.fail2ban.jails", "sshd"),), {},
     [BR + "mac1: fail2ban.jails must be a dictionary, got 'sshd'"]),
    ("report-jail-list", ban_report, (fleet_with("mac1.fail2ban.jails.sshd", [ATTACKER]),), {},
     [BR + "mac1: jail sshd must be a dictionary, got ['198.51.100.200']"]),
    ("report-jail-name-int", ban_report, (mac1(jails={22: {}}),), {},
     [BR + "mac1: a jail name in fail2ban.jails must be a non-empty string, got 22"]),
    ("report-banned-string", ban_report, (fleet_with("mac1.fail2ban.jails.sshd.banned", ATTACKER),), {},
     [BR + "mac1: jail sshd banned must be a list of addresses, got '198.51.100.200'"]),
    ("report-banned-null-element", ban_report, (fleet_with("mac1.fail2ban.jails.sshd.banned", [None]),), {},
     [BR + "mac1: jail sshd banned[0] must be a non-empty string, got None"]),
    ("report-banned-surrogate", ban_report, (fleet_with("mac1.fail2ban.jails.sshd.banned", ["\udcff"]),), {},
     [BR + "mac1: jail sshd banned[0] must not hold control characters, got '\\udcff'"]),
    ("report-currently-banned-bool", ban_report, (fleet_with("mac1.fail2ban.jails.sshd.currently_banned", True),),
     {}, [BR + "mac1: jail sshd currently_banned must be a number, got True"]),
    ("report-currently-banned-fraction", ban_report, (fleet_with("mac1.fail2ban.jails.sshd.currently_banned", 1.5),),
     {}, [BR + "mac1: jail sshd currently_banned must be a number, got 1.5"]),
    ("report-total-banned-nan", ban_report, (fleet_with("mac1.fail2ban.jails.sshd.total_banned", NAN),), {},
     [BR + "mac1: jail sshd total_banned must be a number, got nan"]),
    ("report-total-banned-2**64", ban_report, (fleet_with("mac1.fail2ban.jails.sshd.total_banned", 2**64),), {},
     [BR + "mac1: jail sshd total_banned must be at most 9223372036854775807, got 18446744073709551616"]),
    ("report-total-banned-arabic-indic", ban_report, (fleet_with("mac1.fail2ban.jails.sshd.total_banned", "٢٤"),), {},
     [BR + "mac1: jail sshd total_banned must be a number, got '٢٤'"]),
    ("report-history-string", ban_report, (fleet_with("mac1.fail2ban.history", ATTACKER),), {},
     [BR + "mac1: fail2ban.history must be a list of ban records, got '198.51.100.200'"]),
    ("report-record-list", ban_report, (mac1(history=[["sshd", ATTACKER]]),), {},
     [BR + "mac1: a history record needs jail and ip, got ['sshd', '198.51.100.200']"]),
    ("report-record-ip-int", ban_report, (mac1(history=[record(ip=3325256904)]),), {},
     [BR + "mac1: fail2ban.history[0].ip must be a non-empty string, got 3325256904"]),
    ("report-record-jail-newline", ban_report, (mac1(history=[record(jail="sshd\nmac2 | protected")]),), {},
     [BR + "mac1: fail2ban.history[0].jail must not hold control characters, got 'sshd\\nmac2 | protected'"]),
    # ban_report: ban times out of range or of the wrong type
    ("report-timeofban-year-10000", ban_report, (mac1(history=[record(when=253402300800)]),), {},
     [BR + "mac1: timeofban of 198.51.100.200 in jail sshd is out of range", "got 253402300800"]),
    ("report-timeofban-milliseconds", ban_report, (mac1(history=[record(when=T0 * 1000)]),), {},
     ["timeofban of 198.51.100.200 in jail sshd is out of range", "9999-12-31 23:59:59 UTC), got 1763800000000"]),
    ("report-timeofban-negative", ban_report, (mac1(history=[record(when=-1)]),), {},
     ["timeofban of 198.51.100.200 in jail sshd is out of range", "got -1"]),
    ("report-timeofban-float-huge", ban_report, (mac1(history=[record(when=1e300)]),), {},
     ["timeofban of 198.51.100.200 in jail sshd is out of range", "got 1e+300"]),
    ("report-timeofban-int-huge", ban_report, (mac1(history=[record(when=HUGE)]),), {},
     ["timeofban of 198.51.100.200 in jail sshd is out of range", "got an integer of about 5000 digits"]),
    ("report-timeofban-nan", ban_report, (mac1(history=[record(when=NAN)]),), {},
     [BR + "mac1: timeofban of 198.51.100.200 in jail sshd must be a number, got nan"]),
    ("report-timeofban-infinite", ban_report, (mac1(history=[record(when=-INF)]),), {},
     [BR + "mac1: timeofban of 198.51.100.200 in jail sshd must be a number, got -inf"]),
    ("report-timeofban-bool", ban_report, (mac1(history=[record(when=True)]),), {},
     [BR + "mac1: timeofban of 198.51.100.200 in jail sshd must be a number, got True"]),
    ("report-timeofban-date-text", ban_report, (mac1(history=[record(when="2025-11-22")]),), {},
     ["timeofban of 198.51.100.200 in jail sshd must be a number, got '2025-11-22'"]),
    ("report-timeofban-date", ban_report, (mac1(history=[record(when=datetime.date(2025, 11, 22))]),), {},
     ["timeofban of 198.51.100.200 in jail sshd must be a number, got datetime.date(2025, 11, 22)"]),
    # ban_report: the blocklist size and top
    ("report-blocklist-negative", ban_report, (fleet_with("mac3.blocklist", -3),), {},
     [BR + "mac3: blocklist must not be negative, got -3"]),
    ("report-blocklist-huge-text", ban_report, (fleet_with("mac3.blocklist", "9" * 5000),), {},
     [BR + "mac3: blocklist must be at most 9223372036854775807, got '" + "9" * 79]),
    ("report-blocklist-list", ban_report, (fleet_with("mac3.blocklist", [1, 2]),), {},
     [BR + "mac3: blocklist must be a number, got [1, 2]"]),
    ("report-top-bool", ban_report, (FLEET,), {"top": True}, [BR + "top must be a positive number, got True"]),
    ("report-top-string", ban_report, (FLEET,), {"top": "ten"}, [BR + "top must be a positive number, got 'ten'"]),
    ("report-top-null", ban_report, (FLEET,), {"top": None}, [BR + "top must be a positive number, got None"]),
    ("report-top-negative", ban_report, (FLEET,), {"top": -1}, [BR + "top must be a positive number, got -1"]),
    ("report-top-huge", ban_report, (FLEET,), {"top": HUGE},
     [BR + "top must be at most 9223372036854775807, got an integer of about 5000 digits"]),
    ("report-extra-argument", ban_report, (FLEET, 10, 20), {}, [BR + "too many positional arguments"]),
]  # fmt: skip


def test_enough_hostile_inputs_for_every_filter():
    filters = [row[1] for row in HOSTILE]
    assert len(HOSTILE) >= 45
    assert len({row[0] for row in HOSTILE}) == len(HOSTILE)
    for function in (pf_normalize, pf_overlapping, pf_inside, protection_verdict, ban_report):
        assert filters.count(function) >= 3, function.__name__


@pytest.mark.parametrize("function, args, kwargs, fragments", [row[1:] for row in HOSTILE],
                         ids=[row[0] for row in HOSTILE])  # fmt: skip
def test_hostile_input_is_refused_naming_the_value(function, args, kwargs, fragments):
    with pytest.raises(AnsibleFilterError) as caught:
        function(*args, **kwargs)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert message.startswith(function.__name__)
    # Short and printable, whatever the value: no control character or surrogate reaches the terminal.
    assert len(message) < MESSAGE_MAX
    assert message.isprintable()
    message.encode("utf-8")


# pf_invalid never fails: it names each bad value in a line of its result instead.
INVALID_LINES = [
    ("203.0.113.7", ["'203.0.113.7' (not a list)"]),
    (None, ["None (not a list)"]),
    (HUGE, ["an integer of about 5000 digits (not a list)"]),
    ({"addresses": nested(100000)}, ["{'addresses': [[...]]} (not a list)"]),
    ([nested(100000)], ["'[[[...]]]' (not a string)"]),
    (["203.0.113.7", "١٩٢.٠.٢.١"], ["'١٩٢.٠.٢.١' (not an IPv4 or IPv6 address (hostnames and interface names are "
                                    "not accepted))"]),
    (["203.0.113.7\x00"], [r"'203.0.113.7\x00' (not an IPv4 or IPv6 address (hostnames and interface names are "
                           "not accepted))"]),
    (["\udcff"], [r"'\udcff' (not an IPv4 or IPv6 address (hostnames and interface names are not accepted))"]),
    (["x" * 100000], ["'%s...' (not an IPv4 or IPv6 address (hostnames and interface names are not accepted))"
                      % ("x" * 80)]),
    ([NAN, False], ["'nan' (not a string)", "'False' (not a string)"]),
]  # fmt: skip


@pytest.mark.parametrize("values, lines", INVALID_LINES, ids=range(len(INVALID_LINES)))
def test_invalid_names_a_hostile_value_in_a_printable_line(values, lines):
    assert pf_invalid(values) == lines


def test_invalid_names_every_bad_value_of_a_long_list():
    assert len(pf_invalid(["bad%d" % n for n in range(1000)])) == 1000


def test_invalid_shows_a_netmask_in_other_digits_as_invalid():
    (line,) = pf_invalid(["10.0.0.0/٢٤"])
    assert line.startswith("'10.0.0.0/٢٤' (")


# Exhaustive: every field of valid input replaced by every hostile value. The filter returns, or refuses with a
# short printable AnsibleFilterError; nothing else escapes.
VALUES = [
    None, True, False, 0, -1, 2**64, HUGE, -HUGE, 1.5, NAN, INF, -INF, 1e300, "", " ", "sshd", "٢٤", "10.0.0.0/٢٤",
    "\x00", "\udcff", "a\nb", "z" * 100000, "9" * 5000, "-5", b"bytes", [], [None], ["sshd"], {}, {"a": None},
    {1: 2}, {None: []}, nested(5000), self_containing(), set(), (1,), datetime.date(2025, 1, 1), 253402300800,
]  # fmt: skip


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _replaced(value, path, new):
    if not path:
        return new
    result = copy.deepcopy(value)
    target = result
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return result


def _returns_or_refuses(function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except AnsibleFilterError as exc:
        message = str(exc)
        assert len(message) < MESSAGE_MAX and message.isprintable(), message[:MESSAGE_MAX]


@pytest.mark.parametrize(
    "function, valid, kwargs",
    [
        (ban_report, FLEET, {}),
        (protection_verdict, PROTECTED_FACTS, {}),
        (protection_verdict, PROTECTED_FACTS, {"jails": ["sshd", "screensharingd"], "log_minutes": "5"}),
        (pf_normalize, ["203.0.113.7", "2001:db8::/64"], {}),
        (pf_invalid, ["203.0.113.7", "2001:db8::/64"], {}),
        (pf_overlapping, [ATTACKER, "198.51.100.0/24"], {"networks": TRUSTED}),
        (pf_inside, [ATTACKER, "198.51.100.0/24"], {"networks": TRUSTED}),
    ],
    ids=["ban_report", "protection_verdict", "protection_verdict-jails", "pf_normalize", "pf_invalid",
         "pf_overlapping", "pf_inside"],
)  # fmt: skip
def test_any_field_replaced_by_any_hostile_value_never_crashes(function, valid, kwargs):
    for path in list(_paths(valid)):
        for value in VALUES:
            _returns_or_refuses(function, _replaced(valid, path, value), **kwargs)


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_any_argument_replaced_by_a_hostile_value_never_crashes(value):
    _returns_or_refuses(ban_report, FLEET, top=value)
    _returns_or_refuses(protection_verdict, PROTECTED_FACTS, jails=value)
    _returns_or_refuses(protection_verdict, PROTECTED_FACTS, jails=["sshd", value])
    _returns_or_refuses(protection_verdict, PROTECTED_FACTS, log_minutes=value)
    _returns_or_refuses(ban_report, {value: {}} if isinstance(value, (str, int, float, bytes, tuple)) else value)
    for function in (pf_overlapping, pf_inside):
        _returns_or_refuses(function, [ATTACKER], value)
        _returns_or_refuses(function, [ATTACKER], TRUSTED + [value])


# Valid input at the edges keeps working.


def test_ban_times_through_the_year_9999_are_shown():
    history = [record(when=100000000000), record(ip="203.0.113.7", when=253402300799), record(ip="203.0.113.8", when=0)]
    report = ban_report(mac1(history=history))
    assert [(a["address"], a["last_ban_utc"]) for a in report["addresses"]] == [
        ("203.0.113.7", "9999-12-31 23:59:59 UTC"),
        (ATTACKER, "5138-11-16 09:46:40 UTC"),
        ("203.0.113.8", "1970-01-01 00:00:00 UTC"),
    ]


def test_ban_time_as_float_or_digits_and_counts_as_digits():
    history = [record(when=T0 + 0.9), record(ip="203.0.113.7", when=" %d " % (T0 + 5))]
    fleet = mac1(history=history, jails={"sshd": {"banned": [], "currently_banned": "0", "total_banned": 7.0}})
    fleet["mac1"]["blocklist"] = "2"
    report = ban_report(fleet, top="5")
    assert [(a["address"], a["last_ban"]) for a in report["addresses"]] == [("203.0.113.7", T0 + 5), (ATTACKER, T0)]
    assert report["hosts"][0]["jails"][0]["total_banned"] == 7
    assert report["totals"]["blocklist"] == 2


def test_missing_and_null_facts_a_report_allows():
    fleet = {"mac1": {"fail2ban": {"jails": None, "history": None}}, "mac2": {"fail2ban": None, "blocklist": None},
             "mac3": {"fail2ban": {"jails": {"sshd": {"banned": None, "currently_banned": None}}}}}  # fmt: skip
    report = ban_report(fleet)
    assert [(h["host"], h["fail2ban"], h["currently_banned"]) for h in report["hosts"]] == [
        ("mac1", "not running", 0),
        ("mac2", "unknown", 0),
        ("mac3", "not running", 0),
    ]


def test_log_minutes_at_its_bounds():
    assert protection_verdict(PROTECTED_FACTS, log_minutes=525600) == "protected"
    assert protection_verdict(PROTECTED_FACTS, log_minutes=" 1 ") == "protected"
    with pytest.raises(AnsibleFilterError, match="log_minutes must be at most 525600, got 525601"):
        protection_verdict(PROTECTED_FACTS, log_minutes=525601)


def test_jails_as_a_tuple_and_null_facts_the_docs_allow():
    assert protection_verdict(PROTECTED_FACTS, jails=("sshd",)) == "protected"
    no_line = facts_with("sshd_log.newest", None)
    assert protection_verdict(no_line) == "no sshd line reached the jail's log in the last 10 minutes"
    no_probe = facts_with("sshd_log.probe", None)
    assert protection_verdict(no_probe) == "protected"
    assert protection_verdict({"pf": None, "launchd": None}, jails=[]) == "PF is disabled"


def test_probe_without_wait_still_names_the_broken_link():
    facts = facts_with("sshd_log.probe", {"sent": True, "seen": False})
    assert protection_verdict(facts) == "sshd's line for the doctor's test connection did not reach the jail's log"
