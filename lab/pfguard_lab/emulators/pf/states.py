# SPDX-License-Identifier: GPL-3.0-or-later
"""PF states: listing (`pfctl -s states`), killing (`pfctl -k`) and flushing, over two backends.

`PFGUARD_LAB_PF_STATES=json` (default): states are dicts in state.json's `states` list:

    {"proto": "tcp",                      # name from /etc/protocols, or a number
     "direction": "out" | "in",           # out: initiated by a local host, in: by a remote one
     "lan": {"addr": "172.16.7.27", "port": 59833},   # the local end
     "gwy": {"addr": ..., "port": ...} | None,         # translated address (NAT/rdr), else None
     "ext": {"addr": "10.82.16.60", "port": 389},     # the remote end
     "src_state": "ESTABLISHED",          # PF's s->src: the initiator's peer state
     "dst_state": "ESTABLISHED",          # PF's s->dst: the responder's peer state
     "iface": "ALL"}                      # floating states print ALL (docs/reference/pfctl.md#state-listing)

TCP states take tcpstates[] names, UDP/other NO_TRAFFIC/SINGLE/MULTIPLE, GRE/ESP NO_TRAFFIC/INITIATING/
ESTABLISHED, ICMP plain numbers. Use seed() to put states there from tests.

`PFGUARD_LAB_PF_STATES=conntrack`: the current network namespace's conntrack table is the state table;
`-k` deletes the matching entries with conntrack(8).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from . import addr
from .protocols import PROTO_NAMES, PROTOCOLS

TCP_STATES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1",
              "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT")
UDP_STATES = ("NO_TRAFFIC", "SINGLE", "MULTIPLE")
GRE_STATES = ("NO_TRAFFIC", "INITIATING", "ESTABLISHED")


class StateError(ValueError):
    """A seeded state that PF could not hold."""


def backend_name() -> str:
    return os.environ.get("PFGUARD_LAB_PF_STATES") or "json"


# ---------------------------------------------------------------------------- validation / seeding


def _endpoint(value, what: str, family: int | None) -> tuple[dict, int]:
    if not isinstance(value, dict) or "addr" not in value:
        raise StateError(f"{what} must be {{'addr': ..., 'port': ...}}")
    try:
        fam, number, plen = addr.split_key(str(value["addr"]))
    except OSError as exc:
        raise StateError(f"{what} address {value['addr']!r} is not an IP address") from exc
    if plen != addr.HOSTLEN[fam] or (family is not None and fam != family):
        raise StateError(f"{what} address {value['addr']!r} is not a host of the state's family")
    port = int(value.get("port") or 0)
    if not 0 <= port <= 65535:
        raise StateError(f"{what} port {port} out of range")
    return {"addr": addr.format_key(fam, number, plen), "port": port}, fam


def normalize_state(state: dict) -> dict:
    """Validate one state dict and return it in the stored form."""
    proto = state.get("proto", "tcp")
    number = proto if isinstance(proto, int) else PROTOCOLS.get(proto, {"icmp6": 58}.get(proto))
    if number is None:
        raise StateError(f"unknown protocol {proto!r}")
    if state.get("direction") not in ("in", "out"):
        raise StateError("direction must be 'in' or 'out'")
    lan, family = _endpoint(state.get("lan"), "lan", None)
    ext, _ = _endpoint(state.get("ext"), "ext", family)
    gwy = None
    if state.get("gwy") is not None:
        gwy, _ = _endpoint(state["gwy"], "gwy", None)
    names = state_names(number)
    src, dst = state.get("src_state"), state.get("dst_state")
    for value in (src, dst):
        if names is None:
            if not isinstance(value, int):
                raise StateError("ICMP states take numbers")
        elif value not in names:
            raise StateError(f"state {value!r} is not one of {', '.join(names)}")
    return {
        "proto": PROTO_NAMES.get(number, number),
        "direction": state["direction"],
        "lan": lan,
        "gwy": gwy,
        "ext": ext,
        "src_state": src,
        "dst_state": dst,
        "iface": state.get("iface", "ALL"),
    }


def state_names(proto_number: int):
    if proto_number == 6:
        return TCP_STATES
    if proto_number in (1,):
        return None
    if proto_number in (47, 50):
        return GRE_STATES
    return UDP_STATES


def seed(state_dir, states: list[dict]) -> None:
    """Replace the json backend's states in `state_dir` (tests use this to set up `-s states`/`-k`)."""
    from . import kernel

    normalized = [normalize_state(s) for s in states]
    with kernel.locked(Path(state_dir)) as k:
        k.data["states"] = normalized
        k.dirty = True


