# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos.adaptive_firewall on the lab: mac3 has Server.app's afctl, mac1 has none and is skipped
with a message. Check mode, whitelist, idempotence, unblock, absent (docs/reference/macos.md#adaptive-firewall).

Run under the lab lock: flock /tmp/pfguard-lab.lock .venv/bin/pytest -q tests/lab/test_role_adaptive_firewall.py
"""

from __future__ import annotations

import hashlib
import json

import pytest
from lab_fixtures import PlaybookRun

pytest_plugins = ["lab_fixtures"]

AFCTL = "/Applications/Server.app/Contents/ServerRoot/usr/libexec/afctl"
AF_ANCHOR = "com.apple/400.AdaptiveFirewall"
ATTACKER = "198.51.100.200"
TRUSTED = "198.51.100.0/25"  # the lab inventory's pfguard_trusted_networks (IPv4, then IPv6)
TRUSTED6 = "2001:db8:100::/64"
APPLE_ENTRY = "192.0.2.53"  # what `afctl -c` would whitelist (a name server): pfguard must leave it alone
RECORD = "/var/db/pfguard/adaptive_firewall.json"
# Every file the role or afctl could change on mac3 (af_state lives on the per-boot /var/run).
WATCHED = (
    "/var/db/af/whitelist",
    "/var/db/af/blacklist",
    "/etc/af.plist",
    "/Applications/Server.app/Contents/ServerRoot/private/etc/emond.d/rules/AdaptiveFirewall.plist",
    "/var/run/af_state",
    RECORD,
)
PLAYBOOK = """\
- name: Adaptive Firewall
  hosts: mac1,mac3
  gather_facts: false
  roles:
    - role: pfguard.macos.adaptive_firewall
  post_tasks:
    - name: Show that the play goes on after the role
      ansible.builtin.debug:
        msg: after adaptive_firewall
"""
SETTINGS = {"pfguard_adaptive_firewall_block_time": 60, "pfguard_adaptive_firewall_threshold": 5}


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    """The lab with an Apple-style whitelist entry on mac3, and a way to apply the role to mac1 and mac3;
    mac3's Adaptive Firewall is put back afterwards for the other tests sharing the lab."""
    playbook = tmp_path_factory.mktemp("adaptive_firewall") / "play.yml"
    playbook.write_text(PLAYBOOK)

    def apply(*extra: str, **extra_vars) -> PlaybookRun:
        """The play with the JSON callback (results as data); `extra`: ansible-playbook options."""
        return lab.playbook(playbook, *extra, extra_vars=extra_vars, json_output=True, timeout=300)

    assert lab.exec("mac3", AFCTL, "-w", APPLE_ENTRY).returncode == 0
    try:
        yield apply
    finally:
        apply(pfguard_state="absent")
        lab.exec("mac3", AFCTL, "-x", APPLE_ENTRY)
        lab.exec("mac3", AFCTL, "-r", ATTACKER)


def fingerprint(lab, host: str) -> dict[str, str]:
    """sha256 (or 'missing') of every watched file, and the PF table."""
    result = {}
    for path in WATCHED:
        read = lab.exec(host, "cat", path)
        result[path] = hashlib.sha256(read.stdout.encode()).hexdigest() if read.returncode == 0 else "missing"
    result["blockedHosts"] = blocked_hosts(lab, host)
    return result


def blocked_hosts(lab, host: str) -> str:
    return lab.exec(host, "/sbin/pfctl", "-a", AF_ANCHOR, "-t", "blockedHosts", "-T", "show").stdout


def lines(lab, host: str, path: str) -> list[str]:
    return lab.sh(host, f"cat {path}").split()


def record(lab) -> dict:
    return json.loads(lab.sh("mac3", f"cat {RECORD}"))


def test_check_mode_on_a_fresh_host_reports_changes_and_changes_no_file(lab, fleet):
    before = fingerprint(lab, "mac3")
    run = fleet("--check", "--diff", **SETTINGS)
    assert run.ok(), str(run)
    assert run.changed()["mac3"] > 0
    assert fingerprint(lab, "mac3") == before
    assert lines(lab, "mac3", "/var/db/af/whitelist") == [APPLE_ENTRY]


def test_apply_whitelists_trusted_networks_on_mac3_and_skips_mac1(lab, fleet):
    run = fleet(**SETTINGS)
    assert run.ok(), str(run)
    assert lines(lab, "mac3", "/var/db/af/whitelist") == [APPLE_ENTRY, TRUSTED, TRUSTED6]
    assert record(lab) == {
        "original_settings": {"block_time": 15, "state": "disabled", "threshold": 10},
        "whitelist_added": [TRUSTED, TRUSTED6],
        "written_by": "pfguard.macos.adaptive_firewall (ansible-managed); read by pfguard_state: absent",
    }
    assert "<string>60</string>" in lab.sh("mac3", "cat /etc/af.plist")
    configured = run.results("mac3", "Whitelist the trusted networks and apply Adaptive Firewall's settings")
    assert configured[0]["settings"] == {"state": "enabled", "block_time": 60, "threshold": 5}
    skipped = run.results("mac1", "Explain why Adaptive Firewall is skipped")
    assert skipped and f"mac1 has no {AFCTL}" in skipped[0]["msg"]
    assert run.recap["mac1"]["failed"] == 0 and run.changed()["mac1"] == 0
    assert run.results("mac1", "Show that the play goes on after the role"), "mac1 must not be ended"
    assert lab.exec("mac1", "test", "-e", RECORD).returncode == 1


def test_second_run_changes_nothing(lab, fleet):
    run = fleet(**SETTINGS)
    assert run.ok(), str(run)
    assert run.changed()["mac3"] == 0 and run.changed()["mac1"] == 0, run.changed_tasks("mac3")


def test_unblock_removes_the_address_from_blacklist_and_table(lab, fleet):
    blocked = lab.exec("mac3", AFCTL, "-a", ATTACKER)
    assert blocked.returncode == 0, blocked.stderr
    assert ATTACKER in lines(lab, "mac3", "/var/db/af/blacklist")
    assert blocked_hosts(lab, "mac3").split() == [ATTACKER]
    run = fleet(pfguard_adaptive_firewall_unblock=[ATTACKER], **SETTINGS)
    assert run.ok(), str(run)
    assert run.changed_tasks("mac3") == ["Whitelist the trusted networks and apply Adaptive Firewall's settings"]
    assert ATTACKER not in lines(lab, "mac3", "/var/db/af/blacklist")
    assert blocked_hosts(lab, "mac3").split() == []
    again = fleet(pfguard_adaptive_firewall_unblock=[ATTACKER], **SETTINGS)
    assert again.ok() and again.changed()["mac3"] == 0, f"{again.changed_tasks('mac3')}\n{again}"


def test_a_network_no_longer_trusted_leaves_the_whitelist(lab, fleet):
    run = fleet(pfguard_trusted_networks=["198.51.100.0/26"], **SETTINGS)
    assert run.ok(), str(run)
    assert lines(lab, "mac3", "/var/db/af/whitelist") == [APPLE_ENTRY, "198.51.100.0/26"]
    assert record(lab)["whitelist_added"] == ["198.51.100.0/26"]
    assert record(lab)["original_settings"]["block_time"] == 15, "the first value seen is kept"


def test_tags_config_reaches_the_tasks_of_the_included_present_yml(lab, fleet):
    """present.yml is included only on a Mac with afctl; `--tags config` must still run its config tasks."""
    narrowed = fleet(pfguard_trusted_networks=["198.51.100.0/26"], **SETTINGS)
    assert narrowed.ok(), str(narrowed)
    assert lines(lab, "mac3", "/var/db/af/whitelist") == [APPLE_ENTRY, "198.51.100.0/26"]
    run = fleet("--tags", "config", **SETTINGS)
    assert run.ok(), str(run)
    assert lines(lab, "mac3", "/var/db/af/whitelist") == [APPLE_ENTRY, TRUSTED, TRUSTED6]
    assert run.changed()["mac1"] == 0


def test_absent_removes_what_pfguard_added_and_restores_settings(lab, fleet):
    run = fleet(pfguard_state="absent")
    assert run.ok(), str(run)
    assert lines(lab, "mac3", "/var/db/af/whitelist") == [APPLE_ENTRY]
    assert lab.exec("mac3", "test", "-e", RECORD).returncode == 1
    assert "<string>15</string>" in lab.sh("mac3", "cat /etc/af.plist")
    assert "<false/>" in lab.sh("mac3", "cat /var/run/af_state")
    again = fleet(pfguard_state="absent")
    assert again.ok() and again.changed()["mac3"] == 0 and again.changed()["mac1"] == 0, str(again)
