# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard-lab up/status/down, the inventory, leftovers after down, and the capability check."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pfguard_lab import cli, fleet, netns

pytest_plugins = ["lab_fixtures"]

DEFAULT_FLEET = {
    "mac1": ("198.51.100.11", "26.2", "arm64", "/opt/homebrew", False),
    "mac2": ("198.51.100.12", "15.1", "x86_64", "/usr/local", False),
    "mac3": ("198.51.100.13", "12.7", "arm64", "/opt/homebrew", True),
}


def test_not_root_is_a_clear_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["up"]) == 2
    assert "this machine cannot host a lab: must run as root" in capsys.readouterr().err
    assert cli.main(["down"]) == 2
    assert "must run as root" in capsys.readouterr().err


def test_missing_nft_is_a_clear_exit_2(tmp_path, monkeypatch, capsys):
    # A PATH with every tool the lab needs except nft.
    for tool in cli.REQUIRED_TOOLS:
        if tool != "nft":
            real = next(p for p in ("/usr/sbin", "/usr/bin", "/sbin", "/bin") if os.access(f"{p}/{tool}", os.X_OK))
            (tmp_path / tool).symlink_to(f"{real}/{tool}")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.main(["up"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pfguard-lab: this machine cannot host a lab: ")
    assert "nft not found on PATH" in err
    assert "ip not found" not in err


def test_fleet_spec_cycles_profiles_and_rejects_bad_specs(tmp_path):
    hosts, controller = fleet.load_spec(mac_count=5)
    assert controller == "198.51.100.1/24"
    macs = [h for h in hosts if h.is_mac]
    assert [(h.name, h.address, h.os_version, h.fail2ban_version) for h in macs] == [
        ("mac1", "198.51.100.11", "26.2", "1.1.0"), ("mac2", "198.51.100.12", "15.1", "1.0.2"),
        ("mac3", "198.51.100.13", "12.7", "1.1.0"), ("mac4", "198.51.100.14", "26.2", "1.1.0"),
        ("mac5", "198.51.100.15", "15.1", "1.0.2"),
    ]  # fmt: skip
    assert macs[0].facts()["fail2ban_version"] == "1.1.0"  # host.json: what the brew emulator pours
    assert [(h.name, h.role, h.address) for h in hosts if not h.is_mac] == [
        ("trusted", "trusted", "198.51.100.50"), ("attacker", "attacker", "198.51.100.200"),
    ]  # fmt: skip
    bad = tmp_path / "fleet.yml"
    # A Mac's own address is its own: a client on it is refused (a generated one passes over the clients').
    mac = ("{name: m1, address: 198.51.100.60, os_version: '14.5', build: 23F79, arch: arm64, "
           "brew_prefix: /opt/homebrew}")
    bad.write_text(f"macs:\n  - {mac}\nclients:\n  - {{name: c1, address: 198.51.100.60}}\n")
    with pytest.raises(fleet.LabError, match="c1: address 198.51.100.60 already taken"):
        fleet.load_spec(bad)
    bad.write_text("macs:\n  - {name: m1, os_version: '14.5', build: X, arch: ppc, brew_prefix: /opt/homebrew}\n")
    with pytest.raises(fleet.LabError, match="arch must be one of arm64, x86_64"):
        fleet.load_spec(bad)
    bad.write_text("macs:\n  - {name: m1, os_version: '26.2', build: X, arch: arm64, brew_prefix: /opt/homebrew,"
                   " fail2ban_version: '0.9.7'}\n")  # fmt: skip
    with pytest.raises(fleet.LabError, match=r"macs\[0\]: fail2ban_version '0.9.7': the lab has 1.0.2, 1.1.0"):
        fleet.load_spec(bad)
    bad.write_text("macs:\n  - {name: m1, os_version: '26.2', build: X, arch: arm64, brew_prefix: /opt/homebrew}\n")
    assert fleet.load_spec(bad)[0][0].fail2ban_version == "1.1.0"  # the default: what Homebrew pours today


def test_up_refuses_while_a_lab_is_up(lab):
    result = lab.run("up")
    assert result.returncode == 1
    assert "a lab is already up" in result.stderr
    assert lab.run("status").returncode == 0  # the running lab was left alone


def test_status_lists_every_host(lab):
    result = lab.run("status")
    assert result.returncode == 0
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert result.stdout.splitlines()[0].split() == ["HOST", "ROLE", "ADDRESS", "STATE", "SSHD"]
    for name, (address, *_rest) in DEFAULT_FLEET.items():
        assert rows[name] == [name, "mac", address, "running", "answering"]
    assert rows["trusted"] == ["trusted", "trusted", "198.51.100.50", "running", "-"]
    assert rows["attacker"] == ["attacker", "attacker", "198.51.100.200", "running", "-"]


def test_inventory(lab):
    inventory = lab.inventory()
    macs = inventory["all"]["children"]["macs"]
    assert set(macs["hosts"]) >= set(DEFAULT_FLEET)
    for name, (address, version, arch, prefix, server_app) in DEFAULT_FLEET.items():
        assert macs["hosts"][name] == {
            "ansible_host": address,
            "lab_os_version": version,
            "lab_arch": arch,
            "lab_brew_prefix": prefix,
            "lab_server_app": server_app,
        }
    group = macs["vars"]
    # As on real Macs: the admin logs in, sudo makes it root (docs/lab-design.md, "Login and sudo").
    assert group["ansible_user"] == "admin"
    assert (group["ansible_become"], group["ansible_become_method"]) == (True, "sudo")
    assert "admin_password" in group["ansible_become_password"]
    assert group["ansible_python_interpreter"] == "/usr/bin/python3"
    assert group["ansible_ssh_common_args"] == "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
    assert group["pfguard_trusted_networks"] == ["198.51.100.0/25", "2001:db8:100::/64"]  # both families
    assert group["pfguard_assume_darwin"] is True
    key = group["ansible_ssh_private_key_file"]
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert Path(key).read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_down_after_a_crash_leaves_nothing_and_is_idempotent(lab):
    lab_pids = {pid for name in netns.netns_names() for pid in netns.pids_in_netns(name)}
    assert len(lab_pids) >= 3 * 3  # per Mac at least: unshare, launchd, logd, sshd
    # A crashed controller leaves no state file: down must find the rest by itself.
    (lab.dir / "lab.json").unlink()
    status = lab.run("status")
    assert status.returncode == 1 and "leftovers" in status.stdout

    started = time.monotonic()
    first = lab.down()
    elapsed = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    assert elapsed < 10
    assert netns.netns_names() == []
    assert netns.link_names() == []
    assert netns.mounts_under(lab.dir) == []
    assert not lab.dir.exists()
    assert [pid for pid in lab_pids if netns.process_alive(pid)] == []

    second = lab.down()
    assert second.returncode == 0
    assert "no lab to remove" in second.stdout

    # Bring the shared lab back for the tests that follow, this time with --hosts cycling profiles.
    lab.up("--hosts", "4")
    macs = lab.macs()
    assert list(macs) == ["mac1", "mac2", "mac3", "mac4"]
    assert macs["mac4"]["ansible_host"] == "198.51.100.14"
    assert (macs["mac4"]["lab_os_version"], macs["mac4"]["lab_arch"]) == ("26.2", "arm64")
