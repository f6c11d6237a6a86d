# SPDX-License-Identifier: GPL-3.0-or-later
"""The protected fleet shared by tests/fleet/test_*.py: one lab, `playbooks/site.yml` applied once.

Test modules load this as a plugin next to the lab's (`pytest_plugins = ["lab_fixtures", "fleet_fixtures"]`);
tests/lab is on pytest's pythonpath (pyproject.toml). The suite runs in its own pytest session, so the
lab it brings up is fresh and the role tests in tests/lab never see what these tests leave behind.

Each test module leaves the fleet as `fleet` made it (protected, no bans, no broken link), so that
modules can run alone or in any order.
"""

from __future__ import annotations

import contextlib
import re

import pytest
from lab_fixtures import wait_for

# The lab's ban policy: short enough for tests, the same on every Mac. Passed as extra vars so it
# overrides the inventory, exactly as an admin would pin it for a remediation run.
POLICY = {
    "pfguard_fail2ban_maxretry": 3,
    "pfguard_fail2ban_findtime": 300,
    "pfguard_fail2ban_bantime": 600,
}
MACS = ("mac1", "mac2", "mac3")
ATTACKER, TRUSTED, CONTROLLER = "198.51.100.200", "198.51.100.50", "198.51.100.1"
# fail2ban as Homebrew lays it out on each lab Mac (lab/pfguard_lab/data/fleet.yml).
BREW_PREFIX = {"mac1": "/opt/homebrew", "mac2": "/usr/local", "mac3": "/opt/homebrew"}
DAEMONS = "/Library/LaunchDaemons"
PF_JOB, FAIL2BAN_JOB, LOGSTREAM_JOB = "org.pfguard.pf", "org.pfguard.fail2ban", "org.pfguard.logstream"


def bootout(job: str) -> str:
    """Script: unload a launchd job and wait until launchd has let it go (its last run ended). bootout
    itself returns at once (docs/reference/macos.md#launchctl-verbs), and a run still going could undo a break."""
    return (f"/bin/launchctl bootout system/{job} && "
            f"while /bin/launchctl print system/{job} >/dev/null 2>&1; do sleep 0.1; done")  # fmt: skip


def bootstrap(job: str) -> str:
    """Script: load a launchd job from its plist unless it is loaded."""
    return f"/bin/launchctl print system/{job} >/dev/null 2>&1 || /bin/launchctl bootstrap system {DAEMONS}/{job}.plist"


class Fleet:
    """The lab after site.yml, with shortcuts to the protection chain's parts."""

    policy = POLICY
    macs = MACS

    def __init__(self, lab):
        self.lab = lab

    def converge(self, **extra_vars):
        """site.yml with the lab's policy (plus `extra_vars`); fails the test if the play fails."""
        run = self.lab.playbook("playbooks/site.yml", extra_vars={**POLICY, **extra_vars})
        assert run.returncode == 0, str(run)
        return run

    def fail2ban_client(self, host: str, *args: str):
        prefix = BREW_PREFIX[host]
        return self.lab.exec(host, f"{prefix}/bin/fail2ban-client", "-c", f"{prefix}/etc/fail2ban", *args)

    def table(self, host: str, anchor: str, table: str) -> list[str]:
        """Entries of a PF table (empty when it does not exist)."""
        shown = self.lab.exec(host, "/sbin/pfctl", "-q", "-a", anchor, "-t", table, "-T", "show")
        return shown.stdout.split() if shown.returncode == 0 else []

    def blocklist(self, host: str) -> list[str]:
        return self.table(host, "pfguard", "pfguard_blocklist")

    def f2b_banned(self, host: str, jail: str = "sshd") -> list[str]:
        return self.table(host, f"f2b/{jail}", f"f2b-{jail}")

    def probe(self, host: str, source: str) -> bool:
        """Whether a new TCP connection from `source` to the host's sshd succeeds within 2 s."""
        return self.lab.run("probe", host, "--from", source).returncode == 0

    def fail2ban_log(self, host: str) -> str:
        return self.lab.exec(host, "cat", f"{BREW_PREFIX[host]}/var/log/fail2ban.log").stdout

    def jail_banned(self, host: str, jail: str = "sshd") -> list[str]:
        """The jail's "Banned IP list" as fail2ban-client status reports it (empty when it does not answer)."""
        status = self.fail2ban_client(host, "status", jail)
        listed = re.search(r"Banned IP list:(.*)$", status.stdout, re.MULTILINE)
        return listed.group(1).split() if status.returncode == 0 and listed else []

    def launchd_job(self, host: str, label: str) -> dict | None:
        """`launchctl print system/<label>`'s top-level `key = value` lines, or None when not loaded."""
        printed = self.lab.exec(host, "/bin/launchctl", "print", f"system/{label}")
        if printed.returncode == 113:
            return None
        assert printed.returncode == 0, printed.stderr
        return dict(re.findall(r"^\t(\w[\w ]*?) = (.*)$", printed.stdout, re.MULTILINE))

    def unban_all(self) -> None:
        """fail2ban-client unban --all on every Mac (also from its database); wait for the f2b tables to empty."""
        for host in MACS:
            wait_for(lambda host=host: self.fail2ban_client(host, "ping").returncode == 0, 60,
                     what=f"fail2ban on {host} to answer")  # fmt: skip
            unbanned = self.fail2ban_client(host, "unban", "--all")
            assert unbanned.returncode == 0, unbanned.stderr
            wait_for(lambda host=host: not self.f2b_banned(host), 20, what=f"f2b-sshd on {host} to empty")


@contextlib.contextmanager
def breaking(fleet):
    """break_(host, script, restore, input_text=None): run `script` on the host as root now (with
    `input_text` on stdin), `restore` when the block ends (last broken, first restored), even when the
    test fails; a restore that fails fails the test. `break_.hosts` lists the hosts broken so far."""
    restores = []

    def break_(host: str, script: str, restore: str, input_text: str | None = None):
        restores.append((host, restore))
        result = fleet.lab.exec(host, "/bin/sh", "-c", script, input_text=input_text)
        assert result.returncode == 0, f"{host}: {script!r} -> {result.returncode}\n{result.stderr}"

    break_.hosts = lambda: list(dict(restores))
    try:
        yield break_
    finally:
        failures = []
        for host, restore in reversed(restores):
            result = fleet.lab.exec(host, "/bin/sh", "-c", restore)
            if result.returncode:
                failures.append(f"{host}: {restore!r} -> {result.returncode}: {result.stderr}")
        assert not failures, "\n".join(failures)


@pytest.fixture(scope="session")
def fleet(lab):
    fleet = Fleet(lab)
    fleet.converge()
    return fleet


def run_module_on(lab, host: str, module: str, args: dict, *extra: str) -> tuple[int, dict]:
    """Run `module` on one lab host with ad hoc `ansible` (`extra`: e.g. "--check"); return (exit code, result)."""
    return lab.adhoc(host, module, args, *extra, timeout=300)
