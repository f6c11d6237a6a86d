# SPDX-License-Identifier: GPL-3.0-or-later
"""PF enforcement through nftables and states through conntrack, proven with real TCP between two
network namespaces (docs/lab-design.md: PFGUARD_LAB_PF_ENFORCE=nftables, PFGUARD_LAB_PF_STATES=conntrack).

Each test builds its own pfgtest-* namespaces (pf_netns); the server and clients run inside them and
are killed with the namespaces, even when a test fails.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import subprocess
import sys
import time

import pytest
from pf_fixtures import ns_run
from pfguard_lab.emulators.pf import addr, enforce

pytest_plugins = ["pf_fixtures"]

PORT = 2222
ENV = {"PFGUARD_LAB_PF_ENFORCE": "nftables", "PFGUARD_LAB_PF_STATES": "conntrack"}

SERVER = """
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(64)
print("ready", flush=True)
def serve(c):
    with c:
        while True:
            data = c.recv(100)
            if not data:
                return
            c.sendall(data)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# A long-lived client: connects once, then answers "ok"/"fail" for each line on stdin (echo round trip).
CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
print("connected", c.getsockname()[1], flush=True)
for line in sys.stdin:
    try:
        c.sendall(b"x")
        print("ok" if c.recv(1) == b"x" else "fail", flush=True)
    except OSError:
        print("fail", flush=True)
"""

CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as exc:
    print(type(exc).__name__)
    sys.exit(1)
"""


@contextlib.contextmanager
def background(ns: str, code: str, *args: str, stdin=subprocess.DEVNULL):
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def pf_lab(pf_netns, pf_ctl):
    """The namespace pair with an echo server in `mac` and a pfctl that enforces there."""
    with background(pf_netns.mac, SERVER, str(PORT)) as server:
        assert server.stdout.readline().strip() == "ready"

        def pfctl(*args, data=None):
            return pf_ctl(*args, data=data, env=ENV, prefix=("ip", "netns", "exec", pf_netns.mac))

        pf_netns.pfctl = pfctl
        yield pf_netns


def can_connect(lab, timeout: float = 1.0) -> bool:
    return ns_run(lab.client, sys.executable, "-c", CONNECT, lab.mac_addr, str(PORT), str(timeout),
                  check=False).returncode == 0


def setup_pf(lab, main: str, anchor_rules: str | None = None, table: list[str] | None = None, enable=True):
    assert lab.pfctl("-q", "-f", "-", data=main).rc == 0
    if anchor_rules is not None:
        assert lab.pfctl("-q", "-a", "pfguard", "-f", "-", data=anchor_rules).rc == 0
    if table is not None:
        assert lab.pfctl("-q", "-a", "pfguard", "-t", "bad", "-T", "add", *table).rc == 0
    if enable:
        assert lab.pfctl("-q", "-e").rc == 0


HOOKED = 'set skip on lo0\nanchor "pfguard"\n'
# `pass` keeps state by default (flags S/SA on TCP); PF's implicit default rule does not.
HOOKED_STATEFUL = 'set skip on lo0\npass all\nanchor "pfguard"\n'
BLOCK = f"table <bad> persist\nblock drop in quick proto tcp from <bad> to any port {PORT}\n"


def nft_tables(lab) -> str:
    return ns_run(lab.mac, "nft", "list", "tables").stdout


# ---------------------------------------------------------------------------- blocking


def test_blocked_when_table_rule_anchor_and_pf_all_line_up(pf_lab):
    assert can_connect(pf_lab)
    setup_pf(pf_lab, HOOKED, BLOCK, [pf_lab.client_addr])
    assert not can_connect(pf_lab)
    assert "table inet pfguard_lab" in nft_tables(pf_lab)


