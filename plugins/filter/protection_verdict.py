# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: protection_verdict
short_description: Name the first broken link of a Mac's protection chain, or say it is protected
version_added: 0.1.0
author:
  - pfguard developers (@pfguard)
description:
  - Walks pfguard's protection chain in order and returns C(protected) when every link holds, else the
    first broken link in plain words. The chain, in order, is described in C(docs/doctor.md)
    of the collection.
  - PF enabled; anchor C(pfguard) reachable from the main ruleset; its table C(pfguard_blocklist)
    referenced by an active block rule, and so is its table C(pfguard_feeds) when the Mac has it (an empty
    feeds table is no broken link).
  - When fail2ban jails are expected, then also C(anchor "f2b/*") in the main ruleset; fail2ban
    installed and running; each expected jail running; its table C(f2b-<jail>) referenced by an
    active block rule; sshd's lines reaching the C(sshd) jail's log.
  - Last the LaunchDaemons that keep it all true across time and reboots are loaded, enabled and
    installed.
  - After them, on a Mac with pfguard.macos.pull (fact C(pull) with C(installed) true), the pull - its status
    file exists and can be read (C(pull.status_problem), when set, says why it cannot), its last pull did
    not fail (verdict C(pull failing since <time>) and the reason) and the last successful one is at most
    C(pull.max_intervals) pull intervals older than C(pull.now).
  - A pure function of the facts it is given; it runs nothing.
  - A fact that is missing (a key that is absent from the input or from one of its dictionaries) counts as
    false or empty, which breaks the links that need it, with two exceptions - a missing C(launchd.disabled)
    means that no job is disabled, and a missing C(sshd_log.probe) (or its C(sent)) means that no test
    connection was made, so only the age of the newest line is checked. V(null) counts as empty for the four
    facts C(pf), C(fail2ban), C(launchd) and C(sshd_log), and for C(sshd_log.newest) and C(sshd_log.probe),
    which M(pfguard.macos.jail_log_facts) returns as V(null) when there is none.
  - Fails, naming the filter, the argument or fact and the offending value (at most 80 characters of it, with
    control characters escaped), when anything it reads has another type or shape than the facts modules
    return - for example a string or V(null) where a list is expected (a string is never taken apart into
    characters), V(true) or V("yes") where C(pf.enabled) must be V(true) or V(false), or a log line's
    C(age) that is negative, not a number or NaN - and when O(jails) or O(log_minutes) is invalid. Facts it
    does not read are not checked, for example C(fail2ban) when O(jails) is empty.
positional: jails, log_minutes
options:
  _input:
    description:
      - The host's facts, a dictionary with keys C(pf) (from M(pfguard.macos.pf_facts)), C(fail2ban)
        (from M(pfguard.macos.fail2ban_facts)), C(launchd) and C(sshd_log).
      - Read from C(pf) are C(enabled) (V(true) or V(false)), C(reachable_anchors) and C(blocking_tables)
        (lists of strings), C(tables) (a list of dictionaries with C(anchor) and C(name)) and
        C(rulesets[""]) (a list of strings in the dictionary C(rulesets)); from
        C(fail2ban) C(installed) and C(running) (V(true) or V(false)) and C(jails) (a dictionary keyed by jail
        name).
      - C(launchd) has three lists of LaunchDaemon labels, C(loaded) (C(launchctl print system/<label>)
        succeeds), C(disabled) (C(launchctl print-disabled system) says disabled) and C(installed) (its
        plist is in C(/Library/LaunchDaemons)).
      - C(sshd_log) is what M(pfguard.macos.jail_log_facts) returns for the C(sshd) jail's log; missing or
        empty when it was not checked, which fails the log link when C(sshd) is expected. Read from it are
        C(newest.age) (seconds, an integer or float from 0 to 1000000000, or V(null) when there is no line) and
        C(probe.sent), C(probe.seen) (V(true) or V(false)) and C(probe.wait) (seconds, or V(null)).
    type: dict
    required: true
  jails:
    description:
      - The fail2ban jails that must be running; an empty list skips every fail2ban link.
      - Each is a jail name of at most 64 printable characters without spaces. A string instead of a list, or
        V(null), is refused (not taken as one jail per character, nor as no jails).
    type: list
    elements: str
    default: [sshd]
  log_minutes:
    description:
      - The newest sshd line in the jail's log must be at most this many minutes old.
      - A whole number from 1 to 525600 (a year), or a string of ASCII digits; V(true) and V(false), fractions and
        digits of other scripts are refused.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Name the first broken link on this Mac
  ansible.builtin.debug:
    msg: >-
      {{ {'pf': ansible_facts.pf, 'fail2ban': ansible_facts.fail2ban,
          'launchd': {'loaded': ['org.pfguard.pf'], 'disabled': [], 'installed': ['org.pfguard.pf']},
          'sshd_log': ansible_facts.jail_log}
         | pfguard.macos.protection_verdict(jails=[], log_minutes=10) }}
    # "protected", or for example "PF is disabled"
