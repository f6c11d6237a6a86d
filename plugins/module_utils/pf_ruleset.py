# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read-only view of PF's state from pfctl's show commands (pfctl-macos.md §2.4, §3): status, enable
tokens, anchors, filter rules, tables, and what actually blocks: the anchors the main ruleset reaches
and the tables that block rules in those anchors reference (docs/lab-design.md "Reachability")."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import Pfctl, PfctlError, meaningful_stderr

MAIN = ""
# PF_ANCHOR_STACK_MAX: PF does not step deeper than this into anchors.
ANCHOR_DEPTH_MAX = 64
RESERVED_ANCHOR = "_pf"

_STATUS_RE = re.compile(r"^Status: (.*?)\s*(?:Debug: \S+)?$")
_TOKEN_RE = re.compile(r"^(\d+)\s+(.*?)\s+(\d+)\s+(\d+ days \d+:\d\d:\d\d)$")
# `anchor "name" ...` names the anchor; a bare `anchor ...` is a brace (`_N`) anchor (pfctl print_rule).
_ANCHOR_CALL_RE = re.compile(r'^anchor(?: "([^"]*)")?(?= |$)')
_QUOTED_RE = re.compile(r'"[^"]*"')
_TABLE_REF_RE = re.compile(r"(!\s*)?<([^<>\s]+)>")
_ADDRESSES_RE = re.compile(r"^\s+Addresses:\s+(\d+)\s*$")
# Errors of a show command on an anchor that vanished after `-s Anchors` listed it (fail2ban's
# actionstop can empty one at any time); pfctl-macos.md §1 and §2.2.
_VANISHED_ANCHOR = ("pfctl: DIOCGETRULES: Invalid argument", "pfctl: Anchor or Ruleset does not exist.")


# ---------------------------------------------------------------------------- parsers


def parse_status(stdout):
    """(enabled, status text) from `pfctl -s info`'s first line: `Status: Enabled for 0 days 00:03:10`."""
    for line in stdout.splitlines():
        match = _STATUS_RE.match(line.strip())
        if match:
            status = match.group(1).strip()
            return status.startswith("Enabled"), status
    raise ValueError("no 'Status:' line in pfctl -s info output")


def parse_references(stdout):
    """Enable tokens from `pfctl -s References`; [] for `No pf starter references held`."""
    tokens = []
    for line in stdout.splitlines():
        match = _TOKEN_RE.match(line.strip())
        if match:
            pid, process, token, age = match.groups()
            tokens.append(dict(pid=int(pid), process=process, token=token, age=age))
    return tokens


def parse_anchors(stdout):
    """Anchor paths from `pfctl -v -s Anchors` (one `  path` per line), without PF's reserved `_pf`."""
    anchors = []
    for line in stdout.splitlines():
        path = line.strip()
        if path and path.rpartition("/")[2] != RESERVED_ANCHOR:
            anchors.append(path)
    return anchors


def parse_rules(stdout):
    """Top-level filter rules of `pfctl -a A -s rules`, as printed, in order. Scrub rules are not
    filter rules; the rules pfctl prints inside the braces of a brace (`_N`) anchor belong to that
    anchor, so only the opening line (without ` {`) is kept."""
    rules = []
    depth = 0
    for line in stdout.splitlines():
        text = line.strip()
        if not text:
            continue
        if text == "}":
            depth = max(depth - 1, 0)
            continue
        opens = text.endswith(" {")
        if depth == 0 and not text.startswith(("scrub ", "scrub-anchor ")):
            rules.append(text[:-2] if opens else text)
        if opens:
            depth += 1
    return rules


def parse_tables(stdout, anchor):
    """Tables of `pfctl [-a A] -vv -s Tables`: [{anchor, name, count}], active ones only. The header
    line is `flags<TAB>name[<TAB>anchor]`; its anchor column, when present, wins over `anchor`."""
    tables = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            fields = line.split("\t")
            flags = fields[0]
            if len(fields) < 2 or len(flags) != 6 or flags[2] != "a":
                current = None
                continue
            current = dict(anchor=fields[2].strip() if len(fields) > 2 else anchor, name=fields[1].strip(), count=0)
            tables.append(current)
            continue
        match = _ADDRESSES_RE.match(line)
        if match and current is not None:
            current["count"] = int(match.group(1))
    return tables


# ---------------------------------------------------------------------------- rule analysis


def anchor_call(rule):
    """(name, braced) of an anchor rule, name None for a brace anchor; None when not an anchor rule."""
    match = _ANCHOR_CALL_RE.match(rule)
    if not match:
        return None
    return match.group(1), match.group(1) is None


def resolve_anchor_call(current, name):
    """(path, wildcard) an anchor call in ruleset `current` evaluates (pf_anchor_setup): `/x` is absolute,
    otherwise relative to `current` with `../` steps; a trailing `*` means each child."""
    if name.startswith("/"):
        path = name.lstrip("/")
    else:
        path = current
        while name.startswith("../"):
            path = path.rpartition("/")[0]
            name = name[3:]
        path = "%s/%s" % (path, name) if path and name else (path or name)
    wildcard = False
    if path == "*" or path.endswith("/*"):
        path, wildcard = path[:-2] if path != "*" else "", True
    return path, wildcard


