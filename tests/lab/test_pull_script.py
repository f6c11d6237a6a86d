# SPDX-License-Identifier: GPL-3.0-or-later
"""The pull role's script (roles/pull/templates/org.pfguard.pull.sh.j2) on this machine, without the lab:
rendered with a stand-in ansible-pull (clones or fetches like ansible-pull's git step, then "runs the
playbook") against a file:// repository. The fast path, a commit that changes only the blocklist file
(the playbook's blocklist tasks only), a failure retried without --only-if-changed, the timeout, a SIGTERM
from outside, and a checkout that moved without a successful run. The lab test
(tests/fleet/test_pull.py) runs the real thing on the emulated Macs.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import jinja2
import pytest
from lab_fixtures import REPO, wait_for

TEMPLATE = REPO / "roles/pull/templates/org.pfguard.pull.sh.j2"
GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
FAKE_PULL = """#!/bin/sh
# Stand-in for ansible-pull: -U url -C branch -d dest [--only-if-changed] playbook
echo "$@" >>"$(dirname "$0")/calls"
while [ $# -gt 0 ]; do
    case $1 in -U) url=$2; shift ;; -C) branch=$2; shift ;; -d) dest=$2; shift ;; --only-if-changed) only=1 ;;
        -i) shift ;; -*) echo "unknown option $1"; exit 5 ;; esac
    shift
done
if [ -d "$dest/.git" ]; then
    old=$(git -C "$dest" rev-parse HEAD)
    git -C "$dest" fetch -q origin "$branch" && git -C "$dest" checkout -q FETCH_HEAD || exit 2
    if [ -n "$only" ] && [ "$old" = "$(git -C "$dest" rev-parse HEAD)" ]; then
        echo "Repository has not changed, quitting"; exit 0
    fi
else
    git clone -q -b "$branch" "$url" "$dest" || exit 2
fi
if [ -f "$(dirname "$0")/hang" ]; then
    sleep 300 &
    echo $! >"$(dirname "$0")/sleeper"
    wait
