# SPDX-License-Identifier: GPL-3.0-or-later
"""Role pfguard.macos.pf_anchor on the lab's mac1, end to end with ansible-playbook.

The tests tell one story on one Mac and run in file order, each building on the previous one:
check mode on a fresh host, converge and idempotence, a macOS update, a stock reload racing the
daemon, custom /etc/pf.conf lines, the lockout guard, a reboot, and removal. The module fixture puts
mac1 back (pfguard_state=absent, Apple's stock /etc/pf.conf loaded, PF disabled) whatever happens.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lab_fixtures import PlaybookRun, wait_for

pytest_plugins = ["lab_fixtures"]

REPO = Path(__file__).resolve().parents[2]
STOCK_PF_CONF = (REPO / "lab" / "pfguard_lab" / "data" / "pf.conf").read_text()
HOST = "mac1"
ATTACKER = "198.51.100.200"
TRUSTED_NETWORK = "198.51.100.0/25"  # the lab inventory's pfguard_trusted_networks (IPv4, then IPv6)
TRUSTED_NETWORK6 = "2001:db8:100::/64"
PLIST = "/Library/LaunchDaemons/org.pfguard.pf.plist"
HELPER = "/Library/Application Support/pfguard/org.pfguard.pf.sh"
ANCHOR_FILE = "/etc/pf.anchors/pfguard"
PERSIST_FILES = ("/var/db/pfguard/trusted.txt", "/var/db/pfguard/blocklist.txt")
FEEDS_FILE = "/var/db/pfguard/feeds.txt"  # created empty; playbooks/feeds.yml fills it
LOCK_DIR = "/var/run/org.pfguard.pf.lock"  # the helper's run lock
CHECK_INTERVAL = 5  # the daemon's StartInterval here, so a re-hook is seen within the test
NEW_INTERVAL = CHECK_INTERVAL + 1  # from the custom pf.conf step on: changes the plist
SETTLE_TIMEOUT = 45.0
PLAY = f"""---
- name: Apply pfguard.macos.pf_anchor to {HOST}
  hosts: {HOST}
  gather_facts: false
  roles:
    - role: pfguard.macos.pf_anchor