# ---------------------------------------------------------------------------- formatting (pfctl.md#state-listing)


def _proto_number(state: dict) -> int:
    proto = state["proto"]
    return proto if isinstance(proto, int) else PROTOCOLS.get(proto, 0)


def _host_text(end: dict, proto: int) -> str:
    text = end["addr"]
    port = end.get("port") or 0
    v6 = ":" in text
    if proto in (1, 58):
        return f"{text}[{port}]" if v6 else f"{text}:{port}"
    if proto == 50:
        return f"{text}:{port:08x}"
    if proto in (6, 17) and port:
        return f"{text}[{port}]" if v6 else f"{text}:{port}"
    return text


def format_state(state: dict) -> str:
    """One `pfctl -s states` line: iface, proto, lan [-> gwy] -> ext, 7 spaces, local peer state first."""
    proto = _proto_number(state)
    arrow = " -> " if state["direction"] == "out" else " <- "
    hosts = [_host_text(state["lan"], proto)]
    gwy = state.get("gwy")
    if gwy is not None and gwy["addr"] != state["lan"]["addr"]:
        hosts.append(_host_text(gwy, proto))
    hosts.append(_host_text(state["ext"], proto))
    src, dst = state["src_state"], state["dst_state"]
    pair = f"{src}:{dst}" if state["direction"] == "out" else f"{dst}:{src}"
    name = state["proto"] if isinstance(state["proto"], str) else str(state["proto"])
    return f"{state.get('iface', 'ALL')} {name} {arrow.join(hosts)}       {pair}"


def kill_match(state: dict, src_net, dst_net, iface: str | None) -> bool:
    """xnu DIOCKILLSTATES: src is the initiator (lan for outbound, ext for inbound)."""
    if state["direction"] == "out":
        src, dst = state["lan"], state["ext"]
    else:
        src, dst = state["ext"], state["lan"]
    if iface and state.get("iface", "ALL") != iface:
        return False
    for net, end in ((src_net, src), (dst_net, dst)):
        if net is None:
            continue
        family, value, plen = net
        efam, evalue, _ = addr.split_key(end["addr"])
        if not addr.contains(family, value, plen, efam, evalue):
            return False
    return True


# ---------------------------------------------------------------------------- backends


class JsonStates:
    def __init__(self, kernel):
        self.kernel = kernel

    def list(self) -> list[dict]:
        return list(self.kernel.data.get("states", []))

    def kill(self, src_net, dst_net, iface) -> int:
        states = self.kernel.data.get("states", [])
        keep = [s for s in states if not kill_match(s, src_net, dst_net, iface)]
        killed = len(states) - len(keep)
        if killed:
            self.kernel.data["states"] = keep
            self.kernel.dirty = True
        return killed

    def clear(self, iface) -> int:
        states = self.kernel.data.get("states", [])
        keep = [s for s in states if iface and s.get("iface", "ALL") != iface]
        self.kernel.data["states"] = keep
        self.kernel.dirty = True
        return len(states) - len(keep)

    def count(self) -> int:
        return len(self.kernel.data.get("states", []))


def _conntrack() -> str:
    return shutil.which("conntrack") or "/usr/sbin/conntrack"


def local_addresses() -> set[str]:
    proc = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, check=False)
    found = set()
    for link in json.loads(proc.stdout or "[]"):
        for info in link.get("addr_info", []):
            if info.get("local"):
                fam, value, _ = addr.split_key(info["local"].split("%")[0])
                found.add(addr.format_key(fam, value, addr.HOSTLEN[fam]))
    return found


# conntrack keeps one TCP state per connection; PF keeps one per peer (initiator, responder). UNVERIFIED map.
_CT_TCP = {
    "SYN_SENT": ("SYN_SENT", "CLOSED"),
    "SYN_SENT2": ("SYN_SENT", "SYN_SENT"),
    "SYN_RECV": ("SYN_SENT", "SYN_SENT"),
    "ESTABLISHED": ("ESTABLISHED", "ESTABLISHED"),
    "FIN_WAIT": ("FIN_WAIT_2", "ESTABLISHED"),
    "CLOSE_WAIT": ("FIN_WAIT_2", "CLOSING"),
    "LAST_ACK": ("FIN_WAIT_2", "LAST_ACK"),
    "TIME_WAIT": ("TIME_WAIT", "TIME_WAIT"),
    "CLOSE": ("TIME_WAIT", "TIME_WAIT"),
    "LISTEN": ("LISTEN", "CLOSED"),
}


