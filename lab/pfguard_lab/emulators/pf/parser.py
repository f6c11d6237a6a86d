# SPDX-License-Identifier: GPL-3.0-or-later
"""pf.conf parsing the way Apple's pfctl (OpenBSD 4.1 parse.y) does it, for the subset the lab models.

The statements: macros, `set` options, `table`, `load anchor`, anchor calls, `scrub`, `pass` and
`block`. Tokens come from lexer.py, the keyword tables from grammar.py, the clauses rules share from
clauses.py; rules are expanded by expand.py and printed by printer.py. Errors are reported like bison
reports them (`FILE:LINE: message`), after which the parser skips to the end of the statement.
Constructs real pfctl accepts but the lab does not model raise LabUnsupported (loud failure).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from . import addr
from .clauses import Abort, Clauses, LabUnsupported, Stop
from .expand import expand_rule
from .grammar import (
    ANCHOR_KINDS,
    ANCHOR_PATH_MAX,
    BLOCK_POLICIES,
    BLOCK_RETURNS,
    DEBUG_LEVELS,
    FRAGMENT_MODES,
    NEGATED_RULES,
    OPTIMIZATIONS,
    ORDER_MESSAGE,
    PAIR_OPTIONS,
    ROUTING_OPTS,
    RULE_CLASS,
    RULESET_OPTIMIZATIONS,
    RULESETS,
    SCRUB_FLAGS,
    SCRUB_NUMBERS,
    SET_OPTIONS,
    STATE_FILTER,
    STATE_NONE,
    STATE_OPTION,
    STATE_POLICIES,
    STATE_SCRUB,
    STATEMENTS,
    TABLE_FLAGS,
    TABLE_NAME_MAX,
    UNSUPPORTED_STATEMENTS,
)
from .lexer import EOF, KW, NL, STRING, Lexer, Token

__all__ = ["LabUnsupported", "Parser", "Ruleset", "TableDef", "resolve_anchor_call"]


@dataclass
class TableDef:
    flags: set
    init_addr: bool
    entries: dict  # canonical key -> negated
    line: int = 0  # where it is defined, for process_tabledef's "cannot define table" message
    filename: str = ""


@dataclass
class Ruleset:
    """One anchor's worth of parsed rules (what a DIOCXBEGIN..COMMIT replaces)."""

    rules: dict = field(default_factory=lambda: {k: [] for k in RULESETS})
    tables: dict = field(default_factory=dict)
    options: list = field(default_factory=list)
    loads: list = field(default_factory=list)  # (anchor path, file name)
    skip: list | None = None
    debug: str | None = None
    hostid: int | None = None
    limits: dict = field(default_factory=dict)  # `set limit NAME N`, lower-case names