def is_block_rule(rule):
    return rule.split(None, 1)[0] == "block" if rule.strip() else False


def table_refs(rule):
    """Names of the tables a rule references without negation (`! <t>` excluded), in order."""
    unquoted = _QUOTED_RE.sub('""', rule)
    names = []
    for negated, name in _TABLE_REF_RE.findall(unquoted):
        if not negated and name not in names:
            names.append(name)
    return names


def _children(anchors, path):
    depth = path.count("/") + 1 if path else 0
    prefix = path + "/" if path else ""
    return [a for a in anchors if a.startswith(prefix) and a.count("/") == depth]


def _brace_children(anchors, path):
    """The `_N` children of `path`, in the order their rules appear (N counts braces in file order)."""
    named = [a for a in _children(anchors, path) if a.rpartition("/")[2].startswith("_")]
    return sorted(named, key=lambda a: (len(a), a))


def reachable_anchors(rulesets, anchors):
    """Anchors the main ruleset's filter rules evaluate, in evaluation order (first visit).
    `rulesets` maps anchor path ("" = main) to its top-level filter rules; `anchors` lists every anchor."""
    known = set(anchors)
    order = []

    def walk(path, depth):
        if depth > ANCHOR_DEPTH_MAX:
            return
        braces = _brace_children(anchors, path)
        for rule in rulesets.get(path, []):
            call = anchor_call(rule)
            if call is None:
                continue
            name, braced = call
            if braced:
                targets = [braces.pop(0)] if braces else []
            else:
                target, wildcard = resolve_anchor_call(path, name)
                if target != MAIN and target not in known:
                    continue
                targets = _children(anchors, target) if wildcard else [target]
            for target in targets:
                if target == MAIN or target in order:
                    continue  # already walked: its rules and anchors are in the result
                order.append(target)
                walk(target, depth + 1)

    walk(MAIN, 0)
    return order


def blocking_tables(rulesets, reachable, tables):
    """`anchor:table` keys of the active tables that block rules in reachable rulesets reference, each
    resolved like PF: the rule's anchor's table when active there, else the main ruleset's."""
    active = set((t["anchor"], t["name"]) for t in tables)
    keys = []
    for path in [MAIN] + list(reachable):
        for rule in rulesets.get(path, []):
            if not is_block_rule(rule):
                continue
            for name in table_refs(rule):
                owner = path if (path, name) in active else MAIN
                key = "%s:%s" % (owner, name)
                if (owner, name) in active and key not in keys:
                    keys.append(key)
    return keys


# ---------------------------------------------------------------------------- pfctl


class PfReader(Pfctl):
    """The show commands pf_facts runs; -q keeps pfctl's ALTQ lines off stderr, so whatever is left
    there is an error (-s ignores errors in its exit code, pfctl-macos.md §1)."""

    def listing(self, what, anchor=MAIN, verbose=0, tolerate=()):
        args = ["-q"] + ["-v"] * verbose + (["-a", anchor] if anchor else []) + ["-s", what]
        cmd, rc, stdout, stderr = self._run(args)
        problem = meaningful_stderr(stderr).strip()
        if problem and problem in tolerate:
            return None
        if rc != 0 or problem:
            raise PfctlError(
                "%s failed: %s" % (" ".join(cmd), problem or "exit %d" % rc), cmd, rc, stdout, stderr
            )
        return stdout

    def facts(self):
        """ansible_facts.pf (see the pf_facts module's RETURN)."""
        info = self.listing("info")
        try:
            enabled, status = parse_status(info)
        except ValueError as exc:
            raise PfctlError(str(exc), [self.path, "-q", "-s", "info"], 0, info, "") from None
        tokens = parse_references(self.listing("References"))
        anchors = parse_anchors(self.listing("Anchors", verbose=1))
        rulesets = {}
        tables = []
        for anchor in [MAIN] + anchors:
            tolerate = _VANISHED_ANCHOR if anchor else ()
            rules = self.listing("rules", anchor, tolerate=tolerate)
            rulesets[anchor] = parse_rules(rules or "")
            shown = self.listing("Tables", anchor, verbose=2, tolerate=tolerate)
            for table in parse_tables(shown or "", anchor):
                if not any(t["anchor"] == table["anchor"] and t["name"] == table["name"] for t in tables):
                    tables.append(table)
        reachable = reachable_anchors(rulesets, anchors)
        blocking = blocking_tables(rulesets, reachable, tables)
        for table in tables:
            table["blocking"] = "%s:%s" % (table["anchor"], table["name"]) in blocking
        return dict(
            enabled=enabled,
            status=status,
            tokens=tokens,
            anchors=anchors,
            reachable_anchors=reachable,
            rulesets=rulesets,
            tables=tables,
            blocking_tables=blocking,
        )
