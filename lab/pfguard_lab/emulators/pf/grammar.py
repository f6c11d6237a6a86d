# SPDX-License-Identifier: GPL-3.0-or-later
"""The pf.conf grammar's keyword tables (OpenBSD 4.1 parse.y plus Apple's additions), as data.

parser.py and clauses.py hold the productions; this module says which words they accept, what each
statement or option is handled by, and which constructs the lab refuses as not modelled. The
protocol names `proto` accepts are /etc/protocols (protocols.py).
"""

from __future__ import annotations

# ---------------------------------------------------------------------------- statements

# first keyword of a statement -> Parser method (parse.y `ruleset` alternatives)
STATEMENTS = {
    "set": "option",
    "table": "tabledef",
    "load": "loadrule",
    "anchor": "anchorrule", "scrub-anchor": "anchorrule", "nat-anchor": "anchorrule",
    "rdr-anchor": "anchorrule", "binat-anchor": "anchorrule", "dummynet-anchor": "anchorrule",
    "pass": "pfrule", "block": "pfrule",
    "scrub": "scrubrule",
    "no": "norule",
}
# statements real pfctl accepts and the lab does not model: "'WORD' rules is not supported"
UNSUPPORTED_STATEMENTS = ("nat", "rdr", "binat", "antispoof", "altq", "queue", "dummynet")
NEGATED_RULES = ("scrub", "nat", "rdr", "binat")  # `no scrub`, `no nat`, ...: unsupported too

# anchor keyword -> the ruleset its rule goes into
ANCHOR_KINDS = {
    "anchor": "filter", "scrub-anchor": "scrub", "nat-anchor": "nat", "rdr-anchor": "rdr",
    "binat-anchor": "binat", "dummynet-anchor": "dummynet",
}
RULESETS = ("scrub", "nat", "rdr", "binat", "dummynet", "filter")

# ---------------------------------------------------------------------------- rule order (check_rulestate)

# docs/reference/pfctl.md#rule-order
STATE_NONE, STATE_OPTION, STATE_SCRUB, STATE_QUEUE, STATE_NAT, STATE_DUMMYNET, STATE_FILTER = range(7)
RULE_CLASS = {"filter": STATE_FILTER, "scrub": STATE_SCRUB, "dummynet": STATE_DUMMYNET,
              "nat": STATE_NAT, "rdr": STATE_NAT, "binat": STATE_NAT}
ORDER_MESSAGE = "Rules must be in order: options, normalization, queueing, translation, filtering"

# ---------------------------------------------------------------------------- `set` options

# option keyword -> Parser method (parse.y `option`)
SET_OPTIONS = {
    "block-policy": "set_block_policy",
    "require-order": "set_require_order",
    "skip": "set_skip",
    "debug": "set_debug",
    "hostid": "set_hostid",
    "optimization": "set_optimization",
    "ruleset-optimization": "set_ruleset_optimization",
    "loginterface": "set_loginterface",
    "fingerprints": "set_fingerprints",
    "state-policy": "set_state_policy",
    "timeout": "set_timeout",
    "limit": "set_limit",
}
BLOCK_POLICIES = ("drop", "return")
DEBUG_LEVELS = {"none": "None", "urgent": "Urgent", "misc": "Misc", "loud": "Loud"}
OPTIMIZATIONS = ("normal", "satellite", "high-latency", "conservative", "aggressive")
RULESET_OPTIMIZATIONS = ("none", "basic", "profile")
STATE_POLICIES = ("if-bound", "floating")
# pf_timeouts / pf_limits names; Apple adds GRE and ESP timeouts (UNVERIFIED list)
TIMEOUTS = (
    "tcp.first", "tcp.opening", "tcp.established", "tcp.closing", "tcp.finwait", "tcp.closed", "tcp.tsdiff",
    "udp.first", "udp.single", "udp.multiple", "icmp.first", "icmp.error", "grev1.first", "grev1.initiating",
    "grev1.established", "esp.first", "esp.established", "other.first", "other.single", "other.multiple",
    "frag", "interval", "src.track", "adaptive.start", "adaptive.end",
)
LIMITS = ("states", "app-states", "src-nodes", "frags", "tables", "table-entries")
# `set timeout` / `set limit`: (names, pfctl's warning, parse error)
PAIR_OPTIONS = {
    "timeout": (TIMEOUTS, "Bad timeout name.", "unknown timeout {0}"),
    "limit": (LIMITS, "Bad pool name.", "unable to set limit {0} {1}"),
}

# ---------------------------------------------------------------------------- tables

TABLE_FLAGS = ("const", "persist", "counters")
TABLE_NAME_MAX = 31  # PF_TABLE_NAME_SIZE - 1
IFNAMSIZ = 16
ANCHOR_PATH_MAX = 1023  # MAXPATHLEN - 1

# ---------------------------------------------------------------------------- rule options

TCP_FLAGS = "FSRPAUEW"
STATE_KEYWORDS = ("keep", "modulate", "synproxy")  # `keep state`, `modulate state`, `synproxy state`
# filter_opts parse.y knows and the lab does not model (also `flags`, `keep`, ... on anchor rules)
UNMODELLED_FILTER_OPTS = (
    "user", "group", "icmp-type", "icmp6-type", "tos", "fragment", "allow-opts", "queue", "tag",
    "tagged", "probability", "rtable", "label", "flags", "keep", "modulate", "synproxy", "no",
)
BLOCK_RETURNS = ("return-rst", "return-icmp", "return-icmp6")  # unsupported `block` policies
ROUTING_OPTS = ("route-to", "reply-to", "dup-to", "fastroute")  # unsupported
SPECIAL_ADDRESSES = ("no-route", "urpf-failed")  # unsupported

# scrub options: flags, numbers with their maximum, fragment handling
SCRUB_FLAGS = ("no-df", "random-id")
SCRUB_NUMBERS = {"min-ttl": 255, "max-mss": 65535}
FRAGMENT_MODES = ("reassemble", "crop", "drop-ovl")

# port operators: unary (before one port) and binary (between two)
PORT_UNARY = "=!<>"
PORT_RANGES = (":", "><", "<>")

PORT_MAX = 65535
PROTO_MAX = 255
