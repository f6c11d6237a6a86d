# SPDX-License-Identifier: GPL-3.0-or-later
"""pf.conf parsing the way Apple's pfctl (OpenBSD 4.1 parse.y) does it, for the subset the lab models.

The lexer is a transcription of parse.y's lgetc/yylex (blank compression, backslash continuation,
`$macro` re-lexing, quoting, the allowed_in_string set); statements are parsed by recursive descent
with bison-like recovery: an error prints `FILE:LINE: message` and skips to the end of the statement.
Rules are expanded per list element like expand_rule() and printed like print_rule() (pfctl -sr).
Constructs real pfctl accepts but the lab does not model raise LabUnsupported (loud failure).
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, field

from . import addr

# parse.y lookup() keywords plus Apple's anchor kinds; any other word is a STRING
KEYWORDS = {
    "all", "allow-opts", "altq", "anchor", "antispoof", "any", "bandwidth", "binat", "binat-anchor",
    "bitmask", "block", "block-policy", "cbq", "code", "crop", "debug", "drop", "drop-ovl", "dummynet",
    "dummynet-anchor", "dup-to", "fastroute", "file", "fingerprints", "flags", "floating", "flush", "for",
    "fragment", "from", "global", "group", "hfsc", "hostid", "icmp-type", "icmp6-type", "if-bound", "in",
    "inet", "inet6", "keep", "label", "limit", "linkshare", "load", "log", "loginterface", "max", "max-mss",
    "max-src-conn", "max-src-conn-rate", "max-src-nodes", "max-src-states", "min-ttl", "modulate", "nat",
    "nat-anchor", "no", "no-df", "no-route", "no-sync", "on", "optimization", "os", "out", "overload",
    "pass", "port", "priority", "priq", "probability", "proto", "qlimit", "queue", "quick", "random",
    "random-id", "rdr", "rdr-anchor", "realtime", "reassemble", "reply-to", "require-order", "return",
    "return-icmp", "return-icmp6", "return-rst", "round-robin", "route", "route-to", "rtable", "rule",
    "ruleset-optimization", "scrub", "scrub-anchor", "set", "skip", "sloppy", "source-hash",
    "source-track", "state", "state-policy", "static-port", "sticky-address", "synproxy", "table", "tag",
    "tagged", "tbrsize", "timeout", "to", "tos", "ttl", "upperlimit", "urpf-failed", "user",
}

# /etc/protocols on macOS (primary name, number); aliases accepted on input
PROTOCOLS = {
    "ip": 0, "icmp": 1, "igmp": 2, "ggp": 3, "ipencap": 4, "st2": 5, "tcp": 6, "egp": 8, "igp": 9,
    "pup": 12, "udp": 17, "hmp": 20, "xns-idp": 22, "rdp": 27, "ipv6": 41, "ipv6-route": 43,
    "ipv6-frag": 44, "idrp": 45, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58,
    "ipv6-nonxt": 59, "ipv6-opts": 60, "ospf": 89, "ipip": 94, "etherip": 97, "encap": 98, "pim": 103,
    "ipcomp": 108, "vrrp": 112, "sctp": 132, "pfsync": 240,
}
PROTO_ALIASES = {"IP": 0, "ICMP": 1, "IGMP": 2, "TCP": 6, "UDP": 17, "GRE": 47, "ESP": 50, "AH": 51,
                 "IPv6-ICMP": 58, "icmp6": 58}  # icmp6: common pf.conf spelling (UNVERIFIED on macOS)
PROTO_NAMES = {number: name for name, number in PROTOCOLS.items()}

TCP_FLAGS = "FSRPAUEW"

# rule states for check_rulestate (docs/reference/pfctl.md#rule-order)
STATE_NONE, STATE_OPTION, STATE_SCRUB, STATE_QUEUE, STATE_NAT, STATE_DUMMYNET, STATE_FILTER = range(7)
ORDER_MESSAGE = "Rules must be in order: options, normalization, queueing, translation, filtering"

# pf_timeouts / pf_limits names; Apple adds GRE and ESP timeouts (UNVERIFIED list)
TIMEOUTS = (
    "tcp.first", "tcp.opening", "tcp.established", "tcp.closing", "tcp.finwait", "tcp.closed", "tcp.tsdiff",
    "udp.first", "udp.single", "udp.multiple", "icmp.first", "icmp.error", "grev1.first", "grev1.initiating",
    "grev1.established", "esp.first", "esp.established", "other.first", "other.single", "other.multiple",
    "frag", "interval", "src.track", "adaptive.start", "adaptive.end",
)
LIMITS = ("states", "app-states", "src-nodes", "frags", "tables", "table-entries")

ANCHOR_KINDS = {
    "anchor": "filter", "scrub-anchor": "scrub", "nat-anchor": "nat", "rdr-anchor": "rdr",
    "binat-anchor": "binat", "dummynet-anchor": "dummynet",
}


class LabUnsupported(Exception):
    """A construct real pfctl accepts that the lab does not model."""


class _Abort(Exception):
    """YYERROR / syntax error: skip to the end of the statement."""


class _Stop(Exception):
    """Unrecoverable syntax error (at EOF): yyparse returns."""


# ---------------------------------------------------------------------------- lexer

NL, EOF, STRING, KW, CHAR, PORTBINARY, ARROW, ERROR = "NL", "EOF", "STRING", "KW", "CHAR", "PB", "ARROW", "ERROR"


@dataclass
class Token:
    kind: str
    value: str
    line: int

    def is_kw(self, *words: str) -> bool:
        return self.kind == KW and self.value in words

    def is_char(self, char: str) -> bool:
        return self.kind == CHAR and self.value == char


def _isalnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def _ispunct(c: str) -> bool:
    return "!" <= c <= "~" and not c.isalnum()


def _allowed_in_string(c: str) -> bool:
    return _isalnum(c) or (_ispunct(c) and c not in "(){}<>!=/#,")


class Lexer:
    """parse.y's lgetc/lungetc/yylex."""

    def __init__(self, text: str, report, symget):
        self.text = text
        self.pos = 0
        self.lineno = 1
        self.parsebuf: str | None = None
        self.parseindex = 0
        self.pushback: list[str] = []
        self.report = report
        self.symget = symget

    def _getc(self) -> str | None:
        if self.pos >= len(self.text):
            self.pos += 1
            return None
        c = self.text[self.pos]
        self.pos += 1
        return c

    def _ungetc(self, c: str | None) -> None:
        self.pos -= 1

    def lgetc(self) -> str | None:
        if self.parsebuf is not None:
            if self.parseindex < len(self.parsebuf):
                c = self.parsebuf[self.parseindex]
                self.parseindex += 1
                return c
            self.parsebuf = None
        if self.pushback:
            return self.pushback.pop()
        c = self._getc()
        while c == "\\":
            following = self._getc()
            if following != "\n":
                c = following
                break
            self.lineno += 1
            c = self._getc()
        if c in (" ", "\t"):
            while c in (" ", "\t"):
                c = self._getc()
            self._ungetc(c)
            c = " "
        return c

    def lungetc(self, c: str | None) -> None:
        if c is None:
            return
        if self.parsebuf is not None and self.parseindex > 0:
            self.parseindex -= 1
            return
        self.pushback.append(c)

    def findeol(self) -> Token:
        line = self.lineno
        self.parsebuf = None
        self.pushback = []
        while True:
            c = self.lgetc()
            if c == "\n":
                self.lineno += 1
                break
            if c is None:
                break
        return Token(ERROR, "", line)

    def next(self) -> Token:
        while True:
            c = self.lgetc()
            while c == " ":
                c = self.lgetc()
            line = self.lineno
            if c == "#":
                while True:
                    c = self.lgetc()
                    if c == "\n" or c is None:
                        break
            if c == "$" and self.parsebuf is None:
                name = []
                while True:
                    c = self.lgetc()
                    if c is None:
                        return Token(EOF, "", line)
                    if _isalnum(c) or c == "_":
                        name.append(c)
                        continue
                    self.lungetc(c)
                    break
                value = self.symget("".join(name))
                if value is None:
                    self.report(line, f"macro '{''.join(name)}' not defined")
                    return self.findeol()
                self.parsebuf, self.parseindex = value, 0
                continue
            break
        if c in ("'", '"'):
            endc, buf = c, []
            while True:
                c = self.lgetc()
                if c is None:
                    return Token(EOF, "", line)
                if c == endc:
                    break
                if c == "\n":
                    self.lineno += 1
                    continue
                buf.append(c)
            return Token(STRING, "".join(buf), line)
        if c in ("<", ">", "-"):
            following = self.lgetc()
            if c == "<" and following == ">":
                return Token(PORTBINARY, "<>", line)
            if c == ">" and following == "<":
                return Token(PORTBINARY, "><", line)
            if c == "-" and following == ">":
                return Token(ARROW, "->", line)
            self.lungetc(following)
        if c is not None and (_isalnum(c) or c in ":_"):
            buf = []
            while True:
                buf.append(c)
                c = self.lgetc()
                if c is None or not _allowed_in_string(c):
                    break
            self.lungetc(c)
            word = "".join(buf)
            return Token(KW if word in KEYWORDS else STRING, word, line)
        if c == "\n":
            self.lineno += 1
            return Token(NL, "\n", line)
        if c is None:
            return Token(EOF, "", line)
        return Token(CHAR, c, line)


