# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: ban_report
short_description: Aggregate the fleet's fail2ban facts into a ban report
version_added: 0.1.0
author:
  - pfguard developers (@pfguard)
description:
  - Turns each host's P(pfguard.macos.fail2ban_facts#module) facts, gathered with
    O(pfguard.macos.fail2ban_facts#module:history=true), and the size of its C(pfguard_blocklist) table
    into one report for the fleet.
  - Per host and jail, the addresses banned now, the number of ban records in fail2ban's database and
    fail2ban's own C(total_banned) counter (which restarts at zero with fail2ban).
  - The addresses banned most often across the fleet, and the networks they belong to (IPv4 C(/24), IPv6 C(/64)).
  - An address banned now on a host and jail that has no ban record for it (no database, or history not
    read) counts as one ban with an unknown time.
  - The result depends only on its input, so a report written from it is the same for the same bans.
    Ties are broken by the number of hosts, the newest ban, then the address in numeric order.
  - Fails, naming the filter, the host and field and the offending value (at most 80 characters of it, with
    control characters escaped), when anything it reads has another type or shape than described under
    O(_input) - for example a string or a number where a list or dictionary is expected (a string is never
    taken apart into characters), V(true) or V(false) where a number is expected, a negative, fractional,
    NaN or infinite count, or a ban time outside 1970-01-01 to 9999-12-31 23:59:59 UTC - and when O(top) is
    invalid.
options:
  _input:
    description:
      - A dictionary keyed by host name. Each value is a dictionary with V(fail2ban), the host's
        C(ansible_facts.fail2ban) (or V(null) when it is unknown), and V(blocklist), the number of entries in the
        host's C(pfguard_blocklist) table (or V(null) when it is unknown).
      - Read from the C(fail2ban) facts are C(installed) and C(running) (V(true) or V(false); a missing
        C(installed) means installed, a missing C(running) not running), C(jails) (a dictionary keyed by jail
        name, each with C(banned), a list of addresses, and the counts C(currently_banned) and
        C(total_banned)) and C(history) (a list of ban records, each with C(jail), C(ip) and C(timeofban)).
        C(jails), C(history), C(banned), the counts and C(timeofban) may be missing or V(null) - no jails, no
        records, no addresses, an unknown count or an unknown time.
      - Host names, jail names and addresses are printable strings of 1 to 255 characters, not blank; they are
        not checked to be addresses, since the report lists whatever fail2ban banned.
      - A count is a whole number from 0 to 9223372036854775807 (an integer, an integral float or a string of
        ASCII digits). C(timeofban) is a Unix time from 0 (1970-01-01) to 253402300799 (9999-12-31 23:59:59
        UTC), an integer, float (its fraction is dropped) or string of ASCII digits.
    type: dict
    required: true
  top:
    description:
      - How many addresses and networks to list, a whole number from 1 to 9223372036854775807.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Report on the hosts of the play, from facts each host set as report_entry
  ansible.builtin.debug:
    msg: "{{ report.table }}"
  vars:
    entries: "{{ ansible_play_hosts_all | map('extract', hostvars) | map(attribute='report_entry', default={}) }}"
    report: "{{ dict(ansible_play_hosts_all | zip(entries)) | pfguard.macos.ban_report }}"

- name: The five most banned addresses of an explicit fleet
  ansible.builtin.debug:
    msg: "{{ (fleet | pfguard.macos.ban_report(top=5)).addresses }}"
  vars:
    fleet:
      mac1:
        blocklist: 0
        fail2ban:
          installed: true
          running: true
          jails:
            sshd: {currently_banned: 1, total_banned: 1, banned: ["198.51.100.200"]}
          history:
            - {jail: sshd, ip: 198.51.100.200, timeofban: 1763800000, bantime: 600, bancount: 1}
"""

RETURN = r"""
_value:
  description: The report.
  type: dict
  contains:
    hosts:
      description: One entry per host, sorted by name.
      type: list
      elements: dict
      contains:
        host:
          description: The host's name.
          type: str
        fail2ban:
          description: V(running), V(not running), V(not installed) or V(unknown) (no facts).
          type: str
        jails:
          description:
            - One entry per jail known from the jail list or from the ban records, sorted by name, with V(jail),
              V(currently_banned), V(banned) (the addresses), V(ban_records) and V(total_banned).
            - V(currently_banned) and V(total_banned) are V(null) for a jail that only appears in the ban records.
          type: list
          elements: dict
        currently_banned:
          description: Addresses banned now, summed over the host's jails.
          type: int
        ban_records:
          description: Ban records in fail2ban's database, summed over the host's jails.
          type: int
        total_banned:
          description: fail2ban's C(total_banned) counters, summed over the host's jails.
          type: int
        blocklist:
          description: Entries in the host's C(pfguard_blocklist) table, V(null) when unknown.
          type: int
    totals:
      description:
        - The fleet's totals, V(hosts), V(jails), V(currently_banned), V(ban_records), V(total_banned),
          V(blocklist) (summed over the hosts where it is known) and V(addresses) (distinct banned addresses).
      type: dict
    addresses:
      description:
        - The most banned addresses, at most O(top), with V(address), V(bans), V(hosts) (the hosts that banned it),
          V(last_ban) (epoch seconds or V(null)) and V(last_ban_utc).
      type: list
      elements: dict
    networks:
      description:
        - The networks with the most bans, at most O(top), with V(network), V(bans), V(addresses) (distinct
          addresses banned in it), V(hosts), V(last_ban) and V(last_ban_utc).
      type: list
      elements: dict
    newest_ban:
      description: Time of the newest ban record (epoch seconds), V(null) when there is none.
      type: int
    newest_ban_utc:
      description: The same as C(YYYY-MM-DD HH:MM:SS UTC), or an empty string.
      type: str
    table:
      description: The report as aligned plain-text tables, for a terminal.
      type: str
"""

import datetime
import ipaddress
from collections.abc import Mapping

from ansible_collections.pfguard.macos.plugins.plugin_utils.filter_checks import (
    check_bool,
    check_count,
    check_epoch,
    check_list,
    check_mapping,
    check_text,
    checked_arguments,
    printable,
    refuse,
)

NAME = "ban_report"
NETWORK_PREFIX = {4: 24, 6: 64}
# Host and jail names and addresses are at most this long; a longer one is no name or address.
TEXT_MAX = 255
# Names in the path of a refused field are cut to this many characters.
LABEL_MAX = 40


def _label(text):
    return printable(text, LABEL_MAX)


def _count(value, what):
    """A non-negative count from a fact, or None when the fact is missing or null."""
    if value is None:
        return None
    return check_count(value, "%s: %s" % (NAME, what))


def _address_key(text):
    """Numeric order, IPv4 before IPv6, anything unparsable last (by text)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (7, 0, text)
    return (address.version, int(address), text)


def _network(text):
    try:
        address = ipaddress.ip_address(text)
        return ipaddress.ip_network("%s/%d" % (address, NETWORK_PREFIX[address.version]), strict=False)
    except ValueError:
        return None


def utc(epoch):
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fail2ban_state(host, facts):
    if facts is None:
        return "unknown"
    if not check_bool(facts.get("installed", True), "%s: %s: fail2ban.installed" % (NAME, host)):
        return "not installed"
    running = check_bool(facts.get("running", False), "%s: %s: fail2ban.running" % (NAME, host))
    return "running" if running else "not running"


def _banned(host, jail, stats):
    what = "%s: %s: jail %s banned" % (NAME, host, jail)
    banned = check_list(stats.get("banned"), what, "a list of addresses", optional=True)
    return sorted({check_text(ip, "%s[%d]" % (what, index), TEXT_MAX) for index, ip in enumerate(banned)},
                  key=_address_key)  # fmt: skip


def _host_jails(host, facts):
    """{jail: row} from the jail list and the ban records, and the host's records as (jail, ip, time)."""
    jails = {}
    stats_by_jail = {
        check_text(name, "%s: %s: a jail name in fail2ban.jails" % (NAME, host), TEXT_MAX): stats
        for name, stats in check_mapping(facts.get("jails"), "%s: %s: fail2ban.jails" % (NAME, host),
                                         optional=True).items()
    }  # fmt: skip
    for name, stats in sorted(stats_by_jail.items()):
        if not isinstance(stats, Mapping):
            refuse("%s: %s: jail %s" % (NAME, host, _label(name)), "must be a dictionary", stats)
        label = _label(name)
        banned = _banned(host, label, stats)
        currently = _count(stats.get("currently_banned"), "%s: jail %s currently_banned" % (host, label))
        jails[name] = {
            "jail": name,
            "currently_banned": len(banned) if currently is None else currently,
            "banned": banned,
            "ban_records": 0,
            "total_banned": _count(stats.get("total_banned"), "%s: jail %s total_banned" % (host, label)),
        }
    records = []
    history = check_list(facts.get("history"), "%s: %s: fail2ban.history" % (NAME, host), "a list of ban records",
                         optional=True)  # fmt: skip
    for index, record in enumerate(history):
        what = "%s: %s: fail2ban.history[%d]" % (NAME, host, index)
        if not isinstance(record, Mapping) or not record.get("jail") or not record.get("ip"):
            refuse("%s: %s: a history record" % (NAME, host), "needs jail and ip", record)
        jail = check_text(record["jail"], what + ".jail", TEXT_MAX)
        ip = check_text(record["ip"], what + ".ip", TEXT_MAX)
        when = record.get("timeofban")
        if when is not None:
            when = check_epoch(when, "%s: %s: timeofban of %s in jail %s" % (NAME, host, _label(ip), _label(jail)))
        row = jails.setdefault(
            jail,
            {"jail": jail, "currently_banned": None, "banned": [], "ban_records": 0, "total_banned": None},
        )
        row["ban_records"] += 1
        records.append((jail, ip, when))
    # A current ban the database does not know about still is a ban (time unknown).
    recorded = {(jail, ip) for jail, ip, _when in records}
    for row in jails.values():
        records.extend((row["jail"], ip, None) for ip in row["banned"] if (row["jail"], ip) not in recorded)
    return [jails[name] for name in sorted(jails)], records


def _rank(rows, key_name, sort_key, top):
    def order(row):
        newest = row["last_ban"] if row.get("last_ban") is not None else -1
        return (-row["bans"], -len(row["hosts"]), -newest, sort_key(row[key_name]))

    return sorted(rows, key=order)[:top]


def _table(columns, rows):
    """Aligned text: numbers right-aligned, text left-aligned, two spaces between columns."""
    cells = [[("-" if value is None else str(value)) for value in row] for row in rows]
    widths = [max([len(title)] + [len(row[i]) for row in cells]) for i, (title, _right) in enumerate(columns)]
    lines = []
    for row in [[title for title, _right in columns]] + cells:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, (_title, right) in zip(row, widths, columns)
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def _render_text(report):
    totals = report["totals"]
    title = "pfguard ban report: %d hosts, %d addresses banned now, %d ban records" % (
        totals["hosts"], totals["currently_banned"], totals["ban_records"],
    )
    if report["newest_ban_utc"]:
        title += ", newest ban %s" % report["newest_ban_utc"]
    rows = []
    for host in report["hosts"]:
        jails = host["jails"] or [{"jail": None, "currently_banned": None, "ban_records": None, "total_banned": None}]
        for index, jail in enumerate(jails):
            first = index == 0
            rows.append([
                host["host"] if first else "", jail["jail"], host["fail2ban"] if first else "",
                jail["currently_banned"], jail["ban_records"], jail["total_banned"],
                host["blocklist"] if first else "",
            ])
    rows.append(["fleet", "", "", totals["currently_banned"], totals["ban_records"], totals["total_banned"],
                 totals["blocklist"]])
    lines = [title, ""]
    lines += _table(
        [("host", False), ("jail", False), ("fail2ban", False), ("banned now", True), ("bans", True),
         ("total banned", True), ("pfguard_blocklist", True)],
        rows,
    )
    lines += ["", "top offending addresses"]
    if report["addresses"]:
        lines += _table(
            [("address", False), ("bans", True), ("hosts", True), ("last ban", False), ("banned on", False)],
            [[a["address"], a["bans"], len(a["hosts"]), a["last_ban_utc"] or None, ", ".join(a["hosts"])]
             for a in report["addresses"]],
        )
        lines += ["", "top networks"]
        lines += _table(
            [("network", False), ("bans", True), ("addresses", True), ("hosts", True)],
            [[n["network"], n["bans"], n["addresses"], len(n["hosts"])] for n in report["networks"]],
        )
    else:
        lines.append("(no bans)")
    return "\n".join(lines)


@checked_arguments(NAME)
def ban_report(fleet, top=10):
    """The fleet's ban report (see DOCUMENTATION)."""
    if not isinstance(fleet, Mapping):
        refuse(NAME + ": the input", "must be a dictionary of hosts", fleet)
    top = check_count(top, NAME + ": top", minimum=1, expected="must be a positive number")
    fleet = {check_text(name, NAME + ": a host name", TEXT_MAX): entry for name, entry in fleet.items()}

    hosts, addresses, networks = [], {}, {}
    for host in sorted(fleet):
        entry, label = fleet[host], _label(host)
        if not isinstance(entry, Mapping):
            refuse("%s: host %s" % (NAME, label), "must map to a dictionary", entry)
        facts = entry.get("fail2ban")
        if facts is not None and not isinstance(facts, Mapping):
            refuse("%s: %s: fail2ban facts" % (NAME, label), "must be a dictionary", facts)
        state = _fail2ban_state(label, facts)
        jails, records = _host_jails(label, facts) if facts else ([], [])
        hosts.append({
            "host": host,
            "fail2ban": state,
            "jails": jails,
            "currently_banned": sum(j["currently_banned"] or 0 for j in jails),
            "ban_records": sum(j["ban_records"] for j in jails),
            "total_banned": sum(j["total_banned"] or 0 for j in jails),
            "blocklist": _count(entry.get("blocklist"), "%s: blocklist" % label),
        })
        for _jail, ip, when in records:
            row = addresses.setdefault(ip, {"address": ip, "bans": 0, "hosts": set(), "last_ban": None})
            row["bans"] += 1
            row["hosts"].add(host)
            if when is not None and (row["last_ban"] is None or when > row["last_ban"]):
                row["last_ban"] = when

    for row in addresses.values():
        network = _network(row["address"])
        if network is None:
            continue
        net = networks.setdefault(network, {"network": str(network), "bans": 0, "addresses": 0, "hosts": set(),
                                            "last_ban": None})  # fmt: skip
        net["bans"] += row["bans"]
        net["addresses"] += 1
        net["hosts"] |= row["hosts"]
        if row["last_ban"] is not None and (net["last_ban"] is None or row["last_ban"] > net["last_ban"]):
            net["last_ban"] = row["last_ban"]
    for row in list(addresses.values()) + list(networks.values()):
        row["hosts"] = sorted(row["hosts"])
        row["last_ban_utc"] = utc(row["last_ban"])

    times = [row["last_ban"] for row in addresses.values() if row["last_ban"] is not None]
    newest = max(times) if times else None
    known_blocklists = [h["blocklist"] for h in hosts if h["blocklist"] is not None]
    report = {
        "hosts": hosts,
        "totals": {
            "hosts": len(hosts),
            "jails": sum(len(h["jails"]) for h in hosts),
            "currently_banned": sum(h["currently_banned"] for h in hosts),
            "ban_records": sum(h["ban_records"] for h in hosts),
            "total_banned": sum(h["total_banned"] for h in hosts),
            "blocklist": sum(known_blocklists) if known_blocklists else None,
            "addresses": len(addresses),
        },
        "addresses": _rank(addresses.values(), "address", _address_key, top),
        "networks": _rank(networks.values(), "network", lambda text: _address_key(text.split("/")[0]), top),
        "newest_ban": newest,
        "newest_ban_utc": utc(newest),
    }
    report["table"] = _render_text(report)
    return report


class FilterModule(object):
    """pfguard's report filters."""

    def filters(self):
        return {"ban_report": ban_report}
