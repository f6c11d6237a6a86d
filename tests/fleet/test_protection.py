# SPDX-License-Identifier: GPL-3.0-or-later
"""Protection end to end, the seven protection cases: the fleet after site.yml against a password attack.

Run under the lab lock: `flock /tmp/pfguard-lab.lock .venv/bin/pytest -q -p no:cacheprovider
tests/fleet/test_protection.py`. Every case starts from a fleet without bans and leaves it so (the
`no_bans` fixture unbans everywhere before and after, also when the case fails).

Timings come from the hosts' own logs: the last failure is the stream's stamp of the attacker's last
`Failed password` line in /var/log/pfguard/auth.log, the ban is fail2ban's `[sshd] Ban` line.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import datetime

import pytest
from fleet_fixtures import ATTACKER, BREW_PREFIX, MACS, POLICY, TRUSTED
from lab_fixtures import wait_for
from pfguard_lab.reachability import open_window

pytest_plugins = ["lab_fixtures", "fleet_fixtures"]

MAXRETRY = POLICY["pfguard_fail2ban_maxretry"]
AUTH_LOG = "/var/log/pfguard/auth.log"
FAIL2BAN_LABEL = "org.pfguard.fail2ban"
BAN_DEADLINE = 2.0  # seconds from the last failure by which a new connection must time out
PROBE_WAIT = 2.0  # `pfguard-lab probe` waits this long for an answer
PROBE_MARGIN = 0.5  # begin the probe this much before the deadline (its start-up time varies)
# The lab's sshd process names (docs/lab-design.md "Unified log"): macOS 26 (mac1, OpenSSH 10) logs failures
# as sshd-auth, macOS 15 (mac2, OpenSSH 9.8) as sshd-session, macOS 12 (mac3) as sshd.
FAILURE_PROCESS = {"mac1": "sshd-auth", "mac2": "sshd-session", "mac3": "sshd"}
# After a reboot or a macOS update, how long a banned attacker may still get new connections, measured
# from the first one the new boot accepts; the attacker tries every WATCH_INTERVAL s until WATCH_AFTER s
# past the restart.
BOOT_WINDOW = 1.0
WATCH_INTERVAL = 0.05
WATCH_AFTER = 5.0
PROTECTED = ("mac1", "mac2")  # cases 1-3 on macOS 26's and macOS 15's log names (case 4), fail2ban 1.1.0 and 1.0.2
# IPv6 (docs/lab-design.md "Dual stack"): the attacker's /64 is outside the trusted 2001:db8:100::/64.
ATTACKER6, TRUSTED6 = "2001:db8:100:ff::200", "2001:db8:100::50"
ATTACKER6_NETWORK, NEIGHBOUR6 = "2001:db8:100:ff::/64", "2001:db8:100:ff::201"  # another address of its /64
MAC1_ADDRESS6 = "2001:db8:100::11"
# Cases 1-3 over IPv4 on both Macs, and over IPv6 on mac1.
FAMILIES = [("mac1", False), ("mac2", False), ("mac1", True)]
FAMILY_IDS = ["mac1", "mac2", "mac1-ipv6"]


def failed_password_times(fleet, host: str, source: str) -> list[float]:
    """Epoch stamps of the stream's `Failed password ... from <source>` lines on the host."""
    pattern = re.compile(
        rf"^(\S+ \S+)\s+localhost {FAILURE_PROCESS[host]}\[\d+\]: Failed password for \S+ from {re.escape(source)} ",
        re.MULTILINE,
    )
    text = fleet.lab.sh(host, f"cat {AUTH_LOG}")
    return [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f%z").timestamp() for stamp in pattern.findall(text)]


def action_times(fleet, host: str, action: str, address: str) -> list[float]:
    """Epoch stamps of fail2ban's `[sshd] <action> <address>` lines, action Ban or Unban (local time)."""
    pattern = re.compile(rf"^(\S+ \S+) fail2ban\.actions\s+\[\d+\]: NOTICE\s+\[sshd\] {action} {re.escape(address)}$",
                         re.MULTILINE)  # fmt: skip
    return [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            for stamp in pattern.findall(fleet.fail2ban_log(host))]  # fmt: skip


def attack(fleet, host: str, failures: int, source: str = "attacker", ipv6: bool = False) -> str:
    run = fleet.lab.run("attack", host, "--from", source, "--failures", str(failures), *(["--ipv6"] if ipv6 else []))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{failures} denied" in run.stdout, run.stdout  # every attempt reached sshd and failed
    return run.stdout


def wait_for_failures_seen(fleet, host: str, source: str, count: int) -> None:
    """Until the stream has written `count` failed passwords from `source` into the jail's log."""
    wait_for(lambda: len(failed_password_times(fleet, host, source)) >= count, 20,
             what=f"{count} failed passwords from {source} in {AUTH_LOG}")  # fmt: skip


def banned_everywhere_it_counts(fleet, host: str, address: str = ATTACKER, entry: str | None = None) -> bool:
    """fail2ban bans `address` and its PF table holds `entry` (the address itself by default)."""
    return address in fleet.jail_banned(host) and (entry or address) in fleet.f2b_banned(host)


def ban_attacker(fleet, host: str, ipv6: bool = False, entry: str | None = None) -> None:
    attack(fleet, host, MAXRETRY, ipv6=ipv6)
    address = ATTACKER6 if ipv6 else ATTACKER
    wait_for(lambda: banned_everywhere_it_counts(fleet, host, address, entry), 20,
             what=f"the attacker {address} banned on {host}",
             detail=lambda: fleet.fail2ban_log(host)[-3000:] + "\n" + " ".join(fleet.f2b_banned(host)))  # fmt: skip


def probe(fleet, host: str, source: str, ipv6: bool = False) -> bool:
    """Whether a new TCP connection from `source` to the host's sshd (over IPv6 with `ipv6`) succeeds within 2 s."""
    return fleet.lab.run("probe", host, "--from", source, *(["--ipv6"] if ipv6 else [])).returncode == 0


def assert_ban_enforced(fleet, host: str, ipv6: bool = False) -> None:
    assert not probe(fleet, host, "attacker", ipv6), f"{host}: the banned attacker still connects"
    assert probe(fleet, host, "trusted", ipv6), f"{host}: the trusted client is blocked"


@pytest.fixture
def no_bans(fleet):
    """A fleet without any fail2ban ban before the case and after it, whatever the case did."""
    fleet.unban_all()
    for host in MACS:
        assert fleet.probe(host, "attacker"), f"{host}: the attacker is blocked before the attack"
    yield fleet
    fleet.unban_all()


@pytest.mark.parametrize("host,ipv6", FAMILIES, ids=FAMILY_IDS)
def test_maxretry_failures_ban_the_attacker_within_two_seconds(no_bans, host, ipv6, record_property):
    fleet = no_bans
    address = ATTACKER6 if ipv6 else ATTACKER
    family = ["--ipv6"] if ipv6 else []
    seen_before = len(failed_password_times(fleet, host, address))
    found = f"[sshd] Found {address}"
    found_before = fleet.fail2ban_log(host).count(found)
    # One failure short of maxretry: each failed password counted once, no ban.
    attack(fleet, host, MAXRETRY - 1, ipv6=ipv6)
    wait_for_failures_seen(fleet, host, address, seen_before + MAXRETRY - 1)
    wait_for(lambda: fleet.fail2ban_log(host).count(found) >= found_before + MAXRETRY - 1, 10,
             what="fail2ban to count them")  # fmt: skip
    time.sleep(PROBE_WAIT)  # as long as fail2ban would need for a ban
    assert address not in fleet.jail_banned(host) and address not in fleet.f2b_banned(host)
    assert probe(fleet, host, "attacker", ipv6), "banned after fewer than maxretry failed passwords"

    # How long `probe` takes to start connecting: an open probe is all start-up.
    started = time.time()
    assert probe(fleet, host, "trusted", ipv6)
    probe_startup = time.time() - started

    # The last failure. A new connection from the attacker, begun within 2 s of it, must time out.
    attack(fleet, host, 1, ipv6=ipv6)
    wait_for_failures_seen(fleet, host, address, seen_before + MAXRETRY)
    last_failure = failed_password_times(fleet, host, address)[-1]
    # Probe as late as the deadline allows: a ban that comes in time has been made by then.
    time.sleep(max(0.0, last_failure + BAN_DEADLINE - PROBE_MARGIN - probe_startup - time.time()))
    probe_run = fleet.lab.run("probe", host, "--from", "attacker", *family)
    # A blocked probe waits PROBE_WAIT for an answer: it began connecting no later than PROBE_WAIT before it ended.
    connected_by = time.time() - PROBE_WAIT - last_failure
    record_property("probe_after_last_failure_s", round(connected_by, 3))
    assert probe_run.returncode == 1 and "blocked" in probe_run.stdout, (
        f"{probe_run.stdout}{probe_run.stderr}probe began about {connected_by:.2f}s after the last failure\n"
        + fleet.fail2ban_log(host)[-1500:]
    )
    assert connected_by <= BAN_DEADLINE, f"the probe began {connected_by:.2f}s after the last failure, too late"
    bans = action_times(fleet, host, "Ban", address)
    assert bans, fleet.fail2ban_log(host)[-3000:]
    delay = bans[-1] - last_failure
    record_property("ban_delay_s", round(delay, 3))
    print(f"{host}: last failure from {address} -> ban {delay:.3f}s; probe began by {connected_by:.2f}s after it")
    assert 0 <= delay <= BAN_DEADLINE, f"ban {delay:.3f}s after the last failure"
    assert address in fleet.jail_banned(host) and address in fleet.f2b_banned(host)
    assert probe(fleet, host, "trusted", ipv6)
    # The attacker's other family is not banned (fail2ban bans the address it saw), nor are the other Macs concerned.
    assert probe(fleet, host, "attacker", not ipv6)
    for other in set(MACS) - {host}:
        assert address not in fleet.f2b_banned(other)


@pytest.mark.parametrize("host", PROTECTED)
def test_an_open_session_of_the_attacker_is_cut_at_the_ban(no_bans, host):
    fleet = no_bans
    hold = subprocess.Popen(
        [*fleet.lab.command(), "hold", host, "--from", "attacker", "--timeout", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # The session is up before the attack: only killing its state can cut it.
        assert hold.stdout.readline().strip() == "established"
        ban_attacker(fleet, host)
        banned_at = time.time()
        held, errors = hold.communicate(timeout=30)
        cut_seen = time.time()
    finally:
        if hold.poll() is None:
            hold.kill()
            hold.wait()
    assert hold.returncode == 0 and re.fullmatch(r"cut after \d+\.\d+s\n", held), held + errors
    # hold reports a cut after 1 s without a tick; it ended within a few seconds of the ban, not at its timeout.
    assert cut_seen - banned_at < 5, f"the session outlived the ban by {cut_seen - banned_at:.1f}s"
    states = fleet.lab.exec(host, "/sbin/pfctl", "-s", "states")
    assert states.returncode == 0 and ATTACKER not in states.stdout, states.stdout
    assert_ban_enforced(fleet, host)


@pytest.mark.parametrize("host,ipv6", FAMILIES, ids=FAMILY_IDS)
def test_the_trusted_client_is_never_banned(no_bans, host, ipv6):
    fleet = no_bans
    trusted = TRUSTED6 if ipv6 else TRUSTED  # inside 2001:db8:100::/64 resp. 198.51.100.0/25
    ignored = f"[sshd] Ignore {trusted} by ip"
    ignored_before = fleet.fail2ban_log(host).count(ignored)
    failures = 3 * MAXRETRY
    attack(fleet, host, failures, source="trusted", ipv6=ipv6)
    # fail2ban read every failure and ignored each one.
    wait_for(lambda: fleet.fail2ban_log(host).count(ignored) >= ignored_before + failures, 20,
             what="fail2ban to ignore every failure of the trusted client")  # fmt: skip
    assert trusted not in fleet.jail_banned(host) and trusted not in fleet.f2b_banned(host)
    assert not fleet.f2b_banned(host)  # nothing at all, no network holding it either
    assert probe(fleet, host, "trusted", ipv6)
    assert probe(fleet, host, "attacker", ipv6)  # nothing else was banned either


def test_the_trusted_ipv6_network_is_honoured_everywhere(fleet):
    """pfguard_trusted_networks' IPv6 network (2001:db8:100::/64, the lab's) reaches every place trust is kept: PF's
    pass table, fail2ban's ignoreip, the Adaptive Firewall whitelist (mac3 has Server.app) and the ban play's guard."""
    trusted6 = "2001:db8:100::/64"
    for host in MACS:
        assert trusted6 in fleet.table(host, "pfguard", "pfguard_trusted"), host
        jail = fleet.lab.sh(host, f"cat {BREW_PREFIX[host]}/etc/fail2ban/jail.local")
        assert re.search(rf"^ignoreip = .* {re.escape(trusted6)}(?: |$)", jail, re.MULTILINE), jail
    assert trusted6 in fleet.lab.sh("mac3", "cat /var/db/af/whitelist").split()
    before = {host: fleet.blocklist(host) for host in MACS}
    run = fleet.lab.playbook("playbooks/ban.yml", extra_vars={**POLICY, "pfguard_ban": ["203.0.113.9", TRUSTED6]})
    assert run.returncode != 0 and TRUSTED6 in run.stdout and "Nothing was changed" in run.stdout, str(run)
    assert {host: fleet.blocklist(host) for host in MACS} == before


@pytest.mark.extended  # CI's time budget: `make test-extended` runs it
def test_the_ban_ends_after_bantime(no_bans, record_property):
    fleet, host, bantime = no_bans, "mac1", 15
    limit = ("--limit", host)
    run = fleet.lab.playbook("playbooks/site.yml", *limit, extra_vars={**POLICY, "pfguard_fail2ban_bantime": bantime})
    try:
        assert run.returncode == 0, str(run)
        assert f"bantime = {bantime}" in fleet.lab.sh(host, "cat /opt/homebrew/etc/fail2ban/jail.local")
        ban_attacker(fleet, host)
        last_failure = failed_password_times(fleet, host, ATTACKER)[-1]
        assert not fleet.probe(host, "attacker")
        wait_for(lambda: not fleet.f2b_banned(host) and not fleet.jail_banned(host), bantime + 15,
                 what="the ban to expire", detail=lambda: fleet.fail2ban_log(host)[-2000:])  # fmt: skip
        # fail2ban's bantime runs from the last failure's logged time, in whole seconds.
        lasted = action_times(fleet, host, "Unban", ATTACKER)[-1] - last_failure
        record_property("ban_lasted_s", round(lasted, 1))
        assert bantime - 1 <= lasted <= bantime + 5, (
            f"unbanned {lasted:.1f}s after the last failure, bantime {bantime}s"
        )
        assert fleet.probe(host, "attacker"), "the attacker is still blocked after bantime"
    finally:
        restored = fleet.lab.playbook("playbooks/site.yml", *limit, extra_vars=POLICY)
        assert restored.returncode == 0, str(restored)
    jail = fleet.lab.sh(host, "cat /opt/homebrew/etc/fail2ban/jail.local")
    assert f"bantime = {POLICY['pfguard_fail2ban_bantime']}" in jail


CONNECT_FROM = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], 22), timeout=2, source_address=(sys.argv[2], 0)).close()
except OSError as exc:
    sys.exit(f"{exc}")
