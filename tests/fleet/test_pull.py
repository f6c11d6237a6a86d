# SPDX-License-Identifier: GPL-3.0-or-later
"""Pull mode on the lab fleet (docs/pull-mode.md): pfguard.macos.pull on every Mac pulling a repository the
controller serves (`Lab.serve_git`: git daemon on the bridge, ended by `pfguard-lab down`), ban.yml and
unban.yml with pfguard_ban_mode=pull committing to it, enforcement within interval + 30 s, a broken pull
seen by the doctor, the fast path's CPU, idempotence and removal.

The ban and the unban prove enforcement within interval + 30 s by launchd's schedule alone; the other
cases that need a pull start one with `launchctl kickstart` (a run already going is left alone: the wait
for the result then still ends within the schedule's bound).

The Macs are the lab's (its inventory), and the role's first pull converges them: no site.yml first.
`make fleet-extended` runs it on the default 3 Macs; `make pull-fleet` on 20 (PFGUARD_LAB_HOSTS, a lab
of its own). Alone, under the lab lock: `flock /tmp/pfguard-lab.lock .venv/bin/pytest -q -p no:cacheprovider
-m extended tests/fleet/test_pull.py`. The tests run in file order and share one converge (the `pull`
fixture); the last one removes the role, leaving the Macs protected as site.yml leaves them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from fleet_fixtures import POLICY, Fleet, bootout, bootstrap
from lab_fixtures import REPO, wait_for
from pfguard_lab.fleet import TRUSTED_NETWORKS, Lab

pytest_plugins = ["lab_fixtures", "fleet_fixtures"]
# CI's time budget: every pull converges site.yml's roles on all 3 Macs at once (about 6 minutes for the
# file on the lab), so `make test-extended` runs it; tests/lab/test_pull_script.py covers the script in
# `make test`.
pytestmark = pytest.mark.extended

# The interval the brief asks for; the splay is short so that a pull lands within interval + 30 s.
INTERVAL, SPLAY, TIMEOUT = 60, 5, 600
ENFORCED_WITHIN = INTERVAL + 30
BANNED = "203.0.113.77"
STATUS = "/var/db/pfguard/pull.json"
HELPER = "/Library/Application Support/pfguard/org.pfguard.pull.sh"
JOB = "org.pfguard.pull"
MADE = ["/Library/LaunchDaemons/org.pfguard.pull.plist", HELPER,
        "/var/db/pfguard/pull",
        STATUS, "/var/db/pfguard/pulled.txt", "/var/log/org.pfguard.pull.log"]  # fmt: skip
# What a pull repository needs of the collection (vendored as playbook-adjacent collections).
COLLECTION_PARTS = ("galaxy.yml", "meta", "plugins", "roles", "playbooks")
GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@localhost"]


def git(*args: str, cwd) -> str:
    done = subprocess.run(["git", *GIT_ID, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout


def status(fleet, host: str) -> dict:
    text = fleet.lab.sh(host, f"cat {STATUS} 2>/dev/null || true")
    return json.loads(text) if text.strip() else {}


class PullRepo:
    def __init__(self, lab_dir: Path, work: Path, url: str):
        self.bare = lab_dir / "fleet.git"
        self.work = work
        self.url = url + "fleet.git"

    def create(self) -> None:
        git("init", "-q", "--bare", "-b", "main", str(self.bare), cwd="/")
        self.work.mkdir()
        git("init", "-q", "-b", "main", cwd=self.work)
        (self.work / "local.yml").write_text(
            "---\n- name: Converge this Mac\n  ansible.builtin.import_playbook: pfguard.macos.pull\n")
        (self.work / "group_vars").mkdir()
        settings = {"pfguard_trusted_networks": TRUSTED_NETWORKS, "pfguard_assume_darwin": True, **POLICY}
        (self.work / "group_vars/macs.yml").write_text("---\n" + yaml.safe_dump(settings))
        (self.work / "blocklist.txt").write_text("# The fleet's bans, one address or network a line.\n")
        vendored = self.work / "collections/ansible_collections/pfguard/macos"
        for part in COLLECTION_PARTS:
            source = REPO / part
            if source.is_dir():
                shutil.copytree(source, vendored / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                vendored.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, vendored / part)
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", "fleet", cwd=self.work)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=self.work)

    def head(self) -> str:
        return git("rev-parse", "refs/heads/main", cwd=self.bare).strip()

    def commit_file(self, text: str, message: str) -> str:
        (self.work / "blocklist.txt").write_text(text)
        git("commit", "-q", "-m", message, "--", "blocklist.txt", cwd=self.work)
        git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=self.work)
        return self.head()


def apply_role(fleet, tmp_dir: Path, *args: str, **extra_vars):
    play = tmp_dir / "pull-role.yml"
    play.write_text("---\n- name: Pull mode\n  hosts: macs\n  gather_facts: false\n  roles:\n"
                    "    - role: pfguard.macos.pull\n")  # fmt: skip
    return fleet.lab.playbook(play, *args, extra_vars={
        "pfguard_pull_url": fleet.pull_repo.url, "pfguard_pull_interval": INTERVAL, "pfguard_pull_splay": SPLAY,
        "pfguard_pull_timeout": TIMEOUT, **extra_vars})  # fmt: skip


def pull_detail(fleet) -> dict:
    """For a failed wait: each Mac's status file and the end of its last pull's output."""
    return {host: (status(fleet, host), fleet.lab.sh(host, "tail -n 15 /var/log/org.pfguard.pull.log || true"))
            for host in fleet.macs}  # fmt: skip


def kickstart(fleet) -> None:
    """Start a pull on every Mac now (launchd's kickstart; a running pull is not started twice)."""
    for host in fleet.macs:
        fleet.lab.sh(host, f"/bin/launchctl kickstart system/{JOB}")


def on_every_mac(fleet, holds):
    """Wait condition: holds(host) was true on every Mac. A Mac is read until it holds once, so a poll reads
    only the Macs still waited for (on 20 Macs reading all of them would take seconds per poll)."""
    pending = list(fleet.macs)

    def check():
        pending[:] = [host for host in pending if not holds(host)]
        return not pending
    return check


def pulled(fleet, commit: str, result: str = "ok"):
    """Wait condition: every Mac's last pull is `result` at `commit` (the status file says so)."""
    def check():
        found = {host: status(fleet, host) for host in fleet.macs}
        return all(s.get("commit") == commit and s.get("result") == result for s in found.values()) and found
    return check


@pytest.fixture(scope="module")
def pull(lab, tmp_path_factory):
    fleet = Fleet(lab)
    fleet.macs = tuple(sorted(lab.macs(), key=lambda host: int(re.sub(r"\D", "", host) or 0)))
    server = Lab()
    url = server.serve_git()
    tmp_dir = tmp_path_factory.mktemp("pull")
    fleet.pull_repo = repo = PullRepo(server.git_dir, tmp_dir / "work", url)
    repo.create()
    fleet.pull_tmp = tmp_dir
    started = time.monotonic()
    run = apply_role(fleet, tmp_dir)
    assert run.returncode == 0, str(run)
    # RunAtLoad: the first pull converges every Mac from the repository at once (all of them on this
    # machine's 2 cores: the bound grows with the fleet).
    wait_for(pulled(fleet, repo.head()), 300 + 30 * len(fleet.macs), interval=2, what="the first pull on every Mac",
             detail=lambda: {h: status(fleet, h) for h in fleet.macs})  # fmt: skip
    print(f"role applied and first pull done on every Mac in {time.monotonic() - started:.0f} s")
    return fleet


def test_role_is_idempotent_and_checks_cleanly(pull):
    again = apply_role(pull, pull.pull_tmp)
    assert again.ok() and set(again.changed().values()) == {0}, str(again)
    checked = apply_role(pull, pull.pull_tmp, check=True, diff=True)
    assert checked.ok() and set(checked.changed().values()) == {0}, str(checked)
    for host in pull.macs:
        assert pull.lab.sh(host, f"stat -c '%U %a' '{HELPER}'").split() == ["root", "755"]
        assert pull.launchd_job(host, "org.pfguard.pull") is not None


def test_unchanged_pull_is_cheap(pull):
    """The fast path (the server's commit is the checkout's): the script's CPU time, splay excluded. The
    job is unloaded meanwhile, so that no scheduled pull holds the lock (the script would skip) or runs
    beside the measurement. One unmeasured run first: a pull the bootout stopped is recorded as failed
    (and then converges again), and the fast path needs the last pull to have succeeded."""
    measure = ("import resource, subprocess, sys; out = subprocess.run(['/bin/sh', sys.argv[1]], capture_output=True, "
               "text=True); r = resource.getrusage(resource.RUSAGE_CHILDREN); "
               "print(r.ru_utime + r.ru_stime, out.returncode, repr(out.stdout + out.stderr))")  # fmt: skip
    pull.lab.sh("mac1", bootout(JOB))
    try:
        pull.lab.sh("mac1", f"/bin/sh '{HELPER}' >/dev/null")
        before = status(pull, "mac1")
        assert before["result"] == "ok" and before["commit"] == pull.pull_repo.head(), before
        run = pull.lab.exec("mac1", "/usr/bin/python3", "-c", measure, HELPER, timeout=120)
        cpu, rc, output = run.stdout.split(" ", 2)
        after = status(pull, "mac1")
        assert rc == "0" and "skipping" not in output, output
        assert after["result"] == "ok" and after["reason"] == "unchanged", after
        assert after["commit"] == before["commit"] and after["playbook_ran"] is False, after
        assert after["last_attempt_epoch"] >= before["last_attempt_epoch"]
        # ansible-pull --only-if-changed itself, for comparison (docs/pull-mode.md quotes both).
        prefix = "/opt/homebrew"
        measure_argv = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
                        "r = resource.getrusage(resource.RUSAGE_CHILDREN); print(r.ru_utime + r.ru_stime)")  # fmt: skip
        direct = pull.lab.exec("mac1", "/usr/bin/python3", "-c", measure_argv,
                               f"{prefix}/bin/ansible-pull", "-U", pull.pull_repo.url, "-C", "main", "-d",
                               "/var/db/pfguard/pull/checkout", "-i", "/var/db/pfguard/pull/inventory.yml",
                               "--only-if-changed", "local.yml", timeout=300)  # fmt: skip
    finally:
        pull.lab.sh("mac1", bootstrap(JOB))
    direct_cpu = float(direct.stdout)
    print(f"unchanged pull: script {float(cpu):.2f} s CPU; ansible-pull --only-if-changed {direct_cpu:.2f} s CPU")
    assert float(cpu) <= 2.0


