# SPDX-License-Identifier: GPL-3.0-or-later
"""PF in the lab drops real traffic only when every link of the chain holds, as on a Mac.

Each test works on one Mac and puts PF back to its boot state afterwards (stock ruleset, PF
disabled, pfguard's anchor flushed), so the tests share one lab.
"""

from __future__ import annotations

import contextlib
import re
import select
import subprocess
import time

import pytest
from lab_fixtures import wait_for

pytest_plugins = ["lab_fixtures"]

ATTACKER = "198.51.100.200"
ANCHOR = "pfguard_test"
TABLE = "blocklist"
BLOCK_TABLE = f"block drop in quick from <{TABLE}> to any\n"


def pfctl(lab, host, *args, data=None, ok=(0,)):
    result = lab.exec(host, "/sbin/pfctl", *args, input_text=data)
    assert result.returncode in ok, f"pfctl {' '.join(args)} -> {result.returncode}\n{result.stderr}"
    return result


def stock_ruleset(lab, host) -> str:
    return lab.exec(host, "cat", "/etc/pf.conf").stdout


def hook_anchor(lab, host):
    pfctl(lab, host, "-f", "-", data=stock_ruleset(lab, host) + f'anchor "{ANCHOR}"\n')


def probe(lab, host, source) -> bool:
    return lab.run("probe", host, "--from", source).returncode == 0


@contextlib.contextmanager
def pf_restored(lab, host):
    try:
        yield
    finally:
        pfctl(lab, host, "-d", ok=(0, 1))  # 1: "pf not enabled"
        pfctl(lab, host, "-a", ANCHOR, "-F", "all")
        pfctl(lab, host, "-f", "/etc/pf.conf")


def test_every_link_of_the_chain_is_needed(lab):
    host = "mac3"
    with pf_restored(lab, host):
        pfctl(lab, host, "-a", ANCHOR, "-t", TABLE, "-T", "add", ATTACKER)
        assert probe(lab, host, "attacker"), "a table alone must not block (PF disabled, no rule, no hook)"

        pfctl(lab, host, "-a", ANCHOR, "-f", "-", data=BLOCK_TABLE)
        hook_anchor(lab, host)
        assert probe(lab, host, "attacker"), "macOS loads rules at boot but PF stays disabled: nothing is dropped"

        pfctl(lab, host, "-E")
        assert not probe(lab, host, "attacker"), "table + rule + hooked anchor + PF enabled must drop the attacker"
        assert probe(lab, host, "trusted"), "only the table's addresses are dropped"

        pfctl(lab, host, "-f", "/etc/pf.conf")  # what a macOS update does to the hook
        assert probe(lab, host, "attacker"), "an anchor not referenced from the main ruleset is never evaluated"

        hook_anchor(lab, host)
        assert not probe(lab, host, "attacker")
        pfctl(lab, host, "-a", ANCHOR, "-f", "-", data="block drop in quick from 203.0.113.0/24 to any\n")
        assert probe(lab, host, "attacker"), "a table no rule references blocks nothing"

        pfctl(lab, host, "-a", ANCHOR, "-f", "-", data=BLOCK_TABLE)
        assert not probe(lab, host, "attacker")
        pfctl(lab, host, "-d")
        assert probe(lab, host, "attacker"), "pfctl -d stops all filtering"