"""

RETURN = r"""
_value:
  description:
    - V(protected), or the first broken link, for example V(PF is disabled),
      V(anchor f2b/* is not referenced from the main ruleset) or V(jail sshd is not running in fail2ban).
  type: str
"""

import json
import re
from collections.abc import Mapping

from ansible_collections.pfguard.macos.plugins.plugin_utils.filter_checks import (
    check_bool,
    check_count,
    check_list,
    check_mapping,
    check_text,
    checked_arguments,
    refuse,
)

PROTECTED = "protected"
PF_ANCHOR = "pfguard"
PF_BLOCKLIST = "pfguard_blocklist"
PF_FEEDS = "pfguard_feeds"
PF_LABEL = "org.pfguard.pf"
FAIL2BAN_LABEL = "org.pfguard.fail2ban"
LOGSTREAM_LABEL = "org.pfguard.logstream"
# What each LaunchDaemon keeps true while it runs.
LAUNCHD_DUTIES = {
    PF_LABEL: "nothing keeps PF enabled and pfguard's anchor hooked",
    FAIL2BAN_LABEL: "nothing restarts fail2ban when it dies",
    LOGSTREAM_LABEL: "nothing writes sshd's lines into the jail's log",
}
# `pfctl -s rules` prints the main ruleset's call of fail2ban's anchors as `anchor "f2b/*" all`.
F2B_ANCHOR_CALL = re.compile(r'^anchor "f2b/\*"(\s|$)')
NAME = "protection_verdict"
STATUS_NAME = "protection_status"
LOG_MINUTES_MAX = 525600  # a year: a longer window checks nothing
JAIL_NAME_MAX = 64
# Seconds: a log line's age or the probe's wait beyond this (about 31 years) is not a measurement.
SECONDS_MAX = 10**9


def _mapping(facts, key):
    """One of the four facts: a dictionary; missing or null is empty."""
    return check_mapping(facts.get(key), "%s: %s" % (NAME, key), optional=True)


def _flag(facts, path, key):
    """A true/false fact; missing is false."""
    return check_bool(facts.get(key, False), "%s: %s.%s" % (NAME, path, key))


def _strings(facts, path, key, what=None):
    """A list of strings fact; missing is empty. The strings are only compared, never shown."""
    what = "%s: %s" % (NAME, what or "%s.%s" % (path, key))
    values = check_list(facts.get(key, []), what, "a list of strings")
    for index, value in enumerate(values):
        if not isinstance(value, str):
            refuse("%s[%d]" % (what, index), "must be a string", value)
    return values


def _seconds(value, what):
    """A duration in seconds (int or float, not negative, finite), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        refuse(what, "must be a number of seconds", value)
    if not 0 <= value <= SECONDS_MAX:  # also refuses NaN, which compares false
        refuse(what, "must be a number of seconds from 0 to %d" % SECONDS_MAX, value)
    return value


def _log_minutes(value):
    return check_count(value, "%s: log_minutes" % NAME, minimum=1, maximum=LOG_MINUTES_MAX,
                       expected="must be a positive integer")  # fmt: skip


def _jails(jails):
    what = "%s: jails" % NAME
    values = check_list(jails, what, "a list of jail names")
    for index, jail in enumerate(values):
        name = check_text(jail, "%s[%d]" % (what, index), max_length=JAIL_NAME_MAX)
        if any(char.isspace() for char in name):
            refuse("%s[%d]" % (what, index), "must be a jail name without spaces", jail)
    return values


def _pf_links(pf):
    if not _flag(pf, "pf", "enabled"):
        yield "pf_disabled", "PF is disabled"
    if PF_ANCHOR not in _strings(pf, "pf", "reachable_anchors"):
        yield "anchor_not_referenced", "anchor %s is not referenced from the main ruleset" % PF_ANCHOR
    blocking = _strings(pf, "pf", "blocking_tables")
    if "%s:%s" % (PF_ANCHOR, PF_BLOCKLIST) not in blocking:
        yield "table_not_referenced", "table %s is not referenced by any block rule" % PF_BLOCKLIST
    # The feeds table is checked once it exists (site.yml's anchor defines it): empty or not, a Mac
    # whose feeds table no block rule references drops nothing feeds.yml loads.
    if "%s:%s" % (PF_ANCHOR, PF_FEEDS) not in blocking and _has_table(pf, PF_ANCHOR, PF_FEEDS):
        yield "table_not_referenced", "table %s is not referenced by any block rule" % PF_FEEDS


def _has_table(pf, anchor, name):
    """Whether pf.tables (a list of {anchor, name, ...}) holds the table; missing is empty."""
    what = "%s: pf.tables" % NAME
    for index, table in enumerate(check_list(pf.get("tables", []), what, "a list of tables")):
        table = check_mapping(table, "%s[%d]" % (what, index))
        if table.get("anchor") == anchor and table.get("name") == name:
            return True
    return False


def _fail2ban_links(pf, fail2ban, sshd_log, jails, log_minutes):
    rulesets = check_mapping(pf.get("rulesets", {}), "%s: pf.rulesets" % NAME)
    main_rules = _strings(rulesets, "pf.rulesets", "", 'pf.rulesets[""]')
    if not any(F2B_ANCHOR_CALL.match(rule) for rule in main_rules):
        yield "f2b_anchor_not_referenced", "anchor f2b/* is not referenced from the main ruleset"
    if not _flag(fail2ban, "fail2ban", "installed"):
        yield "fail2ban_not_installed", "fail2ban is not installed"
    if not _flag(fail2ban, "fail2ban", "running"):
        yield "fail2ban_not_running", "fail2ban is not running"
    running_jails = check_mapping(fail2ban.get("jails", {}), "%s: fail2ban.jails" % NAME)
    for jail in jails:
        if jail not in running_jails:
            yield "jail_not_running", "jail %s is not running in fail2ban" % jail
    blocking = _strings(pf, "pf", "blocking_tables")
    for jail in jails:
        if "f2b/%s:f2b-%s" % (jail, jail) not in blocking:
            yield "f2b_table_not_referenced", "table f2b-%s is not referenced by any block rule" % jail
    if "sshd" in jails:
        yield from _log_links(sshd_log, log_minutes)


def _log_links(sshd_log, log_minutes):
    newest = check_mapping(sshd_log.get("newest"), "%s: sshd_log.newest" % NAME, optional=True)
    age = _seconds(newest.get("age"), "%s: sshd_log.newest.age" % NAME)
    if age is None or age > log_minutes * 60:
        yield "sshd_log_stale", "no sshd line reached the jail's log in the last %d minutes" % log_minutes
    probe = check_mapping(sshd_log.get("probe"), "%s: sshd_log.probe" % NAME, optional=True)
    if _flag(probe, "sshd_log.probe", "sent") and not _flag(probe, "sshd_log.probe", "seen"):
        wait = _seconds(probe.get("wait"), "%s: sshd_log.probe.wait" % NAME)
        yield "sshd_log_probe_missed", "sshd's line for the doctor's test connection did not reach the jail's log%s" % (
            "" if wait is None else " within %s s" % wait
        )


def _launchd_links(launchd, labels):
    loaded = _strings(launchd, "launchd", "loaded")
    disabled = _strings(launchd, "launchd", "disabled")
    installed = _strings(launchd, "launchd", "installed")
    for label in labels:
        if label not in loaded:
            yield "launchd_job_not_loaded", "launchd job %s is not loaded: %s" % (label, LAUNCHD_DUTIES[label])
        if label in disabled:
            yield "launchd_job_disabled", "launchd job %s is disabled: it will not start after a reboot" % label
        if label not in installed:
            yield (
                "launchd_job_not_installed",
                "launchd job %s has no plist in /Library/LaunchDaemons: it will not start after a reboot" % label,
            )


PULL_STATUS_FILE = "/var/db/pfguard/pull.json"
PULL_TEXT_MAX = 240


def _pull_text(value):
    """A status field for a message: printable, at most PULL_TEXT_MAX characters."""
    text = "" if value is None else str(value)
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text if len(text) <= PULL_TEXT_MAX else text[: PULL_TEXT_MAX - 3] + "..."


def _pull_epoch(status, key):
    value = status.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("%s is not a time in seconds: %s" % (key, _pull_text(json.dumps(value))))
    return value


def pull_status(text):
    """The pull status file's text (written by pfguard.macos.pull's script) as a dictionary; ValueError
    naming what is wrong."""
    if not isinstance(text, str):
        raise ValueError("not text")
    status = json.loads(text)
    if not isinstance(status, dict):
        raise ValueError("not a JSON object")
    if status.get("result") not in ("ok", "failed"):
        raise ValueError("result is not ok or failed: %s" % _pull_text(json.dumps(status.get("result"))))
    interval = status.get("interval")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError("interval is not a number of seconds: %s" % _pull_text(json.dumps(interval)))
    for key in ("last_success_epoch", "last_attempt_epoch", "failing_since_epoch"):
        _pull_epoch(status, key)
    return status


def _pull_links(pull):
    """Pull mode (pfguard.macos.pull): the last pull succeeded, within `max_intervals` intervals."""
    if not _flag(pull, "pull", "installed"):
        return
    text = pull.get("status")
    if pull.get("status_problem"):
        yield "pull_status_unreadable", "pull status file %s cannot be read: %s" % (
            PULL_STATUS_FILE, _pull_text(pull["status_problem"]))
        return
    if text is None:
        yield "pull_never_ran", "no pull has finished yet (no %s)" % PULL_STATUS_FILE
        return
    try:
        status = pull_status(text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        yield "pull_status_unreadable", "pull status file %s cannot be read: %s" % (
            PULL_STATUS_FILE, _pull_text(str(exc).split("\n", 1)[0]))
        return
    if status["result"] == "failed":
        yield "pull_failing", "pull failing since %s: %s" % (
            _pull_text(status.get("failing_since") or status.get("last_attempt")), _pull_text(status.get("reason")))
        return
    now = pull.get("now")
    if now is not None and (isinstance(now, bool) or not isinstance(now, (int, float)) or not now >= 0):
        refuse("%s: pull.now" % NAME, "must be the Mac's time in seconds since 1970", now)
    intervals = check_count(pull.get("max_intervals", 3), "%s: pull.max_intervals" % NAME, minimum=1,
                            maximum=10000, expected="must be a positive integer")  # fmt: skip
    success = _pull_epoch(status, "last_success_epoch")
    if success is None or (now is not None and now - success > intervals * status["interval"]):
        yield "pull_stale", "no successful pull since %s (more than %d intervals of %d s)" % (
            _pull_text(status.get("last_success")) or "it was installed", intervals, status["interval"])


def broken_link_items(facts, jails=("sshd",), log_minutes=10):
    """(name, message) of every broken link of the chain, in chain order (empty when protected)."""
    if not isinstance(facts, Mapping):
        refuse(NAME + ":", "expected a dictionary of facts as the input", facts)
    log_minutes = _log_minutes(log_minutes)
    jails = _jails(jails)
    pf = _mapping(facts, "pf")
    links = list(_pf_links(pf))
    labels = [PF_LABEL]
    if jails:
        fail2ban = _mapping(facts, "fail2ban")
        links.extend(_fail2ban_links(pf, fail2ban, _mapping(facts, "sshd_log"), jails, log_minutes))
        labels += [FAIL2BAN_LABEL, LOGSTREAM_LABEL]
    links.extend(_launchd_links(_mapping(facts, "launchd"), labels))
    links.extend(_pull_links(_mapping(facts, "pull")))
    return links


def broken_links(facts, jails=("sshd",), log_minutes=10):
    """The message of every broken link of the chain, in chain order (empty when protected)."""
    return [message for _name, message in broken_link_items(facts, jails, log_minutes)]


@checked_arguments(NAME)
def protection_verdict(facts, jails=("sshd",), log_minutes=10):
    """`protected`, or the first broken link of the chain."""
    links = broken_links(facts, jails, log_minutes)
    return links[0] if links else PROTECTED


@checked_arguments(STATUS_NAME)
def protection_status(facts, jails=("sshd",), log_minutes=10):
    """The verdict as data: {protected, link, verdict, broken: [{link, message}]}."""
    items = broken_link_items(facts, jails, log_minutes)
    return {
        "protected": not items,
        "link": items[0][0] if items else PROTECTED,
        "verdict": items[0][1] if items else PROTECTED,
        "broken": [{"link": name, "message": message} for name, message in items],
    }


class FilterModule(object):
    def filters(self):
        return {"protection_verdict": protection_verdict, "protection_status": protection_status}