# ---------------------------------------------------------------------------- parse results


@dataclass
class TableDef:
    flags: set
    init_addr: bool
    entries: dict  # canonical key -> negated


@dataclass
class Ruleset:
    """One anchor's worth of parsed rules (what a DIOCXBEGIN..COMMIT replaces)."""

    rules: dict = field(default_factory=lambda: {k: [] for k in ("scrub", "nat", "rdr", "binat", "dummynet", "filter")})
    tables: dict = field(default_factory=dict)
    options: list = field(default_factory=list)
    loads: list = field(default_factory=list)  # (anchor path, file name)
    skip: list | None = None
    debug: str | None = None
    hostid: int | None = None


@dataclass
class Host:
    neg: bool = False
    any: bool = False
    table: str | None = None
    family: int | None = None
    value: int = 0
    plen: int = 0
    bad_mask: bool = False  # an IPv4 address with a /33../128 mask (check_netmask)

    def as_dict(self) -> dict:
        if self.table is not None:
            return {"neg": self.neg, "table": self.table}
        if self.any:
            return {"neg": self.neg, "any": True}
        return {"neg": self.neg, "hosts": [addr.format_key(self.family, self.value, self.plen)]}


ANY = Host(any=True)


@dataclass
class Port:
    op: str
    a: int
    b: int = 0

    def as_list(self) -> list:
        return [self.op, self.a] if self.op not in (":", "><", "<>") else [self.op, self.a, self.b]


# ---------------------------------------------------------------------------- rule printing


def _service_name(port: int, proto: str) -> str | None:
    try:
        return socket.getservbyport(port, proto)
    except OSError:
        return None


def port_text(port: list, proto: str | None) -> str:
    op, first = port[0], port[1]
    if op in (":", "><", "<>"):
        second = port[2]
        return f" port {first}:{second}" if op == ":" else f" port {first} {op} {second}"
    # macOS /etc/services is the IANA list, which names most ports for both tcp and udp; Debian's
    # often only for tcp, so fall back to the tcp name for udp (UNVERIFIED for rare ports)
    name = None
    if op in ("=", "!="):
        name = _service_name(first, "tcp" if proto == "tcp" else "udp") or _service_name(first, "tcp")
    return f" port {op} {name or first}"


def addr_text(spec: dict) -> str:
    if spec.get("table") is not None:
        return f"<{spec['table']}>"
    if spec.get("any"):
        return "any"
    return spec["hosts"][0]


