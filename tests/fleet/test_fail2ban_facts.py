# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos.fail2ban_facts run by real `ansible` over SSH against the fleet's real fail2ban (1.1.0 on mac1,
1.0.2 on mac2: lab/pfguard_lab/data/fleet.yml): a real ban (and its history row) after an attack, the Homebrew
prefix and the version found on each Mac, check mode, and the states that are not failures (not installed,
server not answering) versus a real failure."""

from __future__ import annotations

import json
import time

import pytest
from fleet_fixtures import ATTACKER, BREW_PREFIX, POLICY, run_module_on
from lab_fixtures import wait_for

pytest_plugins = ["lab_fixtures", "fleet_fixtures"]

MODULE = "pfguard.macos.fail2ban_facts"
AUTH_LOG = "/var/log/pfguard/auth.log"  # what the roles' jails read (org.pfguard.logstream writes it)
# A copy of mac1's fail2ban configuration whose socket nothing listens on: the real client, a server that is down.
DOWN_CONFIG = "/tmp/pfguard-f2bfacts-down"


def facts_on(fleet, host: str, args: dict | None = None, *extra: str) -> dict:
    rc, result = run_module_on(fleet.lab, host, MODULE, args or {}, *extra)
    assert rc == 0 and not result.get("failed"), json.dumps(result, indent=1)[:4000]
    assert result["changed"] is False
    return result["ansible_facts"]["fail2ban"]


@pytest.fixture(scope="module")
def attacker_banned_on_mac1(fleet):
    """mac1 after `maxretry` failed logins from the attacker, once fail2ban banned it; unbanned afterwards
    (also from fail2ban's database), even when a test fails."""
    started = int(time.time())
    try:
        attack = fleet.lab.run("attack", "mac1", "--failures", str(POLICY["pfguard_fail2ban_maxretry"]))
        assert attack.returncode == 0, attack.stdout + attack.stderr
        wait_for(lambda: ATTACKER in fleet.jail_banned("mac1"), 30, what="fail2ban on mac1 to ban the attacker",
                 detail=lambda: fleet.fail2ban_log("mac1")[-3000:])  # fmt: skip
        yield started
    finally:
        unbanned = fleet.fail2ban_client("mac1", "unban", ATTACKER)
        assert unbanned.returncode == 0, unbanned.stderr
        wait_for(lambda: ATTACKER not in fleet.f2b_banned("mac1"), 20, what="the attacker to leave f2b-sshd on mac1")


def test_a_ban_is_in_the_jail_and_in_the_history(fleet, attacker_banned_on_mac1):
    facts = facts_on(fleet, "mac1", {"history": True})
    prefix = BREW_PREFIX["mac1"]
    assert facts["installed"] is True and facts["running"] is True
    assert facts["client"] == f"{prefix}/bin/fail2ban-client"  # the default, found on its own
    assert facts["config_dir"] == f"{prefix}/etc/fail2ban"
    assert facts["version"] == "1.1.0"
    assert facts["dbfile"] == f"{prefix}/var/lib/fail2ban/fail2ban.sqlite3"

    sshd = facts["jails"]["sshd"]
    assert sshd["banned"] == fleet.jail_banned("mac1")
    assert ATTACKER in sshd["banned"]
    assert sshd["currently_banned"] == len(sshd["banned"])
    assert sshd["total_banned"] >= sshd["currently_banned"]
    assert sshd["total_failed"] >= POLICY["pfguard_fail2ban_maxretry"]
    assert sshd["logpaths"] == [AUTH_LOG]
    assert sorted(sshd["banned"]) == sorted(fleet.f2b_banned("mac1"))  # what fail2ban says is what PF holds

    rows = [row for row in facts["history"] if row["ip"] == ATTACKER and row["jail"] == "sshd"]
    assert rows, facts["history"]
    assert rows[-1]["bantime"] == POLICY["pfguard_fail2ban_bantime"]
    assert attacker_banned_on_mac1 - 5 <= rows[-1]["timeofban"] <= time.time() + 5
    assert rows[-1]["bancount"] >= 1


def test_check_mode_reads_the_same_and_history_is_opt_in(fleet, attacker_banned_on_mac1):
    facts = facts_on(fleet, "mac1", {}, "--check")
    assert ATTACKER in facts["jails"]["sshd"]["banned"]
    assert facts["history"] == []


def test_intel_prefix_on_mac2(fleet):
    facts = facts_on(fleet, "mac2")
    assert facts["client"] == "/usr/local/bin/fail2ban-client"
    assert facts["config_dir"] == "/usr/local/etc/fail2ban"
    assert facts["dbfile"] == "/usr/local/var/lib/fail2ban/fail2ban.sqlite3"
    assert facts["running"] is True and facts["version"] == "1.0.2"
    assert facts["jails"]["sshd"]["banned"] == []
    assert facts["jails"]["sshd"]["logpaths"] == [AUTH_LOG]


def test_a_missing_client_means_not_installed(fleet):
    client = "/opt/homebrew/nonexistent/bin/fail2ban-client"
    facts = facts_on(fleet, "mac1", {"client": client})
    assert facts == {
        "installed": False, "running": False, "client": client, "config_dir": "/opt/homebrew/nonexistent/etc/fail2ban",
        "version": None, "dbfile": None, "jails": {}, "history": [],
    }  # fmt: skip


@pytest.fixture
def down_config(fleet):
    """A copy of mac1's fail2ban configuration pointing at a socket no server listens on."""
    script = (
        f"rm -rf {DOWN_CONFIG} && cp -R {BREW_PREFIX['mac1']}/etc/fail2ban {DOWN_CONFIG} && "
        f"printf '[Definition]\\nsocket = {DOWN_CONFIG}/nobody.sock\\n' > {DOWN_CONFIG}/fail2ban.local"
    )
    try:
        fleet.lab.sh("mac1", script)
        yield DOWN_CONFIG
    finally:
        fleet.lab.sh("mac1", f"rm -rf {DOWN_CONFIG}")


def test_a_server_that_does_not_answer_is_not_running(fleet, down_config):
    facts = facts_on(fleet, "mac1", {"config_dir": down_config, "history": True})
    assert facts["installed"] is True and facts["running"] is False
    assert facts["version"] == "1.1.0"  # the client's own
    assert facts["jails"] == {} and facts["dbfile"] is None and facts["history"] == []


def test_any_other_client_failure_fails_with_the_command(fleet):
    config_dir = "/opt/homebrew/etc/no-such-fail2ban"
    rc, result = run_module_on(fleet.lab, "mac1", MODULE, {"config_dir": config_dir})
    assert rc != 0 and result["failed"] is True
    assert result["cmd"] == ["/opt/homebrew/bin/fail2ban-client", "-c", config_dir, "ping", "10"]
    assert f"Base configuration directory {config_dir} does not exist" in result["msg"]
