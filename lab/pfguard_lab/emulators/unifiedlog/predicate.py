# SPDX-License-Identifier: GPL-3.0-or-later
"""The NSPredicate subset that `log --predicate` accepts, evaluated against the lab's log records.

Supported: comparisons `== = != <> < <= > >= CONTAINS BEGINSWITH ENDSWITH LIKE MATCHES IN BETWEEN`
with `[c]`, `[d]`, `[cd]` (and `[n]`) modifiers; `AND/&&`, `OR/||`, `NOT/!`, parentheses,
TRUEPREDICATE/FALSEPREDICATE; string literals in double or single quotes, numbers, `{...}` sets.
Keywords are case-insensitive, key names are not (as in NSPredicate).

`parse()` raises PredicateError for what the real `log` rejects (syntax, unknown field) and
PredicateUnsupported for what it accepts but the lab does not implement (aggregates, variables,
key paths such as `threadIdentifier`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

# Key -> how a record provides it. Names as in `log help predicates` (docs/reference/macos.md#unified-log).
STRING_KEYS = {
    "process": "process",  # process name, e.g. sshd-session
    "processImagePath": "image",  # full path of the process's executable
    "sender": "sender",  # basename of the image that logged
    "senderImagePath": "sender_image",
    "subsystem": "subsystem",
    "category": "category",
    "eventMessage": "message",
    "composedMessage": "message",
}
NUMERIC_KEYS = {"processIdentifier", "messageType", "eventType"}
KNOWN_KEYS = set(STRING_KEYS) | NUMERIC_KEYS

# Real `log` keys the lab's records do not carry: accepted by macOS, so fail loudly instead.
UNSUPPORTED_KEYS = {
    "activityIdentifier", "backtrace", "bootUUID", "creatorActivityID", "formatString", "logType",
    "machContinuousTimestamp", "parentActivityIdentifier", "processImageUUID", "senderImageOffset",
    "senderImageUUID", "signpostIdentifier", "signpostName", "signpostScope", "signpostType", "size",
    "threadIdentifier", "timestamp", "traceIdentifier", "transitionActivityIdentifier", "userIdentifier",
}  # fmt: skip

# messageType / eventType accept names or numbers (os_log_type_t and the event type codes).
MESSAGE_TYPES = {"default": 0, "release": 0, "info": 1, "debug": 2, "error": 16, "fault": 17}
EVENT_TYPES = {
    "logEvent": 1024, "traceEvent": 768, "activityCreateEvent": 513, "activityTransitionEvent": 514,
    "userActionEvent": 515, "signpostEvent": 1536, "stateEvent": 1280, "timesyncEvent": 2048, "lossEvent": 1792,
}  # fmt: skip

WORD_OPERATORS = {"CONTAINS", "BEGINSWITH", "ENDSWITH", "LIKE", "MATCHES", "IN", "BETWEEN"}
SYMBOL_OPERATORS = {"==": "==", "=": "==", "!=": "!=", "<>": "!=", "<": "<", ">": ">",
                    "<=": "<=", "=<": "<=", ">=": ">=", "=>": ">="}  # fmt: skip
AGGREGATES = {"ANY", "ALL", "SOME", "NONE"}


class PredicateError(ValueError):
    """The real `log` rejects this predicate."""


class PredicateUnsupported(ValueError):
    """macOS accepts this construct, the lab does not implement it."""


# ---------------------------------------------------------------------------------------------
# AST


@dataclass
class Key:
    name: str


@dataclass
class Literal:
    value: object  # str | int | float
    bare: bool = False  # an enum name written without quotes (messageType == error)


@dataclass
class SetLiteral:
    items: list


@dataclass
class Comparison:
    left: object
    op: str
    modifiers: str
    right: object
    regex: re.Pattern | None = field(default=None, repr=False)


@dataclass
class Compound:
    kind: str  # AND | OR
    items: list


@dataclass
class Not:
    item: object


@dataclass
class Constant:
    value: bool


# ---------------------------------------------------------------------------------------------
# Tokenizer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>-?(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?))
  | (?P<modifier>\[[A-Za-z]*\])
  | (?P<symbol>==|!=|<>|<=|=<|>=|=>|&&|\|\||[=<>!(){},])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<variable>\$[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


@dataclass
class Token:
    kind: str
    text: str
    value: object = None


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.DOTALL)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise PredicateError(f'Unable to parse the format string "{text}"')
        pos = match.end()
        kind = match.lastgroup
        raw = match.group()
        if kind == "ws":
            continue
        if kind == "string":
            tokens.append(Token("string", raw, _unescape(raw[1:-1])))
        elif kind == "number":
            number = int(raw, 16) if raw.lower().startswith(("0x", "-0x")) else (float(raw) if "." in raw else int(raw))
            tokens.append(Token("number", raw, number))
        else:
            tokens.append(Token(kind, raw))
    return tokens


# ---------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    def fail(self) -> PredicateError:
        return PredicateError(f'Unable to parse the format string "{self.text}"')

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise self.fail()
        self.pos += 1
        return token

    def peek_word(self) -> str | None:
        token = self.peek()
        return token.text.upper() if token is not None and token.kind == "ident" else None

    def peek_symbol(self) -> str | None:
        token = self.peek()
        return token.text if token is not None and token.kind == "symbol" else None

    def parse(self):
        if not self.tokens:
            raise self.fail()
        node = self.parse_or()
        if self.peek() is not None:
            raise self.fail()
        return node

    def parse_or(self):
        items = [self.parse_and()]
        while self.peek_word() == "OR" or self.peek_symbol() == "||":
            self.take()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Compound("OR", _flatten("OR", items))

    def parse_and(self):
        items = [self.parse_not()]
        while self.peek_word() == "AND" or self.peek_symbol() == "&&":
            self.take()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else Compound("AND", _flatten("AND", items))

    def parse_not(self):
        if self.peek_word() == "NOT" or self.peek_symbol() == "!":
            self.take()
            return Not(self.parse_not())
        return self.parse_primary()

    def parse_primary(self):
        if self.peek_symbol() == "(":
            self.take()
            node = self.parse_or()
            if self.peek_symbol() != ")":
                raise self.fail()
            self.take()
            return node
        word = self.peek_word()
        if word in ("TRUEPREDICATE", "FALSEPREDICATE"):
            self.take()
            return Constant(word == "TRUEPREDICATE")
        if word in AGGREGATES:
            raise PredicateUnsupported(f"predicate aggregate {word}")
        return self.parse_comparison()

    def parse_comparison(self):
        left = self.parse_operand()
        token = self.take()
        if token.kind == "symbol" and token.text in SYMBOL_OPERATORS:
            op = SYMBOL_OPERATORS[token.text]
        elif token.kind == "ident" and token.text.upper() in WORD_OPERATORS:
            op = token.text.upper()
        else:
            raise self.fail()
        modifiers = ""
        if self.peek() is not None and self.peek().kind == "modifier":
            modifiers = self.take().text[1:-1].lower()
            if not modifiers or set(modifiers) - set("cdn"):
                raise self.fail()
        right = self.parse_operand()
        if not isinstance(left, Key) and not isinstance(right, Key):
            raise PredicateUnsupported("predicate comparison without a key")
        if op == "BETWEEN" and not (isinstance(right, SetLiteral) and len(right.items) == 2):
            raise self.fail()
        node = Comparison(left, op, "".join(sorted(set(modifiers), key="cdn".index)), right)
        if op == "MATCHES":
            if not isinstance(right, Literal) or not isinstance(right.value, str):
                raise self.fail()
            try:
                node.regex = re.compile(right.value, re.IGNORECASE if "c" in modifiers else 0)
            except re.error as exc:
                raise PredicateError(f"Can't do regex matching, reason: {exc}") from exc
        _check_enum_names(node)
        return node

    def parse_operand(self):
        token = self.take()
        if token.kind == "string" or token.kind == "number":
            return Literal(token.value)
        if token.kind == "variable":
            raise PredicateUnsupported(f"predicate variable {token.text}")
        if token.kind == "symbol" and token.text == "{":
            items = []
            if self.peek_symbol() != "}":
                while True:
                    item = self.parse_operand()
                    if not isinstance(item, Literal):
                        raise self.fail()
                    items.append(item)
                    if self.peek_symbol() == ",":
                        self.take()
                        continue
                    break
            if self.peek_symbol() != "}":
                raise self.fail()
            self.take()
            return SetLiteral(items)
        if token.kind == "ident":
            if token.text.upper() in WORD_OPERATORS | {"AND", "OR", "NOT"}:
                raise self.fail()
            return _key_or_enum(token.text)
        raise self.fail()


def _flatten(kind: str, items: list) -> list:
    flat = []
    for item in items:
        flat.extend(item.items if isinstance(item, Compound) and item.kind == kind else [item])
    return flat


def _key_or_enum(name: str):
    if name in KNOWN_KEYS:
        return Key(name)
    if name in MESSAGE_TYPES or name in EVENT_TYPES:
        return Literal(name, bare=True)
    head = name.split(".", 1)[0]
    if name in UNSUPPORTED_KEYS or (head in KNOWN_KEYS | UNSUPPORTED_KEYS and "." in name):
        raise PredicateUnsupported(f"predicate key {name}")
    raise PredicateError(f"no such field: {name}")


def _check_enum_names(node: Comparison) -> None:
    """A bare enum name only makes sense against messageType/eventType."""
    keys = {side.name for side in (node.left, node.right) if isinstance(side, Key)}
    values = [node.left, node.right] + (node.right.items if isinstance(node.right, SetLiteral) else [])
    for value in values:
        if isinstance(value, Literal) and value.bare and not keys & {"messageType", "eventType"}:
            raise PredicateError(f"no such field: {value.value}")


def parse(text: str):
    """Parse a predicate; raises PredicateError / PredicateUnsupported."""
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------------------
# Canonical text: what `log` echoes in `Filtering the log data using "..."` (NSPredicate's
# predicateFormat: keywords upper-case, strings double-quoted, nested compounds parenthesised).


def _format_operand(operand) -> str:
    if isinstance(operand, Key):
        return operand.name
    if isinstance(operand, SetLiteral):
        return "{" + ", ".join(_format_operand(item) for item in operand.items) + "}"
    if isinstance(operand.value, str) and not operand.bare:
        return '"' + operand.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(operand.value)


def format_predicate(node) -> str:
    if isinstance(node, Constant):
        return "TRUEPREDICATE" if node.value else "FALSEPREDICATE"
    if isinstance(node, Comparison):
        modifiers = f"[{node.modifiers}]" if node.modifiers else ""
        return f"{_format_operand(node.left)} {node.op}{modifiers} {_format_operand(node.right)}"
    if isinstance(node, Not):
        inner = format_predicate(node.item)
        return f"NOT ({inner})" if isinstance(node.item, Compound) else f"NOT {inner}"
    parts = [
        f"({format_predicate(item)})" if isinstance(item, Compound) else format_predicate(item) for item in node.items
    ]
    return f" {node.kind} ".join(parts)


# ---------------------------------------------------------------------------------------------
# Evaluation


def record_value(record: dict, key: str):
    if key == "processIdentifier":
        return int(record.get("pid") or 0)
    if key == "messageType":
        return MESSAGE_TYPES.get(record.get("level", "default"), 0)
    if key == "eventType":
        return EVENT_TYPES["logEvent"]  # the lab only records log events
    if key == "senderImagePath":
        return record.get("sender_image") or record.get("image", "")
    return str(record.get(STRING_KEYS[key], ""))


def _fold(text: str, modifiers: str) -> str:
    if "d" in modifiers:
        text = "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))
    if "c" in modifiers:
        text = text.casefold()
    return text


def _resolve(operand, record: dict, enum_key: str | None):
    if isinstance(operand, Key):
        return record_value(record, operand.name)
    if isinstance(operand, SetLiteral):
        return [_resolve(item, record, enum_key) for item in operand.items]
    value = operand.value
    if enum_key is not None and isinstance(value, str):
        table = MESSAGE_TYPES if enum_key == "messageType" else EVENT_TYPES
        lookup = value if enum_key == "eventType" else value.lower()
        return table.get(lookup, -1)
    return value


def _compare(op: str, left, right, modifiers: str, regex) -> bool:
    if op == "IN":
        if isinstance(right, list):
            return any(_compare("==", left, item, modifiers, None) for item in right)
        return _compare("CONTAINS", right, left, modifiers, None)
    if op == "BETWEEN":
        low, high = right
        return _compare(">=", left, low, modifiers, None) and _compare("<=", left, high, modifiers, None)
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        if op in ("==", "!="):
            return (left == right) == (op == "==")
        if op in ("<", "<=", ">", ">="):
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    left_text, right_text = _fold(str(left), modifiers), _fold(str(right), modifiers)
    if op == "==":
        return left_text == right_text
    if op == "!=":
        return left_text != right_text
    if op == "CONTAINS":
        return right_text in left_text
    if op == "BEGINSWITH":
        return left_text.startswith(right_text)
    if op == "ENDSWITH":
        return left_text.endswith(right_text)
    if op == "LIKE":
        # NSPredicate LIKE: * and ? wildcards over the whole string, no character classes.
        pattern = re.escape(right_text).replace(r"\*", ".*").replace(r"\?", ".")
        return re.fullmatch(pattern, left_text, re.DOTALL) is not None
    if op == "MATCHES":
        return regex.fullmatch(str(left)) is not None
    return {"<": left_text < right_text, "<=": left_text <= right_text,
            ">": left_text > right_text, ">=": left_text >= right_text}[op]  # fmt: skip


def evaluate(node, record: dict) -> bool:
    if isinstance(node, Constant):
        return node.value
    if isinstance(node, Not):
        return not evaluate(node.item, record)
    if isinstance(node, Compound):
        results = (evaluate(item, record) for item in node.items)
        return all(results) if node.kind == "AND" else any(results)
    sides = (node.left, node.right)
    enum_key = next((s.name for s in sides if isinstance(s, Key) and s.name in ("messageType", "eventType")), None)
    left = _resolve(node.left, record, enum_key)
    right = _resolve(node.right, record, enum_key)
    return _compare(node.op, left, right, node.modifiers, node.regex)


__all__ = ["PredicateError", "PredicateUnsupported", "evaluate", "format_predicate", "parse"]
