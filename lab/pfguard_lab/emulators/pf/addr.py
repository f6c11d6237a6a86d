# SPDX-License-Identifier: GPL-3.0-or-later
"""Addresses the way pfctl reads and prints them (pfctl_parser.c host(), inet_ntop, radix order).

Table entries are handled as canonical text keys ("10.0.0.0/8", "2001:db8::/32", host prefix
omitted, host bits masked, IPv6 compressed the BSD way); negation is kept apart from the key because
PF looks entries up by address and mask only. The hot path (plain dotted quads) avoids ipaddress.
"""

from __future__ import annotations

import re
import socket

INET = 4
INET6 = 6
HOSTLEN = {INET: 32, INET6: 128}
_PTON = {INET: socket.AF_INET, INET6: socket.AF_INET6}
TOKEN_MAX = 255  # pfr_next_token's BUF_SIZE is 256 (docs/reference/pfctl.md#address-input)


class HostError(Exception):
    """A token pfctl's host() rejects; `message` is the stderr line real pfctl prints."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidNetmask(HostError):
    """`invalid netmask '/xx'` (docs/reference/pfctl.md#address-input, step 1)."""


class NoAddress(HostError):
    """`no IP address found for TOKEN` (docs/reference/pfctl.md#address-input)."""


class CannotDecode(Exception):
    """The address resolved but the kernel refuses it (EINVAL), e.g. 1.2.3.4/33 or a network in -T test."""

    def __init__(self, text: str, family: int = 0, value: int = 0, plen: int = 0):
        super().__init__(text)
        self.family, self.value, self.plen = family, value, plen


class LabUnsupported(Exception):
    """A token real pfctl would resolve through interfaces or DNS; the lab refuses to guess."""


# ---------------------------------------------------------------------------- number helpers


def strtol0(text: str) -> int | None:
    """C strtol(text, &end, 0) that must consume the whole (non-empty) string, else None."""
    match = re.fullmatch(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if not match:
        return None
    sign, digits = match.groups()
    if digits[:2].lower() == "0x":
        value = int(digits, 16)
    elif digits.startswith("0"):
        value = int(digits, 8)
    else:
        value = int(digits)
    return -value if sign == "-" else value


def inet_aton_accepts(text: str) -> bool:
    """Whether BSD inet_aton (used by getaddrinfo for numeric names) would parse `text`."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return False
    values = []
    for part in parts:
        value = strtol0(part) if part and part[0] not in "+- \t" else None
        if value is None or value < 0:
            return False
        values.append(value)
    limits = {1: [2**32], 2: [256, 2**24], 3: [256, 256, 2**16], 4: [256, 256, 256, 256]}[len(values)]
    return all(v < lim for v, lim in zip(values, limits))


_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})")


def plausible_name(text: str) -> bool:
    """A hostname, interface name or `self` that a Mac would try to resolve (lab rule, see pfctl.py)."""
    base = text
    if ":" in base:  # `if:network`, `if:0`, `name:0` modifiers (docs/reference/pfctl.md#address-input, steps 2, 5)
        base, _, modifier = base.partition(":")
        if modifier not in ("network", "broadcast", "peer", "0"):
            return False
    base = base[:-1] if base.endswith(".") else base
    if not base or len(base) > 253:
        return False
    labels = base.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    # an all-numeric last label cannot be a DNS name (no numeric TLDs)
    return not labels[-1].isdigit()


def never_resolves(name: str) -> bool:
    """A name in the `invalid.` domain, which RFC 6761 (section 6.4) reserves so that it never resolves
    (docs/reference/pfctl.md#address-input). A bare `invalid` is left out: a resolver may first try it
    with its search domains appended."""
    if "." not in name:
        return False
    base = (name[:-1] if name.endswith(".") else name).lower()
    return base == "invalid" or base.endswith(".invalid")


# ---------------------------------------------------------------------------- printing


def ntop4(value: int) -> str:
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def ntop6(packed: bytes) -> str:
    """BSD inet_ntop6: longest zero run (>= 2 words) compressed, embedded IPv4 for ::a.b.c.d and ::ffff:."""
    words = [packed[i] << 8 | packed[i + 1] for i in range(0, 16, 2)]
    best_base, best_len, cur_base, cur_len = -1, 0, -1, 0
    for i, word in enumerate(words):
        if word == 0:
            if cur_base == -1:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if cur_base != -1 and (best_base == -1 or cur_len > best_len):
        best_base, best_len = cur_base, cur_len
    if best_base != -1 and best_len < 2:
        best_base = -1
    out = []
    i = 0
    while i < 8:
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                out.append(":")
            i += 1
            continue
        if i != 0:
            out.append(":")
        if i == 6 and best_base == 0 and (
            best_len == 6 or (best_len == 7 and words[7] != 1) or (best_len == 5 and words[5] == 0xFFFF)
        ):
            out.append(".".join(str(b) for b in packed[12:]))
            break
        out.append(f"{words[i]:x}")
        i += 1
    if best_base != -1 and best_base + best_len == 8:
        out.append(":")
    return "".join(out)


def format_key(family: int, value: int, plen: int) -> str:
    """Canonical entry text without negation: host prefix omitted, as print_addrx does."""
    text = ntop4(value) if family == INET else ntop6(value.to_bytes(16, "big"))
    return text if plen == HOSTLEN[family] else f"{text}/{plen}"


def mask_value(family: int, value: int, plen: int) -> int:
    bits = HOSTLEN[family]
    return value & (((1 << plen) - 1) << (bits - plen)) if plen else 0


# ---------------------------------------------------------------------------- parsing


def _inet_net_pton4(text: str) -> int | None:
    """BSD inet_net_pton(AF_INET) address part for `a[.b[.c[.d]]]/bits`: decimal octets, zero fill."""
    if not re.fullmatch(r"\d{1,3}(\.\d{1,3}){0,3}", text):
        return None
    octets = [int(x) for x in text.split(".")]
    if any(o > 255 for o in octets):
        return None
    octets += [0] * (4 - len(octets))
    return int.from_bytes(bytes(octets), "big")


def parse_host(text: str) -> tuple[int, int, int]:
    """Resolve one host token (without `!`) like pfctl's host(): (family, masked value, prefix length).

    Raises InvalidNetmask, NoAddress (also for names under `.invalid`), CannotDecode or LabUnsupported.
    """
    slash = text.rfind("/")
    if slash >= 0:
        mask = strtol0(text[slash + 1 :])
        # strtol accepts a sign; a negative width is meaningless, treat as invalid (UNVERIFIED)
        if mask is None or mask > 128 or mask < 0:
            raise InvalidNetmask(f"invalid netmask '{text[slash:]}'")
        addr_text = text[:slash]
    else:
        mask = None
        addr_text = text
    family = None
    try:
        packed = socket.inet_pton(socket.AF_INET, addr_text)
        family, value = INET, int.from_bytes(packed, "big")
    except OSError:
        if mask is not None and text[slash + 1 :].isdigit():
            value = _inet_net_pton4(addr_text)
            if value is not None:
                family = INET
    if family is None and "%" not in addr_text:
        try:
            packed = socket.inet_pton(socket.AF_INET6, addr_text)
            family, value = INET6, int.from_bytes(packed, "big")
        except OSError:
            pass
    if family is None:
        # pfctl would now try interfaces and DNS (host_if, host_dns); the lab resolves nothing, except
        # that it knows names under `.invalid` fail (host_dns drops a `:0` suffix before getaddrinfo).
        if never_resolves(addr_text[:-2] if addr_text.endswith(":0") else addr_text):
            raise NoAddress(f"no IP address found for {text}")
        if "%" in addr_text and ":" in addr_text:
            raise LabUnsupported(f"scoped IPv6 address '{text}'")
        if inet_aton_accepts(addr_text):
            raise LabUnsupported(f"inet_aton-style address '{text}' (resolved by getaddrinfo on macOS)")
        if plausible_name(addr_text):
            raise LabUnsupported(f"host name or interface '{text}' (resolved by DNS or interface lookup on macOS)")
        raise NoAddress(f"no IP address found for {text}")
    plen = HOSTLEN[family] if mask is None else mask
    if plen > HOSTLEN[family]:
        # docs/reference/pfctl.md#address-input: 1.2.3.4/33 -> cannot decode
        raise CannotDecode(text, family, value, plen)
    return family, mask_value(family, value, plen), plen


def table_entry(token: str) -> tuple[bool, str]:
    """One -T address token -> (negated, canonical key). Leading `!` characters toggle negation."""
    neg = False
    body = token
    while body.startswith("!"):
        neg = not neg
        body = body[1:]
    try:
        socket.inet_pton(socket.AF_INET, body)  # hot path: a plain dotted quad is already canonical
        return neg, body
    except OSError:
        pass
    family, value, plen = parse_host(body)
    return neg, format_key(family, value, plen)


def split_key(key: str) -> tuple[int, int, int]:
    """Canonical key -> (family, value, prefix length)."""
    addr, _, plen_text = key.partition("/")
    if ":" in addr:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, addr), "big")
        return INET6, value, int(plen_text) if plen_text else 128
    value = int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big")
    return INET, value, int(plen_text) if plen_text else 32


def radix_key(key: str) -> bytes:
    """Sort key for radix order: IPv4 before IPv6, ascending address; for equal addresses the more
    specific entry first, as rn_addroute keeps duplicated keys (UNVERIFIED, docs/reference/pfctl.md#table-show-formats).
    A single bytes value keeps comparisons in C: family byte, address, (host length - prefix)."""
    slash = key.find("/")
    if slash < 0:
        if ":" in key:
            return b"\x06" + _pton(_AF6, key) + b"\x00"
        return b"\x04" + _pton(_AF4, key) + b"\x00"
    plen = int(key[slash + 1 :])
    if ":" in key:
        return b"\x06" + _pton(_AF6, key[:slash]) + bytes((128 - plen,))
    return b"\x04" + _pton(_AF4, key[:slash]) + bytes((32 - plen,))


_pton = socket.inet_pton
_AF4 = socket.AF_INET
_AF6 = socket.AF_INET6


def is_network(key: str) -> bool:
    return "/" in key


def longest_match(keys: dict, key: str):
    """Longest-prefix lookup of host `key` among `keys` (dict of canonical keys); returns the key or None."""
    family, value, plen = split_key(key)
    for length in range(plen, -1, -1):
        candidate = format_key(family, mask_value(family, value, length), length)
        if candidate in keys:
            return candidate
    return None


def contains(net_family: int, net_value: int, net_plen: int, family: int, value: int) -> bool:
    return family == net_family and mask_value(family, value, net_plen) == net_value


# ---------------------------------------------------------------------------- address files


# characters Python's str.split() treats as whitespace but C isspace() does not
_EXTRA_SPACE = re.compile(rb"[\x1c-\x1f\x85\xa0]")


def file_tokens(data: bytes) -> tuple[list[str], bool]:
    """pfr_next_token over a whole file: whitespace-separated tokens, `#` at a token start comments
    out the rest of the line. Returns (tokens before any over-long one, whether one was found)."""
    if b"#" not in data and not _EXTRA_SPACE.search(data):
        tokens = data.decode("latin-1").split()
    else:
        tokens = []
        for line in data.split(b"\n"):
            for raw in line.split():
                if raw[:1] == b"#":
                    break
                tokens.append(raw.decode("latin-1"))
    if tokens and max(map(len, tokens)) > TOKEN_MAX:
        for index, token in enumerate(tokens):
            if len(token) > TOKEN_MAX:
                return tokens[:index], True
    return tokens, False
