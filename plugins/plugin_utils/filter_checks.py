# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Argument checks shared by pfguard's filters (controller side).

Every check returns the value in the shape the filter works with, or raises AnsibleFilterError with a message
like `<what> must be <expected>, got <value>`: `what` names the filter and the argument (or the nested field), and
the value is shown short (SHOWN_MAX characters), with control characters and surrogates escaped. Nothing here
raises anything else, whatever the value: no huge int is turned into text, no container is walked deeper than
SHOWN_DEPTH, and repr() of an unknown object is guarded."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import inspect
import itertools
import math
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

SHOWN_MAX = 80  # characters of a value shown in a message
SHOWN_ITEMS = 3  # items of a list or dictionary shown in a message
SHOWN_DEPTH = 2  # levels of nested lists and dictionaries shown in a message
SHOWN_INT_BITS = 256  # larger integers are shown by their size (int -> str is slow and limited in Python)
COUNT_MAX = 2**63 - 1  # the largest count a report holds: a signed 64-bit integer, like sqlite's and pf's
COUNT_DIGITS = len(str(COUNT_MAX))
# Unix times a date with a four-digit year can show: 1970-01-01 00:00:00 to 9999-12-31 23:59:59 UTC.
EPOCH_MIN = 0
EPOCH_MAX = 253402300799


def _escaped(text):
    """text with every character that is not printable escaped as Python writes it (\\x00, \\n, \\udcff)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else str.__repr__(char)[1:-1] for char in text)


def printable(text, limit=SHOWN_MAX):
    """A str shown in a message: control characters and surrogates escaped, cut at `limit` characters."""
    text = _escaped(str.__str__(text[: limit + 1]))
    return text if len(text) <= limit else text[:limit] + "..."


def _items(values, depth, show_item):
    shown = [show_item(value, depth - 1) for value in itertools.islice(values, SHOWN_ITEMS)]
    if len(values) > SHOWN_ITEMS:
        shown.append("...")
    return ", ".join(shown)


def _show_item(item, depth):
    key, value = item
    return "%s: %s" % (_show(key, depth), _show(value, depth))


def _show(value, depth):
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > SHOWN_INT_BITS:
            digits = int(value.bit_length() * 0.30103)  # log10(2): the digits, give or take one
            return "%s integer of about %d digits" % ("a negative" if value < 0 else "an", digits)
        return int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, str):
        return str.__repr__(str.__str__(value[: SHOWN_MAX + 1]))
    if isinstance(value, (bytes, bytearray)):
        return bytes.__repr__(bytes(value[: SHOWN_MAX + 1]))
    if isinstance(value, Mapping):
        if depth <= 0:
            return "{...}"
        return "{%s}" % _items(value.items(), depth, _show_item)
    if isinstance(value, (list, tuple, set, frozenset)):
        brackets = "[]" if isinstance(value, list) else "()" if isinstance(value, tuple) else "{}"
        if depth <= 0:
            return brackets[0] + "..." + brackets[1]
        comma = "," if isinstance(value, tuple) and len(value) == 1 else ""
        return brackets[0] + _items(value, depth, _show) + comma + brackets[1]
    try:
        text = repr(value)
    except Exception:  # any object's repr may fail, or recurse without end; the message must not
        return "<%s>" % type(value).__name__
    return _escaped(text[: SHOWN_MAX + 1])


def show(value):
    """value as a message shows it: like repr(), at most SHOWN_MAX characters, printable, never raising."""
    text = _escaped(_show(value, SHOWN_DEPTH))
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX] + "..."


def refuse(what, problem, value):
    """Raise `<what> <problem>, got <value>`, for example `ban_report: top must be a positive number, got 0`."""
    raise AnsibleFilterError("%s %s, got %s" % (what, problem, show(value)))


def checked_arguments(name):
    """Decorator: a call with missing, extra or unknown arguments fails naming the filter and the argument,
    instead of the TypeError Python raises."""

    def decorate(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def filter_with_checked_arguments(*args, **kwargs):
            try:
                signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise AnsibleFilterError("%s: %s" % (name, printable(str(exc), 200))) from None
            return function(*args, **kwargs)

        return filter_with_checked_arguments

    return decorate


def check_mapping(value, what, optional=False):
    """A dictionary; None is {} when `optional`."""
    if value is None and optional:
        return {}
    if not isinstance(value, Mapping):
        refuse(what, "must be a dictionary", value)
    return value


def check_list(value, what, expected="a list", optional=False):
    """A list (or tuple) as a new list; a string is refused, not taken apart. None is [] when `optional`."""
    if value is None and optional:
        return []
    if not isinstance(value, (list, tuple)):
        refuse(what, "must be " + expected, value)
    return list(value)


def check_bool(value, what):
    if not isinstance(value, bool):
        refuse(what, "must be true or false", value)
    return value


def check_text(value, what, max_length=255):
    """A printable string (no control characters or surrogates), not blank, of at most `max_length` characters."""
    if not isinstance(value, str) or not value.strip():
        refuse(what, "must be a non-empty string", value)
    if not value.isprintable():
        refuse(what, "must not hold control characters", value)
    if len(value) > max_length:
        refuse(what, "must be at most %d characters long" % max_length, value)
    return str.__str__(value)


def check_texts(value, what, expected, optional=False, max_length=255):
    """A list of non-empty printable strings."""
    values = check_list(value, what, expected, optional=optional)
    for index, item in enumerate(values):
        check_text(item, "%s[%d]" % (what, index), max_length)
    return values


def _whole_number(value):
    """The int a number or a string of ASCII digits stands for, else None. Booleans are not numbers, nor are
    NaN, infinities, fractions or digits of other scripts. A string of more digits than any count has stands
    for COUNT_MAX + 1 (with its sign), so that it is refused as too large without ever becoming an int."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip(" \t")
        sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text)
        if digits.isascii() and digits.isdigit():
            return sign * (int(digits) if len(digits) <= COUNT_DIGITS else COUNT_MAX + 1)
    return None


def check_count(value, what, minimum=0, maximum=COUNT_MAX, expected="must be a number"):
    """A whole number from `minimum` (0 or more) to `maximum`: an int, an integral float or a string of ASCII
    digits. `expected` is the problem a value that is no number, or (when `minimum` is positive) a smaller one,
    is refused with."""
    number = _whole_number(value)
    if number is None or number < minimum and minimum > 0:
        refuse(what, expected, value)
    if number < minimum:
        refuse(what, "must not be negative", value)
    if number > maximum:
        refuse(what, "must be at most %d" % maximum, value)
    return number


def check_epoch(value, what):
    """Unix time in whole seconds (a float's fraction dropped), from 1970 through the year 9999 UTC: an int, a
    float or a string of ASCII digits."""
    finite_float = isinstance(value, float) and math.isfinite(value)
    number = math.floor(value) if finite_float else _whole_number(value)
    if number is None:
        refuse(what, "must be a number", value)
    if not EPOCH_MIN <= number <= EPOCH_MAX:
        refuse(what, "is out of range: a Unix time must lie from %d (1970-01-01) to %d (9999-12-31 23:59:59 UTC)"
               % (EPOCH_MIN, EPOCH_MAX), value)  # fmt: skip
    return number
