# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos as a user runs it: built into the Galaxy artifact, installed into an empty directory and
used from another one with no ansible.cfg, against the user's own inventory, whose Mac group is called
`studio_macs` and which also holds a Linux host. Every play of the collection works on the lab fleet by
its FQCN, the inventory's settings are honoured (a bad one refused by name), and the Linux host is skipped
by pfguard's roles without losing the user's own tasks."""

from __future__ import annotations

import json

import pytest
import yaml
from fleet_fixtures import MACS, POLICY
from lab_fixtures import PlaybookRun, run_playbook

pytest_plugins = ["lab_fixtures", "fleet_fixtures", "collection_fixtures"]

GROUP = "studio_macs"
# A lab Mac's namespace is Linux, and says so in its facts: without pfguard_assume_darwin it is what a
# Linux server in a Mac admin's inventory is.
LINUX = "linux1"
BANNED = "203.0.113.99"


@pytest.fixture(scope="module")
def user(installed_collection, fleet, tmp_path_factory):
    """An inventory directory of the user's (group studio_macs, the lab's Macs plus linux1, group_vars
    of its own) and a runner for the installed collection's plays from its empty working directory."""
    lab_inventory = fleet.lab.inventory()
    macs_group = lab_inventory["all"]["children"]["macs"]
    hosts = dict(macs_group["hosts"])
    hosts[LINUX] = {"ansible_host": hosts["mac3"]["ansible_host"], "pfguard_assume_darwin": False}
    inventory = tmp_path_factory.mktemp("user-inventory")
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {GROUP: {"hosts": hosts}}}}))
    (inventory / "group_vars").mkdir()
    results = installed_collection.workdir / "inventory-results"
    group_vars = {**macs_group["vars"], "pfguard_result_dir": str(results)}
    (inventory / "group_vars" / f"{GROUP}.yml").write_text(yaml.safe_dump(group_vars))

    class User:
        workdir = installed_collection.workdir
        result_dir = results
        installed_files = sorted(installed_collection.root.rglob("*"))

        def play(self, name: str, *args: str, extra_vars: dict | None = None) -> PlaybookRun:
            # `ansible-playbook` from the PATH of the installed collection's environment, in its workdir.
            return run_playbook(name, *args, inventory=inventory, executable="ansible-playbook",
                                extra_vars={"pfguard_hosts": GROUP, **POLICY, **(extra_vars or {})},
                                cwd=installed_collection.workdir, env=installed_collection.env,
                                timeout=900)  # fmt: skip

        def set_group_var(self, name: str, value) -> None:
            (inventory / "group_vars" / f"{GROUP}.yml").write_text(yaml.safe_dump({**group_vars, name: value}))

        def reset_group_vars(self) -> None:
            (inventory / "group_vars" / f"{GROUP}.yml").write_text(yaml.safe_dump(group_vars))

    assert not (installed_collection.workdir / "ansible.cfg").exists()
    return User()


@pytest.mark.extended  # CI's time budget: `make test-extended` runs it
def test_site_from_the_installed_collection_finds_the_fleet_converged_and_skips_linux(user, installed_collection):
    # The fleet fixture converged the Macs with the checkout's site.yml and the same settings: the
    # installed collection is the same content, so its run is the idempotent second run.
    run = user.play("pfguard.macos.site")
    assert run.returncode == 0, str(run)
    assert f"{LINUX}: not a Mac (skipped)" in run.stdout, str(run)
    assert run.changed() == dict.fromkeys([*MACS, LINUX], 0), str(run)
    # Nothing the plays write lands inside the installed collection.
    assert sorted(installed_collection.root.rglob("*")) == user.installed_files