"""


def connects_from(fleet, source_address: str, target: str) -> bool:
    """Whether a new TCP connection from the attacker's namespace, from `source_address`, reaches `target`:22 in 2 s."""
    return fleet.lab.exec("attacker", "python3", "-I", "-c", CONNECT_FROM, target, source_address).returncode == 0


@pytest.mark.extended  # CI's time budget: `make test-extended` runs it
def test_an_ipv6_ban_covers_the_attackers_prefix_when_asked(no_bans):
    """pfguard_fail2ban_ipv6_ban_prefix: 64 bans the attacker's whole /64 (another address of it is dropped too),
    and the unban lifts that /64 again; IPv4 and the trusted /64 are untouched."""
    fleet, host = no_bans, "mac1"
    limit = ("--limit", host, "--tags", "fail2ban")
    local = f"{BREW_PREFIX[host]}/etc/fail2ban/action.d/pfguard-pf.local"
    added = fleet.lab.exec("attacker", "ip", "addr", "add", f"{NEIGHBOUR6}/64", "dev", "eth0", "nodad")
    try:
        assert added.returncode == 0, added.stderr
        run = fleet.lab.playbook("playbooks/site.yml", *limit,
                                 extra_vars={**POLICY, "pfguard_fail2ban_ipv6_ban_prefix": 64})  # fmt: skip
        assert run.returncode == 0, str(run)
        assert "pfguard_ipv6_ban_prefix = 64" in fleet.lab.sh(host, f"cat {local}")
        assert connects_from(fleet, NEIGHBOUR6, MAC1_ADDRESS6)  # not banned yet
        ban_attacker(fleet, host, ipv6=True, entry=ATTACKER6_NETWORK)
        assert fleet.f2b_banned(host) == [ATTACKER6_NETWORK]
        assert fleet.jail_banned(host) == [ATTACKER6]  # fail2ban itself bans the address it saw
        assert not connects_from(fleet, NEIGHBOUR6, MAC1_ADDRESS6), "another address of the banned /64 connects"
        assert_ban_enforced(fleet, host, ipv6=True)
        assert probe(fleet, host, "attacker")  # the attacker's IPv4 address is another host to PF
        unbanned = fleet.fail2ban_client(host, "unban", ATTACKER6)
        assert unbanned.returncode == 0, unbanned.stderr
        wait_for(lambda: not fleet.f2b_banned(host), 10, what=f"{ATTACKER6_NETWORK} out of f2b-sshd",
                 detail=lambda: " ".join(fleet.f2b_banned(host)))  # fmt: skip
        assert connects_from(fleet, NEIGHBOUR6, MAC1_ADDRESS6)
        assert probe(fleet, host, "attacker", ipv6=True)
    finally:
        fleet.lab.exec("attacker", "ip", "addr", "del", f"{NEIGHBOUR6}/64", "dev", "eth0")
        restored = fleet.lab.playbook("playbooks/site.yml", *limit, extra_vars=POLICY)
        assert restored.returncode == 0, str(restored)
    assert "pfguard_ipv6_ban_prefix" not in fleet.lab.sh(host, f"cat {local}")