def test_passes_when_pf_is_disabled(pf_lab):
    setup_pf(pf_lab, HOOKED, BLOCK, [pf_lab.client_addr])
    assert not can_connect(pf_lab)
    assert pf_lab.pfctl("-q", "-d").rc == 0
    assert can_connect(pf_lab)
    assert "pfguard_lab" not in nft_tables(pf_lab)


def test_passes_when_the_anchor_is_not_hooked_into_main(pf_lab):
    setup_pf(pf_lab, "set skip on lo0\n", BLOCK, [pf_lab.client_addr])
    assert can_connect(pf_lab)


def test_passes_when_no_rule_references_the_table(pf_lab):
    rules = f"table <bad> persist\ntable <other> persist\nblock drop in quick proto tcp from <other> to port {PORT}\n"
    setup_pf(pf_lab, HOOKED, rules, [pf_lab.client_addr])
    assert can_connect(pf_lab)


def test_passes_when_the_client_is_not_in_the_table(pf_lab):
    setup_pf(pf_lab, HOOKED, BLOCK, ["192.0.2.1"])
    assert can_connect(pf_lab)
    assert pf_lab.pfctl("-q", "-a", "pfguard", "-t", "bad", "-T", "add", pf_lab.client_addr).rc == 0
    assert not can_connect(pf_lab)
    assert pf_lab.pfctl("-q", "-a", "pfguard", "-t", "bad", "-T", "delete", pf_lab.client_addr).rc == 0
    assert can_connect(pf_lab)


def test_wildcard_anchor_reaches_children(pf_lab):
    setup_pf(pf_lab, 'anchor "f2b/*"\n', enable=False)
    assert pf_lab.pfctl("-q", "-a", "f2b/sshd", "-f", "-", data=BLOCK.replace("bad", "f2b-sshd")).rc == 0
    assert pf_lab.pfctl("-q", "-a", "f2b/sshd", "-t", "f2b-sshd", "-T", "add", pf_lab.client_addr).rc == 0
    assert pf_lab.pfctl("-q", "-E").rc == 0
    assert not can_connect(pf_lab)


def test_block_return_refuses_at_once(pf_lab):
    setup_pf(pf_lab, HOOKED, BLOCK.replace("block drop", "block return"), [pf_lab.client_addr])
    start = time.monotonic()
    result = ns_run(pf_lab.client, sys.executable, "-c", CONNECT, pf_lab.mac_addr, str(PORT), "3", check=False)
    assert result.stdout.strip() == "ConnectionRefusedError"
    assert time.monotonic() - start < 2


def test_last_matching_rule_wins_unless_quick(pf_lab):
    rules = f"block drop in proto tcp to port {PORT}\npass in proto tcp from {pf_lab.client_addr} to port {PORT}\n"
    setup_pf(pf_lab, HOOKED, rules)
    assert can_connect(pf_lab)
    quick = rules.replace("block drop in", "block drop in quick")
    assert pf_lab.pfctl("-q", "-a", "pfguard", "-f", "-", data=quick).rc == 0
    assert not can_connect(pf_lab)


def test_quick_anchor_stops_evaluation_after_a_match_inside(pf_lab):
    inner = f"block drop in proto tcp to any port {PORT}\n"
    setup_pf(pf_lab, 'set skip on lo0\nanchor "pfguard"\npass in all\n', inner)
    assert can_connect(pf_lab)  # the later `pass in all` is the last match
    assert pf_lab.pfctl("-q", "-f", "-", data='set skip on lo0\nanchor "pfguard" quick\npass in all\n').rc == 0
    assert not can_connect(pf_lab)


def test_anchor_rule_criteria_guard_the_anchor(pf_lab):
    inner = f"block drop in quick proto tcp to any port {PORT}\n"
    setup_pf(pf_lab, 'set skip on lo0\nanchor "pfguard" in proto udp\n', inner)
    assert can_connect(pf_lab)  # a TCP packet does not match the anchor rule, so its rules are skipped
    assert pf_lab.pfctl("-q", "-f", "-", data='set skip on lo0\nanchor "pfguard" in proto tcp\n').rc == 0
    assert not can_connect(pf_lab)


