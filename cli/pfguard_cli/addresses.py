# SPDX-License-Identifier: GPL-3.0-or-later
"""The addresses of `pfguard ban` / `pfguard unban`, checked before anything runs.

The plays check them again with the collection's own parser (plugins/module_utils/pfctl.py, parse_entry)
and refuse what pfctl would read differently; this check uses the same rules (a literal IPv4/IPv6
address read by inet_pton, as pfctl reads it, optionally /PREFIX in plain decimal without leading zeros)
so that a typo is refused at once, without connecting to any Mac.
"""

from __future__ import annotations

import re
import socket

# Separators the plays accept in a string list: commas, blanks, newlines.
_SEPARATORS = re.compile(r"[,\s]+")
_PREFIX = re.compile(r"\A(?:0|[1-9][0-9]{0,2})\Z")


class AddressError(ValueError):
    """Values that are not addresses; the message names each with the reason."""


def split(values: list[str]) -> list[str]:
    """Every address in the arguments: each argument may itself hold several, comma or blank separated."""
    return [part for value in values for part in _SEPARATORS.split(value) if part]


def problem(value: str) -> str | None:
    """Why `value` is not an IPv4/IPv6 address or network, or None when it is one."""
    address, slash, prefix = value.partition("/")
    if value.startswith("!"):
        return "negation ('!') is not supported"
    if "%" in address:
        return "scoped IPv6 addresses are not supported"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        width = len(socket.inet_pton(family, address)) * 8
    except (OSError, ValueError, UnicodeEncodeError):
        return "not an IPv4 or IPv6 address (hostnames and interface names are not accepted)"
    if slash and not _PREFIX.match(prefix):
        return f"prefix length '/{prefix}' is not a plain decimal number without leading zeros"
    if slash and int(prefix) > width:
        return f"prefix length /{prefix} is longer than an IPv{4 if width == 32 else 6} address"
    return None


def check(values: list[str]) -> str:
    """The addresses as the plain string the plays take ("a, b, c"); raises AddressError naming bad ones."""
    addresses = split(values)
    if not addresses:
        raise AddressError("no address given")
    bad = [(value, reason) for value in addresses if (reason := problem(value))]
    if bad:
        raise AddressError("; ".join(f"{value!r}: {reason}" for value, reason in bad))
    return ", ".join(addresses)