def banned_in_database(fleet, host: str) -> bool:
    """Whether fail2ban's database holds the attacker's sshd ban (read-only), which is what a restart restores."""
    query = (
        "import sqlite3, sys; db = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True); "
        "print(db.execute(\"select count(*) from bans where jail = 'sshd' and ip = ?\", (sys.argv[2],)).fetchone()[0])"
    )
    database = f"{BREW_PREFIX[host]}/var/lib/fail2ban/fail2ban.sqlite3"
    counted = fleet.lab.exec(host, "/usr/bin/python3", "-c", query, database, ATTACKER)
    return counted.returncode == 0 and int(counted.stdout) > 0


def banned_by_the_new_server(fleet, host: str) -> bool:
    """Whether the fail2ban server started last banned the attacker again. fail2ban 1.0.2 restores the ban from
    its database ("Restore Ban") unless re-reading the log past its saved position found the failures first."""
    since_start = fleet.fail2ban_log(host).rpartition("Starting Fail2ban")[2]
    return re.search(rf"\[sshd\] (?:Restore )?Ban {re.escape(ATTACKER)}$", since_start, re.MULTILINE) is not None


def ban_attacker_for_good(fleet, host: str) -> None:
    """The attacker banned and the ban in fail2ban's database (its observer writes it a moment after the ban)."""
    ban_attacker(fleet, host)
    wait_for(lambda: banned_in_database(fleet, host), 20, what="the ban in fail2ban's database")


