# SPDX-License-Identifier: GPL-3.0-or-later
"""Traffic in the lab: Ansible over ssh, probe, attack and hold from the attacker/trusted clients."""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

pytest_plugins = ["lab_fixtures"]

ATTACKER, TRUSTED = "198.51.100.200", "198.51.100.50"
TEST_TABLE = "pfguard_lab_test"


@contextlib.contextmanager
def dropping(lab, host: str, source: str):
    """nftables on `host` silently drops packets from `source` (what a PF `block drop` does)."""
    ruleset = (
        f"table inet {TEST_TABLE} {{ chain input {{ type filter hook input priority -10; "
        f"ip saddr {source} drop; }}; }}\n"
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
        deadline = time.monotonic() + 5  # logd writes asynchronously
        while failed_passwords(lab, host, ATTACKER) < before + 3 and time.monotonic() < deadline:
            time.sleep(0.2)
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
        time.sleep(1.0)
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
