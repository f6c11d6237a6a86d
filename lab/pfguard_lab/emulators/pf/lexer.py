# SPDX-License-Identifier: GPL-3.0-or-later
"""pf.conf tokens: a transcription of parse.y's lgetc/lungetc/yylex (OpenBSD 4.1, Apple's pfctl).

Blanks are compressed, a backslash-newline continues the line, `#` comments run to the end of the
line, `$macro` is replaced by the macro's value and lexed again, quotes make one STRING of anything
up to the closing quote, and a word is a run of `allowed_in_string` characters: a KW when parse.y's
lookup() knows it, a STRING otherwise. The grammar is in parser.py.
"""

from __future__ import annotations

from dataclasses import dataclass

# token kinds
NL, EOF, STRING, KW, CHAR, PORTBINARY, ARROW, ERROR = "NL", "EOF", "STRING", "KW", "CHAR", "PB", "ARROW", "ERROR"

# parse.y lookup() keywords plus Apple's anchor kinds; any other word is a STRING
KEYWORDS = frozenset({
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
})

# yylex's two-character tokens: (first, second) -> (kind, text)
TWO_CHAR_TOKENS = {
    ("<", ">"): (PORTBINARY, "<>"),
    (">", "<"): (PORTBINARY, "><"),
    ("-", ">"): (ARROW, "->"),
}
QUOTES = ("'", '"')
NOT_IN_STRING = "(){}<>!=/#,"  # punctuation allowed_in_string() refuses


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
    return _isalnum(c) or (_ispunct(c) and c not in NOT_IN_STRING)


class Lexer:
    """parse.y's lgetc/lungetc/yylex. `report(line, message)` is yyerror, `symget(name)` the macro table."""

    def __init__(self, text: str, report, symget):
        self.text = text
        self.pos = 0
        self.lineno = 1
        self.parsebuf: str | None = None
        self.parseindex = 0
        self.pushback: list[str] = []
        self.report = report
        self.symget = symget

    # -------------------------------------------------------------- characters

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

    # -------------------------------------------------------------- tokens

    def next(self) -> Token:
        """yylex(): skip blanks and comments, expand macros, then read one token."""
        while True:
            c = self.lgetc()
            while c == " ":
                c = self.lgetc()
            line = self.lineno
            if c == "#":
                c = self._skip_comment()
            if c != "$" or self.parsebuf is not None:
                return self._token(c, line)
            failed = self._expand_macro(line)
            if failed is not None:
                return failed

    def _skip_comment(self) -> str | None:
        while True:
            c = self.lgetc()
            if c == "\n" or c is None:
                return c

    def _expand_macro(self, line: int) -> Token | None:
        """`$name`: push the macro's value back for lexing; a token only when that fails."""
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
        return None

    def _token(self, c: str | None, line: int) -> Token:
        if c in QUOTES:
            return self._quoted(c, line)
        if c in ("<", ">", "-"):
            following = self.lgetc()
            pair = TWO_CHAR_TOKENS.get((c, following))
            if pair is not None:
                return Token(pair[0], pair[1], line)
            self.lungetc(following)
        if c is not None and (_isalnum(c) or c in ":_"):
            return self._word(c, line)
        if c == "\n":
            self.lineno += 1
            return Token(NL, "\n", line)
        if c is None:
            return Token(EOF, "", line)
        return Token(CHAR, c, line)

    def _quoted(self, endc: str, line: int) -> Token:
        buf = []
        while True:
            c = self.lgetc()
            if c is None:
                return Token(EOF, "", line)
            if c == endc:
                return Token(STRING, "".join(buf), line)
            if c == "\n":
                self.lineno += 1
                continue
            buf.append(c)

    def _word(self, c: str, line: int) -> Token:
        buf = []
        while True:
            buf.append(c)
            c = self.lgetc()
            if c is None or not _allowed_in_string(c):
                break
        self.lungetc(c)
        word = "".join(buf)
        return Token(KW if word in KEYWORDS else STRING, word, line)
