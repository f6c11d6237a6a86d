# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet plays on the lab: playbooks/ban.yml, unban.yml and sync.yml.

Run under the lab lock: `flock /tmp/pfguard-lab.lock .venv/bin/pytest -q -p no:cacheprovider
tests/fleet/test_remediation_plays.py`. Every test starts from the fleet `fleet` made and leaves it so
(the `clean` fixture lifts every ban and empties the blocklists, their persist files and sync's record,
before and after, also when the test fails).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from fleet_fixtures import ATTACKER, MACS, PF_JOB, POLICY, bootout, bootstrap, breaking
from lab_fixtures import wait_for

pytest_plugins = ["lab_fixtures", "fleet_fixtures"]

BAN = ["203.0.113.7", "2001:db8::/64"]
BLOCKLIST_FILE = "/var/db/pfguard/blocklist.txt"
SYNCED_FILE = "/var/db/pfguard/synced.txt"
ATTACKER_NETWORK = "198.51.100.192/26"  # holds the attacker, not the trusted /25 or the controller


def persisted(fleet, host: str, path: str = BLOCKLIST_FILE) -> list[str]:
    """Lines of a file on the host ([] when it does not exist)."""
    return fleet.lab.sh(host, f"cat {path} 2>/dev/null || true").split()


def blocklists(fleet) -> dict[str, list[str]]:
    return {host: fleet.blocklist(host) for host in MACS}


def records(fleet) -> dict[str, list[str]]:
    return {host: persisted(fleet, host, SYNCED_FILE) for host in MACS}


def play(fleet, name: str, *args: str, **extra_vars):
    """Run playbooks/<name>.yml with the lab's policy; returns the run (not checked)."""
    return fleet.lab.playbook(f"playbooks/{name}.yml", *args, extra_vars={**POLICY, **extra_vars})


def assert_ok(run, changed_hosts: set[str] | None = None) -> None:
    """The run succeeded on every Mac; with `changed_hosts`, exactly those reported changes."""
    assert run.returncode == 0, str(run)
    assert set(run.recap) == set(MACS), str(run)
    if changed_hosts is not None:
        assert {host for host, count in run.changed().items() if count} == changed_hosts, str(run)


def summary(run) -> str:
    """The text of the play's closing summary (the last debug message)."""
    messages = re.findall(r"^    msg: \|-\n((?:        .*\n|\n)+)", run.stdout, re.MULTILINE)
    assert messages, str(run)
    return messages[-1]


def attack_until_banned(fleet, host: str) -> None:
    """maxretry failed passwords from the attacker; wait until fail2ban holds it in f2b-sshd."""
    attack = fleet.lab.run("attack", host, "--failures", str(POLICY["pfguard_fail2ban_maxretry"]))
    assert attack.returncode == 0, attack.stdout + attack.stderr
    wait_for(lambda: ATTACKER in fleet.f2b_banned(host), 20, what=f"fail2ban to ban the attacker on {host}",
             detail=lambda: fleet.fail2ban_log(host)[-3000:])  # fmt: skip


def make_clean(fleet) -> None:
    """No fail2ban ban, empty blocklists and persist files, no sync record, on every Mac."""
    fleet.unban_all()
    for host in MACS:
        fleet.lab.sh(
            host, f"pfctl -q -a pfguard -t pfguard_blocklist -T flush; : > {BLOCKLIST_FILE}; rm -f {SYNCED_FILE}"
        )
    assert blocklists(fleet) == {host: [] for host in MACS}


@pytest.fixture
def clean(fleet):
    make_clean(fleet)
    yield fleet
    make_clean(fleet)


def test_ban_check_mode_then_ban_everywhere_once(clean):
    fleet = clean
    checked = play(fleet, "ban", "--check", pfguard_ban=BAN)
    assert_ok(checked, changed_hosts=set(MACS))  # it says it would change every Mac...
    assert "would" in summary(checked), summary(checked)
    assert blocklists(fleet) == {host: [] for host in MACS}  # ...and changes none
    assert all(persisted(fleet, host) == [] for host in MACS)

    banned = play(fleet, "ban", pfguard_ban=BAN)
    assert_ok(banned, changed_hosts=set(MACS))
    for host in MACS:
        assert fleet.blocklist(host) == BAN, host  # pfctl's order: IPv4 first
        assert persisted(fleet, host) == BAN, host
    text = summary(banned)
    for host in MACS:
        assert f"{host}: added 203.0.113.7, 2001:db8::/64;" in text, text
    assert "total: 6 entries added on 3 of 3 hosts" in text, text

    again = play(fleet, "ban", pfguard_ban=BAN)
    assert_ok(again, changed_hosts=set())
    assert "already banned" in summary(again)


