# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/doctor.yml on the lab fleet: `protected` everywhere after site.yml, and the exact verdict
for each link of the chain, broken on one Mac at a time (docs/doctor.md).

LaunchDaemon org.pfguard.pf re-hooks pfguard and re-enables PF every 60 s and launchd restarts fail2ban,
so a PF link is broken only after that job is booted out; every break is undone in a finalizer, which
then waits until the Mac is whole again.
"""

from __future__ import annotations

import re
from pathlib import Path

import pfguard_lab
import pytest
from fleet_fixtures import (
    BREW_PREFIX,
    DAEMONS,
    FAIL2BAN_JOB,
    LOGSTREAM_JOB,
    MACS,
    PF_JOB,
    bootout,
    bootstrap,
    breaking,
    run_module_on,
)
from lab_fixtures import wait_for

pytest_plugins = ["lab_fixtures", "fleet_fixtures"]

PROTECTED = "protected"
# The summary's rows: "<host> | <verdict>".
SUMMARY_ROW = re.compile(r"^\s*(mac\d+)\s+\| (.+?)\s*$", re.MULTILINE)
STOCK_PF_CONF = Path(pfguard_lab.__file__).parent / "data" / "pf.conf"
AUTH_LOG = "/var/log/pfguard/auth.log"
# Seconds the doctor waits for its test line when the log stream is down (keeps that case fast).
LOG_WAIT = 3


def run_doctor(fleet, *args: str, **extra_vars):
    """The doctor's run and its verdict per host, from the summary; it must never change anything."""
    run = fleet.lab.playbook("playbooks/doctor.yml", *args, extra_vars=extra_vars or None)
    verdicts = dict(SUMMARY_ROW.findall(run.stdout))
    assert verdicts, f"no summary in the doctor's output\n{run}"
    assert set(run.changed().values()) == {0}, str(run)
    return run, verdicts


def whole(fleet, host: str) -> str:
    """'' when every link on `host` is in place (as site.yml made it), else what is not."""
    prefix = BREW_PREFIX[host]
    checks = {
        "PF enabled": "/sbin/pfctl -q -s info | grep -q '^Status: Enabled'",
        "pfguard hooked": "/sbin/pfctl -q -s rules | grep -qx 'anchor \"pfguard\" all'",
        "f2b hooked": "/sbin/pfctl -q -s rules | grep -qx 'anchor \"f2b/\\*\" all'",
        "blocklist rule": "/sbin/pfctl -q -a pfguard -s rules | grep -q '^block .*<pfguard_blocklist>'",
        "f2b-sshd rule": "/sbin/pfctl -q -a f2b/sshd -s rules | grep -q '^block .*<f2b-sshd>'",
        "jobs loaded, enabled": " && ".join(
            [f"/bin/launchctl print system/{job} >/dev/null" for job in (PF_JOB, FAIL2BAN_JOB, LOGSTREAM_JOB)]
            + ["! /bin/launchctl print-disabled system | grep -q '=> disabled'"]),
        "plists": " && ".join(f"test -f {DAEMONS}/{job}.plist" for job in (PF_JOB, FAIL2BAN_JOB, LOGSTREAM_JOB)),
        "jail sshd": f"{prefix}/bin/fail2ban-client -c {prefix}/etc/fail2ban status sshd >/dev/null",
    }  # fmt: skip
    broken = [name for name, check in checks.items() if fleet.lab.exec(host, "/bin/sh", "-c", check).returncode]
    return ", ".join(broken)


@pytest.fixture
def breaker(fleet):
    """break_(host, script, restore_script, input_text): fleet_fixtures.breaking, then wait until each
    broken host is whole again."""
    with breaking(fleet) as break_:
        yield break_
    for host in break_.hosts():
        wait_for_whole(fleet, host)


def wait_for_whole(fleet, host: str):
    wait_for(lambda: not whole(fleet, host), timeout=90, interval=1, what=f"{host} to be whole again",
             detail=lambda: whole(fleet, host))  # fmt: skip


def kickstart(job: str) -> str:
    return f"/bin/launchctl kickstart -k system/{job}"


