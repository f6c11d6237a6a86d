# -*- coding: utf-8 -*-
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
options:
  _input:
    description:
      - A dictionary keyed by host name. Each value is a dictionary with V(fail2ban), the host's
        C(ansible_facts.fail2ban) (or V(null) when it is unknown), and V(blocklist), the number of entries in the
        host's C(pfguard_blocklist) table (or V(null) when it is unknown).
    type: dict
    required: true
  top:
    description:
      - How many addresses and networks to list.
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

from ansible.errors import AnsibleFilterError

NETWORK_PREFIX = {4: 24, 6: 64}


def _count(value, what):
    """A non-negative int from a fact, or None when the fact is missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise AnsibleFilterError("ban_report: %s must be a number, got %r" % (what, value))
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("ban_report: %s must be a number, got %r" % (what, value)) from exc
    if number < 0:
        raise AnsibleFilterError("ban_report: %s must not be negative, got %r" % (what, value))
    return number


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
    except ValueError:
        return None
    return ipaddress.ip_network("%s/%d" % (address, NETWORK_PREFIX[address.version]), strict=False)


def utc(epoch):
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fail2ban_state(facts):
    if facts is None:
        return "unknown"
    if not facts.get("installed", True):
        return "not installed"
    return "running" if facts.get("running") else "not running"


def _host_jails(host, facts):
    """{jail: row} from the jail list and the ban records, and the host's records as (jail, ip, time)."""
    jails = {}
    for name, stats in sorted((facts.get("jails") or {}).items()):
        if not isinstance(stats, Mapping):
            raise AnsibleFilterError("ban_report: %s: jail %r must be a dictionary, got %r" % (host, name, stats))
        banned = sorted({str(ip) for ip in stats.get("banned") or []}, key=_address_key)
        currently = _count(stats.get("currently_banned"), "%s: jail %s currently_banned" % (host, name))
        jails[str(name)] = {
            "jail": str(name),
            "currently_banned": len(banned) if currently is None else currently,
            "banned": banned,
            "ban_records": 0,
            "total_banned": _count(stats.get("total_banned"), "%s: jail %s total_banned" % (host, name)),
        }
    records = []
    for record in facts.get("history") or []:
        if not isinstance(record, Mapping) or not record.get("jail") or not record.get("ip"):
            raise AnsibleFilterError("ban_report: %s: a history record needs jail and ip, got %r" % (host, record))
        jail, ip = str(record["jail"]), str(record["ip"])
        when = _count(record.get("timeofban"), "%s: timeofban of %s in jail %s" % (host, ip, jail))
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


def ban_report(fleet, top=10):
    """The fleet's ban report (see DOCUMENTATION)."""
    if not isinstance(fleet, Mapping):
        raise AnsibleFilterError("ban_report: the input must be a dictionary of hosts, got %r" % (fleet,))
    top = _count(top, "top")
    if not top:
        raise AnsibleFilterError("ban_report: top must be a positive number, got %r" % (top,))

    hosts, addresses, networks = [], {}, {}
    for name in sorted(fleet, key=str):
        entry = fleet[name]
        if not isinstance(entry, Mapping):
            raise AnsibleFilterError("ban_report: host %s must map to a dictionary, got %r" % (name, entry))
        facts = entry.get("fail2ban")
        if facts is not None and not isinstance(facts, Mapping):
            raise AnsibleFilterError("ban_report: %s: fail2ban facts must be a dictionary, got %r" % (name, facts))
        jails, records = _host_jails(name, facts) if facts else ([], [])
        host = str(name)
        hosts.append({
            "host": host,
            "fail2ban": _fail2ban_state(facts),
            "jails": jails,
            "currently_banned": sum(j["currently_banned"] or 0 for j in jails),
            "ban_records": sum(j["ban_records"] for j in jails),
            "total_banned": sum(j["total_banned"] or 0 for j in jails),
            "blocklist": _count(entry.get("blocklist"), "%s: blocklist" % name),
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
