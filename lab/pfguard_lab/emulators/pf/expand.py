# SPDX-License-Identifier: GPL-3.0-or-later
"""parse.y's expand_rule(): one kernel rule per combination of interface, protocol, source host and
port, destination host and port; combinations of different address families are dropped, the rest
are checked like filter_consistent() / rdr_consistent() and given their pfctl -sr text.
"""

from __future__ import annotations

import itertools

from . import addr
from .clauses import ANY, Host
from .printer import flags_text, rule_text


def expand_rule(rule: dict, interfaces, protos, src, dst, error, write) -> list[dict]:
    """The kernel rules `rule` stands for. `error(message)` reports at the rule's line (yyerror),
    `write(text)` prints to stderr without a location."""
    flagbits = rule.pop("_flagbits", None)
    rule.pop("_flags", None)
    src_hosts, src_ports = src
    dst_hosts, dst_ports = dst
    af = rule["af"] or _decide_af(src_hosts) or _decide_af(dst_hosts)
    rules = []
    combinations = itertools.product(interfaces or [(False, None)], protos or [None], src_hosts or [ANY],
                                     src_ports or [None], dst_hosts or [ANY], dst_ports or [None])
    for (neg_if, ifname), proto, shost, sport, dhost, dport in combinations:
        if _af_mismatch(af, shost, dhost):
            continue
        bad = [h for h in (shost, dhost) if h.bad_mask]
        if bad:
            # check_netmask() prints this without file:line (parse.y)
            write(f"netmask {bad[0].plen} invalid for IPv4 address\n")
            error("skipping rule due to errors")
            continue
        new = dict(rule)
        new["af"] = af or _host_af(shost) or _host_af(dhost)
        new["on"], new["ifnot"] = ifname, neg_if and ifname is not None
        new["proto"] = [proto] if proto else None
        new["from"] = {**shost.as_dict(), "port": [sport.as_list()] if sport else None}
        new["to"] = {**dhost.as_dict(), "port": [dport.as_list()] if dport else None}
        if rule["ruleset"] == "filter" and rule.get("anchor") is None:
            _filter_state(new, proto, flagbits)
        if consistent(new, error):
            new["text"] = rule_text(new)
            rules.append(new)
        else:
            error("skipping rule due to errors")
    if not rules:
        error("rule expands to no valid combination")
    return rules


def _filter_state(rule: dict, proto: str | None, flagbits) -> None:
    """TCP flags apply to tcp only; modulate/synproxy state falls back to keep state for other protocols."""
    bits = None if proto and proto != "tcp" else flagbits
    if bits is not None:
        rule["flags"] = "any" if bits == (0, 0) else f"{flags_text(bits[0])}/{flags_text(bits[1])}"
    if rule["state"] in ("modulate", "synproxy") and proto and proto != "tcp":
        rule["state"] = "keep"


def consistent(rule: dict, error) -> bool:
    """filter_consistent / rdr_consistent: reports every problem, True when there was none."""
    problems = []
    proto = rule["proto"][0] if rule["proto"] else None
    has_ports = bool(rule["from"].get("port") or rule["to"].get("port"))
    if rule["ruleset"] in ("filter", "scrub") and proto not in ("tcp", "udp") and has_ports:
        problems.append("port only applies to tcp/udp")
    if rule["ruleset"] == "rdr" and proto not in ("tcp", "udp"):
        if rule["from"].get("port"):
            problems.append("src port only applies to tcp/udp")
        if rule["to"].get("port"):
            problems.append("dst port only applies to tcp/udp")
    if (proto == "icmp" and rule["af"] == "inet6") or (proto == "ipv6-icmp" and rule["af"] == "inet"):
        problems.append(f"proto {'icmp' if proto == 'icmp' else 'icmp6'} doesn't match address family {rule['af']}")
    if rule.get("action") == "block" and rule.get("state"):
        problems.append("keep state on block rules doesn't make sense")
    for message in problems:
        error(message)
    return not problems


def _host_af(host: Host) -> str | None:
    if host.family is None:
        return None
    return "inet" if host.family == addr.INET else "inet6"


def _decide_af(hosts: list[Host] | None) -> str | None:
    if not hosts:
        return None
    first = _host_af(hosts[0])
    return first if all(_host_af(h) == first for h in hosts) else None


def _af_mismatch(af: str | None, src: Host, dst: Host) -> bool:
    a, b = _host_af(src), _host_af(dst)
    return bool((af and a and af != a) or (af and b and af != b) or (a and b and a != b))
