# SPDX-License-Identifier: GPL-3.0-or-later
"""`pfguard ban/unban --pull-repo DIR` end to end, with the real ansible-runner and ansible-playbook: pull mode
contacts no Mac (it commits to the fleet blocklist file of a clone of the pull repository and pushes), so it
runs here without the lab, against a bare repository in a temporary directory."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from pfguard_cli import main as cli

REPO = Path(__file__).resolve().parents[2]
GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@localhost"]
TRUSTED = "198.51.100.0/24"


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *GIT_ID, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def fleet_repo(tmp_path):
    """A bare repository the Macs would pull, the admin's clone of it, and an inventory that trusts TRUSTED."""
    bare, clone = tmp_path / "fleet.git", tmp_path / "clone"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    git("clone", "-q", str(bare), str(clone), cwd=tmp_path)
    (clone / "blocklist.txt").write_text("# the fleet's bans\n")
    (clone / "local.yml").write_text("- ansible.builtin.import_playbook: pfguard.macos.pull\n")
    git("add", "blocklist.txt", "local.yml", cwd=clone)
    git("commit", "-q", "-m", "start", cwd=clone)
    git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=clone)
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all:\n  children:\n    macs:\n      hosts: {}\n")
    (inventory / "group_vars" / "all.yml").write_text(f"pfguard_trusted_networks: [{TRUSTED}]\n")
    return bare, clone, inventory


def pfguard(tmp_path: Path, inventory: Path, *argv: str) -> tuple[int, str, str]:
    """The command's main(), run from the checkout (whose ansible.cfg finds pfguard.macos) as a user would."""
    out, err = io.StringIO(), io.StringIO()
    env = {"HOME": str(tmp_path / "home"), "PATH": f"{Path(cli.sys.executable).parent}:/usr/bin:/bin"}
    code = cli.main([*argv, "-i", str(inventory), "--artifacts", str(tmp_path / "runs")], env=env, cwd=str(REPO),
                    out=out, err=err)  # fmt: skip
    return code, out.getvalue(), err.getvalue()


def test_ban_and_unban_commit_to_the_pull_repository(tmp_path, fleet_repo):
    bare, clone, inventory = fleet_repo
    start = git("rev-parse", "refs/heads/main", cwd=bare)

    code, out, err = pfguard(tmp_path, inventory, "ban", "--pull-repo", str(clone), "203.0.113.7,2001:db8:7::/64")
    assert code == 0, out + err
    banned = git("rev-parse", "refs/heads/main", cwd=bare)
    assert banned != start
    assert git("log", "-1", "--format=%an|%s", banned, cwd=bare) == "pfguard|pfguard ban: 203.0.113.7, 2001:db8:7::/64"
    assert f"blocklist.txt: added 203.0.113.7, 2001:db8:7::/64; commit {banned[:12]}, pushed" in out, out
    assert "pfguard_blocklist" not in out  # no Mac's table was reported, none was contacted

    code, out, _ = pfguard(tmp_path, inventory, "ban", "--pull-repo", str(clone), "203.0.113.7", "--json")
    document = json.loads(out)
    assert code == 0 and document["pull"]["added"] == [] and git("rev-parse", "refs/heads/main", cwd=bare) == banned

    code, out, _ = pfguard(tmp_path, inventory, "unban", "--pull-repo", str(clone), "203.0.113.7", "-C")
    assert code == 0 and "would be removed 203.0.113.7; no commit in check mode" in out, out
    assert git("rev-parse", "refs/heads/main", cwd=bare) == banned

    code, out, _ = pfguard(tmp_path, inventory, "unban", "--pull-repo", str(clone), "203.0.113.7")
    assert code == 0, out
    assert git("log", "-1", "--format=%s", "refs/heads/main", cwd=bare) == "pfguard unban: 203.0.113.7"
    listed = git("show", "refs/heads/main:blocklist.txt", cwd=bare).splitlines()
    assert listed == ["# the fleet's bans", "2001:db8:7::/64"]


def test_a_trusted_address_is_refused_before_any_commit(tmp_path, fleet_repo):
    bare, clone, inventory = fleet_repo
    start = git("rev-parse", "refs/heads/main", cwd=bare)
    code, out, err = pfguard(tmp_path, inventory, "ban", "--pull-repo", str(clone), "198.51.100.7")
    assert code == 2, out + err
    assert "Refusing to ban 198.51.100.7: it overlaps pfguard_trusted_networks. Nothing was changed." in out
    assert git("rev-parse", "refs/heads/main", cwd=bare) == start
    assert git("status", "--porcelain", cwd=clone) == ""


def test_a_pull_repo_that_is_not_a_clone_is_refused_by_name(tmp_path, fleet_repo):
    _, _, inventory = fleet_repo
    (tmp_path / "plain").mkdir()
    code, out, err = pfguard(tmp_path, inventory, "ban", "--pull-repo", str(tmp_path / "plain"), "203.0.113.7")
    assert code == 2 and out == ""
    assert f"--pull-repo '{tmp_path / 'plain'}' is not a git clone (no .git in it). Nothing was changed." in err
    assert not (tmp_path / "runs").exists()  # refused before any run


def test_the_blocklist_file_is_the_one_beside_the_playbook_the_macs_pull(tmp_path, fleet_repo):
    """With pfguard_pull_playbook in a directory of the repository, the Macs read the blocklist file beside it
    (playbooks/pull.yml); the commit goes there too, not to the repository's top."""
    bare, clone, inventory = fleet_repo
    (clone / "fleet").mkdir()
    git("mv", "local.yml", "fleet/local.yml", cwd=clone)
    git("commit", "-q", "-m", "the playbook in fleet/", cwd=clone)
    (inventory / "group_vars" / "all.yml").write_text(
        f"pfguard_trusted_networks: [{TRUSTED}]\npfguard_pull_playbook: fleet/local.yml\n"
    )
    code, out, err = pfguard(tmp_path, inventory, "ban", "--pull-repo", str(clone), "203.0.113.7")
    assert code == 0, out + err
    assert git("show", "refs/heads/main:fleet/blocklist.txt", cwd=bare).splitlines() == ["203.0.113.7"]
    assert git("show", "refs/heads/main:blocklist.txt", cwd=bare) == "# the fleet's bans"
    assert "fleet/blocklist.txt: added 203.0.113.7" in out, out

    (inventory / "group_vars" / "all.yml").write_text(
        f"pfguard_trusted_networks: [{TRUSTED}]\npfguard_pull_playbook: ../local.yml\n"
    )
    code, out, _ = pfguard(tmp_path, inventory, "ban", "--pull-repo", str(clone), "203.0.113.8")
    assert code == 2, out
    assert 'pfguard_pull_playbook, the playbook the Macs run, a file in it (got "../local.yml")' in out, out
    (inventory / "group_vars" / "all.yml").write_text(
        f"pfguard_trusted_networks: [{TRUSTED}]\npfguard_pull_playbook: other/local.yml\n"
    )
    code, out, _ = pfguard(tmp_path, inventory, "ban", "--pull-repo", str(clone), "203.0.113.8")
    assert code == 2 and 'a file in it (got "other/local.yml")' in out, out
    assert git("status", "--porcelain", cwd=clone) == ""