fi
if [ -f "$(dirname "$0")/fail" ]; then echo 'fatal: [localhost]: FAILED! => {"msg": "not-an-address"}'; exit 2; fi
echo "ran the playbook"
"""

FAKE_PLAYBOOK = """#!/bin/sh
# Stand-in for ansible-playbook as the script runs it for the blocklist alone, from the checkout.
echo "playbook $* (in $(pwd))" >>"$(dirname "$0")/calls"
if [ -f "$(dirname "$0")/fail" ]; then echo 'fatal: [localhost]: FAILED! => {"msg": "not-an-address"}'; exit 2; fi
echo "ran the blocklist tasks"
"""


def git(*args, cwd):
    done = subprocess.run(["git", *GIT_ID, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


class Pull:
    def __init__(self, base: Path, timeout: int = 30, blocklist_path: str = "fleet/blocklist.txt"):
        self.base = base
        git("init", "-q", "--bare", "-b", "main", str(base / "srv.git"), cwd=base)
        git("clone", "-q", str(base / "srv.git"), "work", cwd=base)
        self.commit("first")
        for name, text in (("ansible-pull", FAKE_PULL), ("ansible-playbook", FAKE_PLAYBOOK)):
            (base / name).write_text(text)
            (base / name).chmod(0o755)
        fake = base / "ansible-pull"
        env = jinja2.Environment(undefined=jinja2.StrictUndefined)
        env.filters["quote"] = shlex.quote
        script = env.from_string(TEMPLATE.read_text()).render(
            ansible_managed="test", __pull_label="org.pfguard.pull", __pull_ansible_pull=str(fake),
            __pull_git="/usr/bin/git", pfguard_pull_url=f"file://{base}/srv.git", pfguard_pull_branch="main",
            __pull_checkout=str(base / "checkout"), pfguard_pull_playbook="local.yml",
            __pull_inventory=str(base / "inventory.yml"), __pull_status_file=str(base / "pull.json"),
            __pull_log=str(base / "pull.log"), __pull_lock_dir=str(base / "lock"), pfguard_pull_interval=60,
            pfguard_pull_splay=0, pfguard_pull_timeout=timeout, __pfguard_pull_blocklist_path=blocklist_path,
            __pull_ansible_playbook=str(base / "ansible-playbook"),
            __pull_full_pending=str(base / "full-pending"))  # fmt: skip
        self.script = base / "pull.sh"
        self.script.write_text(script)

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        """Commit `files` (path in the repository: text) and push it; without them a change of the fleet's
        settings (so that the whole playbook runs)."""
        for path, text in (files or {"fleet/group_vars/macs.yml": f"# {message}\n"}).items():
            (self.base / "work" / path).parent.mkdir(parents=True, exist_ok=True)
            (self.base / "work" / path).write_text(text)
            git("add", path, cwd=self.base / "work")
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.base / "work")
        git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=self.base / "work")
        return git("rev-parse", "HEAD", cwd=self.base / "work")

    def start(self) -> subprocess.Popen:
        # A session of its own, as launchd starts a job.
        return subprocess.Popen(["/bin/sh", str(self.script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)  # fmt: skip

    def run(self) -> dict:
        proc = self.start()
        proc.communicate(timeout=120)
        return self.status()

    def status(self) -> dict:
        return json.loads((self.base / "pull.json").read_text())

    def calls(self) -> list[str]:
        calls = self.base / "calls"
        return calls.read_text().splitlines() if calls.exists() else []


@pytest.fixture
def pull(tmp_path):
    return Pull(tmp_path)


def test_fast_path_and_a_new_commit(pull):
    first = pull.run()
    assert (first["result"], first["reason"], first["playbook_ran"]) == ("ok", "converged", True)
    assert isinstance(first["duration"], int) and 0 <= first["duration"] < 60, first
    assert len(pull.calls()) == 1 and "--only-if-changed" not in pull.calls()[0]  # no status yet
    again = pull.run()
    assert (again["result"], again["reason"], again["playbook_ran"]) == ("ok", "unchanged", False)
    assert len(pull.calls()) == 1, "the fast path ran ansible-pull"
    new = pull.commit("second")
    changed = pull.run()
    assert (changed["result"], changed["reason"], changed["commit"]) == ("ok", "converged", new)
    assert "--only-if-changed" in pull.calls()[-1]
    assert not (pull.base / "lock").exists()


def test_a_commit_that_changes_only_the_blocklist_runs_only_its_tasks(pull):
    pull.commit("settings and blocklist", {"fleet/blocklist.txt": "", "fleet/group_vars/macs.yml": "---\n"})
    assert pull.run()["reason"] == "converged"
    assert pull.calls()[-1].startswith("-U ")  # ansible-pull
    banned = pull.commit("ban", {"fleet/blocklist.txt": "203.0.113.7\n"})
    only = pull.run()
    assert (only["result"], only["reason"], only["commit"], only["converged"], only["playbook_ran"]) == (
        "ok", "blocklist applied", banned, banned, True)  # fmt: skip
    checkout = pull.base / "checkout"
    inventory = pull.base / "inventory.yml"
    assert pull.calls()[-1] == f"playbook -i {inventory} -l localhost --tags pull local.yml (in {checkout})"
    assert (checkout / "fleet/blocklist.txt").read_text() == "203.0.113.7\n"  # the playbook ran on the new commit
    assert pull.run()["reason"] == "unchanged"
    # The blocklist and anything else: every role.
    both = pull.commit("ban and settings",
                       {"fleet/blocklist.txt": "203.0.113.8\n", "fleet/group_vars/macs.yml": "--- {}\n"})  # fmt: skip
    assert (pull.run()["reason"], pull.status()["commit"]) == ("converged", both)
    assert pull.calls()[-1].startswith("-U ")
    # A file of the same name elsewhere in the repository is not the blocklist.
    pull.commit("another file", {"blocklist.txt": "203.0.113.9\n"})
    assert pull.run()["reason"] == "converged"
    assert not (pull.base / "full-pending").exists()


def test_a_failed_blocklist_run_is_retried_alone_and_a_failed_whole_run_in_whole(pull):
    pull.commit("blocklist", {"fleet/blocklist.txt": ""})
    good = pull.run()["converged"]
    (pull.base / "fail").write_text("")
    bad = pull.commit("a bad entry", {"fleet/blocklist.txt": "not-an-address\n"})
    failed = pull.run()
    assert (failed["result"], failed["commit"], failed["converged"]) == ("failed", bad, good), failed
    assert failed["reason"].startswith("ansible-playbook exited 2: ") and "not-an-address" in failed["reason"]
    (pull.base / "fail").unlink()
    # The fix puts back what the last success had: nothing differs from it, and the blocklist runs alone again.
    fixed = pull.commit("fixed", {"fleet/blocklist.txt": ""})
    after = pull.run()
    assert (after["result"], after["reason"], after["converged"]) == ("ok", "blocklist applied", fixed)
    assert pull.calls()[-1].startswith("playbook ")
    # A run of the whole playbook that fails (or is killed) leaves the roles in doubt: the next is whole too.
    (pull.base / "fail").write_text("")
    pull.commit("settings", {"fleet/group_vars/macs.yml": "---\n"})
    assert pull.run()["result"] == "failed" and (pull.base / "full-pending").exists()
    (pull.base / "fail").unlink()
    pull.commit("ban", {"fleet/blocklist.txt": "203.0.113.8\n"})
    assert pull.run()["reason"] == "converged" and pull.calls()[-1].startswith("-U ")
    assert not (pull.base / "full-pending").exists()


def test_a_git_error_runs_the_whole_playbook(pull):
    pull.commit("blocklist", {"fleet/blocklist.txt": ""})
    pull.run()
    pull.commit("ban", {"fleet/blocklist.txt": "203.0.113.7\n"})
    status = json.loads((pull.base / "pull.json").read_text())
    status["converged"] = "0" * 40  # a commit the checkout does not have: git diff fails
    (pull.base / "pull.json").write_text(json.dumps(status, indent=2))
    assert pull.run()["reason"] == "converged" and pull.calls()[-1].startswith("-U ")


def test_a_blocklist_outside_the_repository_never_limits_the_run(tmp_path):
    pull = Pull(tmp_path, blocklist_path="")
    pull.run()
    pull.commit("ban", {"blocklist.txt": "203.0.113.7\n"})
    assert pull.run()["reason"] == "converged"
    assert pull.calls()[-1].startswith("-U ")


def test_a_failure_is_recorded_and_retried_without_only_if_changed(pull):
    pull.run()
    (pull.base / "fail").write_text("")
    bad = pull.commit("bad")
    failed = pull.run()
    assert (failed["result"], failed["commit"], failed["rc"]) == ("failed", bad, 2)
    assert "not-an-address" in failed["reason"] and failed["failing_since"] and failed["last_success"]
    (pull.base / "fail").unlink()
    retried = pull.run()  # the same commit: --only-if-changed would skip the playbook
    assert (retried["result"], retried["reason"], retried["failing_since"]) == ("ok", "converged", None)
    assert "--only-if-changed" not in pull.calls()[-1]


def test_a_checkout_moved_without_a_successful_run_runs_the_playbook(pull):
    pull.run()
    new = pull.commit("second")
    git("fetch", "-q", "origin", "main", cwd=pull.base / "checkout")  # a pull SIGKILLed after its fetch
    git("checkout", "-q", "FETCH_HEAD", cwd=pull.base / "checkout")
    moved = pull.run()
    assert (moved["result"], moved["reason"], moved["commit"]) == ("ok", "converged", new)
    assert "--only-if-changed" not in pull.calls()[-1]


def gone(pull) -> bool:
    """Neither the stand-in ansible-pull nor the process it left hanging is there."""
    sleeper = int((pull.base / "sleeper").read_text())
    stand_in = subprocess.run(["pgrep", "-f", f"{pull.base}/ansible-pull"], capture_output=True)
    return stand_in.returncode == 1 and not Path(f"/proc/{sleeper}").exists()


def test_the_timeout_ends_every_process_of_the_pull(tmp_path):
    pull = Pull(tmp_path, timeout=2)
    pull.run()
    (pull.base / "hang").write_text("")
    pull.commit("second")
    started = time.monotonic()
    ended = pull.run()
    assert time.monotonic() - started < 20
    assert (ended["result"], ended["rc"]) == ("failed", 124) and "longer than 2s" in ended["reason"], ended
    wait_for(lambda: gone(pull), 10, what="the pull's processes to end")


def test_a_sigterm_from_launchd_is_recorded_and_passed_on(pull):
    pull.run()
    (pull.base / "hang").write_text("")
    pull.commit("second")
    proc = pull.start()
    wait_for(lambda: (pull.base / "sleeper").exists(), 30, what="the stand-in ansible-pull to hang")
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=30)
    stopped = pull.status()
    assert (stopped["result"], stopped["rc"]) == ("failed", 143) and "stopped by SIGTERM" in stopped["reason"]
    wait_for(lambda: gone(pull), 10, what="the pull's processes to end")
    (pull.base / "hang").unlink()
    after = pull.run()  # the checkout already moved: the playbook must still run
    assert (after["result"], after["reason"]) == ("ok", "converged")
