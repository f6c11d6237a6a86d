# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard_pf_table_entries_limit of role pfguard.macos.pf_anchor on the lab's mac1, end to end.

One story in file order: pfguard installed without a limit and pfguard_feeds filled with more than half
of macOS's default limit (so that reloading pfguard's anchor needs more than the default: it builds the
tables a second time before it drops the old ones, docs/reference/pfctl.md#limits); bad values and a
limit too low are refused before any change; the limit goes to the top of /etc/pf.conf and is in force
before the anchor is loaded again; Apple's stock reload and a macOS update do not lose it; absent gives
/etc/pf.conf back byte for byte. The module fixture puts mac1 back whatever happens.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lab_fixtures import PlaybookRun, wait_for

pytest_plugins = ["lab_fixtures"]

REPO = Path(__file__).resolve().parents[2]
STOCK_PF_CONF = (REPO / "lab" / "pfguard_lab" / "data" / "pf.conf").read_text()
HOST = "mac1"
ATTACKER = "198.51.100.200"
FEEDS_FILE = "/var/db/pfguard/feeds.txt"
LOCK_DIR = "/var/run/org.pfguard.pf.lock"
FEEDS = 120_000  # twice that is more than macOS's default limit of 200000
LIMIT = 400_000
LIMIT_BLOCK = (
    "# BEGIN pfguard limits: added by Ansible (pfguard.macos.pf_anchor); pfguard_state=absent removes them\n"
    f"set limit table-entries {LIMIT}\n"
    "# END pfguard limits\n"
)
PLAY = f"""---
- name: Apply pfguard.macos.pf_anchor to {HOST}
  hosts: {HOST}
  gather_facts: false
  roles:
    - role: pfguard.macos.pf_anchor
"""
FEED_LINES = "".join(f"11.{n >> 15 & 255}.{n >> 7 & 255}.{(n & 127) * 2}\n" for n in range(FEEDS))


class Mac1:
    def __init__(self, lab, workdir: Path) -> None:
        self.lab = lab
        self.workdir = workdir
        (workdir / "play.yml").write_text(PLAY)

    def play(self, **extra_vars) -> tuple[PlaybookRun, dict]:
        variables = {"pfguard_blocklist": [ATTACKER], "pfguard_pf_check_interval": 5, **extra_vars}
        run = self.lab.playbook(self.workdir / "play.yml", extra_vars=variables, timeout=300)
        assert HOST in run.recap, f"no PLAY RECAP for {HOST}\n{run}"
        return run, run.recap[HOST]

    def converge(self, **extra_vars) -> dict:
        run, recap = self.play(**extra_vars)
        assert run.returncode == 0 and recap["failed"] == 0, str(run)
        return recap

    def refused(self, **extra_vars) -> str:
        """A run that fails before any change: its output."""
        before = self.state()
        run, recap = self.play(**extra_vars)
        assert run.returncode != 0 and recap["failed"] == 1 and recap["changed"] == 0, str(run)
        assert self.state() == before
        return run.stdout

    def pfctl(self, *args: str) -> str:
        result = self.lab.exec(HOST, "/sbin/pfctl", *args)
        assert result.returncode == 0, f"pfctl {' '.join(args)} -> {result.returncode}\n{result.stderr}"
        return result.stdout

    def read(self, path: str) -> str:
        return self.lab.sh(HOST, f"cat '{path}'")

    def limit(self) -> int:
        found = re.search(r"^table-entries\s+hard limit\s+(\d+)$", self.pfctl("-s", "memory"), re.MULTILINE)
        assert found, self.pfctl("-s", "memory")
        return int(found.group(1))

    def feeds(self) -> int:
        return len(self.pfctl("-a", "pfguard", "-t", "pfguard_feeds", "-T", "show").splitlines())

    def hooked(self) -> bool:
        return 'anchor "pfguard" all' in self.pfctl("-s", "rules") and "<pfguard_blocklist>" in self.pfctl(
            "-a", "pfguard", "-s", "rules")

    def state(self) -> tuple:
        return self.read("/etc/pf.conf"), self.pfctl("-s", "memory"), self.pfctl("-s", "rules"), self.feeds()

    def wait_until_limited_and_hooked(self) -> None:
        wait_for(lambda: self.hooked() and self.limit() == LIMIT and self.feeds() == FEEDS, 45, interval=1,
                 what=f"pfguard hooked with the limit {LIMIT} and {FEEDS} feed entries",
                 detail=lambda: f"{self.pfctl('-s', 'memory')}\n{self.pfctl('-s', 'rules')}")  # fmt: skip


@pytest.fixture(scope="module")
def mac1(lab, tmp_path_factory):
    host = Mac1(lab, tmp_path_factory.mktemp("pf_anchor_limit"))
    try:
        host.converge()
        lab.exec(HOST, "/bin/sh", "-c", f"cat > {FEEDS_FILE}", input_text=FEED_LINES)
        host.pfctl("-q", "-a", "pfguard", "-t", "pfguard_feeds", "-T", "replace", "-f", FEEDS_FILE)
        assert host.feeds() == FEEDS and host.limit() == 200_000
        yield host
    finally:
        lab.exec(HOST, "/bin/rm", "-rf", LOCK_DIR)
        lab.exec(HOST, "/sbin/pfctl", "-q", "-a", "pfguard", "-t", "pfguard_feeds", "-T", "flush")
        result, _ = host.play(pfguard_state="absent")
        lab.exec(HOST, "/bin/sh", "-c", "cat > /etc/pf.conf", input_text=STOCK_PF_CONF)
        host.pfctl("-f", "/etc/pf.conf")
        lab.exec(HOST, "/sbin/pfctl", "-d")
        assert result.returncode == 0, f"pfguard_state=absent failed while restoring {HOST}:\n{result.stdout[-3000:]}"