"""
# Custom lines an admin may have: an option and a macro and a table before Apple's lines, a filter
# rule after them (docs/reference/pfctl.md#rule-order: options first, filter rules last; macros/tables anywhere).
CUSTOM_HEAD = 'set skip on lo0\ncustom_port = "8080"\ntable <custom> persist { 203.0.113.9 }\n'
CUSTOM_TAIL = (
    "# admin: keep port 8080 for the custom table only\n"
    "block drop in quick proto tcp from <custom> to any port $custom_port\n"
)
CUSTOM_PF_CONF = CUSTOM_HEAD + STOCK_PF_CONF + CUSTOM_TAIL


class Mac1:
    """mac1 as these tests drive it: playbook runs and a few looks inside."""

    def __init__(self, lab, workdir: Path) -> None:
        self.lab = lab
        self.workdir = workdir
        (workdir / "play.yml").write_text(PLAY)

    def play(self, check: bool = False, **extra_vars) -> tuple[PlaybookRun, dict]:
        """The play (with --diff) and its recap counters for the host."""
        variables = {"pfguard_blocklist": [ATTACKER], "pfguard_pf_check_interval": CHECK_INTERVAL, **extra_vars}
        run = self.lab.playbook(self.workdir / "play.yml", extra_vars=variables, check=check, diff=True, timeout=300)
        assert HOST in run.recap, f"no PLAY RECAP for {HOST}\n{run}"
        return run, run.recap[HOST]

    def converge(self, **extra_vars) -> dict:
        run, recap = self.play(**extra_vars)
        assert run.returncode == 0 and recap["failed"] == 0 and recap["unreachable"] == 0, str(run)
        return recap

    def sh(self, script: str) -> str:
        return self.lab.sh(HOST, script)

    def pfctl(self, *args: str, input_text: str | None = None) -> str:
        result = self.lab.exec(HOST, "/sbin/pfctl", *args, input_text=input_text)
        assert result.returncode == 0, f"pfctl {' '.join(args)} -> {result.returncode}\n{result.stderr}"
        return result.stdout

    def read(self, path: str) -> str:
        result = self.lab.exec(HOST, "cat", path)
        assert result.returncode == 0, f"cat {path}: {result.stderr}"
        return result.stdout

    def exists(self, path: str) -> bool:
        return self.lab.exec(HOST, "test", "-e", path).returncode == 0

    def write_pf_conf(self, text: str) -> None:
        self.lab.exec(HOST, "/bin/sh", "-c", "cat > /etc/pf.conf", input_text=text)
        assert self.read("/etc/pf.conf") == text

    def pf_enabled(self) -> bool:
        return self.pfctl("-s", "info").startswith("Status: Enabled")

    def hooked(self) -> bool:
        main_rules = self.pfctl("-s", "rules")
        anchor_rules = self.pfctl("-a", "pfguard", "-s", "rules")
        return 'anchor "pfguard" all' in main_rules and "<pfguard_blocklist>" in anchor_rules

    def blocked(self, source: str) -> bool:
        return self.lab.run("probe", HOST, "--from", source).returncode == 1

    def tokens(self) -> list[str]:
        lines = self.pfctl("-s", "References").splitlines()
        return [line.split()[2] for line in lines[2:]] if lines and lines[0] == "TOKENS:" else []

    def daemon_loaded(self) -> bool:
        code = self.lab.exec(HOST, "/bin/launchctl", "print", "system/org.pfguard.pf").returncode
        assert code in (0, 113), f"launchctl print: unexpected exit {code}"
        return code == 0

    def snapshot(self) -> str:
        """Paths, modes, owners and contents of every file the role could write."""
        return self.sh(
            'for p in /etc/pf.conf /etc/pf.anchors /Library/LaunchDaemons "/Library/Application Support/pfguard" '
            "/var/db/pfguard; do if [ -e \"$p\" ]; then find \"$p\" -exec stat -c '%n %a %u:%g %s' {} + ; "
            'find "$p" -type f -exec sha256sum {} + ; else echo "missing $p"; fi; done'
        )

    def wait_until_enforced(self) -> None:
        """PF enabled and pfguard hooked, with no Ansible run: the LaunchDaemon's doing."""
        wait_for(lambda: self.pf_enabled() and self.hooked(), SETTLE_TIMEOUT, interval=1,
                 what="PF enabled with pfguard hooked",
                 detail=lambda: f"{self.pfctl('-s', 'info')[:60]}\n{self.pfctl('-s', 'rules')}")  # fmt: skip


@pytest.fixture(scope="module")
def mac1(lab, tmp_path_factory):
    host = Mac1(lab, tmp_path_factory.mktemp("pf_anchor"))
    try:
        yield host
    finally:
        result, _ = host.play(pfguard_state="absent")
        host.write_pf_conf(STOCK_PF_CONF)
        host.pfctl("-f", "/etc/pf.conf")
        lab.exec(HOST, "/sbin/pfctl", "-d")  # boot state: PF disabled (exit 1 if it already is)
        assert result.returncode == 0, f"pfguard_state=absent failed while restoring {HOST}:\n{result.stdout[-3000:]}"


def test_a_host_whose_facts_are_not_darwin_is_skipped(mac1):
    before = mac1.snapshot()
    result, recap = mac1.play(pfguard_assume_darwin=False)  # the lab's facts say Linux
    assert result.returncode == 0 and recap["failed"] == 0 and recap["changed"] == 0, result.stdout[-3000:]
    assert "mac1: not a Mac (skipped)" in result.stdout
    assert mac1.snapshot() == before