def test_negated_table_entry_is_not_a_match(pf_lab):
    setup_pf(pf_lab, HOOKED, BLOCK, ["198.51.100.0/24", f"!{pf_lab.client_addr}"])
    assert can_connect(pf_lab)
    assert pf_lab.pfctl("-q", "-a", "pfguard", "-t", "bad", "-T", "replace", "198.51.100.0/24").rc == 0
    assert not can_connect(pf_lab)


def test_anchor_table_falls_back_to_the_main_table(pf_lab):
    # the rule lives in the anchor, the table only in the main ruleset (pfr_match_addr root fallback)
    rules = f"block drop in quick proto tcp from <global_bad> to any port {PORT}\n"
    setup_pf(pf_lab, HOOKED, rules)
    assert pf_lab.pfctl("-q", "-t", "global_bad", "-T", "add", pf_lab.client_addr).rc == 0
    assert not can_connect(pf_lab)


def test_skip_on_lo0_keeps_loopback_open(pf_lab):
    setup_pf(pf_lab, "set skip on lo0\nblock drop all\n")
    assert not can_connect(pf_lab)
    local = ns_run(pf_lab.mac, sys.executable, "-c", CONNECT, "127.0.0.1", str(PORT), "1", check=False)
    assert local.returncode == 0


# ---------------------------------------------------------------------------- states


def test_established_connection_survives_add_until_kill(pf_lab):
    setup_pf(pf_lab, HOOKED_STATEFUL, BLOCK, ["192.0.2.1"])
    with background(pf_lab.client, CLIENT, pf_lab.mac_addr, str(PORT), stdin=subprocess.PIPE) as client:
        first = client.stdout.readline().split()
        assert first[0] == "connected", client.stderr.read()
        client_port = first[1]

        def ping() -> str:
            client.stdin.write("ping\n")
            client.stdin.flush()
            return client.stdout.readline().strip()

        assert ping() == "ok"
        assert pf_lab.pfctl("-q", "-a", "pfguard", "-t", "bad", "-T", "add", pf_lab.client_addr).rc == 0
        assert not can_connect(pf_lab)  # new connections are blocked...
        assert ping() == "ok"  # ...but the established one keeps its state
        line = f"ALL tcp {pf_lab.mac_addr}:{PORT} <- {pf_lab.client_addr}:{client_port}       ESTABLISHED:ESTABLISHED"
        assert line in pf_lab.pfctl("-q", "-s", "states").out.splitlines()
        killed = pf_lab.pfctl("-k", pf_lab.client_addr)
        assert killed.rc == 0
        assert killed.err.endswith("killed 1 states from 1 sources and 0 destinations\n")
        assert ping() == "fail"


def test_without_a_stateful_pass_rule_there_is_no_state_and_a_ban_cuts_at_once(pf_lab):
    setup_pf(pf_lab, HOOKED, BLOCK, ["192.0.2.1"])
    with background(pf_lab.client, CLIENT, pf_lab.mac_addr, str(PORT), stdin=subprocess.PIPE) as client:
        assert client.stdout.readline().split()[0] == "connected", client.stderr.read()

        def ping() -> str:
            client.stdin.write("ping\n")
            client.stdin.flush()
            return client.stdout.readline().strip()

        assert ping() == "ok"
        assert pf_lab.pfctl("-q", "-s", "states").out == ""  # the default rule passes without state
        assert pf_lab.pfctl("-q", "-a", "pfguard", "-t", "bad", "-T", "add", pf_lab.client_addr).rc == 0
        assert ping() == "fail"