@pytest.mark.extended  # CI's time budget: `make test-extended` runs it
def test_ban_doctor_report_and_unban_work_from_the_installed_collection(user, fleet, installed_collection):
    banned = user.play("pfguard.macos.ban", extra_vars={"pfguard_ban": BANNED})
    try:
        assert banned.returncode == 0, str(banned)
        for host in MACS:
            assert BANNED in fleet.blocklist(host), host
        # The inventory's pfguard_result_dir is honoured.
        result = json.loads((user.result_dir / "ban.json").read_text())
        assert sorted(result["hosts"]) == sorted(MACS) and result["skipped"] == [LINUX]
        assert result["totals"]["added"] == len(MACS)

        doctor = user.play("pfguard.macos.doctor")
        assert doctor.returncode == 0, str(doctor)
        verdicts = json.loads((user.result_dir / "doctor.json").read_text())
        assert {host: entry["link"] for host, entry in verdicts["hosts"].items()} == dict.fromkeys(MACS, "protected")
        assert verdicts["skipped"] == [LINUX] and verdicts["failed"] == [], verdicts
        assert f"{LINUX} | not a Mac (skipped)" in doctor.stdout, str(doctor)

        # No fail2ban bans on the fleet: sync has nothing to add and nothing to take out.
        synced = user.play("pfguard.macos.sync")
        assert synced.returncode == 0, str(synced)
        result = json.loads((user.result_dir / "sync.json").read_text())
        assert sorted(result["hosts"]) == sorted(MACS) and result["totals"]["added"] == 0, result
        assert synced.changed() == dict.fromkeys([*MACS, LINUX], 0), str(synced)

        report = user.play("pfguard.macos.report")
        assert report.returncode == 0, str(report)
        # Written under the directory the play ran in (pfguard_report_path is relative), nowhere else.
        assert "pfguard_blocklist" in (user.workdir / "pfguard-report.html").read_text()
        assert sorted(installed_collection.root.rglob("*")) == user.installed_files
    finally:
        lifted = user.play("pfguard.macos.unban", extra_vars={"pfguard_unban": BANNED})
    assert lifted.returncode == 0, str(lifted)
    for host in MACS:
        assert BANNED not in fleet.blocklist(host), host


def test_a_bad_setting_in_group_vars_is_refused_by_name(user, fleet):
    before = {host: fleet.blocklist(host) for host in MACS}
    user.set_group_var("pfguard_sync_min_hosts", "not-a-number")
    try:
        run = user.play("pfguard.macos.sync")
    finally:
        user.reset_group_vars()
    assert run.returncode != 0, str(run)
    assert "pfguard_sync_min_hosts" in run.stdout and "not-a-number" in run.stdout, str(run)
    assert "Traceback" not in run.stdout + run.stderr
    assert {host: fleet.blocklist(host) for host in MACS} == before


@pytest.mark.extended  # CI's time budget: `make test-extended` runs it
def test_a_user_play_keeps_its_own_tasks_on_the_linux_host(user):
    play = user.workdir / "user-play.yml"
    play.write_text(yaml.safe_dump([{
        "name": "The user's own play with a pfguard role",
        "hosts": GROUP,
        "gather_facts": False,
        "roles": [{"role": "pfguard.macos.pf_anchor"}],
        "tasks": [{"name": "The user's own task",
                   "ansible.builtin.debug": {"msg": "own task on {{ inventory_hostname }}"}}],
    }], sort_keys=False))  # fmt: skip
    run = user.play(str(play))
    assert run.returncode == 0, str(run)
    assert run.changed() == dict.fromkeys([*MACS, LINUX], 0), str(run)
    for host in (*MACS, LINUX):
        assert f"own task on {host}" in run.stdout, str(run)
    assert f"{LINUX}: not a Mac (skipped)" in run.stdout


def test_tags_select_one_part(user):
    listed = user.play("pfguard.macos.site", "--tags", "fail2ban", "--list-tasks")
    assert listed.returncode == 0, str(listed)
    tasks = [line.strip() for line in listed.stdout.splitlines() if "TAGS:" in line and " : " in line]
    assert tasks and all("fail2ban" in line.split("TAGS:")[1] or "always" in line.split("TAGS:")[1]
                         for line in tasks), "\n".join(tasks)  # fmt: skip
    assert any("fail2ban : Install fail2ban with Homebrew" in line for line in tasks), "\n".join(tasks)
    # Only pf_anchor's argument validation (tagged always by Ansible), none of its tasks.
    assert not any("pf_anchor :" in line and "always" not in line.split("TAGS:")[1] for line in tasks), "\n".join(tasks)