def test_check_mode_on_a_fresh_host_changes_no_file(mac1):
    assert mac1.read("/etc/pf.conf") == STOCK_PF_CONF and not mac1.exists(ANCHOR_FILE), f"{HOST} is not fresh"
    before = mac1.snapshot()
    result, recap = mac1.play(check=True)
    assert result.returncode == 0 and recap["failed"] == 0, result.stdout[-4000:]
    assert recap["changed"] > 0, "check mode on a fresh host must report the changes it would make"
    assert mac1.snapshot() == before
    assert not mac1.pf_enabled() and not mac1.daemon_loaded()
    assert 'anchor "pfguard"' not in mac1.pfctl("-s", "rules")


def test_converge_hooks_pfguard_enables_pf_and_blocks_the_attacker(mac1):
    assert mac1.converge()["changed"] > 0

    assert mac1.pf_enabled()
    assert mac1.pfctl("-a", "pfguard", "-s", "rules").splitlines() == [
        "pass in quick from <pfguard_trusted> to any no state",
        "block drop in log quick from <pfguard_blocklist> to any",
        "block drop in log quick from <pfguard_feeds> to any",
    ]
    main_rules = mac1.pfctl("-s", "rules").splitlines()
    calls = [line for line in main_rules if line.startswith("anchor ")]
    assert calls == ['anchor "com.apple/*" all', 'anchor "pfguard" all', 'anchor "f2b/*" all'], main_rules

    pf_conf = mac1.read("/etc/pf.conf")
    assert pf_conf.startswith(STOCK_PF_CONF), "Apple's lines must stay as they were"
    hook = pf_conf[len(STOCK_PF_CONF):]
    assert hook.index('anchor "pfguard"\n') < hook.index('load anchor "pfguard" from "/etc/pf.anchors/pfguard"\n')
    assert hook.index('anchor "pfguard"\n') < hook.index('anchor "f2b/*"\n')

    assert mac1.pfctl("-a", "pfguard", "-t", "pfguard_blocklist", "-T", "show").split() == [ATTACKER]
    trusted = [TRUSTED_NETWORK, TRUSTED_NETWORK6]
    assert mac1.pfctl("-a", "pfguard", "-t", "pfguard_trusted", "-T", "show").split() == trusted
    assert [mac1.read(path) for path in PERSIST_FILES] == ["".join(f"{n}\n" for n in trusted), f"{ATTACKER}\n"]
    assert mac1.read(FEEDS_FILE) == ""

    assert mac1.sh(f"stat -c '%u %g %a' {PLIST}").strip() == "0 0 644"
    assert mac1.sh(f"/usr/bin/plutil -lint {PLIST}").strip() == f"{PLIST}: OK"
    assert mac1.daemon_loaded()
    tokens = mac1.tokens()
    assert tokens == [mac1.read("/var/run/org.pfguard.pf.token").strip()], "exactly pfguard's one PF reference"

    assert mac1.blocked("attacker"), "the attacker in pfguard_blocklist must be dropped"
    assert not mac1.blocked("trusted")

    assert mac1.converge()["changed"] == 0, "second run must change nothing"
    assert mac1.tokens() == tokens, "a run must not take another PF reference"


def test_os_update_keeps_pfguard_enforced_without_ansible(mac1):
    result = mac1.lab.run("os-update", HOST)
    assert result.returncode == 0, result.stderr
    assert mac1.read("/etc/pf.conf") == STOCK_PF_CONF, "the update puts back Apple's stock file"
    mac1.wait_until_enforced()
    assert mac1.pfctl("-a", "pfguard", "-t", "pfguard_blocklist", "-T", "show").split() == [ATTACKER]
    assert mac1.blocked("attacker")
    assert not mac1.blocked("trusted")
    assert len(mac1.tokens()) == 1, "one PF reference per boot"


def test_a_stock_reload_after_the_daemon_is_hooked_again(mac1):
    # Hold the helper's lock (owner: PID 1, always alive) so no periodic run interferes while the
    # test makes Apple's move: com.apple.pfctl loading the stock file after pfguard's daemon ran.
    mac1.sh(f"until mkdir {LOCK_DIR} 2>/dev/null; do sleep 0.2; done; echo 1 > {LOCK_DIR}/pid")
    try:
        mac1.pfctl("-f", "/etc/pf.conf")
        assert not mac1.hooked() and not mac1.blocked("attacker"), "a stock reload drops the hook"
    finally:
        mac1.sh(f"rm -rf {LOCK_DIR}")
    mac1.wait_until_enforced()  # the daemon's next periodic run hooks pfguard again
    assert mac1.blocked("attacker")
    assert len(mac1.tokens()) == 1