# Main ruleset and pfguard's anchor, each without one of pfguard's lines.
MAIN_WITHOUT_F2B = "/usr/bin/grep -v '^anchor \"f2b/\\*\"' /etc/pf.conf | /sbin/pfctl -q -f -"
ANCHOR_WITHOUT_BLOCK = (
    "/usr/bin/sed '/^block .*<pfguard_blocklist>/d' /etc/pf.anchors/pfguard | /sbin/pfctl -q -a pfguard -f -"
)


def f2b(host: str, *args: str) -> str:
    prefix = BREW_PREFIX[host]
    return " ".join([f"{prefix}/bin/fail2ban-client", "-c", f"{prefix}/etc/fail2ban", *args])


# verdict, host, how to break it, how to restore it (docs/doctor.md), in the order they run on each host.
# The stream-down case runs before the emptied-log one, which leaves mac2's log without old lines.
BREAKS = [
    ("anchor pfguard is not referenced from the main ruleset", "mac1",
     f"{bootout(PF_JOB)} && /sbin/pfctl -q -f -", bootstrap(PF_JOB)),
    ("table pfguard_blocklist is not referenced by any block rule", "mac3",
     f"{bootout(PF_JOB)} && {ANCHOR_WITHOUT_BLOCK}", bootstrap(PF_JOB)),
    ("anchor f2b/* is not referenced from the main ruleset", "mac1",
     f"{bootout(PF_JOB)} && {MAIN_WITHOUT_F2B}", bootstrap(PF_JOB)),
    # Stopping runs the jails' stop actions; wait until the server no longer answers.
    ("fail2ban is not running", "mac2",
     f"{bootout(FAIL2BAN_JOB)} && for i in $(seq 60); do {{f2b}} ping >/dev/null 2>&1 || exit 0; sleep 0.5; done; "
     "exit 1",
     bootstrap(FAIL2BAN_JOB)),
    ("jail sshd is not running in fail2ban", "mac3", "{f2b} stop sshd", kickstart(FAIL2BAN_JOB)),
    ("table f2b-sshd is not referenced by any block rule", "mac1", "/sbin/pfctl -q -a f2b/sshd -F rules",
     kickstart(FAIL2BAN_JOB)),
    # Stream down a moment ago: old lines are fresh, but the doctor's own line never arrives.
    (f"sshd's line for the doctor's test connection did not reach the jail's log within {LOG_WAIT} s", "mac2",
     bootout(LOGSTREAM_JOB), bootstrap(LOGSTREAM_JOB)),
    # Stream down and the file emptied (as after a rotation the stream missed): no sshd line at all.
    ("no sshd line reached the jail's log in the last 10 minutes", "mac2",
     f"{bootout(LOGSTREAM_JOB)} && : > {AUTH_LOG}", bootstrap(LOGSTREAM_JOB)),
    ("launchd job org.pfguard.pf is not loaded: nothing keeps PF enabled and pfguard's anchor hooked", "mac2",
     bootout(PF_JOB), bootstrap(PF_JOB)),
    ("launchd job org.pfguard.fail2ban is disabled: it will not start after a reboot", "mac3",
     f"/bin/launchctl disable system/{FAIL2BAN_JOB}", f"/bin/launchctl enable system/{FAIL2BAN_JOB}"),
    ("launchd job org.pfguard.logstream has no plist in /Library/LaunchDaemons: it will not start after a reboot",
     "mac3", f"mv {DAEMONS}/{LOGSTREAM_JOB}.plist /var/root/{LOGSTREAM_JOB}.plist",
     f"mv /var/root/{LOGSTREAM_JOB}.plist {DAEMONS}/{LOGSTREAM_JOB}.plist"),
]  # fmt: skip


def test_converged_fleet_is_protected(fleet):
    run, verdicts = run_doctor(fleet)
    assert run.returncode == 0, str(run)
    assert verdicts == dict.fromkeys(MACS, PROTECTED), str(run)