class Parser(Clauses):
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

    def symget(self, name: str) -> str | None:
        entry = self.symbols.get(name)
        return entry[0] if entry else None

    def check_rulestate(self, desired: int, token: Token) -> None:
        if self.require_order and self.rulestate > desired:
            self.fail(ORDER_MESSAGE, token)
        self.rulestate = desired

    # -------------------------------------------------------------- entry point

    def parse(self) -> Ruleset:
        while self.peek().kind != EOF:
            try:
                self.statement()
            except Abort:
                self.recover()
            except Stop:
                break
        return self.result

    def recover(self) -> None:
        while self.take().kind not in (NL, EOF):
            pass

    def statement(self) -> None:
        token = self.peek()
        if token.kind == NL:
            self.take()
            return None
        if token.kind == STRING:
            return self.varset()
        if token.kind != KW:
            if token.is_char("{"):
                self.unsupported("inline anchor rules ('{ ... }')")
            self.syntax_error()
        production = STATEMENTS.get(token.value)
        if production is not None:
            return getattr(self, production)()
        if token.value in UNSUPPORTED_STATEMENTS:
            self.unsupported(f"'{token.value}' rules")
        return self.syntax_error()

    # -------------------------------------------------------------- macros and options

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
        handler = SET_OPTIONS.get(token.value) if token.kind == KW else None
        if handler is None:
            self.syntax_error()
        self.take()
        self.result.options.append(getattr(self, handler)())

    def set_block_policy(self) -> str:
        policy = self.peek()
        if not policy.is_kw(*BLOCK_POLICIES):
            self.syntax_error()
        self.take()
        self.check_rulestate(STATE_OPTION, self.end_statement())
        self.blockpolicy = policy.value
        return f"set block-policy {policy.value}"

    def set_require_order(self) -> str:
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

    def set_skip(self) -> str:
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

    def set_debug(self) -> str:
        level = self.expect_string()
        self.check_rulestate(STATE_OPTION, self.end_statement())
        if level.value not in DEBUG_LEVELS:
            self.err.write(f'pfctl: unknown debug level "{level.value}"\n')
            self.fail(f"error setting debuglevel {level.value}", level)
        self.result.debug = DEBUG_LEVELS[level.value]
        return f"set debug {level.value}"

    def set_hostid(self) -> str:
        value = self.number()
        end = self.end_statement()
        if value == 0:
            self.fail("hostid must be non-zero", end)
        self.result.hostid = value & 0xFFFFFFFF
        return f"set hostid 0x{value & 0xFFFFFFFF:08x}"

    def set_optimization(self) -> str:
        value = self.expect_string()
        self.check_rulestate(STATE_OPTION, self.end_statement())
        if value.value.lower() not in OPTIMIZATIONS:
            self.err.write("pfctl: invalid state timeouts optimization\n")
            self.fail(f"unknown optimization {value.value}", value)
        return f"set optimization {value.value}"

    def set_ruleset_optimization(self) -> str:
        value = self.expect_string()
        self.end_statement()
        if value.value not in RULESET_OPTIMIZATIONS:
            self.fail(f"unknown ruleset-optimization {value.value}", value)
        if value.value != "none":
            self.unsupported(f"'set ruleset-optimization {value.value}' (the optimizer reorders rules)", value)
        return "set ruleset-optimization none"

    def set_loginterface(self) -> str:
        value = self.expect_string()
        self.check_rulestate(STATE_OPTION, self.end_statement())
        return f"set loginterface {value.value}"

    def set_fingerprints(self) -> str:
        self.unsupported("'set fingerprints' (OS fingerprint files)")

    def set_state_policy(self) -> str:
        value = self.peek()
        if not value.is_kw(*STATE_POLICIES):
            self.syntax_error()
        self.take()
        self.end_statement()
        if value.value == "if-bound":
            self.unsupported("'set state-policy if-bound' (the lab's states are floating)", value)
        return "set state-policy floating"

    def set_timeout(self) -> str:
        return self.set_pairs("timeout")

    def set_limit(self) -> str:
        return self.set_pairs("limit")

    def set_pairs(self, word: str) -> str:
        """`set timeout|limit NAME VALUE` or `{ NAME VALUE [,] ... }`."""
        names, warning, error = PAIR_OPTIONS[word]
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
            if word == "limit":
                self.result.limits[name.value.lower()] = value
        return f"set {word} " + ", ".join(f"{k.value} {v}" for k, v in pairs)

    # -------------------------------------------------------------- tables and anchors to load

    def loadrule(self) -> None:
        start = self.take()
        self.expect_kw("anchor")
        name = self.string()
        self.expect_kw("from")
        filename = self.string()
        self.end_statement()
        full = f"{self.anchor}/{name}" if self.anchor else name
        if len(full) > ANCHOR_PATH_MAX:
            self.fail(f"anchorname {name} too long, max 1023\n", start)
        self.result.loads.append((full, filename))

    def tabledef(self) -> None:
        self.take()
        self.expect_char("<")
        name = self.expect_string()
        self.expect_char(">")
        flags, init_addr, sources = self.table_opts()
        end = self.end_statement()
        if len(name.value) > TABLE_NAME_MAX:
            self.fail(f"table name too long, max {TABLE_NAME_MAX} chars", end)
        if "table" not in self.loadopt:
            return
        entries: dict = {}
        for kind, source in sources:
            if kind == "file":
                self.table_file(source, entries, end)
                continue
            for host in source:
                if not host.any:
                    entries.setdefault(addr.format_key(host.family, host.value, host.plen), host.neg)
        self.result.tables[name.value] = TableDef(flags, init_addr, entries, end.line, self.filename)

    def table_opts(self) -> tuple[set, bool, list]:
        """Flags, whether addresses were given (even none: `{ }`) and their sources:
        ("file", path) or ("hosts", [Host])."""
        flags: set = set()
        init_addr = False
        sources: list = []
        while self.peek().kind != NL:
            token = self.take()
            if token.kind == STRING:
                if token.value not in TABLE_FLAGS:
                    self.fail(f"invalid table option '{token.value}'", token)
                flags.add(token.value)
            elif token.is_kw("file"):
                sources.append(("file", self.expect_string().value))
            elif token.is_char("{"):
                if self.peek().is_char("}"):
                    self.take()
                else:
                    sources.append(("hosts", self.table_hosts()))
            else:
                self.reject(token)
            init_addr = init_addr or token.kind != STRING
        return flags, init_addr, sources

    def table_hosts(self) -> list:
        """`host_list '}'` inside a table definition; `{ any }` lists no address."""
        hosts = self.host_list_body() or []
        if any(host.table is not None for host in hosts):
            self.fail("tables cannot contain tables", self.peek())
        return hosts

    def table_file(self, path: str, entries: dict, token: Token) -> None:
        """pfr_buf_load for `file "path"` in a table definition (process_tabledef's messages)."""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except IsADirectoryError:
            self.fail(f'cannot load "{path}": Is a directory', token)
        except OSError as exc:
            self.fail(f'cannot load "{path}": {os.strerror(exc.errno) if exc.errno else exc}', token)
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

    def new_rule(self, kind: str) -> dict:
        return {
            "ruleset": kind, "action": None, "policy": None, "direction": None, "log": False, "quick": False,
            "on": None, "ifnot": False, "af": None, "proto": None, "from": None, "to": None,
            "flags": None, "state": None, "label": None,
        }

    def expand(self, rule: dict, interfaces, protos, src, dst, token: Token) -> None:
        rules = expand_rule(rule, interfaces, protos, src, dst,
                            lambda message: self.error(message, token), self.err.write)
        self.result.rules[rule["ruleset"]].extend(rules)

    def norule(self) -> None:
        """`no scrub`, `no nat`, ...: not modelled; `no` alone is a syntax error."""
        self.take()
        if self.peek().is_kw(*NEGATED_RULES):
            self.unsupported(f"'no {self.peek().value}' rules")
        self.syntax_error()

    def anchorrule(self) -> None:
        start = self.take()
        word = start.value
        kind = ANCHOR_KINDS[word]
        rule = self.new_rule(kind)
        if word == "anchor":
            name = self.take().value if self.peek().kind == STRING else None
            rule["direction"] = self.direction()
            rule["quick"] = self.optional_kw("quick") is not None
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
        self.check_rulestate(RULE_CLASS[kind], start)
        self.check_anchor_call(word, name, protos, src, dst, start)
        rule["anchor"] = name
        rule["kind"] = word  # docs/lab-design.md: anchor calls carry their keyword as "kind"
        rule["anchor_path"], rule["wildcard"] = resolve_anchor_call(self.anchor, name)
        self.expand(rule, interfaces, protos, src, dst, start)

    def check_anchor_call(self, word: str, name: str | None, protos, src, dst, start: Token) -> None:
        """parse.y's checks of an anchor rule, after its line was read."""
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

    def scrubrule(self) -> None:
        self.take()
        rule = self.new_rule("scrub")
        rule["action"] = "scrub"
        rule["direction"] = self.direction()
        rule["log"], quick = self.logquick()
        interfaces = self.interface()
        rule["af"] = self.af()
        protos = self.protos()
        src, dst = self.fromto()
        opts: dict = {}
        while self.peek().kind != NL:
            self.scrub_opt(self.take(), opts)
        start = self.end_statement()
        self.check_rulestate(STATE_SCRUB, start)
        if quick:
            self.fail("scrub rules do not support 'quick'", start)
        if opts.get("reassemble-tcp") and rule["direction"]:
            self.fail("reassemble tcp rules can not specify direction", start)
        rule["scrub_opts"] = opts
        self.expand(rule, interfaces, protos, src, dst, start)

    def scrub_opt(self, token: Token, opts: dict) -> None:
        """One of scrub_opts: no-df, random-id, min-ttl N, max-mss N, fragment MODE, reassemble tcp."""
        if token.is_kw(*SCRUB_FLAGS):
            opts[token.value] = True
        elif token.is_kw(*SCRUB_NUMBERS):
            value = self.number()
            if value > SCRUB_NUMBERS[token.value]:
                self.fail(f"illegal {token.value} value {value}", token)
            opts[token.value] = value
        elif token.is_kw("fragment"):
            how = self.take()
            if not how.is_kw(*FRAGMENT_MODES):
                self.reject(how)
            opts["fragment"] = how.value
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

    def pfrule(self) -> None:
        start = self.take()
        rule = self.new_rule("filter")
        rule["action"] = start.value
        if start.value == "block":
            rule["policy"] = self.block_policy()
        rule["direction"] = self.direction()
        rule["log"], rule["quick"] = self.logquick()
        interfaces = self.interface()
        if self.peek().is_kw(*ROUTING_OPTS):
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

    def block_policy(self) -> str:
        """`block drop|return`, else the `set block-policy` in force."""
        token = self.peek()
        if token.is_kw(*BLOCK_POLICIES):
            return self.take().value
        if token.is_kw(*BLOCK_RETURNS):
            self.unsupported(f"'block {token.value}'")
        return self.blockpolicy


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
