# SPDX-License-Identifier: GPL-3.0-or-later
"""Output formats of pfctl's show functions (pfctl.c, pfctl_parser.c print_status, pfctl_table.c)."""

from __future__ import annotations

import hashlib
import time

from .kernel import RESERVED_ANCHOR, KernelError
from .printer import rule_text

FEEDBACK_CHARS = {" ": " ", "M": "M", "A": "A", "D": "D", "C": "C", "Z": "Z", "X": "X", "N": " ", "Y": "Y"}
TABLE_STATS = ("In/Block:", "In/Pass:", "In/XPass:", "Out/Block:", "Out/Pass:", "Out/XPass:")
ADDR_STATS = ("In/Block:", "In/Pass:", "Out/Block:", "Out/Pass:")
REASONS = ("match", "bad-offset", "fragment", "short", "normalize", "memory", "bad-timestamp", "congestion",
           "ip-option", "proto-cksum", "state-mismatch", "state-insert", "state-limit", "src-limit", "synproxy",
           "dummynet", "invalid-port")
LIMIT_COUNTERS = ("max states per rule", "max-src-states", "max-src-nodes", "max-src-conn", "max-src-conn-rate",
                  "overload table insertion", "overload flush states")


def ctime(epoch: float) -> str:
    """C ctime() without the newline."""
    return time.ctime(epoch)


def counter_line(label: str) -> str:
    return f"\t{label:<12} [ Packets: {0:<18} Bytes: {0:<18} ]\n"


def addrx(fb: str, entry: str) -> str:
    """print_addrx without DNS: feedback char, negation mark, address."""
    if entry.startswith("!"):
        return f"{FEEDBACK_CHARS[fb]} !{entry[1:]}"
    return f"{FEEDBACK_CHARS[fb]}  {entry}"


# ---------------------------------------------------------------------------- -s memory


def memory(limits: dict) -> str:
    """pfctl_show_limits: `%-13s ` and `hard limit %8u` per pool in pf_limits order, `unlimited` for UINT_MAX."""
    lines = []
    for name, value in limits.items():
        lines.append(f"{name:<13} " + ("unlimited" if value == 0xFFFFFFFF else f"hard limit {value:8d}") + "\n")
    return "".join(lines)


# ---------------------------------------------------------------------------- -T show


def table_entries(entries: list[str], tzero: list[int], verbose: bool) -> str:
    if not verbose:
        if not entries:
            return ""
        return "".join(f"  !{e[1:]}\n" if e[0] == "!" else f"   {e}\n" for e in entries)
    out = []
    for entry, cleared in zip(entries, tzero):
        out.append(addrx(" ", entry) + "\n")
        out.append(f"\tCleared:     {ctime(cleared)}\n")
        out.extend(counter_line(label) for label in ADDR_STATS)
    return "".join(out)


# ---------------------------------------------------------------------------- -s Tables


def table_flags(raw: dict) -> str:
    flags = raw["flags"]
    return "".join((
        "c" if "const" in flags else "-",
        "p" if "persist" in flags else "-",
        "a" if raw["active"] else "-",
        "-",  # inactive: only set inside an open transaction, which never outlives a command here
        "r" if raw["refs_rules"] else "-",
        "h" if raw["refs_anchors"] else "-",
    ))


def tables(kernel, anchor: str, verbose: int, debug: bool) -> str:
    out = []
    for name, raw in kernel.get_tables(anchor):
        if not debug and not raw["active"]:
            continue
        if verbose:
            line = f"{table_flags(raw)}\t{name}"
            if anchor:
                line += f"\t{anchor}"
            out.append(line + "\n")
        else:
            out.append(name + "\n")
        if verbose >= 2:
            out.append(f"\tAddresses:   {len(raw['entries'])}\n")
            out.append(f"\tCleared:     {ctime(raw['cleared'])}\n")
            out.append(f"\tReferences:  [ Anchors: {raw['refs_anchors']:<18} Rules: {raw['refs_rules']:<18} ]\n")
            out.append(f"\tEvaluations: [ NoMatch: {0:<18} Match: {0:<18} ]\n")
            out.extend(counter_line(label) for label in TABLE_STATS)
    return "".join(out)


# ---------------------------------------------------------------------------- -s info


def _age(seconds: int) -> tuple[int, int, int, int]:
    sec = seconds % 60
    minutes = seconds // 60
    return minutes // 60 // 24, minutes // 60 % 24, minutes % 60, sec


def info(kernel, state_count: int, verbose: bool, now: int) -> str:
    data = kernel.data
    running = "Enabled" if data["enabled"] else "Disabled"
    since = data.get("since")
    runtime = now - (since or 0)
    if since:
        day, hrs, mins, sec = _age(max(runtime, 0))
        statline = f"Status: {running} for {day} days {hrs:02d}:{mins:02d}:{sec:02d}"
    else:
        statline = f"Status: {running}"
    out = [f"{statline:<44}{'Debug: ' + data.get('debug', 'Urgent'):>15}\n\n"]
    if verbose:
        out.append(f"Hostid:   0x{data.get('hostid', 0):08x}\n")
        out.append(f"Checksum: 0x{checksum(kernel)}\n\n")

    def row(label: str, value: int) -> str:
        rate = f"{value / runtime:14.1f}/s" if runtime > 0 else " " * 14
        return f"  {label:<25} {value:14d} {rate}\n"

    out.append(f"{'State Table':<27} {'Total':>14} {'Rate':>16}\n")
    out.append(f"  {'current entries':<25} {state_count:14d} {'':14}\n")
    out.extend(row(label, 0) for label in ("searches", "inserts", "removals"))
    if verbose:
        out.append("Source Tracking Table\n")
        out.append(f"  {'current entries':<25} {0:14d} {'':14}\n")
        out.extend(row(label, 0) for label in ("searches", "inserts", "removals"))
    out.append("Counters\n")
    out.extend(row(label, 0) for label in REASONS)
    if verbose:
        out.append("Limit Counters\n")
        out.extend(row(label, 0) for label in LIMIT_COUNTERS)
    return "".join(out)


