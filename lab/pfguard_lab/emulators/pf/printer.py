# SPDX-License-Identifier: GPL-3.0-or-later
"""Rule text the way pfctl_parser.c print_rule() prints it (`pfctl -s rules`, `-s nat`, `-v -f`).

Works on the parsed form of a rule (the dicts parser.py produces and the kernel stores), so the
same text serves `-s rules` and the rule's "text" field.
"""

from __future__ import annotations

import socket

from .grammar import PORT_RANGES, TCP_FLAGS

# rule fields printed between the action and `from`, in print_rule's order: (field, text)
MATCH_WORDS = (
    ("direction", lambda rule: f" {rule['direction']}"),
    ("log", lambda rule: " log"),
    ("quick", lambda rule: " quick"),
    ("on", lambda rule: f" on ! {rule['on']}" if rule.get("ifnot") else f" on {rule['on']}"),
    ("af", lambda rule: f" {rule['af']}"),
    ("proto", lambda rule: f" proto {rule['proto'][0]}"),
)
# scrub options in print_scrub's order: (option, format of its value); `fragment` always ends the line
SCRUB_WORDS = (
    ("no-df", " no-df"),
    ("random-id", " random-id"),
    ("min-ttl", " min-ttl {}"),
    ("max-mss", " max-mss {}"),
    ("reassemble-tcp", " reassemble tcp"),
)


def _service_name(port: int, proto: str) -> str | None:
    try:
        return socket.getservbyport(port, proto)
    except OSError:
        return None


def port_text(port: list, proto: str | None) -> str:
    op, first = port[0], port[1]
    if op in PORT_RANGES:
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


def _head(rule: dict, call: str | None) -> str:
    """The action, or the anchor keyword and name of an anchor call; `block` adds its policy."""
    if call is not None:
        word = rule["kind"]
        text = word if call.startswith("_") else f'{word} "{call}"'
    else:
        text = rule["action"]
    if rule.get("action") == "block":
        text += " return" if rule.get("policy") == "return" else " drop"
    return text


def _state_text(rule: dict, call: str | None) -> str:
    """`flags`, then `keep state` / `no state`; a pass rule always shows its state handling."""
    flags, state = rule.get("flags"), rule.get("state")
    plain_pass = rule.get("action") == "pass" and call is None
    out = ""
    if flags is not None and flags != "any":
        out += f" flags {flags}"
    elif plain_pass and state and (not rule.get("proto") or rule["proto"][0] == "tcp"):
        out += " flags any"
    if plain_pass and not state:
        out += " no state"
    elif state:
        out += f" {state} state"
    return out


def _scrub_text(opts: dict) -> str:
    words = [text.format(opts[option]) for option, text in SCRUB_WORDS if opts.get(option)]
    words.append(f" fragment {opts.get('fragment') or 'reassemble'}")
    return "".join(words)


def rule_text(rule: dict, anchor_call: str | None = None, number: int | None = None) -> str:
    """print_rule(): the line pfctl -sr / -sn prints for a kernel rule."""
    call = anchor_call if anchor_call is not None else rule.get("anchor")
    out = [] if number is None else [f"@{number} "]
    out.append(_head(rule, call))
    out.extend(text(rule) for field, text in MATCH_WORDS if rule.get(field))
    out.append(fromto_text(rule))
    out.append(_state_text(rule, call))
    if rule["ruleset"] == "scrub":
        out.append(_scrub_text(rule.get("scrub_opts") or {}))
    if rule.get("label") is not None:
        out.append(f' label "{rule["label"]}"')
    return "".join(out)
