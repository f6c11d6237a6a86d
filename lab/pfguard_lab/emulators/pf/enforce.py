# SPDX-License-Identifier: GPL-3.0-or-later
"""Mirror what PF would block into nftables (PFGUARD_LAB_PF_ENFORCE=nftables).

The whole `inet pfguard_lab` table is regenerated in one `nft -f -` transaction in the current network
namespace after every command that changed PF's status, rules or a referenced table; with PF disabled
the table is removed. The translation:

- PF keeps state only for connections a stateful `pass` rule let in (`keep state`, the default for
  pass rules); PF's implicit default rule passes without state. A packet whose final verdict is such a
  pass sets bit 0x1 of its conntrack mark, and the chains start with `ct mark & 0x1 == 0x1 accept`: a
  connection with a PF state passes without rule evaluation. `pfctl -k` deletes the conntrack entries,
  after which every packet of the connection is evaluated again, as in PF.
- Filter rules reachable from the main ruleset through anchor calls (docs/lab-design.md "Reachability")
  are flattened in evaluation order; an anchor rule's own criteria are ANDed into the rules it reaches.
- Last match wins: a non-quick match records its verdict in the low bits of the packet mark, a quick
  match decides at once, and the chain ends by applying the recorded verdict (default pass). A quick
  anchor rule (`anchor "x" quick`) stops evaluation after the anchor when something inside matched; a
  mark bit per nesting level records that.
- `in` rules go to the input hook, `out` rules to output, others to both; `on IF` matches the interface
  (macOS lo0 is Linux lo); `set skip on IF` accepts everything on that interface first.
- Tables become interval sets, one per address family. PF matches a table by longest prefix and a
  negated entry means "no match", so sets hold the addresses whose most specific entry is not negated.
  A rule in anchor A uses A's table if active there, else the main ruleset's (root) table, else the
  table matches nothing.
- `block drop` drops; `block return` rejects with a TCP reset for TCP and an ICMP unreachable otherwise.
- scrub, nat/rdr/binat and dummynet anchors do not filter and are ignored.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess

from . import addr
from .protocols import PROTOCOLS

TABLE = "pfguard_lab"
OWN_BITS = 0xFFFF  # part of the packet mark this table uses
VERDICT_MASK = 0x7
PASS, DROP, RETURN = 1, 2, 3
KEEP_STATE = 0x4  # with PASS: the deciding pass rule keeps state
PASS_KEEP = PASS | KEEP_STATE
STATE_CT_MARK = 0x1  # conntrack mark bit: this connection has a PF state
QUICK_ANCHOR_BITS = [0x100 << i for i in range(8)]
MAX_ANCHOR_DEPTH = 64  # PF_ANCHOR_STACK_MAX
INTERFACE_NAMES = {"lo0": "lo"}
FAMILIES = ("ipv4", "ipv6")


class EnforceError(RuntimeError):
    """nft refused the generated ruleset."""


def _nft() -> str:
    return shutil.which("nft") or "/usr/sbin/nft"


def apply(kernel) -> None:
    """Regenerate the nftables mirror, unless only tables no reachable rule uses changed."""
    script = render(kernel, kernel.changed)
    if script is None:
        return
    proc = subprocess.run([_nft(), "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise EnforceError(f"nft -f - failed: {proc.stderr.strip()}")


def render(kernel, changed: set | None = None) -> str | None:
    """The `nft -f` script for the current state; None when `changed` cannot affect filtering."""
    structural = changed is None or bool({"status", "rules"} & changed)
    head = f"add table inet {TABLE}\ndelete table inet {TABLE}\n"
    if not kernel.data.get("enabled"):
        return head if structural else None
    builder = _Builder(kernel)
    builder.walk("", [], [], 0)
    if not structural:
        touched = {(entry[1], entry[2]) for entry in changed if isinstance(entry, tuple)}
        if not touched & set(builder.sets):
            return None
    return head + builder.table_text()


def _ifname(name: str) -> str:
    return INTERFACE_NAMES.get(name, name)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------- tables -> interval sets


def table_elements(entries: list[str], family: int) -> list[str]:
    """Elements of an nft interval set holding every address the PF table matches in `family`."""
    want_v6 = family == addr.INET6
    selected = [e for e in entries if (":" in e) == want_v6]
    if not selected:
        return []
    if not any(e[0] == "!" or "/" in e for e in selected):
        return selected  # hosts only: already disjoint and canonical
    bits = addr.HOSTLEN[family]
    nodes = []
    for entry in selected:
        neg = entry[0] == "!"
        fam, value, plen = addr.split_key(entry[1:] if neg else entry)
        nodes.append((value, plen, value + (1 << (bits - plen)) - 1, not neg))
    nodes.sort()  # by start, enclosing (shorter) prefixes first
    # CIDR blocks are nested or disjoint: the most specific block containing an address decides.
    intervals: list[list[int]] = []
    stack: list[tuple[int, bool]] = []  # (end, positive) of the enclosing blocks
    cursor = None  # first address not yet assigned

    def emit(start: int, end: int, positive: bool) -> None:
        if start > end or not positive:
            return
        if intervals and intervals[-1][1] + 1 == start:
            intervals[-1][1] = end
        else:
            intervals.append([start, end])

    for start, _plen, end, positive in nodes:
        while stack and stack[-1][0] < start:
            closing_end, closing_positive = stack.pop()
            emit(cursor, closing_end, closing_positive)
            cursor = closing_end + 1
        if stack:  # the gap before this block inside its parent belongs to the parent
            emit(cursor, start - 1, stack[-1][1])
        cursor = start
        stack.append((end, positive))
    while stack:
        closing_end, closing_positive = stack.pop()
        emit(cursor, closing_end, closing_positive)
        cursor = closing_end + 1
    make = ipaddress.IPv6Address if want_v6 else ipaddress.IPv4Address
    out = []
    for start, end in intervals:
        out.append(str(make(start)) if start == end else f"{make(start)}-{make(end)}")
    return out


# ---------------------------------------------------------------------------- rule translation


class _Builder:
    def __init__(self, kernel):
        self.kernel = kernel
        self.rulesets = kernel.rulesets
        self.sets: dict[tuple[str, str], str] = {}  # (anchor, table) -> set base name
        self.set_text: list[str] = []
        self.chains = {"input": [], "output": []}

    # ------------------------------------------------------------------ reachability

    def walk(self, path: str, conditions: list[dict], quick_bits: list[int], depth: int) -> None:
        if depth > MAX_ANCHOR_DEPTH:
            return
        ruleset = self.rulesets.get(path)
        if ruleset is None:
            return
        for rule in ruleset["filter"]:
            if rule.get("anchor") is None:
                self.emit_rule(rule, path, conditions, quick_bits)
                continue
            target = rule["anchor_path"]
            if target not in self.rulesets:
                continue
            targets = self.kernel.children(target) if rule.get("wildcard") else [target]
            inner_conditions = [*conditions, {"rule": rule, "path": path}]
            if rule.get("quick"):
                if len(quick_bits) >= len(QUICK_ANCHOR_BITS):
                    raise EnforceError("quick anchors nested deeper than the lab supports")
                bit = QUICK_ANCHOR_BITS[len(quick_bits)]
                for chain in self.chains.values():
                    chain.append(f"meta mark set meta mark & {0xFFFFFFFF ^ bit:#010x}")
                for sub in targets:
                    self.walk(sub, inner_conditions, [*quick_bits, bit], depth + 1)
                self.emit_quick_anchor_exit(bit)
            else:
                for sub in targets:
                    self.walk(sub, inner_conditions, quick_bits, depth + 1)

    # ------------------------------------------------------------------ matches

    def table_set(self, anchor: str, name: str) -> str | None:
        """Resolve a rule's table like pfr_match_addr: the anchor's if active, else the root table."""
        tables = self.rulesets[anchor]["tables"] if anchor in self.rulesets else {}
        raw = tables.get(name)
        owner = anchor
        if raw is None or not raw["active"]:
            raw = self.rulesets[""]["tables"].get(name)
            owner = ""
            if raw is None or not raw["active"]:
                return None
        key = (owner, name)
        if key not in self.sets:
            base = f"t{len(self.sets)}"
            self.sets[key] = base
            for family, suffix, kind in ((addr.INET, "4", "ipv4_addr"), (addr.INET6, "6", "ipv6_addr")):
                elements = table_elements(raw["entries"], family)
                body = f"type {kind}; flags interval;"
                if elements:
                    body += " elements = { " + ", ".join(elements) + " }"
                comment = _quote(f"<{name}> in {owner or 'main'}")[:128]
                self.set_text.append(f"  set {base}_{suffix} {{ {body} comment {comment}; }}\n")
        return self.sets[key]

    def address(self, spec: dict, side: str, family: str, path: str) -> str | None:
        """nft fragment for one from/to address in `family`; None when it can never match."""
        neg = spec.get("neg", False)
        prefix = "ip" if family == "ipv4" else "ip6"
        field = "saddr" if side == "from" else "daddr"
        if spec.get("any"):
            return None if neg else ""
        if spec.get("table") is not None:
            base = self.table_set(path, spec["table"])
            if base is None:  # an inactive table matches nothing
                return "" if neg else None
            suffix = "4" if family == "ipv4" else "6"
            return f"{prefix} {field} {'!= ' if neg else ''}@{base}_{suffix}"
        key = spec["hosts"][0]
        if (":" in key) != (family == "ipv6"):
            return "" if neg else None
        return f"{prefix} {field} {'!= ' if neg else ''}{key}"

    @staticmethod
    def port(port: list | None, side: str) -> str:
        if not port:
            return ""
        op, first = port[0][0], port[0][1]
        field = "th sport" if side == "from" else "th dport"
        if op == ":":
            return f"{field} {first}-{port[0][2]}"
        if op == "><":
            return f"{field} > {first} {field} < {port[0][2]}"
        if op == "<>":
            return f"{field} != {first}-{port[0][2]}"
        return f"{field} {op} {first}" if op != "=" else f"{field} {first}"

    @staticmethod
    def tcp_flags(flags: str | None) -> str:
        if not flags or flags == "any":
            return ""
        names = {"F": "fin", "S": "syn", "R": "rst", "P": "psh", "A": "ack", "U": "urg", "E": "ecn", "W": "cwr"}
        want, _, mask = flags.partition("/")
        mask_text = "|".join(names[c] for c in mask)
        want_text = "|".join(names[c] for c in want) if want else "0x0"
        return f"tcp flags & ({mask_text}) == {want_text}"

    def fragments(self, rule: dict, path: str, chain: str, family: str) -> list[str] | None:
        """Match fragments of one rule (or anchor rule) for a chain and family; None = cannot match."""
        direction = rule.get("direction")
        if direction and direction != ("in" if chain == "input" else "out"):
            return None
        af = rule.get("af")
        if af and af != ("inet" if family == "ipv4" else "inet6"):
            return None
        out = []
        if rule.get("on"):
            op = "!= " if rule.get("ifnot") else ""
            out.append(f"{'iifname' if chain == 'input' else 'oifname'} {op}{_quote(_ifname(rule['on']))}")
        if rule.get("proto"):
            name = rule["proto"][0]
            out.append(f"meta l4proto {PROTOCOLS.get(name, name)}")
        for side in ("from", "to"):
            spec = rule.get(side) or {"neg": False, "any": True}
            fragment = self.address(spec, side, family, path)
            if fragment is None:
                return None
            if fragment:
                out.append(fragment)
            port = self.port(spec.get("port"), side)
            if port:
                out.append(port)
        flags = self.tcp_flags(rule.get("flags"))
        if flags:
            out.append(flags)
        return out

    # ------------------------------------------------------------------ emission

    def emit_rule(self, rule: dict, path: str, conditions: list[dict], quick_bits: list[int]) -> None:
        if rule.get("action") not in ("pass", "block"):
            return
        if rule["action"] == "pass":
            code = PASS_KEEP if rule.get("state") else PASS
        else:
            code = RETURN if rule.get("policy") == "return" else DROP
        for chain, lines in self.chains.items():
            for family in FAMILIES:
                parts: list[str] = [f"meta nfproto {family}"]
                possible = True
                for condition in conditions:
                    fragment = self.fragments(condition["rule"], condition["path"], chain, family)
                    if fragment is None:
                        possible = False
                        break
                    parts += fragment
                own = self.fragments(rule, path, chain, family) if possible else None
                if own is None:
                    continue
                match = " ".join(parts + own)
                if rule.get("quick"):
                    lines.extend(self.verdict(match, code))
                else:
                    bits = code | sum(quick_bits)
                    lines.append(f"{match} meta mark set meta mark & {0xFFFFFFFF ^ VERDICT_MASK:#010x} | {bits:#x}")

    @staticmethod
    def verdict(match: str, code: int) -> list[str]:
        if code == PASS:
            return [f"{match} accept"]
        if code == PASS_KEEP:
            return [f"{match} ct mark set ct mark | {STATE_CT_MARK:#x} accept"]
        if code == DROP:
            return [f"{match} drop"]
        return [f"{match} meta l4proto tcp reject with tcp reset",
                f"{match} reject with icmpx type port-unreachable"]

    def emit_quick_anchor_exit(self, bit: int) -> None:
        for lines in self.chains.values():
            for code in (PASS, PASS_KEEP, DROP, RETURN):
                lines.extend(self.verdict(f"meta mark & {bit | VERDICT_MASK:#x} == {bit | code:#x}", code))

    def table_text(self) -> str:
        skip = [_ifname(name) for name in self.kernel.data.get("skip", [])]
        out = [f"table inet {TABLE} {{\n"]
        out.extend(self.set_text)
        for chain, lines in self.chains.items():
            hook_if = "iifname" if chain == "input" else "oifname"
            out.append(f"  chain {chain} {{\n    type filter hook {chain} priority filter; policy accept;\n")
            out.extend(f"    {hook_if} {_quote(name)} accept\n" for name in skip)
            out.append(f"    ct mark & {STATE_CT_MARK:#x} == {STATE_CT_MARK:#x} accept\n")
            out.append(f"    meta mark set meta mark & {0xFFFFFFFF ^ OWN_BITS:#010x}\n")
            out.extend(f"    {line}\n" for line in lines)
            out.extend(f"    {line}\n" for line in self.verdict(f"meta mark & {VERDICT_MASK:#x} == {PASS_KEEP:#x}",
                                                               PASS_KEEP))
            out.extend(f"    {line}\n" for line in self.verdict(f"meta mark & {VERDICT_MASK:#x} == {DROP:#x}", DROP))
            out.extend(f"    {line}\n" for line in self.verdict(f"meta mark & {VERDICT_MASK:#x} == {RETURN:#x}",
                                                               RETURN))
            out.append("  }\n")
        out.append("}\n")
        return "".join(out)