def checksum(kernel) -> str:
    """pf_status.pf_chksum: an MD5 over the main ruleset (the lab hashes the rules' text; UNVERIFIED)."""
    main = kernel.rulesets[""]
    text = "\n".join(rule["text"] for kind in ("scrub", "nat", "rdr", "binat", "filter") for rule in main[kind])
    return hashlib.md5(text.encode()).hexdigest()


# ---------------------------------------------------------------------------- -s References (Apple)


def references(kernel, now: int) -> str:
    tokens = kernel.data.get("tokens", [])
    if not tokens:
        return "No pf starter references held\n"
    out = ["TOKENS:\n", f"{'PID':<8} {'Process Name':<28} {'TOKEN':<24} {'TIMESTAMP'}\n"]
    for entry in tokens:
        day, hrs, mins, sec = _age(max(now - int(entry["ts"]), 0))
        out.append(f"{entry['pid']:<8} {entry['name']:<28} {entry['token']:<24} "
                   f"{day} days {hrs:02d}:{mins:02d}:{sec:02d}\n")
    return "".join(out)


# ---------------------------------------------------------------------------- -s Anchors


def anchors(kernel, anchor: str, verbose: bool) -> tuple[str, str]:
    """pfctl_show_anchors: returns (stdout, stderr)."""
    if anchor and kernel.ruleset(anchor) is None:
        return "", f"Anchor '{anchor}' not found.\n"
    out: list[str] = []

    def walk(path: str) -> None:
        for child in kernel.children(path):
            if child.rpartition("/")[2] == RESERVED_ANCHOR:
                continue
            if not child.startswith("_") or verbose:
                out.append(f"  {child}\n")
            if verbose:
                walk(child)

    walk(anchor)
    return "".join(out), ""


# ---------------------------------------------------------------------------- -s rules / -s nat


def rule_counters(rule: dict, verbose: int) -> str:
    if not verbose:
        return ""
    return (f"  [ Evaluations: {0:<8}  Packets: {0:<8}  Bytes: {0:<10}  States: {0:<6}]\n"
            f"  [ Inserted: uid {rule.get('cuid', 0)} pid {rule.get('cpid', 0)} ]\n")


def rules(kernel, anchor: str, verbose: int, recurse: bool, depth: int = 0) -> tuple[str, str, bool]:
    """pfctl_show_rules: (stdout, stderr, ok). Scrub rules, then filter rules with brace recursion."""
    out: list[str] = []
    err: list[str] = []
    ruleset = kernel.ruleset(anchor)
    if ruleset is None:
        return "", "pfctl: DIOCGETRULES: Invalid argument\n", False
    numbers = verbose >= 2
    for nr, rule in enumerate(ruleset["scrub"]):
        out.append(rule_text(rule, number=nr if numbers else None) + "\n")
        out.append(rule_counters(rule, verbose))
    indent = "  " * depth if not verbose else ""
    for nr, rule in enumerate(ruleset["filter"]):
        call = rule.get("anchor")
        brace = False
        shown = call
        if call is not None:
            # pfctl.c: brace when the last '_' starts a component, or with -a 'x/*' (recursive)
            under = call.rfind("_")
            if (under >= 0 and (under == 0 or call[under - 1] == "/")) or recurse:
                brace = True
                shown = call.rpartition("/")[2]
        line = indent + rule_text(rule, anchor_call=shown, number=nr if numbers else None)
        out.append(line + (" {\n" if brace else "\n"))
        out.append(rule_counters(rule, verbose))
        if brace:
            sub = f"{anchor}/{shown}" if anchor else shown
            sub_out, sub_err, _ = rules(kernel, sub, verbose, recurse, depth + 1)
            out.append(sub_out)
            err.append(sub_err)
            out.append(indent + "}\n")
    return "".join(out), "".join(err), True


def nat(kernel, anchor: str, verbose: int) -> tuple[str, str]:
    ruleset = kernel.ruleset(anchor)
    if ruleset is None:
        return "", "pfctl: DIOCGETRULES: Invalid argument\n"
    out = []
    for kind in ("nat", "rdr", "binat"):
        for nr, rule in enumerate(ruleset[kind]):
            out.append(rule_text(rule, number=nr if verbose >= 2 else None) + "\n")
            out.append(rule_counters(rule, verbose))
    return "".join(out), ""


def labels(kernel, anchor: str) -> tuple[str, str]:
    ruleset = kernel.ruleset(anchor)
    if ruleset is None:
        return "", "pfctl: DIOCGETRULES: Invalid argument\n"
    out = [f"{rule['label']} 0 0 0 0 0 0 0\n" for kind in ("scrub", "filter") for rule in ruleset[kind]
           if rule.get("label")]
    return "".join(out), ""


__all__ = ["KernelError", "addrx", "anchors", "info", "labels", "nat", "references", "rules", "table_entries",
           "tables"]