def test_ban_cuts_the_attackers_session_everywhere_and_survives_a_reboot(clean):
    fleet = clean
    hold = subprocess.Popen([*fleet.lab.command(), "hold", "mac1", "--from", "attacker", "--timeout", "90"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert hold.stdout.readline().strip() == "established"
        banned = play(fleet, "ban", pfguard_ban=[ATTACKER])
        held, errors = hold.communicate(timeout=30)
    finally:
        if hold.poll() is None:
            hold.kill()
            hold.wait()
    assert_ok(banned, changed_hosts=set(MACS))
    assert hold.returncode == 0 and held.startswith("cut after"), held + errors
    # No state to kill in the lab: only a stateful pass creates one (docs/lab-design.md), so the block cuts it.
    assert "mac1: added 198.51.100.200;" in summary(banned), summary(banned)
    for host in MACS:
        assert not fleet.probe(host, "attacker"), f"{host}: the banned attacker still connects"
        assert fleet.probe(host, "trusted"), f"{host}: the trusted client is blocked"

    reboot = fleet.lab.run("reboot", "mac3")
    assert reboot.returncode == 0, reboot.stdout + reboot.stderr
    # The boot loads the persisted table, then org.pfguard.pf enables PF (after Apple's own pfctl job).
    wait_for(lambda: fleet.blocklist("mac3") == [ATTACKER] and not fleet.probe("mac3", "attacker"), 90,
             what="the persisted ban enforced on mac3 after boot")  # fmt: skip
    assert fleet.probe("mac3", "trusted")


@pytest.mark.parametrize(
    ("refused", "reason"),
    [
        ("198.51.100.50", "the trusted client"),
        ("198.51.100.0/24", "a network holding the controller"),
        ("not-an-ip", "not an address"),
        ("10.0.0.0/8", "a network as wide as /8"),
        ("2001:db8::/32", "an IPv6 network as wide as /32"),
        ("0.0.0.0/0", "everything"),
        ("::/0", "everything over IPv6"),
        ("203.0.113.0/\u0662\u0664", "a mask in Arabic-Indic digits"),
        ("203.0.113.0/010", "a mask pfctl reads as octal"),
        ("203.0.113.7\nevil", "a newline inside the value"),
        ("203.0.113.7 203.0.113.8", "two addresses in one value"),
        ("fe80::1%en0", "a scoped address"),
        ("!203.0.113.7", "a negation"),
        ("localhost", "a host name"),
    ],
)
def test_ban_refuses_before_changing_any_host(clean, refused, reason):
    fleet = clean
    run = play(fleet, "ban", pfguard_ban=["203.0.113.9", refused])
    assert run.returncode != 0, f"{reason}: {run}"
    assert refused.split("\n")[0] in run.stdout, str(run)
    assert "Nothing was changed" in run.stdout, str(run)
    assert "Traceback" not in run.stdout + run.stderr, str(run)
    assert all(counters["changed"] == 0 for counters in run.recap.values()), str(run)
    assert blocklists(fleet) == {host: [] for host in MACS}
    assert all(persisted(fleet, host) == [] for host in MACS)


@pytest.mark.parametrize(
    ("play_name", "extra_vars", "named"),
    [
        ("ban", {"pfguard_ban": {"203.0.113.7": True}}, "pfguard_ban"),
        ("ban", {"pfguard_ban": [["203.0.113.7"]]}, "pfguard_ban"),
        ("ban", {"pfguard_ban": [7]}, "pfguard_ban"),
        ("ban", {"pfguard_ban": []}, "pfguard_ban"),
        ("ban", {"pfguard_ban": ["203.0.113.7"], "pfguard_trusted_networks": "198.51.100.0/25"},
         "pfguard_trusted_networks"),
        ("unban", {"pfguard_unban": ["203.0.113.0/\u0662\u0664"]}, "203.0.113.0/"),
        ("unban", {"pfguard_unban": None}, "pfguard_unban"),
        ("sync", {"pfguard_sync_min_hosts": "not-a-number"}, "not-a-number"),
        ("sync", {"pfguard_sync_min_hosts": 0}, "pfguard_sync_min_hosts"),
        ("sync", {"pfguard_sync_min_hosts": -1}, "pfguard_sync_min_hosts"),
    ],
)
def test_plays_refuse_bad_variables_before_any_change(clean, play_name, extra_vars, named):
    """The plays' own variables: refused by name on the controller, nothing changed on any Mac."""
    fleet = clean
    run = play(fleet, play_name, **extra_vars)
    assert run.returncode != 0, str(run)
    assert named in run.stdout, str(run)
    assert "Traceback" not in run.stdout + run.stderr, str(run)
    assert all(counters["changed"] == 0 for counters in run.recap.values()), str(run)
    assert blocklists(fleet) == {host: [] for host in MACS}
    assert all(persisted(fleet, host) == [] for host in MACS)


@pytest.mark.parametrize("play_name", ["ban", "unban", "sync"])
def test_plays_refuse_a_mac_that_site_yml_has_not_set_up(clean, play_name):
    """A Mac without pfguard's data directory is named with what to do, before anything changes there."""
    fleet = clean
    with breaking(fleet) as break_:
        # As before site.yml: no org.pfguard.pf either, whose periodic run recreates the persist files.
        break_("mac2", bootout(PF_JOB), bootstrap(PF_JOB))
        break_("mac2", "mv /var/db/pfguard /var/db/pfguard.away", "mv /var/db/pfguard.away /var/db/pfguard")
        run = play(fleet, play_name, pfguard_ban=["203.0.113.9"], pfguard_unban=["203.0.113.9"])
        assert run.returncode != 0, str(run)
        assert "pfguard is not installed on mac2: run site.yml" in run.stdout, str(run)
        assert run.recap["mac2"]["failed"] == 1 and run.recap["mac2"]["changed"] == 0, str(run)
        assert "Traceback" not in run.stdout + run.stderr, str(run)
        assert fleet.lab.sh("mac2", "ls -A /var/db").split().count("pfguard") == 0  # nothing made it up
    if play_name == "ban":  # one Mac refused stops the ban everywhere before the first change
        assert blocklists(fleet) == {host: [] for host in MACS}


# Enough addresses that the module runs for seconds on a lab Mac, none near the lab's own networks.
CUT_BAN = [f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}" for i in range(60000)]


def module_running(fleet, host: str) -> bool:
    """Whether a module is running as root through sudo on the host (ansible's become marker)."""
    return "BECOME-SUCCESS" in fleet.lab.sh(host, "ps -eo args")


def table_changing(fleet, host: str) -> bool:
    """Whether a pfctl_table run holds its change lock on the host: the ban's changing run, not the
    checks before it (a check-mode run takes no lock)."""
    held = fleet.lab.exec(host, "flock", "-n", "-E", "75", "/var/run/pfguard.pfctl_table.lock", "true")
    return held.returncode == 75


def assert_consistent(fleet, host: str) -> None:
    """The table and its persist file hold the same entries, and no half-written file is left."""
    assert sorted(fleet.blocklist(host)) == sorted(persisted(fleet, host)), f"{host}: table and file differ"
    leftovers = fleet.lab.sh(host, "ls -A /var/db/pfguard").split()
    assert all(not name.startswith(".") for name in leftovers), leftovers


@pytest.mark.extended  # CI's time budget: `make test-extended` runs it
@pytest.mark.parametrize("cut", ["ssh", "module"])
def test_a_ban_cut_in_the_middle_leaves_the_mac_consistent_and_a_rerun_completes(clean, tmp_path, cut):
    """`ssh`: every SSH session to the Mac is killed while the module runs; `module`: the module itself is
    killed (as by a power cut). Either way the table and its persist file agree afterwards, and the same
    ban run again completes it."""
    fleet, host = clean, "mac1"
    extra = tmp_path / "ban.json"
    extra.write_text(json.dumps({**POLICY, "pfguard_ban": CUT_BAN}))
    with fleet.lab.start_playbook("playbooks/ban.yml", "-e", f"@{extra}", limit=host, merge_stderr=True) as running:
        wait_for(lambda: table_changing(fleet, host) or running.poll() is not None, 120, interval=0.1,
                 what="pfctl_table changing the table on the Mac")  # fmt: skip
        assert running.poll() is None, f"the play ended before it could be cut:\n{running.wait(0)}"
        if cut == "ssh":
            fleet.lab.sh(host, "pkill -KILL -f '^sshd: admin' || true")
        else:
            # The module is the python3 that sudo's `sh -c 'echo BECOME-SUCCESS-...; python3'` started.
            fleet.lab.sh(host, "for p in $(pgrep -f '[B]ECOME-SUCCESS'); do pkill -KILL -P $p; done; true")
        run = running.wait(300)
    assert run.returncode != 0, str(run)
    wait_for(lambda: not module_running(fleet, host), 120, what="the cut module to end")
    if cut == "ssh":  # the module ignores SIGHUP: the change and its persist file were finished
        assert_consistent(fleet, host)
    else:  # killed half-way: the persist file is whole, old or new; the table may be ahead of it
        assert sorted(persisted(fleet, host)) in ([], sorted(CUT_BAN)), "a half-written persist file"
    again = fleet.lab.playbook("playbooks/ban.yml", "--limit", host, "-e", f"@{extra}")
    assert again.returncode == 0, str(again)
    assert_consistent(fleet, host)
    assert len(fleet.blocklist(host)) == len(CUT_BAN)


def test_ban_requires_a_list(clean):
    run = play(clean, "ban")
    assert run.returncode != 0
    assert "pfguard_ban must be a non-empty list" in run.stdout, str(run)


def test_unban_lifts_blocklist_entries_and_fail2ban_bans_everywhere(clean):
    fleet = clean
    assert_ok(play(fleet, "ban", pfguard_ban=BAN), changed_hosts=set(MACS))
    attack_until_banned(fleet, "mac1")
    assert not fleet.probe("mac1", "attacker")
    # The attacker's ban is lifted through a network that holds it.
    unban = [*BAN, ATTACKER_NETWORK]

    checked = play(fleet, "unban", "--check", pfguard_unban=unban)
    assert_ok(checked, changed_hosts=set(MACS))
    assert "would be unbanned in fail2ban sshd 198.51.100.200" in summary(checked), summary(checked)
    assert blocklists(fleet) == {host: BAN for host in MACS}
    assert fleet.f2b_banned("mac1") == [ATTACKER]

    lifted = play(fleet, "unban", pfguard_unban=unban)
    assert_ok(lifted, changed_hosts=set(MACS))
    text = summary(lifted)
    assert (
        "mac1: unbanned in fail2ban sshd 198.51.100.200; removed from pfguard_blocklist 203.0.113.7, 2001:db8::/64"
        in text
    ), text
    assert "total: 6 blocklist entries removed, 1 fail2ban bans lifted" in text, text
    assert blocklists(fleet) == {host: [] for host in MACS}
    assert all(persisted(fleet, host) == [] for host in MACS)
    assert fleet.f2b_banned("mac1") == [] and fleet.jail_banned("mac1") == []
    assert fleet.probe("mac1", "attacker")

    again = play(fleet, "unban", pfguard_unban=unban)
    assert_ok(again, changed_hosts=set())
    assert "total: 0 blocklist entries removed, 0 fail2ban bans lifted" in summary(again)


def test_sync_shares_fail2ban_bans_and_takes_them_out_when_they_expire(clean):
    fleet = clean
    attack_until_banned(fleet, "mac1")

    at_least_two = play(fleet, "sync", pfguard_sync_min_hosts=2)
    assert_ok(at_least_two, changed_hosts=set())
    assert "0 address(es) banned by fail2ban on at least 2 of 3 Macs" in summary(at_least_two)
    assert blocklists(fleet) == {host: [] for host in MACS}

    checked = play(fleet, "sync", "--check")
    assert_ok(checked, changed_hosts=set(MACS))
    assert blocklists(fleet) == {host: [] for host in MACS}
    assert records(fleet) == {host: [] for host in MACS}

    synced = play(fleet, "sync")
    assert_ok(synced, changed_hosts=set(MACS))
    text = summary(synced)
    assert "198.51.100.200: banned on 1 Mac(s)" in text, text
    assert blocklists(fleet) == {host: [ATTACKER] for host in MACS}
    assert records(fleet) == {host: [ATTACKER] for host in MACS}
    for host in ("mac2", "mac3"):
        assert not fleet.probe(host, "attacker"), f"{host}: the attacker banned on mac1 still connects"
        assert fleet.probe(host, "trusted"), f"{host}: the trusted client is blocked"
    assert_ok(play(fleet, "sync"), changed_hosts=set())

    # fail2ban lets the attacker go (bantime, or an admin): the next sync takes out what it added.
    fleet.unban_all()
    expired = play(fleet, "sync")
    assert_ok(expired, changed_hosts=set(MACS))
    assert "taken out 198.51.100.200 (no longer banned by fail2ban)" in summary(expired), summary(expired)
    assert blocklists(fleet) == {host: [] for host in MACS}
    assert records(fleet) == {host: [] for host in MACS}
    assert all(persisted(fleet, host) == [] for host in MACS)
    assert fleet.probe("mac2", "attacker")
    assert_ok(play(fleet, "sync"), changed_hosts=set())


def test_sync_never_lifts_a_ban_the_admin_made_with_ban(clean):
    fleet = clean
    attack_until_banned(fleet, "mac1")
    assert_ok(play(fleet, "sync"), changed_hosts=set(MACS))
    assert records(fleet) == {host: [ATTACKER] for host in MACS}

    # The admin bans it too: from now on the ban is the admin's, not sync's.
    assert_ok(play(fleet, "ban", pfguard_ban=[ATTACKER]), changed_hosts=set(MACS))
    assert records(fleet) == {host: [] for host in MACS}
    fleet.unban_all()
    assert_ok(play(fleet, "sync"), changed_hosts=set())
    assert blocklists(fleet) == {host: [ATTACKER] for host in MACS}
