# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet plays' result: fleet_result builds one document from every host's result (the data that
set_stats publishes and the plays write as JSON), fleet_summary turns it into the text the plays print,
in normal and in check mode. Both are documented in their sidecar files (fleet_result.yml, ...)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pfguard.macos.plugins.plugin_utils.filter_checks import (
    check_bool,
    check_count,
    check_list,
    check_mapping,
    check_text,
    checked_arguments,
    refuse,
)

PLAYS = ("ban", "unban", "sync", "doctor", "report", "feeds")
# feeds: how many of the dropped entries the summary names
FEEDS_DROPPED_SHOWN = 10
NOT_A_MAC = "not a Mac (skipped)"
NOT_CHECKED = "not checked: a task failed on it (see above)"


def _hosts(value, what):
    hosts = check_mapping(value, what)
    for host, result in hosts.items():
        check_text(host, "%s: a host name" % what)
        check_mapping(result, "%s[%s]" % (what, host))
    return hosts


def _addresses(result, key, what):
    return [check_text(item, what) for item in check_list(result.get(key, []), what, optional=True)]


def _count(result, key, what):
    return check_count(result.get(key, 0), what)


def _totals(play, hosts, skipped):
    if play == "ban":
        return {
            "hosts": len(hosts),
            "hosts_changed": sum(1 for result in hosts.values() if result["added"]),
            "added": sum(len(result["added"]) for result in hosts.values()),
            "states_killed": sum(result["states_killed"] for result in hosts.values()),
            "skipped": len(skipped),
        }
    if play == "unban":
        return {
            "hosts": len(hosts),
            "removed": sum(len(result["removed"]) for result in hosts.values()),
            "fail2ban_lifted": sum(len(v) for result in hosts.values() for v in result["fail2ban_lifted"].values()),
            "skipped": len(skipped),
        }
    if play == "sync":
        return {
            "hosts": len(hosts),
            "added": sum(len(result["added"]) for result in hosts.values()),
            "removed": sum(len(result["removed"]) for result in hosts.values()),
            "states_killed": sum(result["states_killed"] for result in hosts.values()),
            "skipped": len(skipped),
        }
    if play == "feeds":
        return {
            "hosts": len(hosts),
            "hosts_changed": sum(1 for result in hosts.values() if result["added"] or result["removed"]),
            "added": sum(result["added"] for result in hosts.values()),
            "removed": sum(result["removed"] for result in hosts.values()),
            "states_killed": sum(result["states_killed"] for result in hosts.values()),
            "skipped": len(skipped),
        }
    if play == "doctor":
        return {
            "hosts": len(hosts),
            "protected": sum(1 for result in hosts.values() if result["protected"]),
            "unprotected": sum(1 for result in hosts.values() if not result["protected"]),
            "skipped": len(skipped),
        }
    return {
        "hosts": len(hosts),
        "blocklist": sum(result["blocklist"] or 0 for result in hosts.values()),
        "banned": sum(result["banned"] for result in hosts.values()),
        "skipped": len(skipped),
    }


def _host_result(play, host, result):
    """The host's result with every field the play reports, checked and in a fixed shape."""
    what = "fleet_result: hosts[%s]" % host
    if play == "ban":
        return {
            "added": _addresses(result, "added", what + ".added"),
            "states_killed": _count(result, "states_killed", what + ".states_killed"),
            "entries": _count(result, "entries", what + ".entries"),
        }
    if play == "unban":
        lifted = check_mapping(result.get("fail2ban_lifted", {}), what + ".fail2ban_lifted", optional=True)
        return {
            "removed": _addresses(result, "removed", what + ".removed"),
            "fail2ban_lifted": {
                check_text(jail, what + ".fail2ban_lifted"): _addresses(lifted, jail, what + ".fail2ban_lifted")
                for jail in lifted
            },
            "fail2ban_running": check_bool(result.get("fail2ban_running", False), what + ".fail2ban_running"),
        }
    if play == "sync":
        return {
            "added": _addresses(result, "added", what + ".added"),
            "removed": _addresses(result, "removed", what + ".removed"),
            "states_killed": _count(result, "states_killed", what + ".states_killed"),
            "not_synced": _addresses(result, "not_synced", what + ".not_synced"),
        }
    if play == "feeds":
        limit = result.get("limit")
        return {
            "added": _count(result, "added", what + ".added"),
            "removed": _count(result, "removed", what + ".removed"),
            "states_killed": _count(result, "states_killed", what + ".states_killed"),
            "entries": _count(result, "entries", what + ".entries"),
            "table_entries": _count(result, "table_entries", what + ".table_entries"),
            "limit": None if limit is None else check_count(limit, what + ".limit"),
        }
    if play == "doctor":
        return {
            "protected": check_bool(result.get("protected", False), what + ".protected"),
            "link": check_text(result.get("link"), what + ".link"),
            "verdict": check_text(result.get("verdict"), what + ".verdict", max_length=1000),
            "broken": check_list(result.get("broken", []), what + ".broken", optional=True),
        }
    blocklist = result.get("blocklist")
    return {
        "blocklist": None if blocklist is None else check_count(blocklist, what + ".blocklist"),
        "banned": _count(result, "banned", what + ".banned"),
    }


