# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read-only view of PF's state from pfctl's show commands (docs/reference/pfctl.md, sections
status-output, references-listing, anchor-listing, rule-listing, table-show-formats): status, enable
tokens, anchors, filter rules, tables, and what actually blocks: the anchors the main ruleset reaches
and the tables that block rules in those anchors reference (docs/lab-design.md "Reachability")."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import DEFAULT_COMMAND_TIMEOUT
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import (
    Pfctl,
    PfctlError,
    meaningful_stderr,
    output_line,
)

MAIN = ""
# PF_ANCHOR_STACK_MAX: PF does not step deeper than this into anchors.
ANCHOR_DEPTH_MAX = 64
RESERVED_ANCHOR = "_pf"

_STATUS_RE = re.compile(r"^Status: (.*?)\s*(?:Debug: \S+)?$")
_TOKEN_RE = re.compile(r"^(\d+)\s+(.*?)\s+(\d+)\s+(\d+ days \d+:\d\d:\d\d)$")
_TOKEN_HEADER_RE = re.compile(r"^PID\s+Process Name\s+TOKEN\s+TIMESTAMP$")
_RULE_START_RE = re.compile(r"^(?:@\d+ )?[a-z]")
# `-s Tables -v` flags: c(onst) p(ersist) a(ctive) i(nactive) r(eferenced) h(referenced by anchor).
_TABLE_FLAGS_RE = re.compile(r"^[c-][p-][a-][i-][r-][h-]$")
_TABLE_DETAIL_RE = re.compile(r"^\t[A-Za-z/]+:")
# `anchor "name" ...` names the anchor; a bare `anchor ...` is a brace (`_N`) anchor (pfctl print_rule).
_ANCHOR_CALL_RE = re.compile(r'^anchor(?: "([^"]*)")?(?= |$)')
_QUOTED_RE = re.compile(r'"[^"]*"')
_TABLE_REF_RE = re.compile(r"(!\s*)?<([^<>\s]+)>")
_ADDRESSES_RE = re.compile(r"^\s+Addresses:\s+(\d+)\s*$")
# Errors of a show command on an anchor that vanished after `-s Anchors` listed it (fail2ban's
# actionstop can empty one at any time); docs/reference/pfctl.md#exit-codes and pfctl.md#table-errors.
_VANISHED_ANCHOR = ("pfctl: DIOCGETRULES: Invalid argument", "pfctl: Anchor or Ruleset does not exist.")


# ---------------------------------------------------------------------------- parsers
# Each parser raises ValueError with the first line that is not in the format pfctl prints; the
# reader turns it into a failed task naming the command and the line. Names and rules are reported
# with escape() applied, so a control character in an anchor or table name cannot corrupt the facts.


def escape(text):
    """`text` with everything but printable ASCII escaped: a backslash as `\\\\`, other characters
    as `\\xNN` or `\\uNNNN` (a name pfctl printed with a control or non-ASCII character)."""
    if all(" " <= char <= "~" and char != "\\" for char in text):
        return text
    out = []
    for char in text:
        if " " <= char <= "~" and char != "\\":
            out.append(char)
        elif char == "\\":
            out.append("\\\\")
        elif ord(char) < 0x100:
            out.append("\\x%02x" % ord(char))
        else:
            out.append("\\u%04x" % ord(char) if ord(char) < 0x10000 else "\\U%08x" % ord(char))
    return "".join(out)


def _lines(stdout):
    # split("\n"), not splitlines(): pfctl ends lines with \n only, and a \r, \x1c or \x85 inside a
    # name must not start a new line.
    return stdout.split("\n")


def parse_status(stdout):
    """(enabled, status text) from `pfctl -s info`'s first line: `Status: Enabled for 0 days 00:03:10`."""
    for line in _lines(stdout):
        match = _STATUS_RE.match(line.strip())
        if match:
            status = escape(match.group(1).strip())
            return status.startswith("Enabled"), status
    raise ValueError("no 'Status:' line in pfctl -s info output")


def parse_references(stdout):
    """Enable tokens from `pfctl -s References`; [] for `No pf starter references held`."""
    tokens = []
    for line in _lines(stdout):
        text = line.strip()
        if not text or text in ("No pf starter references held", "TOKENS:") or _TOKEN_HEADER_RE.match(text):
            continue
        match = _TOKEN_RE.match(text)
        if not match:
            raise ValueError(line)
        pid, process, token, age = match.groups()
        tokens.append(dict(pid=int(pid), process=escape(process), token=token, age=age))
    return tokens


# pfctl_show_limits: `%-13s ` then `hard limit %8u`, or `unlimited` (docs/reference/pfctl.md#limits)
_LIMIT_RE = re.compile(r"\A([a-z][a-z-]{0,31}) +(?:hard limit +([0-9]{1,10})|(unlimited))\Z")


def parse_memory(stdout):
    """PF's pool hard limits from `pfctl -s memory`: {name with `_` for `-`: limit, None when unlimited}."""
    limits = {}
    for line in _lines(stdout):
        if not line:
            continue
        match = _LIMIT_RE.match(line)
        if not match:
            raise ValueError(line)
        name, value, _unlimited = match.groups()
        limits[name.replace("-", "_")] = int(value) if value is not None else None
    if "table_entries" not in limits:
        raise ValueError("no table-entries line in pfctl -s memory output")
    return limits