def test_custom_pf_conf_lines_are_kept_and_the_ruleset_loads(mac1):
    mac1.write_pf_conf(CUSTOM_PF_CONF)
    assert mac1.lab.exec(HOST, "/sbin/pfctl", "-nf", "/etc/pf.conf").returncode == 0, "custom file must be valid"

    # A new check interval changes the plist too: the handler boots the loaded daemon out and in.
    assert mac1.converge(pfguard_pf_check_interval=NEW_INTERVAL)["changed"] > 0
    assert f"<integer>{NEW_INTERVAL}</integer>" in mac1.read(PLIST) and mac1.daemon_loaded()
    assert len(mac1.tokens()) == 1, "the reloaded daemon must not take a second PF reference"
    pf_conf = mac1.read("/etc/pf.conf")
    assert pf_conf.startswith(CUSTOM_PF_CONF), "every custom line stays, in place"
    assert 'anchor "pfguard"\n' in pf_conf[len(CUSTOM_PF_CONF):]

    main_rules = mac1.pfctl("-s", "rules")
    assert "block drop in quick proto tcp from <custom> to any port" in main_rules
    assert 'anchor "pfguard" all' in main_rules and 'anchor "f2b/*" all' in main_rules
    assert "custom" in mac1.pfctl("-s", "Tables").split()
    assert mac1.blocked("attacker")
    assert mac1.converge(pfguard_pf_check_interval=NEW_INTERVAL)["changed"] == 0


def test_a_blocklist_covering_the_controller_fails_and_changes_nothing(mac1):
    def state() -> tuple:
        names = ("pfguard_trusted", "pfguard_blocklist")
        tables = [mac1.pfctl("-a", "pfguard", "-t", name, "-T", "show") for name in names]
        return mac1.snapshot(), tables, mac1.pfctl("-s", "rules"), mac1.tokens()

    before = state()
    result, recap = mac1.play(pfguard_blocklist=[ATTACKER, "198.51.100.0/24"], pfguard_pf_check_interval=NEW_INTERVAL)
    assert result.returncode != 0 and recap["failed"] == 1 and recap["changed"] == 0
    assert "overlaps" in result.stdout
    assert state() == before


def test_reboot_keeps_pf_enabled_and_the_attacker_blocked(mac1):
    result = mac1.lab.run("reboot", HOST)
    assert result.returncode == 0, result.stderr
    mac1.wait_until_enforced()
    assert mac1.blocked("attacker")
    assert not mac1.blocked("trusted")
    assert "from <custom>" in mac1.pfctl("-s", "rules")
    assert len(mac1.tokens()) == 1


def test_absent_restores_pf_conf_bytes_and_removes_everything(mac1):
    assert mac1.converge(pfguard_state="absent")["changed"] > 0

    assert mac1.read("/etc/pf.conf") == CUSTOM_PF_CONF, "/etc/pf.conf must be byte-identical to before pfguard"
    for path in (PLIST, HELPER, ANCHOR_FILE, *PERSIST_FILES, FEEDS_FILE):
        assert not mac1.exists(path), f"{path} is still there"
    assert not mac1.daemon_loaded()
    main_rules = mac1.pfctl("-s", "rules")
    assert "pfguard" not in main_rules and "f2b" not in main_rules
    assert "from <custom>" in main_rules, "the restored file is loaded"
    assert mac1.pfctl("-a", "pfguard", "-s", "rules") == ""
    assert mac1.tokens() == [] and not mac1.pf_enabled(), "pfguard's PF reference is released"
    assert not mac1.blocked("attacker")

    assert mac1.converge(pfguard_state="absent")["changed"] == 0