@checked_arguments("fleet_result")
def fleet_result(hosts, play, check_mode=False, hosts_all=None, skipped=None, details=None):
    """{play, check_mode, hosts, totals, skipped, failed, details}: `hosts` holds each host's result
    (hosts that failed or were unreachable have none and are listed in `failed`)."""
    if play not in PLAYS:
        refuse("fleet_result: play", "must be one of %s" % ", ".join(PLAYS), play)
    hosts = _hosts(hosts, "fleet_result: hosts")
    skipped = check_list(skipped, "fleet_result: skipped", optional=True)
    skipped = [check_text(host, "fleet_result: skipped") for host in skipped]
    hosts_all = [check_text(host, "fleet_result: hosts_all")
                 for host in check_list(hosts_all, "fleet_result: hosts_all", optional=True)]
    results = {host: _host_result(play, host, hosts[host]) for host in sorted(hosts)}
    return {
        "play": play,
        "check_mode": check_bool(check_mode, "fleet_result: check_mode"),
        "hosts": results,
        "totals": _totals(play, results, skipped),
        "skipped": sorted(skipped),
        "failed": [host for host in hosts_all if host not in results and host not in skipped],
        "details": check_mapping(details, "fleet_result: details", optional=True),
    }


def _lines_ban(result, would):
    details, totals = result["details"], result["totals"]
    yield "ban%s: %s" % (_checked(result), ", ".join(details.get("addresses", [])))
    for host, item in result["hosts"].items():
        done = (would + "added " + ", ".join(item["added"])) if item["added"] else "already banned"
        yield "%s: %s; %d state(s) %skilled; %d entries in pfguard_blocklist" % (
            host, done, item["states_killed"], would, item["entries"])
    yield "total: %d entries %sadded on %d of %d hosts, %d state(s) %skilled" % (
        totals["added"], would, totals["hosts_changed"], totals["hosts"], totals["states_killed"], would)


def _lines_unban(result, would):
    details, totals = result["details"], result["totals"]
    yield "unban%s: %s" % (_checked(result), ", ".join(details.get("addresses", [])))
    for host, item in result["hosts"].items():
        if item["fail2ban_lifted"]:
            fail2ban = would + "unbanned in fail2ban " + "".join(
                "%s %s; " % (jail, ", ".join(addresses)) for jail, addresses in item["fail2ban_lifted"].items())
        elif item["fail2ban_running"]:
            fail2ban = "no fail2ban ban; "
        else:
            fail2ban = "fail2ban is not running; "
        removed = (would + "removed from pfguard_blocklist " + ", ".join(item["removed"])) if item["removed"] \
            else "nothing in pfguard_blocklist"
        yield "%s: %s%s" % (host, fail2ban, removed)
    yield "total: %d blocklist entries %sremoved, %d fail2ban bans %slifted" % (
        totals["removed"], would, totals["fail2ban_lifted"], would)


def _lines_sync(result, would):
    details, totals = result["details"], result["totals"]
    selected = check_mapping(details.get("selected", {}), "fleet_summary: details.selected", optional=True)
    yield "sync%s: %d address(es) banned by fail2ban on at least %s of %d Macs" % (
        _checked(result), len(selected), details.get("min_hosts", 1), totals["hosts"])
    for address, count in selected.items():
        yield "  %s: banned on %s Mac(s)" % (address, count)
    silent = details.get("silent_hosts") or []
    if silent:
        yield "not taking anything out: fail2ban did not answer on %s" % ", ".join(silent)
    for host, item in result["hosts"].items():
        added = (would + "added " + ", ".join(item["added"]) + " (%d states killed)" % item["states_killed"]) \
            if item["added"] else "nothing to add"
        removed = (would + "taken out " + ", ".join(item["removed"]) + " (no longer banned by fail2ban)") \
            if item["removed"] else "nothing to take out"
        protected = ("; not synced, trusted or the controller: " + ", ".join(item["not_synced"])) \
            if item["not_synced"] else ""
        yield "%s: %s; %s%s" % (host, added, removed, protected)
    yield "total: %d entries %sadded, %d %staken out, %d states %skilled" % (
        totals["added"], would, totals["removed"], would, totals["states_killed"], would)