def parse_anchors(stdout):
    """Anchor paths from `pfctl -v -s Anchors` (one `  path` per line), without PF's reserved `_pf`,
    exactly as printed (see escape() and queryable() before using one)."""
    anchors = []
    for line in _lines(stdout):
        if not line:
            continue
        path = line[2:]
        if line[:2] != "  " or not path.strip():
            raise ValueError(line)
        if path.rpartition("/")[2] != RESERVED_ANCHOR:
            anchors.append(path)
    return anchors


def queryable(name):
    """Whether a name pfctl printed can be given back to pfctl as it is: printable ASCII only (a name
    with a control or non-ASCII character may have been mangled by decoding, or by a newline)."""
    return escape(name) == name


def parse_rules(stdout):
    """Top-level filter rules of `pfctl -a A -s rules`, as printed (escaped), in order. Scrub rules are
    not filter rules; the rules pfctl prints inside the braces of a brace (`_N`) anchor belong to that
    anchor, so only the opening line (without ` {`) is kept. A rule starts with a lowercase keyword."""
    rules = []
    depth = 0
    for line in _lines(stdout):
        text = line.strip()
        if not text:
            continue
        if text == "}":
            depth = max(depth - 1, 0)
            continue
        if not _RULE_START_RE.match(text):
            raise ValueError(line)
        opens = text.endswith(" {")
        if depth == 0 and not text.startswith(("scrub ", "scrub-anchor ")):
            rules.append(escape(text[:-2] if opens else text))
        if opens:
            depth += 1
    return rules


def parse_tables(stdout, anchor):
    """Tables of `pfctl [-a A] -vv -s Tables`: [{anchor, name, count}], active ones only. The header
    line is `flags<TAB>name[<TAB>anchor]`; its anchor column, when present, wins over `anchor`. Names
    are escaped; the detail lines are tab-indented `Label: value` lines."""
    tables = []
    current = None
    for line in _lines(stdout):
        if not line.strip():
            continue
        if not line[0].isspace():
            fields = line.split("\t")
            flags = fields[0]
            if len(fields) not in (2, 3) or not _TABLE_FLAGS_RE.match(flags) or not fields[1]:
                raise ValueError(line)
            if flags[2] != "a":
                current = None
                continue
            owner = escape(fields[2]) if len(fields) > 2 else anchor
            current = dict(anchor=owner, name=escape(fields[1]), count=0)
            tables.append(current)
            continue
        if not _TABLE_DETAIL_RE.match(line):
            raise ValueError(line)
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
    there is an error (-s ignores errors in its exit code, pfctl(8) on macOS). Every command has the
    time limit of Pfctl; `warnings` collects what the facts could not cover."""

    def __init__(self, module, path, timeout=DEFAULT_COMMAND_TIMEOUT):
        super(PfReader, self).__init__(module, path, timeout)
        self.warnings = []

    def listing(self, what, anchor=MAIN, verbose=0, tolerate=()):
        args = ["-q"] + ["-v"] * verbose + (["-a", anchor] if anchor else []) + ["-s", what]
        cmd, rc, stdout, stderr = self._run(args)
        problem = meaningful_stderr(stderr).strip()
        if problem and problem in tolerate:
            return None, cmd
        if rc != 0 or problem:
            raise PfctlError("%s failed: %s" % (" ".join(cmd), problem or "exit %d" % rc), cmd, rc, stdout, stderr)
        return stdout, cmd

    def parsed(self, parser, what, *args, **kwargs):
        """parser(stdout, *extra) of `pfctl ... -s what`; a line the parser refuses fails naming it."""
        extra = kwargs.pop("extra", ())
        stdout, cmd = self.listing(what, *args, **kwargs)
        try:
            return parser(stdout or "", *extra)
        except ValueError as exc:
            raise PfctlError(
                "%s printed a line pf_facts cannot read: %s" % (" ".join(cmd), output_line(str(exc))),
                cmd,
                0,
                stdout,
                "",
            ) from None

    def facts(self):
        """ansible_facts.pf (see the pf_facts module's RETURN)."""
        enabled, status = self.parsed(parse_status, "info")
        limits = self.parsed(parse_memory, "memory")
        tokens = self.parsed(parse_references, "References")
        printed = self.parsed(parse_anchors, "Anchors", verbose=1)
        anchors = [escape(name) for name in printed]
        odd = [escape(name) for name in printed if not queryable(name)]
        if odd:
            self.warnings.append(
                "pfctl lists anchors whose names hold control or non-ASCII characters, shown escaped: %s; "
                "their rules and tables were not read" % ", ".join(odd)
            )
        rulesets = {}
        tables = []
        for anchor in [MAIN] + [name for name in printed if queryable(name)]:
            tolerate = _VANISHED_ANCHOR if anchor else ()
            rulesets[anchor] = self.parsed(parse_rules, "rules", anchor, tolerate=tolerate)
            shown = self.parsed(parse_tables, "Tables", anchor, verbose=2, tolerate=tolerate, extra=(anchor,))
            for table in shown:
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
            limits=limits,
            table_entries=sum(table["count"] for table in tables),
        )