def hold_session(lab, host):
    """Start `pfguard-lab hold HOST` and wait until the attacker's session is up."""
    hold = subprocess.Popen([*lab.command(), "hold", host], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([hold.stdout], [], [], 20)
    assert ready and hold.stdout.readline() == "established\n"
    return hold


def wait_cut(hold, timeout=20):
    try:
        out, err = hold.communicate(timeout=timeout)
    finally:
        if hold.poll() is None:
            hold.kill()
            hold.wait()
    assert hold.returncode == 0, err
    assert re.fullmatch(r"cut after \d+\.\ds\n", out), out


def test_established_session_survives_a_ban_until_its_states_are_killed(lab):
    host = "mac3"
    with pf_restored(lab, host):
        # `pass` keeps state by default; the session's packets then match its state before any rule.
        rules = "pass in proto tcp from any to any port 22\n" + BLOCK_TABLE
        pfctl(lab, host, "-a", ANCHOR, "-f", "-", data=rules)
        hook_anchor(lab, host)
        pfctl(lab, host, "-E")
        hold = hold_session(lab, host)
        try:
            pfctl(lab, host, "-a", ANCHOR, "-t", TABLE, "-T", "add", ATTACKER)
            assert not probe(lab, host, "attacker"), "new connections from a banned address are dropped"
            time.sleep(2.0)  # long enough for the ban to cut the session if PF kept no state
            assert hold.poll() is None, "PF keeps state: the established session must survive the ban"
            states = pfctl(lab, host, "-s", "states").stdout
            assert re.search(rf"<- {re.escape(ATTACKER)}:\d+ +ESTABLISHED:ESTABLISHED", states), states
            killed = pfctl(lab, host, "-k", ATTACKER).stderr
            assert re.search(r"^killed [1-9]\d* states from 1 sources and 0 destinations$", killed, re.M), killed
        finally:
            wait_cut(hold)


def test_without_a_stateful_pass_rule_a_ban_cuts_open_sessions_at_once(lab):
    # PF's implicit default rule passes without keeping state, so with only block rules there is no
    # state to keep a banned host's session alive.
    host = "mac3"
    with pf_restored(lab, host):
        pfctl(lab, host, "-a", ANCHOR, "-f", "-", data=BLOCK_TABLE)
        hook_anchor(lab, host)
        pfctl(lab, host, "-E")
        hold = hold_session(lab, host)
        try:
            assert ATTACKER not in pfctl(lab, host, "-s", "states").stdout
            pfctl(lab, host, "-a", ANCHOR, "-t", TABLE, "-T", "add", ATTACKER)
        finally:
            wait_cut(hold)


def test_reboot_wipes_pf_state_and_only_a_persist_file_brings_a_table_back(lab):
    host = "mac3"
    with pf_restored(lab, host):
        lab.sh(host, f"printf '{ATTACKER}\\n' > /etc/pfguard-test-table.txt")
        pfctl(lab, host, "-a", ANCHOR, "-t", TABLE, "-T", "add", ATTACKER)
        pfctl(lab, host, "-E")
        assert lab.run("reboot", host).returncode == 0
        assert "Status: Disabled" in pfctl(lab, host, "-s", "info").stdout
        missing = pfctl(lab, host, "-a", ANCHOR, "-t", TABLE, "-T", "show", ok=(255,))
        assert "pfctl: Table does not exist." in missing.stderr

        ruleset = stock_ruleset(lab, host) + 'table <restored> persist file "/etc/pfguard-test-table.txt"\n'
        lab.sh(host, "cp /etc/pf.conf /etc/pf.conf.orig")
        try:
            lab.exec(host, "/bin/sh", "-c", "cat > /etc/pf.conf", input_text=ruleset)
            assert lab.run("reboot", host).returncode == 0
            assert pfctl(lab, host, "-t", "restored", "-T", "show").stdout == f"   {ATTACKER}\n"
        finally:
            lab.sh(host, "mv /etc/pf.conf.orig /etc/pf.conf; rm -f /etc/pfguard-test-table.txt")
            assert lab.run("reboot", host).returncode == 0


# mac3 runs macOS 12 (everything under sshd), mac2 macOS 15 (sshd-session), mac1 macOS 26 (sshd-auth).
@pytest.mark.parametrize(
    "host, sshd_only_sees_failures",
    [("mac3", True), ("mac2", False), ("mac1", False)],
)
def test_a_predicate_naming_only_sshd_misses_macos_15_failures(lab, host, sshd_only_sees_failures):
    marker = f"pfgtest{host}"
    assert lab.run("attack", host, "--failures", "1", "--user", marker).returncode == 0

    def failures(predicate):
        shown = lab.exec(host, "/usr/bin/log", "show", "--info", "--style", "syslog", "--last", "5m",
                         "--predicate", predicate)
        assert shown.returncode == 0, shown.stderr
        return [line for line in shown.stdout.splitlines() if marker in line and "from 198.51.100.200" in line]

    # logd stores the line asynchronously; the kit's predicate must see it on every macOS.
    every = wait_for(lambda: failures('process IN {"sshd", "sshd-session", "sshd-auth"}'), 10, interval=0.2,
                     what="the failure in the unified log through the kit's predicate")  # fmt: skip
    assert bool(failures('process == "sshd"')) is sshd_only_sees_failures
    syslog_line = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}[+-]\d{4}  localhost sshd(-auth|-session)?\[\d+\]: "
    assert re.match(syslog_line, every[0]), every[0]