def fromto_text(rule: dict) -> str:
    src, dst = rule["from"], rule["to"]
    proto = rule["proto"][0] if rule.get("proto") else None
    if src.get("any") and dst.get("any") and not src["neg"] and not dst["neg"] and not src.get("port") \
            and not dst.get("port"):
        return " all"
    out = [" from "]
    for i, spec in enumerate((src, dst)):
        if i:
            out.append(" to ")
        if spec["neg"]:
            out.append("! ")
        out.append(addr_text(spec))
        if spec.get("port"):
            out.append(port_text(spec["port"][0], proto))
    return "".join(out)


def flags_text(mask: int) -> str:
    return "".join(ch for i, ch in enumerate(TCP_FLAGS) if mask & (1 << i))


def rule_text(rule: dict, anchor_call: str | None = None, number: int | None = None) -> str:
    """print_rule(): the line pfctl -sr / -sn prints for a kernel rule."""
    out = [] if number is None else [f"@{number} "]
    call = anchor_call if anchor_call is not None else rule.get("anchor")
    kind = rule["ruleset"]
    if call is not None:
        word = rule["kind"]
        out.append(word if call.startswith("_") else f'{word} "{call}"')
    else:
        out.append(rule["action"])
    if rule.get("action") == "block":
        out.append(" return" if rule.get("policy") == "return" else " drop")
    if rule.get("direction"):
        out.append(f" {rule['direction']}")
    if rule.get("log"):
        out.append(" log")
    if rule.get("quick"):
        out.append(" quick")
    if rule.get("on"):
        out.append(f" on ! {rule['on']}" if rule.get("ifnot") else f" on {rule['on']}")
    if rule.get("af"):
        out.append(f" {rule['af']}")
    if rule.get("proto"):
        out.append(f" proto {rule['proto'][0]}")
    out.append(fromto_text(rule))
    flags = rule.get("flags")
    state = rule.get("state")
    if flags is not None and flags != "any":
        out.append(f" flags {flags}")
    elif (rule.get("action") == "pass" and call is None and state
          and (not rule.get("proto") or rule["proto"][0] == "tcp")):
        out.append(" flags any")
    if rule.get("action") == "pass" and call is None and not state:
        out.append(" no state")
    elif state:
        out.append(f" {state} state")
    if kind == "scrub":
        opts = rule.get("scrub_opts") or {}
        if opts.get("no-df"):
            out.append(" no-df")
        if opts.get("random-id"):
            out.append(" random-id")
        if opts.get("min-ttl"):
            out.append(f" min-ttl {opts['min-ttl']}")
        if opts.get("max-mss"):
            out.append(f" max-mss {opts['max-mss']}")
        if opts.get("reassemble-tcp"):
            out.append(" reassemble tcp")
        out.append(f" fragment {opts.get('fragment') or 'reassemble'}")
    if rule.get("label") is not None:
        out.append(f' label "{rule["label"]}"')
    return "".join(out)


# ---------------------------------------------------------------------------- parser