def _lines_feeds(result, would):
    details, totals = result["details"], result["totals"]
    feeds = check_list(details.get("feeds", []), "fleet_summary: details.feeds", optional=True)
    yield "feeds%s: %d entries merged from %d feed(s)" % (_checked(result), check_count(
        details.get("count", 0), "fleet_summary: details.count"), len(feeds))
    for index, feed in enumerate(feeds):
        feed = check_mapping(feed, "fleet_summary: details.feeds[%d]" % index)
        line = "  %s: %s, %s entries" % (feed.get("name"), feed.get("status"), feed.get("entries"))
        if feed.get("status") == "failed":
            line += " (%s; %s)" % (feed.get("error"), "kept the last good list from %s" % feed["last_good"]
                                   if feed.get("last_good") else "no earlier list: it adds nothing")
        yield line
    dropped = check_list(details.get("dropped", []), "fleet_summary: details.dropped", optional=True)
    dropped_count = check_count(details.get("dropped_count", len(dropped)), "fleet_summary: details.dropped_count")
    if dropped_count:
        yield "  dropped %d entr%s (never loaded):" % (dropped_count, "y" if dropped_count == 1 else "ies")
        for item in dropped[:FEEDS_DROPPED_SHOWN]:
            item = check_mapping(item, "fleet_summary: details.dropped[]")
            yield "    %s from %s: %s" % (item.get("entry"), ", ".join(item.get("feeds") or []), item.get("reason"))
        if dropped_count > FEEDS_DROPPED_SHOWN:
            yield "    ... and %d more" % (dropped_count - FEEDS_DROPPED_SHOWN)
    for host, item in result["hosts"].items():
        done = ("%sadded %d, removed %d" % (would, item["added"], item["removed"])) \
            if item["added"] or item["removed"] else "unchanged"
        limit = "unlimited" if item["limit"] is None else "%d" % item["limit"]
        yield "%s: %s; %d entries in pfguard_feeds; %d of %s table entries in use" % (
            host, done, item["entries"], item["table_entries"], limit)
    yield "total: %d entries %sadded, %d %sremoved on %d of %d hosts" % (
        totals["added"], would, totals["removed"], would, totals["hosts_changed"], totals["hosts"])


def _lines_doctor(result, _would):
    rows = [(host, item["verdict"]) for host, item in result["hosts"].items()]
    rows += [(host, NOT_A_MAC) for host in result["skipped"]]
    rows += [(host, NOT_CHECKED) for host in result["failed"]]
    order = result["details"].get("hosts_order") or []
    rows.sort(key=lambda row: order.index(row[0]) if row[0] in order else len(order))
    width = max([len("host")] + [len(host) for host, _verdict in rows])
    yield "%s | verdict" % "host".ljust(width)
    for host, verdict in rows:
        yield "%s | %s" % (host.ljust(width), verdict)


def _lines_report(result, _would):
    for host, item in result["hosts"].items():
        yield "%s: %d banned now; pfguard_blocklist %s" % (
            host, item["banned"], "unknown" if item["blocklist"] is None else "%d entries" % item["blocklist"])


def _checked(result):
    return " (check mode, nothing changed)" if result["check_mode"] else ""


LINES = {
    "ban": _lines_ban,
    "unban": _lines_unban,
    "sync": _lines_sync,
    "doctor": _lines_doctor,
    "report": _lines_report,
    "feeds": _lines_feeds,
}


@checked_arguments("fleet_summary")
def fleet_summary(result):
    """The text a fleet play prints at its end, from fleet_result's document."""
    result = check_mapping(result, "fleet_summary: the input")
    for key in ("play", "check_mode", "hosts", "totals", "skipped", "failed", "details"):
        if key not in result:
            refuse("fleet_summary:", "expected what fleet_result returns, missing %s in" % key, result)
    if result["play"] not in LINES:
        refuse("fleet_summary: play", "must be one of %s" % ", ".join(PLAYS), result["play"])
    would = "would be " if result["check_mode"] else ""
    lines = list(LINES[result["play"]](result, would))
    if result["play"] != "doctor":
        lines += ["%s: %s" % (host, NOT_A_MAC) for host in result["skipped"]]
    return "\n".join(lines)


class FilterModule(object):
    """The fleet plays' result and summary."""

    def filters(self):
        return {"fleet_result": fleet_result, "fleet_summary": fleet_summary}
