# SPDX-License-Identifier: GPL-3.0-or-later
"""Traffic in the lab: Ansible over ssh, probe, attack and hold from the attacker/trusted clients, over
IPv4 and IPv6 (the dual-stack link, docs/lab-design.md "Host model")."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab_fixtures import wait_for
from pfguard_lab import fleet, netns

pytest_plugins = ["lab_fixtures"]

ATTACKER, TRUSTED = "198.51.100.200", "198.51.100.50"
ATTACKER6, TRUSTED6, CONTROLLER6 = "2001:db8:100:ff::200", "2001:db8:100::50", "2001:db8:100::1"
MAC_ADDRESSES6 = {"mac1": "2001:db8:100::11", "mac2": "2001:db8:100::12", "mac3": "2001:db8:100::13"}
TEST_TABLE = "pfguard_lab_test"


@contextlib.contextmanager
def dropping(lab, host: str, source: str):
    """nftables on `host` silently drops packets from `source` (what a PF `block drop` does)."""
    family = "ip6" if ":" in source else "ip"
    ruleset = (
        f"table inet {TEST_TABLE} {{ chain input {{ type filter hook input priority -10; "
        f"{family} saddr {source} drop; }}; }}\n"
    )
    result = lab.exec(host, "nft", "-f", "-", input_text=ruleset)
    assert result.returncode == 0, result.stderr
    try:
        yield
    finally:
        lab.exec(host, "nft", "delete", "table", "inet", TEST_TABLE)


def failed_passwords(lab, host: str, source: str) -> int:
    pattern = re.compile(rf"^Failed password for admin from {re.escape(source)} port \d+ ssh2$")
    return sum(1 for entry in lab.log_messages(host) if pattern.match(entry["message"]))


def test_ansible_reaches_every_mac(lab):
    ansible = Path(sys.executable).parent / "ansible"
    env = dict(os.environ, PATH=f"{ansible.parent}:{os.environ['PATH']}", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    result = subprocess.run(
        [str(ansible), "-i", str(lab.inventory_path), "macs", "-m", "ansible.builtin.ping"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for name in lab.macs():
        assert re.search(rf"^{name} \| SUCCESS => \{{", result.stdout, re.MULTILINE), result.stdout
    assert result.stdout.count('"ping": "pong"') == len(lab.macs())


def test_probe_from_attacker_and_trusted(lab):
    for source in ("attacker", "trusted"):
        result = lab.run("probe", "mac1", "--from", source)
        assert result.returncode == 0
        assert re.fullmatch(rf"mac1 198\.51\.100\.11:22 from {source}: open \(\d+\.\d+s\)\n", result.stdout)
    with dropping(lab, "mac1", ATTACKER):
        started = time.monotonic()
        blocked = lab.run("probe", "mac1")
        assert blocked.returncode == 1
        assert blocked.stdout == "mac1 198.51.100.11:22 from attacker: blocked (no answer within 2s)\n"
        assert 1.9 < time.monotonic() - started < 10
        assert lab.run("probe", "mac1", "--from", "trusted").returncode == 0


def test_attack_produces_n_sshd_failures(lab):
    for host in ("mac1", "mac2"):  # mac2 (15.x) logs them under sshd-auth; the message is the same
        before = failed_passwords(lab, host, ATTACKER)
        result = lab.run("attack", host, "--failures", "3")
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        for number, line in enumerate(lines[:3], start=1):
            assert re.fullmatch(rf"attempt {number}/3 \d\d:\d\d:\d\d\.\d{{3}} denied \(\d+\.\d\ds\)", line), line
        assert lines[3] == f"attack on {host} from attacker as admin: 3 attempts: 3 denied"
        # logd writes asynchronously
        wait_for(lambda host=host, before=before: failed_passwords(lab, host, ATTACKER) >= before + 3, 5,
                 interval=0.2, what="sshd's failed passwords in the unified log")  # fmt: skip
        assert failed_passwords(lab, host, ATTACKER) == before + 3


def test_attack_reports_blocked_connections(lab):
    with dropping(lab, "mac3", ATTACKER):
        result = lab.run("attack", "mac3", "--failures", "2", "--connect-timeout", "1")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    for line in lines[:2]:
        assert re.fullmatch(r"attempt \d/2 \S+ blocked: no answer within \d+\.\ds \(\S+s\)", line), line
    assert lines[2] == "attack on mac3 from attacker as admin: 2 attempts: 2 blocked"


def test_hold_reports_established_then_the_cut(lab):
    hold = subprocess.Popen(
        [*lab.command(), "hold", "mac1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        ready, _, _ = select.select([hold.stdout], [], [], 15)
        assert ready, "hold printed nothing within 15s"
        assert hold.stdout.readline() == "established\n"
        time.sleep(1.0)  # a tick or two of the held session
        assert hold.poll() is None  # still ticking
        with dropping(lab, "mac1", ATTACKER):
            out, err = hold.communicate(timeout=15)
    finally:
        if hold.poll() is None:
            hold.kill()
            hold.wait()
    assert hold.returncode == 0, err
    cut = re.fullmatch(r"cut after (\d+\.\d)s\n", out)
    assert cut, out
    assert float(cut.group(1)) >= 0.9


def test_hold_timeout_reports_still_open(lab):
    started = time.monotonic()
    result = lab.run("hold", "mac2", "--from", "trusted", "--timeout", "1.5")
    assert result.returncode == 1
    assert result.stdout == "established\nstill open\n"
    assert time.monotonic() - started < 15


# --- the dual-stack link ------------------------------------------------------------------------


def test_default_fleet_is_dual_stack_with_the_attacker_outside_the_trusted_64():
    hosts, controller, controller6 = fleet.read_spec()
    assert (controller, controller6) == ("198.51.100.1/24", "2001:db8:100::1/56")
    assert {h.name: h.address6 for h in hosts} == {**MAC_ADDRESSES6, "trusted": TRUSTED6, "attacker": ATTACKER6}
    trusted = [ipaddress.ip_network(n) for n in fleet.TRUSTED_NETWORKS]
    inside = {h.name for h in hosts for a in (h.address, h.address6)
              if any(ipaddress.ip_address(a) in n for n in trusted)}  # fmt: skip
    assert inside == {"mac1", "mac2", "mac3", "trusted"}  # both families: the attacker is outside
    assert ipaddress.ip_address(controller6.split("/")[0]) in trusted[1]
    # --hosts N mirrors the IPv4 numbering; load_spec keeps its IPv4-only answer.
    hosts, _, _ = fleet.read_spec(mac_count=12)
    assert [h.address6 for h in hosts if h.is_mac][-3:] == ["2001:db8:100::20", "2001:db8:100::21", "2001:db8:100::22"]
    assert fleet.load_spec()[1] == "198.51.100.1/24"


def test_a_big_fleet_passes_over_the_clients_addresses():
    """`--hosts 40` reaches .50, the trusted host's address: the Macs skip it (bench/fleet.py's 40 Macs)."""
    hosts, controller, _ = fleet.read_spec(mac_count=40)
    addresses = [h.address for h in hosts]
    assert len(set(addresses)) == len(addresses) and controller.split("/")[0] not in addresses
    macs = [h.address for h in hosts if h.is_mac]
    assert macs[38:] == ["198.51.100.49", "198.51.100.51"]
    trusted = ipaddress.ip_network(fleet.TRUSTED_NETWORKS[0])
    assert all(ipaddress.ip_address(a) in trusted for a in macs)
    assert len({h.address6 for h in hosts}) == len(hosts)


def test_a_spec_without_network6_is_ipv4_only_and_bad_ipv6_is_refused(tmp_path):
    spec = tmp_path / "fleet.yml"
    mac = "{name: m1, os_version: '14.5', build: 23F79, arch: arm64, brew_prefix: /opt/homebrew}"
    spec.write_text(f"macs:\n  - {mac}\nclients:\n  - {{name: c1, address: 198.51.100.60}}\n")
    hosts, _, controller6 = fleet.read_spec(spec)
    assert controller6 is None and [h.address6 for h in hosts] == [None, None]
    for extra, message in [
        ("network6: 2001:db8:100::/56\nclients:\n  - {name: c1, address: 198.51.100.60, address6: '2001:db8:200::1'}",
         "c1: 2001:db8:200::1 is outside 2001:db8:100::/56"),
        ("network6: 2001:db8:100::/56\nclients:\n  - {name: c1, address: 198.51.100.60, address6: '2001:db8:100::11'}",
         "c1: address 2001:db8:100::11 already taken"),
        ("network6: 198.51.100.0/24", "network6/controller6"),
    ]:  # fmt: skip
        spec.write_text(f"macs:\n  - {mac}\n{extra}\n")
        with pytest.raises(fleet.LabError, match=re.escape(message)):
            fleet.read_spec(spec)


def test_netns_setup_gives_ipv6_addresses_without_dad(monkeypatch):
    calls = []
    monkeypatch.setattr(netns, "run", lambda argv, **kw: calls.append((argv, kw.get("input_text"))) or "")
    netns.create_bridge("198.51.100.1/24", "2001:db8:100::1/56")
    netns.create_host_netns("pfglab-mac1", "pfglabv1", "en0", "198.51.100.11/24", "2001:db8:100::11/56")
    netns.create_host_netns("pfglab-old", "pfglabv9", "eth0", "198.51.100.70/24")
    assert calls[0] == (["ip", "link", "add", "pfglab0", "type", "bridge", "mcast_snooping", "0"], None)
    assert calls[1] == (["ip", "-batch", "-"],
                        "addr add 198.51.100.1/24 dev pfglab0\naddr add 2001:db8:100::1/56 dev pfglab0 nodad\n")
    assert calls[2] == (["ip", "link", "set", "pfglab0", "up"], None)
    assert calls[5] == (["ip", "-n", "pfglab-mac1", "-batch", "-"],
                        "addr add 198.51.100.11/24 dev en0\naddr add 2001:db8:100::11/56 dev en0 nodad\n"
                        "link set en0 up\nlink set lo up\n")  # fmt: skip
    assert calls[8][1] == "addr add 198.51.100.70/24 dev eth0\nlink set eth0 up\nlink set lo up\n"  # IPv4 only


def test_every_host_has_its_ipv6_address_at_once_and_sshd_listens_on_both_families(lab):
    bridge = netns.run(["ip", "-6", "-o", "addr", "show", "dev", netns.BRIDGE, "scope", "global"])
    assert re.search(rf"inet6 {re.escape(CONTROLLER6)}/56 scope global nodad", bridge), bridge
    for host, address in {**MAC_ADDRESSES6, "trusted": TRUSTED6, "attacker": ATTACKER6}.items():
        shown = lab.exec(host, "ip", "-6", "-o", "addr", "show", "scope", "global").stdout
        # nodad: never "tentative" (duplicate address detection would hold it back about a second).
        pattern = rf"\d+: (en0|eth0)\s+inet6 {re.escape(address)}/56 scope global nodad \\ .*\n"
        assert re.fullmatch(pattern, shown), shown
    for host in MAC_ADDRESSES6:
        assert json.loads(lab.sh(host, "cat /var/db/.pfguard-lab/host.json"))["address6"] == MAC_ADDRESSES6[host]
        assert lab.macs()[host]["ansible_host"].startswith("198.51.100.")  # Ansible stays on IPv4
        listening = lab.exec(host, "ss", "-H", "-ltn", "sport", "= :22").stdout.split()
        assert "0.0.0.0:22" in listening and "[::]:22" in listening, listening


def test_probe_and_attack_over_ipv6(lab):
    for source in ("attacker", "trusted"):
        result = lab.run("probe", "mac1", "--ipv6", "--from", source)
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(rf"mac1 \[2001:db8:100::11\]:22 from {source}: open \(\d+\.\d+s\)\n", result.stdout)
    with dropping(lab, "mac1", ATTACKER6):
        blocked = lab.run("probe", "mac1", "--ipv6")
        assert blocked.returncode == 1
        assert blocked.stdout == "mac1 [2001:db8:100::11]:22 from attacker: blocked (no answer within 2s)\n"
        assert lab.run("probe", "mac1").returncode == 0  # IPv4 is another path
        assert lab.run("probe", "mac1", "--ipv6", "--from", "trusted").returncode == 0
    before = failed_passwords(lab, "mac2", ATTACKER6)
    result = lab.run("attack", "mac2", "--ipv6", "--failures", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "attack on mac2 over IPv6 from attacker as admin: 2 attempts: 2 denied"
    # logd writes asynchronously
    wait_for(lambda: failed_passwords(lab, "mac2", ATTACKER6) >= before + 2, 5, interval=0.2,
             what="sshd's failed passwords in the unified log")  # fmt: skip
    assert failed_passwords(lab, "mac2", ATTACKER6) == before + 2


def test_attack_over_ipv6_binds_the_clients_lab_address(lab):
    """A second address in the attacker's /64 (a test may add one) does not change where attacks come from."""
    extra = "2001:db8:100:ff::201"
    added = lab.exec("attacker", "ip", "addr", "add", f"{extra}/64", "dev", "eth0", "nodad")
    assert added.returncode == 0, added.stderr
    try:
        before = failed_passwords(lab, "mac3", ATTACKER6)
        assert lab.run("attack", "mac3", "--ipv6", "--failures", "1").returncode == 0
        # logd writes asynchronously
        wait_for(lambda: failed_passwords(lab, "mac3", ATTACKER6) >= before + 1, 5, interval=0.2,
                 what="sshd's failed passwords in the unified log")  # fmt: skip
        assert failed_passwords(lab, "mac3", ATTACKER6) == before + 1
        assert failed_passwords(lab, "mac3", extra) == 0
    finally:
        lab.exec("attacker", "ip", "addr", "del", f"{extra}/64", "dev", "eth0")


def test_ipv6_probe_still_comes_from_a_client(lab):
    result = lab.run("probe", "mac1", "--ipv6", "--from", "mac2")
    assert result.returncode == 1 and "--from must be a client" in result.stderr