def test_ipv6_bans_leave_the_fleet_protected(fleet):
    """An IPv6 ban in fail2ban's table (through the pfguard-pf action): the doctor reads every link as before and
    pf_facts counts the IPv6 entry."""
    attacker6 = "2001:db8:100:ff::200"  # the lab's attacker (docs/lab-design.md "Dual stack")
    banned = fleet.fail2ban_client("mac1", "set", "sshd", "banip", attacker6)
    try:
        assert banned.returncode == 0, banned.stderr
        wait_for(lambda: fleet.f2b_banned("mac1") == [attacker6], 10, what="the IPv6 ban in f2b-sshd on mac1")
        run, verdicts = run_doctor(fleet)
        assert run.returncode == 0, str(run)
        assert verdicts == dict.fromkeys(MACS, PROTECTED), str(run)
        code, facts = run_module_on(fleet.lab, "mac1", "pfguard.macos.pf_facts", {})
        assert code == 0, facts
        tables = {(t["anchor"], t["name"]): t for t in facts["ansible_facts"]["pf"]["tables"]}
        assert tables[("f2b/sshd", "f2b-sshd")]["count"] == 1 and tables[("f2b/sshd", "f2b-sshd")]["blocking"], tables
    finally:
        unbanned = fleet.fail2ban_client("mac1", "unban", attacker6)
    assert unbanned.returncode == 0, unbanned.stderr
    wait_for(lambda: not fleet.f2b_banned("mac1"), 10, what="f2b-sshd on mac1 to empty")


def test_check_mode_is_protected_too(fleet):
    run, verdicts = run_doctor(fleet, "--check")
    assert run.returncode == 0, str(run)
    assert verdicts == dict.fromkeys(MACS, PROTECTED), str(run)


def test_pf_disabled_on_one_mac_fails_the_run_after_the_whole_summary(fleet, breaker):
    breaker("mac2", f"{bootout(PF_JOB)} && /sbin/pfctl -d", bootstrap(PF_JOB))
    run, verdicts = run_doctor(fleet)
    assert run.returncode != 0, str(run)
    assert verdicts == {"mac1": PROTECTED, "mac2": "PF is disabled", "mac3": PROTECTED}, str(run)
    assert run.recap["mac2"]["failed"] == 1 and run.recap["mac1"]["failed"] == 0, str(run)
    summary_at = run.stdout.index("TASK [Summary]")
    assert summary_at < run.stdout.index("Fail on every Mac that is not protected"), str(run)


def rounds(breaks: list) -> list[list]:
    """The breaks in rounds of at most one per host, each host's breaks in their order."""
    grouped: list[list] = []
    next_round = dict.fromkeys(MACS, 0)
    for entry in breaks:
        host = entry[1]
        if next_round[host] == len(grouped):
            grouped.append([])
        grouped[next_round[host]].append(entry)
        next_round[host] += 1
    return grouped


ROUNDS = rounds(BREAKS)
ROUND_IDS = ["; ".join(f"{host}: {verdict}" for verdict, host, *_ in breaks) for breaks in ROUNDS]


@pytest.mark.parametrize("breaks", ROUNDS, ids=ROUND_IDS)
def test_each_broken_link_gives_its_verdict(fleet, breaker, breaks):
    """One broken link per Mac at a time, read by one doctor run: each broken Mac gets its verdict, a Mac
    left whole stays protected."""
    for _verdict, host, script, restore in breaks:
        # Only the stock-ruleset break reads stdin: Apple's /etc/pf.conf, without pfguard's hooks.
        breaker(host, script.replace("{f2b}", f2b(host)), restore, input_text=STOCK_PF_CONF.read_text())
    run, verdicts = run_doctor(fleet, pfguard_doctor_log_wait=LOG_WAIT)
    assert run.returncode != 0, str(run)
    assert verdicts == {**dict.fromkeys(MACS, PROTECTED), **{host: verdict for verdict, host, *_ in breaks}}, str(run)


def test_fleet_is_protected_again(fleet):
    run, verdicts = run_doctor(fleet)
    assert run.returncode == 0, str(run)
    assert verdicts == dict.fromkeys(MACS, PROTECTED), str(run)
