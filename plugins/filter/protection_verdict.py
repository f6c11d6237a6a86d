# -*- coding: utf-8 -*-
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
    referenced by an active block rule.
  - When fail2ban jails are expected, then also C(anchor "f2b/*") in the main ruleset; fail2ban
    installed and running; each expected jail running; its table C(f2b-<jail>) referenced by an
    active block rule; sshd's lines reaching the C(sshd) jail's log.
  - Last the LaunchDaemons that keep it all true across time and reboots are loaded, enabled and
    installed.
  - A pure function of the facts it is given; it runs nothing.
positional: jails, log_minutes
options:
  _input:
    description:
      - The host's facts, a dictionary with keys C(pf) (from M(pfguard.macos.pf_facts)), C(fail2ban)
        (from M(pfguard.macos.fail2ban_facts)), C(launchd) and C(sshd_log).
      - C(launchd) has three lists of LaunchDaemon labels, C(loaded) (C(launchctl print system/<label>)
        succeeds), C(disabled) (C(launchctl print-disabled system) says disabled) and C(installed) (its
        plist is in C(/Library/LaunchDaemons)).
      - C(sshd_log) is what M(pfguard.macos.jail_log_facts) returns for the C(sshd) jail's log; missing or
        empty when it was not checked, which fails the log link when C(sshd) is expected.
    type: dict
    required: true
  jails:
    description: The fail2ban jails that must be running; an empty list skips every fail2ban link.
    type: list
    elements: str
    default: [sshd]
  log_minutes:
    description: The newest sshd line in the jail's log must be at most this many minutes old.
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

import re

from ansible.errors import AnsibleFilterError

PROTECTED = "protected"
PF_ANCHOR = "pfguard"
PF_BLOCKLIST = "pfguard_blocklist"
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


def _mapping(facts, key):
    value = facts.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AnsibleFilterError("protection_verdict: %s must be a dictionary, got %r" % (key, value))
    return value


def _positive_int(value, name):
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise AnsibleFilterError("protection_verdict: %s must be a positive integer, got %r" % (name, value))
    return int(text)


def _pf_links(pf):
    if not pf.get("enabled"):
        yield "PF is disabled"
    if PF_ANCHOR not in pf.get("reachable_anchors", []):
        yield "anchor %s is not referenced from the main ruleset" % PF_ANCHOR
    if "%s:%s" % (PF_ANCHOR, PF_BLOCKLIST) not in pf.get("blocking_tables", []):
        yield "table %s is not referenced by any block rule" % PF_BLOCKLIST


def _fail2ban_links(pf, fail2ban, sshd_log, jails, log_minutes):
    main_rules = pf.get("rulesets", {}).get("", [])
    if not any(F2B_ANCHOR_CALL.match(rule) for rule in main_rules):
        yield "anchor f2b/* is not referenced from the main ruleset"
    if not fail2ban.get("installed"):
        yield "fail2ban is not installed"
    if not fail2ban.get("running"):
        yield "fail2ban is not running"
    running_jails = fail2ban.get("jails") or {}
    for jail in jails:
        if jail not in running_jails:
            yield "jail %s is not running in fail2ban" % jail
    blocking = pf.get("blocking_tables", [])
    for jail in jails:
        if "f2b/%s:f2b-%s" % (jail, jail) not in blocking:
            yield "table f2b-%s is not referenced by any block rule" % jail
    if "sshd" in jails:
        yield from _log_links(sshd_log, log_minutes)


def _log_links(sshd_log, log_minutes):
    newest = sshd_log.get("newest") or {}
    age = newest.get("age")
    if age is None or age > log_minutes * 60:
        yield "no sshd line reached the jail's log in the last %d minutes" % log_minutes
    probe = sshd_log.get("probe") or {}
    if probe.get("sent") and not probe.get("seen"):
        yield "sshd's line for the doctor's test connection did not reach the jail's log within %s s" % probe.get(
            "wait"
        )


def _launchd_links(launchd, labels):
    for label in labels:
        if label not in launchd.get("loaded", []):
            yield "launchd job %s is not loaded: %s" % (label, LAUNCHD_DUTIES[label])
        if label in launchd.get("disabled", []):
            yield "launchd job %s is disabled: it will not start after a reboot" % label
        if label not in launchd.get("installed", []):
            yield "launchd job %s has no plist in /Library/LaunchDaemons: it will not start after a reboot" % label


def broken_links(facts, jails=("sshd",), log_minutes=10):
    """Every broken link of the chain, in chain order (empty when protected)."""
    if not isinstance(facts, dict):
        raise AnsibleFilterError("protection_verdict: expected a dictionary of facts, got %r" % (facts,))
    log_minutes = _positive_int(log_minutes, "log_minutes")
    jails = list(jails or [])
    pf = _mapping(facts, "pf")
    links = list(_pf_links(pf))
    labels = [PF_LABEL]
    if jails:
        fail2ban = _mapping(facts, "fail2ban")
        links.extend(_fail2ban_links(pf, fail2ban, _mapping(facts, "sshd_log"), jails, log_minutes))
        labels += [FAIL2BAN_LABEL, LOGSTREAM_LABEL]
    links.extend(_launchd_links(_mapping(facts, "launchd"), labels))
    return links


def protection_verdict(facts, jails=("sshd",), log_minutes=10):
    """`protected`, or the first broken link of the chain."""
    links = broken_links(facts, jails, log_minutes)
    return links[0] if links else PROTECTED


class FilterModule(object):
    def filters(self):
        return {"protection_verdict": protection_verdict}
