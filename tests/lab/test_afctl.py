# SPDX-License-Identifier: GPL-3.0-or-later
"""Server.app's afctl: files, flags and PF table effects (docs/reference/macos.md#adaptive-firewall)."""

from __future__ import annotations

import plistlib
import stat
import subprocess
import time

import pytest
from pfguard_lab.emulators import afctl
from ulog_fixtures import lab_env, make_root, remove_root, run_as_admin, server_app_root, system_python_launcher

# Apple's stock /etc/pf.anchors/com.apple (docs/reference/macos.md#stock-pf-configuration).
STOCK_COM_APPLE = """#
# com.apple ruleset, referred to by the default /etc/pf.conf file.
# See notes in that file regarding the anchor point in the main ruleset.
#
# Copyright (c) 2011 Apple Inc. All rights reserved.
#

#
# AirDrop anchor point.
#
anchor "200.AirDrop/*"

#
# Application Firewall anchor point.
#
anchor "250.ApplicationFirewall/*"
"""
# What AdaptiveFirewallSetup.sh appends (docs/reference/macos.md#adaptive-firewall), verbatim.
AF_LINES = (
    "\n#\n# Adaptive Firewall anchor point.\n#\n"
    'anchor "400.AdaptiveFirewall/*"\n'
    'load anchor "400.AdaptiveFirewall" from '
    '"/Applications/Server.app/Contents/ServerRoot/private/etc/pf.anchors/400.AdaptiveFirewall"\n'
)
ANCHOR = "com.apple/400.AdaptiveFirewall"


class Server:
    """A temp root with Server.app provisioned and a standalone /sbin/pfctl."""

    def __init__(self):
        provisioned = server_app_root()
        self.root, self.wrapper = provisioned.root, provisioned.afctl_path
        self.pf_state, self.pfctl_path = provisioned.pf_state, provisioned.pfctl_path
        self.env = lab_env(self.root)

    def afctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.wrapper), *args], env=self.env, capture_output=True, text=True, timeout=60)

    def pfctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.pfctl_path), *args], capture_output=True, text=True, timeout=60)

    def table(self) -> list[str]:
        shown = self.pfctl("-a", ANCHOR, "-t", "blockedHosts", "-T", "show")
        return [line.strip() for line in shown.stdout.splitlines() if line.strip()]

    def blacklist(self) -> dict[str, int]:
        lines = (self.root / "var/db/af/blacklist").read_text().splitlines()
        return {address: int(expiry) for address, expiry in (line.split("\t") for line in lines)}

    def whitelist(self) -> list[str]:
        return (self.root / "var/db/af/whitelist").read_text().splitlines()


@pytest.fixture
def server():
    machine = None
    try:
        machine = Server()
        yield machine
    finally:
        if machine is not None:
            remove_root(machine.root)


def test_provision_writes_server_app_files(server):
    root = server.root
    assert server.wrapper == root / "Applications/Server.app/Contents/ServerRoot/usr/libexec/afctl"
    assert "from pfguard_lab.emulators.afctl import main" in server.wrapper.read_text()
    anchor = (root / "Applications/Server.app/Contents/ServerRoot/private/etc/pf.anchors/400.AdaptiveFirewall")
    assert "table <blockedHosts> persist\nblock drop in quick from <blockedHosts> to any\n" in anchor.read_text()
    settings = plistlib.loads((root / "etc/af.plist").read_bytes())
    assert settings["whitlist_file"] == "/var/db/af/whitelist" and settings["blacklist_file"] == "/var/db/af/blacklist"
    assert {"stats_file", "default_timeout", "sweep_interval", "start_behavior", "firewall_address", "default_set",
            "log_level", "log_facility"} <= set(settings)  # fmt: skip
    assert all(isinstance(value, str) for value in settings.values()), "af.plist(5): all values are strings"
    database = root / "var/db/af"
    assert stat.S_IMODE(database.stat().st_mode) == 0o700
    assert (database / "whitelist").read_text() == "" and (database / "blacklist").read_text() == ""
    assert (root / "etc/pf.anchors/com.apple").read_text() == STOCK_COM_APPLE + AF_LINES
    afctl.provision(root)  # idempotent: the lines are not appended twice
    assert (root / "etc/pf.anchors/com.apple").read_text() == STOCK_COM_APPLE + AF_LINES


def test_provision_needs_the_stock_anchor_file():
    root = make_root(None)
    try:
        with pytest.raises(FileNotFoundError):
            afctl.provision(root)
    finally:
        remove_root(root)


def test_non_root_is_refused(server):
    launcher = system_python_launcher(server.root, "pfguard_lab.emulators.afctl")
    result = run_as_admin([str(launcher), "-w", "198.51.100.50"], server.env)
    assert (result.returncode, result.stderr) == (1, "afctl: must be run as root\n")
    assert server.whitelist() == []