def test_ban_and_unban_in_pull_mode_reach_every_mac(pull):
    work = pull.pull_repo.work
    mode = {"pfguard_ban_mode": "pull", "pfguard_pull_repo_dir": str(work), "pfguard_hosts": "localhost"}
    before = pull.pull_repo.head()
    ban = pull.lab.playbook("playbooks/ban.yml", extra_vars={**mode, "pfguard_ban": BANNED})
    assert ban.returncode == 0, str(ban)
    assert set(ban.changed()) == {"localhost"}, "pull mode contacted a Mac"
    committed = pull.pull_repo.head()
    assert committed != before
    assert git("log", "-1", "--format=%an|%s", cwd=work).strip() == f"pfguard|pfguard ban: {BANNED}"
    assert BANNED in (work / "blocklist.txt").read_text().splitlines()
    assert all(BANNED not in pull.blocklist(host) for host in pull.macs)
    again = pull.lab.playbook("playbooks/ban.yml", extra_vars={**mode, "pfguard_ban": BANNED})
    assert again.returncode == 0 and pull.pull_repo.head() == committed, str(again)

    started = time.monotonic()
    wait_for(on_every_mac(pull, lambda host: BANNED in pull.blocklist(host)), ENFORCED_WITHIN, interval=1,
             what=f"{BANNED} in every Mac's pfguard_blocklist", detail=lambda: pull_detail(pull))  # fmt: skip
    print(f"ban enforced on every Mac {time.monotonic() - started:.0f} s after the push (by the schedule alone)")
    runs = {host: status(pull, host) for host in pull.macs}
    print("each Mac's last pull (reason, seconds):", {h: (s.get("reason"), s.get("duration")) for h, s in runs.items()})
    for host in pull.macs:
        assert pull.probe(host, "attacker")  # a ban of another address leaves the attacker's traffic alone
        assert BANNED in pull.lab.sh(host, "cat /var/db/pfguard/blocklist.txt").split()

    unban = pull.lab.playbook("playbooks/unban.yml", extra_vars={**mode, "pfguard_unban": BANNED})
    assert unban.returncode == 0, str(unban)
    assert git("log", "-1", "--format=%s", cwd=work).strip() == f"pfguard unban: {BANNED}"
    assert BANNED not in (work / "blocklist.txt").read_text()
    started = time.monotonic()
    wait_for(on_every_mac(pull, lambda host: BANNED not in pull.blocklist(host)), ENFORCED_WITHIN, interval=1,
             what=f"{BANNED} lifted on every Mac", detail=lambda: pull_detail(pull))  # fmt: skip
    print(f"unban enforced on every Mac {time.monotonic() - started:.0f} s after the push (by the schedule alone)")
    # ... and the pull that lifted it succeeded (it also rewrites the record of what it added, now empty).
    wait_for(pulled(pull, pull.pull_repo.head()), ENFORCED_WITHIN, interval=1, what="the unban's pull to succeed",
             detail=lambda: pull_detail(pull))  # fmt: skip
    for host in pull.macs:
        assert pull.lab.sh(host, "[ -e /var/db/pfguard/pulled.txt ] && echo left || true").strip() == ""