def test_conntrack_states_render_and_flush(pf_lab):
    # like PF, the namespace only keeps states while filtering is on (conntrack hooks register with the table)
    setup_pf(pf_lab, HOOKED_STATEFUL)
    with background(pf_lab.client, CLIENT, pf_lab.mac_addr, str(PORT), stdin=subprocess.PIPE) as client:
        port = client.stdout.readline().split()[1]
        shown = pf_lab.pfctl("-q", "-s", "states").out.splitlines()
        assert f"ALL tcp {pf_lab.mac_addr}:{PORT} <- {pf_lab.client_addr}:{port}       ESTABLISHED:ESTABLISHED" in shown
        count = len(shown)
        assert pf_lab.pfctl("-F", "states").err.endswith(f"{count} states cleared\n")
        assert pf_lab.pfctl("-q", "-s", "states").out == ""


def test_kill_any_to_host_matches_outbound_states(pf_lab):
    # connections the mac opens to the client: `-k 0.0.0.0/0 -k CLIENT` kills connections to it
    setup_pf(pf_lab, HOOKED_STATEFUL)
    with background(pf_lab.client, SERVER, "2223") as server:
        assert server.stdout.readline().strip() == "ready"
        with background(pf_lab.mac, CLIENT, pf_lab.client_addr, "2223", stdin=subprocess.PIPE) as client:
            port = client.stdout.readline().split()[1]
            line = f"ALL tcp {pf_lab.mac_addr}:{port} -> {pf_lab.client_addr}:2223       ESTABLISHED:ESTABLISHED"
            assert line in pf_lab.pfctl("-q", "-s", "states").out.splitlines()
            # initiated by the mac, so killing by the client's address as source matches nothing
            none = pf_lab.pfctl("-k", pf_lab.client_addr)
            assert none.err.endswith("killed 0 states from 1 sources and 0 destinations\n")
            result = pf_lab.pfctl("-k", "0.0.0.0/0", "-k", pf_lab.client_addr)
            assert result.err.endswith("killed 1 states from 1 sources and 1 destinations\n")


# ---------------------------------------------------------------------------- scale and set contents


def test_100k_entry_table_is_enforced(pf_lab):
    rng = random.Random(3)
    values = set()
    while len(values) < 100_000:
        values.add(rng.randrange(0x0B000000, 0x7F000000))
    data = "\n".join(addr.ntop4(v) for v in values) + f"\n{pf_lab.client_addr}\n"
    setup_pf(pf_lab, HOOKED, BLOCK)
    start = time.perf_counter()
    result = pf_lab.pfctl("-q", "-a", "pfguard", "-t", "bad", "-T", "add", "-f", "-", data=data)
    elapsed = time.perf_counter() - start
    assert result.rc == 0, result
    print(f"100k add with nftables enforcement: {elapsed:.2f}s")
    assert not can_connect(pf_lab)
    listed = ns_run(pf_lab.mac, "nft", "list", "set", "inet", "pfguard_lab", "t0_4").stdout
    assert listed.count(",") >= 99_999


def test_table_elements_match_longest_prefix_semantics():
    rng = random.Random(11)
    for _ in range(200):
        keys = {}
        for _ in range(rng.randint(1, 12)):
            plen = rng.choice([8, 16, 24, 28, 32])
            value = addr.mask_value(addr.INET, 0x0A000000 | rng.getrandbits(24), plen)
            keys[addr.format_key(addr.INET, value, plen)] = rng.random() < 0.4
        table = [("!" if neg else "") + key for key, neg in keys.items()]
        ranges = []
        for element in enforce.table_elements(table, addr.INET):
            low, _, high = element.partition("-")
            ranges.append((int(ipaddress.IPv4Address(low)), int(ipaddress.IPv4Address(high or low))))
        for _ in range(200):
            probe = 0x0A000000 | rng.getrandbits(24)
            best = addr.longest_match(keys, addr.ntop4(probe))
            expected = best is not None and not keys[best]
            assert any(lo <= probe <= hi for lo, hi in ranges) == expected, (table, addr.ntop4(probe))