@pytest.mark.parametrize("restart", ["reboot", "os-update"])
def test_the_ban_survives_a_restart_without_ansible(no_bans, restart, record_property):
    """The attacker's own view: a new connection every WATCH_INTERVAL s through the restart and
    WATCH_AFTER s past it. The window is from the first connection the new boot accepted to the
    last one (0 when sshd never answered the attacker at all)."""
    fleet, host = no_bans, "mac1"
    ban_attacker_for_good(fleet, host)
    starts_before = fleet.fail2ban_log(host).count("Starting Fail2ban")
    watcher = subprocess.Popen(
        [*fleet.lab.command(), "watch", host, "--from", "attacker", "--seconds", "240",
         "--interval", str(WATCH_INTERVAL)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = time.time()
        restarted = fleet.lab.run(restart, host, timeout=180)
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        booted = time.time()
        time.sleep(WATCH_AFTER)  # a later reload (Apple's, after an update) must not open it again
    finally:
        watcher.terminate()
        output, errors = watcher.communicate(timeout=30)
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert records and records[-1]["t"] > booted + WATCH_AFTER - 1, errors
    first, last = open_window(records, after=started)
    window = 0.0 if first is None else last - first + WATCH_INTERVAL
    record_property("restart_s", round(booted - started, 1))
    record_property("unprotected_window_s", round(window, 2))
    print(f"{host} {restart}: {booted - started:.1f}s; the banned attacker got new connections for {window:.2f}s "
          "after sshd first answered")  # fmt: skip
    assert window <= BOOT_WINDOW, [r for r in records if r["t"] >= started and r["open"]]
    info = fleet.lab.exec(host, "/sbin/pfctl", "-s", "info")
    assert info.returncode == 0 and re.search(r"^Status: Enabled ", info.stdout, re.MULTILINE), info.stdout
    job = fleet.launchd_job(host, FAIL2BAN_LABEL)
    assert job is not None and job["state"] == "running", job
    assert fleet.fail2ban_log(host).count("Starting Fail2ban") == starts_before + 1  # launchd, at boot, once
    wait_for(lambda: banned_by_the_new_server(fleet, host), 30, what="the new fail2ban server's ban")
    assert ATTACKER in fleet.jail_banned(host) and ATTACKER in fleet.f2b_banned(host)
    assert_ban_enforced(fleet, host)


@pytest.mark.parametrize("host", PROTECTED)
def test_launchd_restarts_a_killed_fail2ban_with_its_bans(no_bans, host):
    fleet = no_bans
    ban_attacker_for_good(fleet, host)
    starts_before = fleet.fail2ban_log(host).count("Starting Fail2ban")
    old_job = fleet.launchd_job(host, FAIL2BAN_LABEL)
    killed = fleet.lab.exec(host, "kill", "-9", old_job["pid"])
    assert killed.returncode == 0, killed.stderr
    # A killed server runs no actionstop: its PF table keeps the ban while launchd brings it back.
    table_during_restart = []

    def restarted():
        table_during_restart.append(ATTACKER in fleet.f2b_banned(host))
        job = fleet.launchd_job(host, FAIL2BAN_LABEL)
        return job if job and job.get("state") == "running" and job.get("pid") != old_job["pid"] else None

    job = wait_for(restarted, 30, interval=0.2, what="launchd to restart fail2ban")
    assert int(job["runs"]) == int(old_job["runs"]) + 1
    wait_for(lambda: fleet.fail2ban_log(host).count("Starting Fail2ban") > starts_before
             and banned_by_the_new_server(fleet, host), 30, what="the ban back in the restarted fail2ban",
             detail=lambda: fleet.fail2ban_log(host)[-3000:])  # fmt: skip
    assert all(table_during_restart), f"the ban left f2b-sshd during the restart: {table_during_restart}"
    assert ATTACKER in fleet.jail_banned(host) and ATTACKER in fleet.f2b_banned(host)
    assert_ban_enforced(fleet, host)