def test_whitelist_add_remove_and_address_validation(server):
    for address in ("198.51.100.7/25", "2001:DB8::1", "198.51.100.50", "198.51.100.50"):
        result = server.afctl("-w", address)
        assert result.returncode == 0, result.stderr
    assert server.whitelist() == ["198.51.100.0/25", "2001:db8::1", "198.51.100.50"]
    assert server.afctl("-x", "198.51.100.50").returncode == 0
    assert server.whitelist() == ["198.51.100.0/25", "2001:db8::1"]
    for bad in ("mac1.example", "198.51.100.300", "198.51.100.0/33", "localhost"):
        result = server.afctl("-w", bad)
        assert result.returncode == 1
        assert result.stderr == f"afctl: invalid address '{bad}': expected an IPv4 or IPv6 address or CIDR block\n"
    assert server.whitelist() == ["198.51.100.0/25", "2001:db8::1"]


def test_threshold_block_time_and_unsupported_flags(server):
    assert server.afctl("-T", "5").returncode == 0
    rules = plistlib.loads(
        (server.root / "Applications/Server.app/Contents/ServerRoot/private/etc/emond.d/rules/AdaptiveFirewall.plist")
        .read_bytes()
    )
    assert rules[0]["hostBlockThreshold"] == 5
    assert server.afctl("-H", "45").returncode == 0
    assert plistlib.loads((server.root / "etc/af.plist").read_bytes())["default_timeout"] == "45"
    configure = server.afctl("-c")
    assert (configure.returncode, configure.stderr) == (
        1, "pfguard-lab: afctl: -c/-i (self-configure) is not supported by the lab\n")  # fmt: skip
    bogus = server.afctl("-z")
    assert bogus.returncode == 1 and bogus.stderr.startswith("afctl: option -z not recognized\nusage: afctl")
    assert server.afctl("-T", "many").stderr == "afctl: option -T requires a number, got 'many'\n"


# --- PF effects ---------------------------------------------------------------------------------


def test_blacklist_add_and_remove_reach_the_pf_table(server):
    started = time.time()
    added = server.afctl("-a", "198.51.100.200", "-t", "30")
    assert added.returncode == 0, added.stderr
    expiry = server.blacklist()["198.51.100.200"]
    assert started + 1800 - 2 <= expiry <= time.time() + 1800 + 2
    assert server.table() == ["198.51.100.200"]
    assert server.afctl("-a", "2001:db8:bad::/48").returncode == 0
    default_expiry = server.blacklist()["2001:db8:bad::/48"]
    assert abs(default_expiry - (time.time() + 15 * 60)) < 5, "default_timeout from af.plist (15 min)"
    assert server.table() == ["198.51.100.200", "2001:db8:bad::/48"]
    removed = server.afctl("-r", "198.51.100.200")
    assert removed.returncode == 0, removed.stderr
    assert "198.51.100.200" not in server.blacklist()
    assert server.table() == ["2001:db8:bad::/48"]


def test_whitelisted_addresses_are_never_blacklisted(server):
    assert server.afctl("-w", "198.51.100.0/25").returncode == 0
    refused = server.afctl("-a", "198.51.100.11")
    assert refused.returncode == 1
    assert refused.stderr == "afctl: 198.51.100.11 is whitelisted (198.51.100.0/25); not adding it to the blacklist\n"
    assert server.blacklist() == {} and server.table() == []
    assert server.afctl("-a", "198.51.100.200").returncode == 0, "outside the whitelisted /25"
    assert server.table() == ["198.51.100.200"]


def test_running_without_flags_ages_the_blacklist(server):
    for address in ("198.51.100.200", "198.51.100.201"):
        assert server.afctl("-a", address, "-t", "60").returncode == 0
    blacklist = server.blacklist()
    blacklist["198.51.100.200"] = int(time.time()) - 10  # expired ten seconds ago
    (server.root / "var/db/af/blacklist").write_text("".join(f"{a}\t{e}\n" for a, e in blacklist.items()))
    aged = server.afctl()
    assert aged.returncode == 0, aged.stderr
    assert list(server.blacklist()) == ["198.51.100.201"]
    assert server.table() == ["198.51.100.201"]


def test_force_enable_disable_and_release(server):
    assert server.afctl("-a", "198.51.100.200").returncode == 0
    forced = server.afctl("-f")
    assert forced.returncode == 0, forced.stderr
    # The message's §5 is the Adaptive Firewall section: docs/reference/macos.md#adaptive-firewall.
    assert "pf enabled\nToken : " in forced.stderr, "afctl -f shows pfctl -E's output (§5)"
    assert "Status: Enabled" in server.pfctl("-s", "info").stdout
    rules = server.pfctl("-a", ANCHOR, "-s", "rules").stdout
    assert "block drop in quick from <blockedHosts> to any" in rules
    assert server.table() == ["198.51.100.200"]
    assert server.afctl("-d").returncode == 0
    assert "blockedHosts" not in server.pfctl("-a", ANCHOR, "-s", "rules").stdout
    assert server.afctl("-e").returncode == 0
    assert "block drop in quick from <blockedHosts> to any" in server.pfctl("-a", ANCHOR, "-s", "rules").stdout
    assert server.table() == ["198.51.100.200"], "enable reloads the blacklist into the table"
    released = server.afctl("-X")
    assert released.returncode == 0, released.stderr
    assert "Status: Disabled" in server.pfctl("-s", "info").stdout, "-X releases the reference -f took"
    assert "blockedHosts" not in server.pfctl("-a", ANCHOR, "-s", "rules").stdout