class Parser:
    """parse_rules() for one file loaded into `anchor` (its path, "" for the main ruleset)."""

    def __init__(self, filename: str, text: str, anchor: str, *, macros: dict | None = None,
                 loadopt: set | None = None, verbose: int = 0, err=None):
        self.filename = filename
        self.anchor = anchor
        self.err = err or sys.stderr
        self.errors = 0
        self.symbols: dict[str, tuple[str, bool]] = {k: (v, True) for k, v in (macros or {}).items()}
        self.lexer = Lexer(text, self.report, self.symget)
        self.lookahead: Token | None = None
        self.rulestate = STATE_NONE
        self.require_order = True
        self.blockpolicy = "drop"
        self.loadopt = loadopt if loadopt is not None else {"filter", "nat", "table", "option"}
        self.verbose = verbose
        self.result = Ruleset()

    # -------------------------------------------------------------- plumbing

    def report(self, line: int, message: str) -> None:
        """yyerror()."""
        self.errors += 1
        self.err.write(f"{self.filename}:{line}: {message}\n")

    def error(self, message: str, token: Token | None = None) -> None:
        self.report((token or self.peek()).line, message)

    def fail(self, message: str, token: Token | None = None):
        self.error(message, token)
        raise _Abort()

    def unsupported(self, what: str, token: Token | None = None):
        line = (token or self.peek()).line
        raise LabUnsupported(f"{self.filename}:{line}: {what}")

    def symget(self, name: str) -> str | None:
        entry = self.symbols.get(name)
        return entry[0] if entry else None

    def peek(self) -> Token:
        if self.lookahead is None:
            self.lookahead = self.lexer.next()
        return self.lookahead

    def take(self) -> Token:
        token = self.peek()
        self.lookahead = None
        return token

    def syntax_error(self):
        token = self.peek()
        self.report(token.line, "syntax error")
        if token.kind == EOF:
            raise _Stop()
        raise _Abort()

    def expect_char(self, char: str) -> Token:
        if not self.peek().is_char(char):
            self.syntax_error()
        return self.take()

    def expect_kw(self, word: str) -> Token:
        if not self.peek().is_kw(word):
            self.syntax_error()
        return self.take()

    def expect_string(self) -> Token:
        if self.peek().kind != STRING:
            self.syntax_error()
        return self.take()

    def string(self) -> str:
        """parse.y `string`: one or more STRINGs joined by a space."""
        parts = [self.expect_string().value]
        while self.peek().kind == STRING:
            parts.append(self.take().value)
        return " ".join(parts)

    def end_statement(self) -> Token:
        """The statement's '\n': semantic errors are reported on its line, like yylval.lineno."""
        if self.peek().kind != NL:
            self.syntax_error()
        return self.take()

    def check_rulestate(self, desired: int, token: Token) -> None:
        if self.require_order and self.rulestate > desired:
            self.fail(ORDER_MESSAGE, token)
        self.rulestate = desired

    # -------------------------------------------------------------- entry point

    def parse(self) -> Ruleset:
        while True:
            token = self.peek()
            if token.kind == EOF:
                break
            try:
                self.statement()
            except _Abort:
                self.recover()
            except _Stop:
                break
        return self.result

    def recover(self) -> None:
        while True:
            token = self.take()
            if token.kind in (NL, EOF):
                return

    def statement(self) -> None:
        token = self.peek()
        if token.kind == NL:
            self.take()
            return
        if token.kind == STRING:
            return self.varset()
        if token.kind != KW:
            if token.is_char("{"):
                self.unsupported("inline anchor rules ('{ ... }')")
            self.syntax_error()
        word = token.value
        if word == "set":
            return self.option()
        if word == "table":
            return self.tabledef()
        if word == "load":
            return self.loadrule()
        if word in ANCHOR_KINDS:
            return self.anchorrule()
        if word in ("pass", "block"):
            return self.pfrule()
        if word == "scrub":
            return self.scrubrule()
        if word == "no":
            self.take()
            if self.peek().is_kw("scrub"):
                self.unsupported("'no scrub' rules")
            if self.peek().is_kw("nat", "rdr", "binat"):
                self.unsupported(f"'no {self.peek().value}' rules")
            self.syntax_error()
        if word in ("nat", "rdr", "binat", "antispoof", "altq", "queue", "dummynet"):
            self.unsupported(f"'{word}' rules")
        self.syntax_error()

    # -------------------------------------------------------------- statements

    def varset(self) -> None:
        name = self.take()
        self.expect_char("=")
        value = self.string()
        self.end_statement()
        current = self.symbols.get(name.value)
        if current is None or not current[1]:  # -D macros persist over file definitions
            self.symbols[name.value] = (value, False)

    def option(self) -> None:
        self.take()
        token = self.peek()
        if token.kind != KW:
            self.syntax_error()
        word = token.value
        handler = getattr(self, "_set_" + word.replace("-", "_"), None)
        if handler is None:
            self.syntax_error()
        self.take()
        text = handler()
        if text is not None:
            self.result.options.append(text)

    def _set_block_policy(self) -> str:
        policy = self.peek()
        if not policy.is_kw("drop", "return"):
            self.syntax_error()
        self.take()
        self.check_rulestate(STATE_OPTION, self.end_statement())
        self.blockpolicy = policy.value
        return f"set block-policy {policy.value}"

    def _set_require_order(self) -> str:
        value = self.peek()  # yesno: NO is a keyword, "yes" a STRING
        if not value.is_kw("no"):
            value = self.expect_string()
        else:
            self.take()
        self.end_statement()
        if value.value not in ("yes", "no"):
            self.fail(f"invalid value '{value.value}', expected 'yes' or 'no'", value)
        self.require_order = value.value == "yes"  # no check_rulestate here (parse.y)
        return f"set require-order {value.value}"

    def _set_skip(self) -> str:
        interfaces = self.interface() or []
        self.end_statement()
        names = [name for _, name in interfaces]
        if not names or names == ["none"]:
            if "option" in self.loadopt:
                self.result.skip = []  # pfctl_set_interface_flags(pf, "", SKIP, 0) clears them all
            return "set skip on none"
        if any(neg for neg, _ in interfaces):
            self.fail("skip on ! <interface> is not supported")
        if "option" in self.loadopt:
            skip = list(self.result.skip or [])
            skip += [n for n in names if n not in skip]
            self.result.skip = skip
        return "set skip on { " + " ".join(names) + " }"

    def _set_debug(self) -> str:
        level = self.expect_string()
        self.check_rulestate(STATE_OPTION, self.end_statement())
        levels = {"none": "None", "urgent": "Urgent", "misc": "Misc", "loud": "Loud"}
        if level.value not in levels:
            self.err.write(f'pfctl: unknown debug level "{level.value}"\n')
            self.fail(f"error setting debuglevel {level.value}", level)
        self.result.debug = levels[level.value]
        return f"set debug {level.value}"

    def _set_hostid(self) -> str:
        value = self.number()
        end = self.end_statement()
        if value == 0:
            self.fail("hostid must be non-zero", end)
        self.result.hostid = value & 0xFFFFFFFF
        return f"set hostid 0x{value & 0xFFFFFFFF:08x}"

    def _set_optimization(self) -> str:
        value = self.expect_string()
        self.check_rulestate(STATE_OPTION, self.end_statement())
        if value.value.lower() not in ("normal", "satellite", "high-latency", "conservative", "aggressive"):
            self.err.write("pfctl: invalid state timeouts optimization\n")
            self.fail(f"unknown optimization {value.value}", value)
        return f"set optimization {value.value}"

    def _set_ruleset_optimization(self) -> str:
        value = self.expect_string()
        self.end_statement()
        if value.value not in ("none", "basic", "profile"):
            self.fail(f"unknown ruleset-optimization {value.value}", value)
        if value.value != "none":
            self.unsupported(f"'set ruleset-optimization {value.value}' (the optimizer reorders rules)", value)
        return "set ruleset-optimization none"

    def _set_loginterface(self) -> str:
        value = self.expect_string()
        self.check_rulestate(STATE_OPTION, self.end_statement())
        return f"set loginterface {value.value}"

    def _set_fingerprints(self) -> str:
        self.unsupported("'set fingerprints' (OS fingerprint files)")

    def _set_state_policy(self) -> str:
        value = self.peek()
        if not value.is_kw("if-bound", "floating"):
            self.syntax_error()
        self.take()
        self.end_statement()
        if value.value == "if-bound":
            self.unsupported("'set state-policy if-bound' (the lab's states are floating)", value)
        return "set state-policy floating"

    def _set_timeout(self) -> str:
        return self._set_pairs("timeout", TIMEOUTS, "Bad timeout name.", "unknown timeout {0}")

    def _set_limit(self) -> str:
        return self._set_pairs("limit", LIMITS, "Bad pool name.", "unable to set limit {0} {1}")

    def _set_pairs(self, word: str, names: tuple, warning: str, error: str) -> str:
        pairs = []
        if self.peek().is_char("{"):
            self.take()
            while not self.peek().is_char("}"):
                pairs.append((self.expect_string(), self.number()))
                if self.peek().is_char(","):
                    self.take()
            self.take()
        else:
            pairs.append((self.expect_string(), self.number()))
        end = self.end_statement()
        for name, value in pairs:
            self.check_rulestate(STATE_OPTION, end)
            if name.value.lower() not in names:
                self.err.write(f"pfctl: {warning}\n")
                self.fail(error.format(name.value, value), end)
        return f"set {word} " + ", ".join(f"{k.value} {v}" for k, v in pairs)

    def number(self) -> int:
        token = self.expect_string()
        value = _atoul(token.value)
        if value is None:
            self.fail(f"{token.value} is not a number", token)
        return value

    def interface_list(self) -> list[tuple[bool, str]]:
        """`interface` without ON: if_item_not | '{' if_list '}'."""
        items = []
        if self.peek().is_char("{"):
            self.take()
            while True:
                items.append(self.if_item_not())
                if self.peek().is_char(","):
                    self.take()
                if self.peek().is_char("}"):
                    self.take()
                    break
        else:
            items.append(self.if_item_not())
        return items

    def if_item_not(self) -> tuple[bool, str]:
        neg = False
        if self.peek().is_char("!"):
            self.take()
            neg = True
        token = self.expect_string()
        if len(token.value) >= 16:  # IFNAMSIZ
            self.fail("interface name too long", token)
        return neg, token.value

    def loadrule(self) -> None:
        start = self.take()
        self.expect_kw("anchor")
        name = self.string()
        self.expect_kw("from")
        filename = self.string()
        self.end_statement()
        full = f"{self.anchor}/{name}" if self.anchor else name
        if len(full) >= 1024:
            self.fail(f"anchorname {name} too long, max 1023\n", start)
        self.result.loads.append((full, filename))

    def tabledef(self) -> None:
        self.take()
        self.expect_char("<")
        name = self.expect_string()
        self.expect_char(">")
        flags: set = set()
        init_addr = False
        sources: list = []  # ("file", path) | ("hosts", [Host])
        while self.peek().kind != NL:
            token = self.peek()
            if token.kind == STRING:
                self.take()
                if token.value in ("const", "persist", "counters"):
                    flags.add(token.value)
                else:
                    self.fail(f"invalid table option '{token.value}'", token)
            elif token.is_kw("file"):
                self.take()
                sources.append(("file", self.expect_string().value))
                init_addr = True
            elif token.is_char("{"):
                self.take()
                if self.peek().is_char("}"):
                    self.take()
                    init_addr = True
                    continue
                hosts = self.host_list_body()
                for host in hosts:
                    if host.table is not None:
                        self.fail("tables cannot contain tables", self.peek())
                sources.append(("hosts", hosts))
                init_addr = True
            else:
                self.syntax_error()
        end = self.end_statement()
        if len(name.value) >= 32:
            self.fail("table name too long, max 31 chars", end)
        if "table" not in self.loadopt:
            return
        entries: dict = {}
        for kind, source in sources:
            if kind == "file":
                self.table_file(source, entries, end)
            else:
                for host in source:
                    if host.any:
                        continue
                    key = addr.format_key(host.family, host.value, host.plen)
                    entries.setdefault(key, host.neg)
        self.result.tables[name.value] = TableDef(flags, init_addr, entries)

    def table_file(self, path: str, entries: dict, token: Token) -> None:
        """pfr_buf_load for `file "path"` in a table definition (process_tabledef's messages)."""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except IsADirectoryError:
            self.fail(f'cannot load "{path}": Is a directory', token)
        except OSError as exc:
            self.fail(f'cannot load "{path}": {_strerror(exc)}', token)
        tokens, too_long = addr.file_tokens(data)
        try:
            for word in tokens:
                neg, key = addr.table_entry(word)
                entries.setdefault(key, neg)
        except addr.HostError as exc:
            self.err.write(exc.message + "\n")
            self.fail(f'file "{path}" contains bad data', token)
        except addr.CannotDecode:
            self.fail(f'cannot load "{path}": Invalid argument', token)
        except addr.LabUnsupported as exc:
            raise LabUnsupported(f"{self.filename}:{token.line}: {exc} in {path}") from None
        if too_long:
            self.fail(f'cannot load "{path}": Invalid argument', token)

    # -------------------------------------------------------------- rules

    def anchorrule(self) -> None:
        start = self.take()
        word = start.value
        kind = ANCHOR_KINDS[word]
        rule = self.new_rule(kind)
        if word == "anchor":
            name = None
            if self.peek().kind == STRING:
                name = self.take().value
            rule["direction"] = self.direction()
            rule["quick"] = self.take().value == "quick" if self.peek().is_kw("quick") else False
        else:
            name = self.string()
            if word in ("scrub-anchor", "dummynet-anchor"):
                # Apple-only keywords; their grammar is UNVERIFIED: accept a direction like anchor rules
                rule["direction"] = self.direction()
        interfaces = self.interface()
        rule["af"] = self.af()
        protos = self.protos()
        src, dst = self.fromto()
        if word == "anchor":
            self.filter_opts(rule, anchor=True)
            if self.peek().is_char("{"):
                self.unsupported("inline anchor rules ('anchor { ... }')")
        elif self.peek().is_kw("rtable"):
            self.unsupported(f"'{word} ... rtable'")
        start = self.end_statement()
        state = {"filter": STATE_FILTER, "scrub": STATE_SCRUB, "dummynet": STATE_DUMMYNET}.get(kind, STATE_NAT)
        self.check_rulestate(state, start)
        if name is None:
            self.fail("anchors without explicit rules must specify a name", start)
        if word == "anchor" and (name.startswith("_") or "/_" in name):
            self.fail("anchor names beginning with '_' are reserved for internal use", start)
        if word == "rdr-anchor" and src[1] is not None:
            self.fail("source port parameter not supported in rdr-anchor", start)
        if word == "rdr-anchor" and dst[1] is not None:
            if len(dst[1]) > 1:
                self.fail("destination port list expansion not supported in rdr-anchor", start)
            if dst[1][0].op != "=":
                self.fail("destination port operators not supported in rdr-anchor", start)
        if word == "binat-anchor":
            if protos and len(protos) > 1:
                self.fail("proto list expansion not supported in binat-anchor", start)
            if src != (None, None) or dst != (None, None):
                self.fail("fromto parameter not supported in binat-anchor", start)
        rule["anchor"] = name
        rule["kind"] = word  # docs/lab-design.md: anchor calls carry their keyword as "kind"
        rule["anchor_path"], rule["wildcard"] = resolve_anchor_call(self.anchor, name)
        self.expand(rule, interfaces, protos, src, dst, start)

    def scrubrule(self) -> None:
        start = self.take()
        rule = self.new_rule("scrub")
        rule["action"] = "scrub"
        rule["direction"] = self.direction()
        log, quick = self.logquick()
        rule["log"] = log
        interfaces = self.interface()
        rule["af"] = self.af()
        protos = self.protos()
        src, dst = self.fromto()
        opts: dict = {}
        while self.peek().kind != NL:
            token = self.take()
            if token.is_kw("no-df"):
                opts["no-df"] = True
            elif token.is_kw("random-id"):
                opts["random-id"] = True
            elif token.is_kw("min-ttl", "max-mss"):
                value = self.number()
                if token.value == "min-ttl" and value > 255:
                    self.fail(f"illegal min-ttl value {value}", token)
                if token.value == "max-mss" and value > 65535:
                    self.fail(f"illegal max-mss value {value}", token)
                opts[token.value] = value
            elif token.is_kw("fragment"):
                how = self.take()
                mapping = {"reassemble": "reassemble", "crop": "crop", "drop-ovl": "drop-ovl"}
                if how.kind != KW or how.value not in mapping:
                    self.lookahead = how
                    self.syntax_error()
                opts["fragment"] = mapping[how.value]
            elif token.is_kw("reassemble"):
                what = self.expect_string()
                if what.value.lower() != "tcp":
                    self.fail(f"scrub reassemble supports only tcp, not '{what.value}'", what)
                opts["reassemble-tcp"] = True
            else:
                self.lookahead = token
                if token.is_kw("rtable"):
                    self.unsupported("scrub option 'rtable'")
                self.syntax_error()
        start = self.end_statement()
        self.check_rulestate(STATE_SCRUB, start)
        if quick:
            self.fail("scrub rules do not support 'quick'", start)
        if opts.get("reassemble-tcp") and rule["direction"]:
            self.fail("reassemble tcp rules can not specify direction", start)
        rule["scrub_opts"] = opts
        self.expand(rule, interfaces, protos, src, dst, start)

    def pfrule(self) -> None:
        start = self.take()
        rule = self.new_rule("filter")
        rule["action"] = start.value
        if start.value == "block":
            token = self.peek()
            if token.is_kw("drop", "return"):
                self.take()
                rule["policy"] = token.value
            elif token.is_kw("return-rst", "return-icmp", "return-icmp6"):
                self.unsupported(f"'block {token.value}'")
            else:
                rule["policy"] = self.blockpolicy
        rule["direction"] = self.direction()
        rule["log"], rule["quick"] = self.logquick()
        interfaces = self.interface()
        if self.peek().is_kw("route-to", "reply-to", "dup-to", "fastroute"):
            self.unsupported(f"'{self.peek().value}' routing")
        rule["af"] = self.af()
        protos = self.protos()
        src, dst = self.fromto()
        marker = self.filter_opts(rule, anchor=False)
        start = self.end_statement()
        self.check_rulestate(STATE_FILTER, start)
        flags = rule.pop("_flags", None)
        if flags is not None:
            if flags[0] & flags[1] != flags[0]:
                self.fail("flags always false", start)
            if protos is not None and "tcp" not in protos:
                self.fail("flags only apply to tcp", start)
        # 'keep state' by default on pass rules, and 'flags S/SA' on stateful ones (OpenBSD 4.1)
        if rule["action"] == "pass" and "keep" not in marker:
            rule["state"] = "keep"
        if flags is None and rule["action"] == "pass" and rule["state"] and "flags" not in marker:
            flags = (0b10, 0b10010)  # S/SA
        rule["_flagbits"] = flags
        self.expand(rule, interfaces, protos, src, dst, start)

    def new_rule(self, kind: str) -> dict:
        return {
            "ruleset": kind, "action": None, "policy": None, "direction": None, "log": False, "quick": False,
            "on": None, "ifnot": False, "af": None, "proto": None, "from": None, "to": None,
            "flags": None, "state": None, "label": None,
        }

    def direction(self) -> str | None:
        if self.peek().is_kw("in", "out"):
            return self.take().value
        return None

    def logquick(self) -> tuple[bool, bool]:
        log = quick = False
        for _ in range(2):
            token = self.peek()
            if token.is_kw("log") and not log:
                self.take()
                if self.peek().is_char("("):
                    self.unsupported("log options ('log (...)')")
                log = True
            elif token.is_kw("quick") and not quick:
                self.take()
                quick = True
        return log, quick

    def interface(self) -> list[tuple[bool, str]] | None:
        if not self.peek().is_kw("on"):
            return None
        self.take()
        return self.interface_list()

    def af(self) -> str | None:
        if self.peek().is_kw("inet", "inet6"):
            return self.take().value
        return None

    def protos(self) -> list[str] | None:
        if not self.peek().is_kw("proto"):
            return None
        self.take()
        items = []
        if self.peek().is_char("{"):
            self.take()
            while True:
                items.append(self.proto_item())
                if self.peek().is_char(","):
                    self.take()
                if self.peek().is_char("}"):
                    self.take()
                    break
        else:
            items.append(self.proto_item())
        return items

    def proto_item(self) -> str:
        token = self.expect_string()
        number = _atoul(token.value)
        if number is not None:
            if number > 255:
                self.fail("protocol outside range", token)
        else:
            number = PROTOCOLS.get(token.value, PROTO_ALIASES.get(token.value))
            if number is None:
                self.fail(f"unknown protocol {token.value}", token)
        if number == 0:
            self.fail("proto 0 cannot be used", token)
        return PROTO_NAMES.get(number, str(number))

    def fromto(self):
        """((src hosts | None, src ports | None), (dst hosts | None, dst ports | None))."""
        if self.peek().is_kw("all"):
            self.take()
            return (None, None), (None, None)
        src = (None, None)
        dst = (None, None)
        if self.peek().is_kw("from"):
            self.take()
            src = self.ipportspec()
        if self.peek().is_kw("os"):
            self.unsupported("OS fingerprint matching ('os')")
        if self.peek().is_kw("to"):
            self.take()
            dst = self.ipportspec()
        return src, dst

    def ipportspec(self):
        hosts = None
        if not self.peek().is_kw("port"):
            hosts = self.ipspec()
        ports = None
        if self.peek().is_kw("port"):
            self.take()
            ports = self.portspec()
        elif hosts is None and not self.peek().is_kw("port"):
            pass
        return hosts, ports

    def ipspec(self) -> list[Host] | None:
        token = self.peek()
        if token.is_kw("any"):
            self.take()
            return None
        if token.is_char("{"):
            self.take()
            return self.host_list_body()
        return self.xhost()

    def host_list_body(self) -> list[Host] | None:
        """host_list '}' (after the opening brace); `any` items vanish like in parse.y."""
        result: list[Host] | None = None
        while True:
            item = self.ipspec()
            if item is not None:
                result = (result or []) + item
            if self.peek().is_char(","):
                self.take()
            if self.peek().is_char("}"):
                self.take()
                return result

    def xhost(self) -> list[Host]:
        neg = False
        if self.peek().is_char("!"):
            self.take()
            neg = True
        token = self.peek()
        if token.is_kw("no-route", "urpf-failed"):
            self.unsupported(f"'{token.value}' addresses")
        if token.is_kw("route"):
            self.unsupported("route label addresses")
        if token.is_char("("):
            self.unsupported("dynamic interface addresses ('(if)')")
        if token.is_char("<"):
            self.take()
            name = self.expect_string()
            self.expect_char(">")
            if len(name.value) >= 32:
                self.fail(f"table name '{name.value}' too long", name)
            return [Host(neg=neg, table=name.value)]
        word = self.expect_string()
        text = word.value
        if self.peek().is_char("/"):
            self.take()
            text = f"{text}/{self.number()}"
        try:
            family, value, plen = addr.parse_host(text)
        except addr.LabUnsupported as exc:
            raise LabUnsupported(f"{self.filename}:{word.line}: {exc}") from None
        except addr.HostError as exc:
            self.err.write(exc.message + "\n")
            self.fail("could not parse host specification", word)
        except addr.CannotDecode as exc:
            return [Host(neg=neg, family=exc.family, value=exc.value, plen=exc.plen, bad_mask=True)]
        return [Host(neg=neg, family=family, value=value, plen=plen)]

    def portspec(self) -> list[Port]:
        if self.peek().is_char("{"):
            self.take()
            items = []
            while True:
                items.append(self.port_item())
                if self.peek().is_char(","):
                    self.take()
                if self.peek().is_char("}"):
                    self.take()
                    return items
        return [self.port_item()]

    def port_item(self) -> Port:
        token = self.peek()
        op = None
        if token.kind == CHAR and token.value in "=!<>":
            self.take()
            if token.value == "!":
                self.expect_char("=")
                op = "!="
            elif token.value in "<>" and self.peek().is_char("="):
                self.take()
                op = token.value + "="
            else:
                op = token.value
            first, second, ranged = self.port()
            if ranged:
                self.fail("':' cannot be used with an other port operator")
            return Port(op, first)
        first, second, ranged = self.port()
        if self.peek().kind == PORTBINARY:
            binop = self.take().value
            other, _, ranged2 = self.port()
            if ranged or ranged2:
                self.fail("':' cannot be used with an other port operator")
            return Port(binop, first, other)
        if ranged:
            return Port(":", first, second)
        return Port("=", first)

    def port(self) -> tuple[int, int, bool]:
        token = self.expect_string()
        if ":" in token.value:
            left, _, right = token.value.partition(":")
            return self.service(left, token), self.service(right, token), True
        return self.service(token.value, token), 0, False

    def service(self, text: str, token: Token) -> int:
        number = _atoul(text)
        if number is not None:
            if number > 65535:
                self.fail(f"illegal port value {number}", token)
            return number
        for proto in ("tcp", "udp"):
            try:
                return socket.getservbyname(text, proto)
            except OSError:
                continue
        self.fail(f"unknown port {text}", token)

    def filter_opts(self, rule: dict, anchor: bool) -> set:
        """filter_opts: flags, keep/no state, label; everything else is unsupported."""
        marker: set = set()
        while self.peek().kind != NL and not self.peek().is_char("{"):
            token = self.take()
            if token.is_kw("flags") and not anchor:
                if "flags" in marker:
                    self.fail("flags cannot be redefined", token)
                marker.add("flags")
                rule["_flags"] = self.flags()
            elif token.is_kw("no") and not anchor:
                self.expect_kw("state")
                if "keep" in marker:
                    self.fail("modulate or keep cannot be redefined", token)
                marker.add("keep")
                rule["state"] = None
            elif token.is_kw("keep", "modulate", "synproxy") and not anchor:
                self.expect_kw("state")
                if "keep" in marker:
                    self.fail("modulate or keep cannot be redefined", token)
                if self.peek().is_char("("):
                    self.unsupported("state options ('keep state (...)')")
                marker.add("keep")
                rule["state"] = token.value
            elif token.is_kw("label") and not anchor:
                if rule.get("label") is not None:
                    self.fail("label cannot be redefined", token)
                rule["label"] = self.expect_string().value
            elif token.kind == KW and token.value in (
                "user", "group", "icmp-type", "icmp6-type", "tos", "fragment", "allow-opts", "queue", "tag",
                "tagged", "probability", "rtable", "label", "flags", "keep", "modulate", "synproxy", "no",
            ):
                self.lookahead = token
                self.unsupported(f"rule option '{token.value}'")
            elif token.is_char("!") and self.peek().is_kw("tagged"):
                self.unsupported("rule option 'tagged'")
            else:
                self.lookahead = token
                self.syntax_error()
        return marker

    def flags(self) -> tuple[int, int]:
        token = self.peek()
        if token.is_kw("any"):
            self.take()
            return (0, 0)
        first = 0
        if not token.is_char("/"):
            first = self.flag()
        self.expect_char("/")
        return (first, self.flag())

    def flag(self) -> int:
        token = self.expect_string()
        bits = 0
        for ch in token.value:
            index = TCP_FLAGS.find(ch)
            if index < 0:
                self.fail(f"bad flags {token.value}", token)
            bits |= 1 << index
        return bits

    # -------------------------------------------------------------- expansion (expand_rule)

    def expand(self, rule: dict, interfaces, protos, src, dst, token: Token) -> None:
        flagbits = rule.pop("_flagbits", None)
        rule.pop("_flags", None)
        src_hosts, src_ports = src
        dst_hosts, dst_ports = dst
        af = rule["af"] or _decide_af(src_hosts) or _decide_af(dst_hosts)
        added = 0
        for neg_if, ifname in interfaces or [(False, None)]:
            for proto in protos or [None]:
                for shost in src_hosts or [ANY]:
                    for sport in src_ports or [None]:
                        for dhost in dst_hosts or [ANY]:
                            for dport in dst_ports or [None]:
                                if _af_mismatch(af, shost, dhost):
                                    continue
                                bad = [h for h in (shost, dhost) if h.bad_mask]
                                if bad:
                                    # check_netmask() prints this without file:line (parse.y)
                                    self.err.write(f"netmask {bad[0].plen} invalid for IPv4 address\n")
                                    self.error("skipping rule due to errors", token)
                                    continue
                                new = dict(rule)
                                new["af"] = af or _host_af(shost) or _host_af(dhost)
                                new["on"], new["ifnot"] = ifname, neg_if and ifname is not None
                                new["proto"] = [proto] if proto else None
                                new["from"] = {**shost.as_dict(), "port": [sport.as_list()] if sport else None}
                                new["to"] = {**dhost.as_dict(), "port": [dport.as_list()] if dport else None}
                                if rule["ruleset"] == "filter" and rule.get("anchor") is None:
                                    bits = flagbits
                                    if proto and proto != "tcp":
                                        bits = None
                                    if bits is not None:
                                        new["flags"] = "any" if bits == (0, 0) else \
                                            f"{flags_text(bits[0])}/{flags_text(bits[1])}"
                                    if new["state"] in ("modulate", "synproxy") and proto and proto != "tcp":
                                        new["state"] = "keep"
                                if self.consistent(new, token):
                                    new["text"] = rule_text(new)
                                    self.result.rules[rule["ruleset"]].append(new)
                                    added += 1
                                else:
                                    self.error("skipping rule due to errors", token)
        if not added:
            self.error("rule expands to no valid combination", token)

    def consistent(self, rule: dict, token: Token) -> bool:
        """filter_consistent / rdr_consistent."""
        problems = 0
        proto = rule["proto"][0] if rule["proto"] else None
        has_ports = bool(rule["from"].get("port") or rule["to"].get("port"))
        if rule["ruleset"] in ("filter", "scrub") and proto not in ("tcp", "udp") and has_ports:
            self.error("port only applies to tcp/udp", token)
            problems += 1
        if rule["ruleset"] == "rdr" and proto not in ("tcp", "udp"):
            if rule["from"].get("port"):
                self.error("src port only applies to tcp/udp", token)
                problems += 1
            if rule["to"].get("port"):
                self.error("dst port only applies to tcp/udp", token)
                problems += 1
        if (proto == "icmp" and rule["af"] == "inet6") or (proto == "ipv6-icmp" and rule["af"] == "inet"):
            self.error(f"proto {'icmp' if proto == 'icmp' else 'icmp6'} doesn't match address family "
                       f"{rule['af']}", token)
            problems += 1
        if rule.get("action") == "block" and rule.get("state"):
            self.error("keep state on block rules doesn't make sense", token)
            problems += 1
        return problems == 0


def _atoul(text: str) -> int | None:
    value = addr.strtol0(text)
    if value is None or value < 0 or text[:1] in ("+", "-", " "):
        return None
    return value


def _strerror(exc: OSError) -> str:
    import os

    return os.strerror(exc.errno) if exc.errno else str(exc)


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


def resolve_anchor_call(current: str, name: str) -> tuple[str, bool]:
    """pf_anchor_setup: absolute (`/x`) or relative to the rule's ruleset, `..` steps, `/*` wildcard."""
    if name.startswith("/"):
        path = name[1:]
    else:
        path = current
        while name.startswith("../"):
            path = path.rpartition("/")[0] if "/" in path else ""
            name = name[3:]
        path = f"{path}/{name}" if path else name
    wildcard = False
    if path.endswith("/*"):
        path, wildcard = path[:-2], True
    return path, wildcard
