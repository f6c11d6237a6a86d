# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos.afctl run by real `ansible localhost` against the lab's afctl emulator, standalone in a
temp root (docs/reference/macos.md#adaptive-firewall): idempotence, check mode, unblock, whitelist modes."""

from __future__ import annotations

import plistlib
import subprocess

import pytest
from pfguard_lab.adhoc import run_module
from ulog_fixtures import remove_root, server_app_root

AF_ANCHOR = "com.apple/400.AdaptiveFirewall"
ATTACKER = "198.51.100.200"


class Server:
    """A temp root with Server.app provisioned: afctl and pfctl wrappers that find the root on their own,
    so that afctl run by an Ansible module (which does not pass our environment) works on it."""

    def __init__(self):
        provisioned = server_app_root(root_in_wrapper=True)
        self.root, self.pfctl_path = provisioned.root, provisioned.pfctl_path
        self.afctl_path = provisioned.afctl_path

    def path(self, mac_path: str):
        return self.root / mac_path.lstrip("/")

    def args(self, **extra) -> dict:
        base = dict(
            afctl_path=str(self.afctl_path),
            whitelist_file=str(self.path("/var/db/af/whitelist")),
            blacklist_file=str(self.path("/var/db/af/blacklist")),
            settings_file=str(self.path("/etc/af.plist")),
            af_state_file=str(self.path("/var/run/af_state")),
        )
        return {**base, **extra}

    def afctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.afctl_path), *args], capture_output=True, text=True, timeout=60)

    def pfctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.pfctl_path), *args], capture_output=True, text=True, timeout=60)

    def table(self) -> list[str]:
        shown = self.pfctl("-a", AF_ANCHOR, "-t", "blockedHosts", "-T", "show")
        return [line.strip() for line in shown.stdout.splitlines() if line.strip()]

    def whitelist(self) -> list[str]:
        return self.path("/var/db/af/whitelist").read_text().splitlines()

    def blacklisted(self) -> list[str]:
        return [line.split("\t")[0] for line in self.path("/var/db/af/blacklist").read_text().splitlines()]

    def snapshot(self) -> dict:
        return {p: p.read_bytes() for p in sorted(self.root.rglob("*")) if p.is_file() and p.name != "lock"}


@pytest.fixture
def server():
    machine = None
    try:
        machine = Server()
        yield machine
    finally:
        if machine is not None:
            remove_root(machine.root)


def module(args: dict, *extra: str) -> tuple[int, dict]:
    return run_module("pfguard.macos.afctl", args, *extra)


def test_configures_then_second_run_changes_nothing(server):
    args = server.args(whitelist=["198.51.100.7/25", "2001:DB8::1/128"], state="enabled", block_time=60, threshold=5)
    rc, first = module(args)
    assert rc == 0, first
    assert first["changed"] is True
    assert first["added"] == ["198.51.100.0/25", "2001:db8::1"]
    assert first["settings_before"] == {"state": "disabled", "block_time": 15, "threshold": 10}
    assert first["settings"] == {"state": "enabled", "block_time": 60, "threshold": 5}
    assert server.whitelist() == ["198.51.100.0/25", "2001:db8::1"]
    assert plistlib.loads(server.path("/etc/af.plist").read_bytes())["default_timeout"] == "60"
    assert "block drop in quick from <blockedHosts> to any" in server.pfctl("-a", AF_ANCHOR, "-s", "rules").stdout
    rc, second = module(args)
    assert rc == 0, second
    assert second["changed"] is False and second["commands"] == []
    assert second["whitelist"] == ["198.51.100.0/25", "2001:db8::1"]


def test_check_mode_reports_and_changes_no_file(server):
    assert server.afctl("-a", ATTACKER).returncode == 0
    before = server.snapshot()
    rc, result = module(
        server.args(whitelist=["198.51.100.0/25"], unblock=[ATTACKER], state="enabled", threshold=3), "--check"
    )
    assert rc == 0, result
    assert result["changed"] is True
    assert result["added"] == ["198.51.100.0/25"] and result["unblocked"] == [ATTACKER]
    assert result["settings"]["threshold"] == 3
    assert server.snapshot() == before
    assert server.table() == [ATTACKER]


def test_unblock_removes_from_blacklist_and_table_only_when_listed(server):
    for address in (ATTACKER, "203.0.113.9"):
        assert server.afctl("-a", address).returncode == 0
    rc, result = module(server.args(unblock=[ATTACKER, "192.0.2.1"]))
    assert rc == 0, result
    assert result["changed"] is True and result["unblocked"] == [ATTACKER]
    assert server.blacklisted() == ["203.0.113.9"]
    assert server.table() == ["203.0.113.9"]
    rc, again = module(server.args(unblock=[ATTACKER]))
    assert rc == 0 and again["changed"] is False


def test_present_keeps_apples_entries_exact_and_absent_remove(server):
    assert server.afctl("-w", "198.51.100.1").returncode == 0  # as `afctl -c` whitelists the router
    rc, present = module(server.args(whitelist=["198.51.100.0/25"]))
    assert rc == 0 and present["added"] == ["198.51.100.0/25"] and present["removed"] == []
    assert server.whitelist() == ["198.51.100.1", "198.51.100.0/25"]
    rc, absent = module(server.args(whitelist=["198.51.100.0/25"], whitelist_state="absent"))
    assert rc == 0 and absent["removed"] == ["198.51.100.0/25"]
    assert server.whitelist() == ["198.51.100.1"]
    rc, exact = module(server.args(whitelist=["192.0.2.0/24"], whitelist_state="exact"))
    assert rc == 0 and exact["removed"] == ["198.51.100.1"] and exact["added"] == ["192.0.2.0/24"]
    assert server.whitelist() == ["192.0.2.0/24"]


def test_disable_flushes_afs_rules_once(server):
    assert module(server.args(state="enabled"))[1]["changed"] is True
    rc, disabled = module(server.args(state="disabled"))
    assert rc == 0 and disabled["commands"] == [[str(server.afctl_path), "-d"]]
    assert "blockedHosts" not in server.pfctl("-a", AF_ANCHOR, "-s", "rules").stdout
    rc, again = module(server.args(state="disabled"))
    assert rc == 0 and again["changed"] is False


def test_afctl_errors_and_missing_afctl_fail_clearly(server):
    rc, missing = module(server.args(afctl_path=str(server.root / "nowhere/afctl"), whitelist=["192.0.2.1"]))
    assert rc != 0 and "afctl not found or not executable" in missing["msg"] and "Server.app" in missing["msg"]
    rc, bad = module(server.args(whitelist=["mac1.example"]))
    assert rc != 0 and bad["invalid"] == ["mac1.example"]
    assert server.whitelist() == []


def test_command_timeout_bounds_each_call_and_a_normal_run_fits(server):
    rc, result = module(server.args(whitelist=["192.0.2.0/24"], unblock=[ATTACKER], command_timeout=20))
    assert rc == 0 and result["added"] == ["192.0.2.0/24"], result
    rc, refused = module(server.args(whitelist=["192.0.2.1"], command_timeout=0))
    assert rc != 0 and "command_timeout 0 is out of range: use 1 to 3600 seconds" in refused["msg"]
    assert server.whitelist() == ["192.0.2.0/24"]
