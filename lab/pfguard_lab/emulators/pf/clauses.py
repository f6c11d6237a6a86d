# SPDX-License-Identifier: GPL-3.0-or-later
"""The clauses pf.conf rules share (parse.y's `interface`, `af`, `proto`, `fromto`, `host`, `port`,
`filter_opts`, `flags`), on top of the token plumbing of a recursive-descent parser.

Errors behave like bison's: `fail()` reports `FILE:LINE: message` and abandons the statement
(YYERROR); parser.py skips to the end of the line and goes on. Constructs real pfctl accepts and the
lab does not model raise LabUnsupported.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from . import addr
from .grammar import (
    IFNAMSIZ,
    PORT_MAX,
    PORT_RANGES,
    PORT_UNARY,
    PROTO_MAX,
    SPECIAL_ADDRESSES,
    STATE_KEYWORDS,
    TABLE_NAME_MAX,
    TCP_FLAGS,
    UNMODELLED_FILTER_OPTS,
)
from .lexer import CHAR, EOF, KW, NL, PORTBINARY, STRING, Token
from .protocols import PROTO_ALIASES, PROTO_NAMES, PROTOCOLS


class LabUnsupported(Exception):
    """A construct real pfctl accepts that the lab does not model."""


class Abort(Exception):
    """YYERROR / syntax error: skip to the end of the statement."""


class Stop(Exception):
    """Unrecoverable syntax error (at EOF): yyparse returns."""


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
        return [self.op, self.a] if self.op not in PORT_RANGES else [self.op, self.a, self.b]


def atoul(text: str) -> int | None:
    """parse.y's NUMBER: a whole unsigned strtol(..., 0) number, else None."""
    value = addr.strtol0(text)
    if value is None or value < 0 or text[:1] in ("+", "-", " "):
        return None
    return value


class TokenParser:
    """Lookahead, expectations and error reporting. The subclass sets `filename`, `err` (a stream),
    `errors` (0) and `lexer`, and `lookahead` to None."""

    filename: str
    errors: int

    def report(self, line: int, message: str) -> None:
        """yyerror()."""
        self.errors += 1
        self.err.write(f"{self.filename}:{line}: {message}\n")

    def error(self, message: str, token: Token | None = None) -> None:
        self.report((token or self.peek()).line, message)

    def fail(self, message: str, token: Token | None = None):
        self.error(message, token)
        raise Abort()

    def unsupported(self, what: str, token: Token | None = None):
        line = (token or self.peek()).line
        raise LabUnsupported(f"{self.filename}:{line}: {what}")

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
            raise Stop()
        raise Abort()

    def reject(self, token: Token):
        """A syntax error at `token`, which was already taken."""
        self.lookahead = token
        self.syntax_error()

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

    def optional_kw(self, *words: str) -> str | None:
        """The keyword when the next token is one of `words` (taken), else None."""
        if self.peek().is_kw(*words):
            return self.take().value
        return None

    def string(self) -> str:
        """parse.y `string`: one or more STRINGs joined by a space."""
        parts = [self.expect_string().value]
        while self.peek().kind == STRING:
            parts.append(self.take().value)
        return " ".join(parts)

    def number(self) -> int:
        token = self.expect_string()
        value = atoul(token.value)
        if value is None:
            self.fail(f"{token.value} is not a number", token)
        return value

    def end_statement(self) -> Token:
        """The statement's '\n': semantic errors are reported on its line, like yylval.lineno."""
        if self.peek().kind != NL:
            self.syntax_error()
        return self.take()

    def braced_list(self, item) -> list:
        """`item` or `{ item [,] item ... }` (an empty list is a syntax error where `item` is)."""
        if not self.peek().is_char("{"):
            return [item()]
        self.take()
        items = []
        while True:
            items.append(item())
            if self.peek().is_char(","):
                self.take()
            if self.peek().is_char("}"):
                self.take()
                return items