def test_a_broken_pull_is_recorded_and_the_doctor_names_the_mac(pull):
    repo = pull.pull_repo
    good = (repo.work / "blocklist.txt").read_text()
    bad = repo.commit_file(good + "not-an-address\n", "a bad entry")
    try:
        kickstart(pull)
        found = wait_for(pulled(pull, bad, "failed"), ENFORCED_WITHIN + 60, interval=2,
                         what="every Mac to record the failed pull",
                         detail=lambda: {h: status(pull, h) for h in pull.macs})  # fmt: skip
        for recorded in found.values():
            assert "not-an-address" in recorded["reason"], recorded
            assert recorded["failing_since"] and recorded["last_success"], recorded
        run = pull.lab.playbook("playbooks/doctor.yml")
        assert run.returncode != 0
        for host in pull.macs:
            assert re.search(rf"^\s*{host}\s+\| pull failing since \d{{4}}-\d\d-\d\dT[\d:]+Z: "
                             r"ansible-(pull|playbook) exited \d+: .*not-an-address", run.stdout,
                             re.MULTILINE), run.stdout  # fmt: skip
    finally:
        fixed = repo.commit_file(good, "drop the bad entry")
        kickstart(pull)
    wait_for(pulled(pull, fixed), ENFORCED_WITHIN + 60, interval=2, what="every Mac to pull the fix",
             detail=lambda: {h: status(pull, h) for h in pull.macs})  # fmt: skip
    assert all(status(pull, host)["failing_since"] is None for host in pull.macs)


def test_absent_removes_everything_the_role_made(pull):
    run = apply_role(pull, pull.pull_tmp, pfguard_state="absent")
    assert run.returncode == 0, str(run)
    for host in pull.macs:
        assert pull.launchd_job(host, "org.pfguard.pull") is None
        left = pull.lab.sh(host, " ; ".join(f"[ -e '{path}' ] && echo '{path}'" for path in MADE) + " ; true")
        assert left.strip() == "", f"{host}: {left}"
    again = apply_role(pull, pull.pull_tmp, pfguard_state="absent")
    assert again.ok() and set(again.changed().values()) == {0}, str(again)