def parse_conntrack_line(line: str, local: set[str]) -> dict | None:
    words = line.split()
    if len(words) < 6:
        return None
    proto_number = int(words[3])
    rest = words[5:]
    tcp_state = None
    if rest and "=" not in rest[0] and not rest[0].startswith("["):
        tcp_state = rest[0]
    orig: dict = {}
    reply: dict = {}
    flags = set()
    for word in rest:
        if word.startswith("["):
            flags.add(word.strip("[]"))
            continue
        key, _, value = word.partition("=")
        if not value:
            continue
        target = orig if key not in orig else reply
        target[key] = value
    if "src" not in orig or "dst" not in orig:
        return None

    def norm(text):
        fam, value, _ = addr.split_key(text)
        return addr.format_key(fam, value, addr.HOSTLEN[fam])

    def port(side, key):
        if proto_number in (1, 58):
            return int(side.get("id", 0))
        return int(side.get(key, 0))

    osrc, odst = norm(orig["src"]), norm(orig["dst"])
    rsrc = norm(reply.get("src", orig["dst"]))
    rdst = norm(reply.get("dst", orig["src"]))
    outbound = osrc in local
    if outbound:
        lan = {"addr": osrc, "port": port(orig, "sport")}
        gwy = {"addr": rdst, "port": port(reply, "dport")}
        ext = {"addr": odst, "port": port(orig, "dport")}
    else:
        lan = {"addr": rsrc, "port": port(reply, "sport")}
        gwy = {"addr": odst, "port": port(orig, "dport")}
        ext = {"addr": osrc, "port": port(orig, "sport")}
    if gwy["addr"] == lan["addr"]:
        gwy = None
    if proto_number == 6:
        src_state, dst_state = _CT_TCP.get(tcp_state or "", ("ESTABLISHED", "ESTABLISHED"))
    elif proto_number in (1, 58):
        src_state, dst_state = 0, 0
    elif "UNREPLIED" in flags:
        src_state, dst_state = "SINGLE", "NO_TRAFFIC"
    else:
        src_state, dst_state = "MULTIPLE", "MULTIPLE" if "ASSURED" in flags else "SINGLE"
    return {
        "proto": PROTO_NAMES.get(proto_number, proto_number),
        "direction": "out" if outbound else "in",
        "lan": lan,
        "gwy": gwy,
        "ext": ext,
        "src_state": src_state,
        "dst_state": dst_state,
        "iface": "ALL",
        "_orig": {**orig, "proto": proto_number, "family": words[0]},
    }


class ConntrackStates:
    """The namespace's conntrack table seen as PF states."""

    def __init__(self, kernel):
        self.kernel = kernel

    def list(self) -> list[dict]:
        # Only connections a stateful pass rule let in have a PF state (enforce.STATE_CT_MARK).
        proc = subprocess.run([_conntrack(), "-L", "-o", "extended", "--mark", "1/1"], capture_output=True,
                              text=True, check=False)
        local = local_addresses()
        states = []
        for line in proc.stdout.splitlines():
            state = parse_conntrack_line(line, local)
            if state is not None:
                states.append(state)
        return states

    def count(self) -> int:
        return len(self.list())

    def _delete(self, state: dict) -> bool:
        orig = state["_orig"]
        argv = [_conntrack(), "-D", "-f", "ipv6" if orig["family"] == "ipv6" else "ipv4",
                "-p", str(orig["proto"]), "-s", orig["src"], "-d", orig["dst"]]
        if orig["proto"] in (6, 17, 132):
            argv += ["--sport", orig.get("sport", "0"), "--dport", orig.get("dport", "0")]
        elif orig["proto"] in (1, 58):
            argv += ["--icmp-type", orig.get("type", "0"), "--icmp-code", orig.get("code", "0"),
                     "--icmp-id", orig.get("id", "0")]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode == 0

    def kill(self, src_net, dst_net, iface) -> int:
        return sum(1 for s in self.list() if kill_match(s, src_net, dst_net, iface) and self._delete(s))

    def clear(self, iface) -> int:
        states = [s for s in self.list() if not iface or s["iface"] == iface]
        if states:
            subprocess.run([_conntrack(), "-F"], capture_output=True, check=False)
        return len(states)


def backend(kernel):
    name = backend_name()
    if name == "conntrack":
        return ConntrackStates(kernel)
    if name == "json":
        return JsonStates(kernel)
    raise ValueError(f"PFGUARD_LAB_PF_STATES={name!r} (expected json or conntrack)")