# CI's time budget: one value per kind of mistake in `make test`, the rest in `make test-extended`.
EXTENDED = pytest.mark.extended


@pytest.mark.parametrize("value", ["lots", pytest.param(0, marks=EXTENDED), -5, 10_000_001,
                                   pytest.param(1.5, marks=EXTENDED), True,
                                   pytest.param("400000 ", marks=EXTENDED)])  # fmt: skip
def test_a_bad_limit_is_refused_naming_it(mac1, value):
    out = mac1.refused(pfguard_pf_table_entries_limit=value)
    shown = {True: "true", "lots": '"lots"', "400000 ": '"400000 "'}.get(value, str(value))
    assert f"pfguard_pf_table_entries_limit must be empty (macOS's default limit) or a whole number of PF " \
           f"table entries from 1 to 10000000; got {shown}." in " ".join(out.split()), out[-3000:]


def test_a_limit_without_room_for_a_reload_of_the_anchor_is_refused(mac1):
    out = " ".join(mac1.refused(pfguard_pf_table_entries_limit=200_000).split())
    found = re.search(r"pfguard_pf_table_entries_limit is 200000, but mac1's PF tables hold (\d+) entries, (\d+) of "
                      r"them in pfguard's anchor: a reload of the anchor builds its tables a second time before it "
                      r"drops the old ones, so it needs a limit of at least (\d+)\.", out)
    assert found, out[-3000:]
    in_use, own, needed = map(int, found.groups())
    assert own == FEEDS + 3 and in_use >= own and needed == in_use + own  # 1 blocklist + 2 trusted entries


def test_the_limit_is_set_before_the_big_anchor_is_loaded_again(mac1):
    recap = mac1.converge(pfguard_pf_table_entries_limit=LIMIT)
    assert recap["changed"] > 0
    pf_conf = mac1.read("/etc/pf.conf")
    assert pf_conf.startswith(LIMIT_BLOCK + STOCK_PF_CONF), pf_conf[:400]
    assert mac1.limit() == LIMIT
    # The main ruleset was loaded again (pf.conf changed): it defined pfguard's 120 003 entries a second time.
    assert mac1.hooked() and mac1.feeds() == FEEDS
    assert mac1.lab.exec(HOST, "/sbin/pfctl", "-nf", "/etc/pf.conf").returncode == 0
    assert mac1.converge(pfguard_pf_table_entries_limit=LIMIT)["changed"] == 0, "second run must change nothing"


def test_apples_stock_reload_drops_the_limit_and_the_daemon_puts_it_back(mac1):
    mac1.lab.sh(HOST, f"until mkdir {LOCK_DIR} 2>/dev/null; do sleep 0.2; done; echo 1 > {LOCK_DIR}/pid")
    try:
        loaded = mac1.lab.exec(HOST, "/sbin/pfctl", "-q", "-f", "-", input_text=STOCK_PF_CONF)
        assert loaded.returncode == 0, loaded.stderr
        assert mac1.limit() == 200_000 and not mac1.hooked(), "a load without `set limit` restores the default"
    finally:
        mac1.lab.exec(HOST, "/bin/rm", "-rf", LOCK_DIR)
    # 120 003 loaded + 120 003 again > 200 000: only with the limit loaded first (-O) does this succeed.
    mac1.wait_until_limited_and_hooked()


def test_a_macos_update_keeps_the_limit_once_the_daemon_has_hooked_pfguard(mac1):
    result = mac1.lab.run("os-update", HOST)
    assert result.returncode == 0, result.stderr
    assert mac1.read("/etc/pf.conf") == STOCK_PF_CONF, "the update puts back Apple's stock file"
    mac1.wait_until_limited_and_hooked()
    assert mac1.read("/etc/pf.conf") == STOCK_PF_CONF, "the daemon loads the limit without editing the file"
    assert mac1.converge(pfguard_pf_table_entries_limit=LIMIT)["changed"] > 0  # pfguard writes its blocks back
    assert mac1.read("/etc/pf.conf").startswith(LIMIT_BLOCK + STOCK_PF_CONF)


def test_absent_removes_the_limit_and_gives_pf_conf_back(mac1):
    mac1.pfctl("-q", "-a", "pfguard", "-t", "pfguard_feeds", "-T", "flush")
    assert mac1.converge(pfguard_state="absent", pfguard_pf_table_entries_limit=LIMIT)["changed"] > 0
    assert mac1.read("/etc/pf.conf") == STOCK_PF_CONF
    assert mac1.limit() == 200_000
    assert mac1.converge(pfguard_state="absent", pfguard_pf_table_entries_limit=LIMIT)["changed"] == 0