class Clauses(TokenParser):
    """The pieces of pass/block/scrub/anchor rules."""

    # -------------------------------------------------------------- dir, log, quick, on, af, proto

    def direction(self) -> str | None:
        return self.optional_kw("in", "out")

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

    def interface_list(self) -> list[tuple[bool, str]]:
        """`interface` without ON: if_item_not | '{' if_list '}'."""
        return self.braced_list(self.if_item_not)

    def if_item_not(self) -> tuple[bool, str]:
        neg = False
        if self.peek().is_char("!"):
            self.take()
            neg = True
        token = self.expect_string()
        if len(token.value) >= IFNAMSIZ:
            self.fail("interface name too long", token)
        return neg, token.value

    def af(self) -> str | None:
        return self.optional_kw("inet", "inet6")

    def protos(self) -> list[str] | None:
        if not self.peek().is_kw("proto"):
            return None
        self.take()
        return self.braced_list(self.proto_item)

    def proto_item(self) -> str:
        token = self.expect_string()
        number = atoul(token.value)
        if number is not None:
            if number > PROTO_MAX:
                self.fail("protocol outside range", token)
        else:
            number = PROTOCOLS.get(token.value, PROTO_ALIASES.get(token.value))
            if number is None:
                self.fail(f"unknown protocol {token.value}", token)
        if number == 0:
            self.fail("proto 0 cannot be used", token)
        return PROTO_NAMES.get(number, str(number))

    # -------------------------------------------------------------- from/to and hosts

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
        self.refuse_dynamic_address()
        if self.peek().is_char("<"):
            self.take()
            name = self.expect_string()
            self.expect_char(">")
            if len(name.value) > TABLE_NAME_MAX:
                self.fail(f"table name '{name.value}' too long", name)
            return [Host(neg=neg, table=name.value)]
        word = self.expect_string()
        text = word.value
        if self.peek().is_char("/"):
            self.take()
            text = f"{text}/{self.number()}"
        return [self.host(text, neg, word)]

    def refuse_dynamic_address(self) -> None:
        token = self.peek()
        if token.is_kw(*SPECIAL_ADDRESSES):
            self.unsupported(f"'{token.value}' addresses")
        if token.is_kw("route"):
            self.unsupported("route label addresses")
        if token.is_char("("):
            self.unsupported("dynamic interface addresses ('(if)')")

    def host(self, text: str, neg: bool, word: Token) -> Host:
        """parse.y `host: STRING`: pfctl's host(), which prints its own message before the parse error."""
        try:
            family, value, plen = addr.parse_host(text)
        except addr.LabUnsupported as exc:
            raise LabUnsupported(f"{self.filename}:{word.line}: {exc}") from None
        except addr.HostError as exc:
            self.err.write(exc.message + "\n")
            self.fail("could not parse host specification", word)
        except addr.CannotDecode as exc:
            return Host(neg=neg, family=exc.family, value=exc.value, plen=exc.plen, bad_mask=True)
        return Host(neg=neg, family=family, value=value, plen=plen)

    # -------------------------------------------------------------- ports

    def portspec(self) -> list[Port]:
        return self.braced_list(self.port_item)

    def port_item(self) -> Port:
        token = self.peek()
        if token.kind == CHAR and token.value in PORT_UNARY:
            self.take()
            op = self.port_operator(token)
            first, _, ranged = self.port()
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

    def port_operator(self, token: Token) -> str:
        """`=`, `!=`, `<`, `<=`, `>`, `>=` (the first character already taken)."""
        if token.value == "!":
            self.expect_char("=")
            return "!="
        if token.value in "<>" and self.peek().is_char("="):
            self.take()
            return token.value + "="
        return token.value

    def port(self) -> tuple[int, int, bool]:
        token = self.expect_string()
        if ":" in token.value:
            left, _, right = token.value.partition(":")
            return self.service(left, token), self.service(right, token), True
        return self.service(token.value, token), 0, False

    def service(self, text: str, token: Token) -> int:
        number = atoul(text)
        if number is not None:
            if number > PORT_MAX:
                self.fail(f"illegal port value {number}", token)
            return number
        for proto in ("tcp", "udp"):
            try:
                return socket.getservbyname(text, proto)
            except OSError:
                continue
        self.fail(f"unknown port {text}", token)

    # -------------------------------------------------------------- filter options

    def filter_opts(self, rule: dict, anchor: bool) -> set:
        """filter_opts: flags, keep/no state, label (not on anchor rules); anything else is unsupported."""
        marker: set = set()
        while self.peek().kind != NL and not self.peek().is_char("{"):
            token = self.take()
            if not anchor and self.filter_opt(token, rule, marker):
                continue
            if token.kind == KW and token.value in UNMODELLED_FILTER_OPTS:
                self.lookahead = token
                self.unsupported(f"rule option '{token.value}'")
            if token.is_char("!"):
                if self.peek().is_kw("tagged"):
                    self.unsupported("rule option 'tagged'")
                self.syntax_error()  # `! TAGGED` is the only option that starts with `!`
            self.reject(token)
        return marker

    def filter_opt(self, token: Token, rule: dict, marker: set) -> bool:
        """One option a filter rule may carry; False when `token` starts none."""
        if token.is_kw("flags"):
            if "flags" in marker:
                self.fail("flags cannot be redefined", token)
            marker.add("flags")
            rule["_flags"] = self.flags()
        elif token.is_kw("no"):
            self.expect_kw("state")
            self.state_once(token, marker)
            rule["state"] = None
        elif token.is_kw(*STATE_KEYWORDS):
            self.expect_kw("state")
            self.state_once(token, marker)
            if self.peek().is_char("("):
                self.unsupported("state options ('keep state (...)')")
            rule["state"] = token.value
        elif token.is_kw("label"):
            if rule.get("label") is not None:
                self.fail("label cannot be redefined", token)
            rule["label"] = self.expect_string().value
        else:
            return False
        return True

    def state_once(self, token: Token, marker: set) -> None:
        if "keep" in marker:
            self.fail("modulate or keep cannot be redefined", token)
        marker.add("keep")

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
