# SPDX-License-Identifier: GPL-3.0-or-later
"""The `pfguard` command (cli/pfguard_cli) on the lab fleet: every subcommand in text and --json, its exit
codes (docs/awx.md "Exit codes"), and ansible_runner.run() on pfguard.macos.ban read back from its artifacts.

Run under the lab lock: `flock /tmp/pfguard-lab.lock .venv/bin/pytest -q -p no:cacheprovider
tests/fleet/test_pfguard_command.py`. The command runs as an admin would: the installed console script, from
the checkout's root (its ansible.cfg makes pfguard.macos findable), against the lab's inventory. Every test
starts from a fleet without bans and leaves it so (the `clean` fixture of test_remediation_plays.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ansible_runner
import pytest
import yaml
from fleet_fixtures import MACS, POLICY
from lab_fixtures import REPO
from test_doctor import PF_JOB, bootout, bootstrap, breaker  # noqa: F401  (breaker: a fixture)
from test_remediation_plays import blocklists, clean, persisted  # noqa: F401  (clean: a fixture)

pytest_plugins = ["lab_fixtures", "fleet_fixtures", "collection_fixtures"]
# Six minutes of lab time: out of `make test`, run by `make fleet-extended`.
pytestmark = pytest.mark.extended

PFGUARD = str(Path(sys.executable).with_name("pfguard"))
BANNED = "203.0.113.77"
# The lab's policy, so that `pfguard site` leaves the fleet as the `fleet` fixture made it.
POLICY_VARS = json.dumps(POLICY)


class Run:
    """One finished `pfguard` run: exit code, stdout, stderr, and the JSON document when --json was given."""

    def __init__(self, argv: list[str], proc: subprocess.CompletedProcess):
        self.argv, self.returncode, self.stdout, self.stderr = argv, proc.returncode, proc.stdout, proc.stderr
        self.document = json.loads(proc.stdout) if "--json" in argv else None

    def __str__(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}\n{self.stdout[-6000:]}\n{self.stderr[-3000:]}"


def pfguard(fleet, tmp_path: Path, *args: str, inventory: Path | None = None, json_mode: bool = False) -> Run:
    """`pfguard ARGS -i <lab inventory> --artifacts <tmp>` from the repository root; never raises on failure."""
    argv = [PFGUARD, *args, "-i", str(inventory or fleet.lab.inventory_path), "--artifacts", str(tmp_path / "runs")]
    argv += ["--json"] if json_mode else []
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    try:
        return Run(argv, proc)
    except ValueError:
        pytest.fail(f"--json printed no JSON document\n$ {' '.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr}")


def artifacts_of(run: Run) -> Path:
    """The run's artifacts directory, as the command names it (last line, or `artifacts` in the JSON)."""
    named = run.document["artifacts"] if run.document else run.stdout.rstrip().rsplit("artifacts: ", 1)[-1]
    path = Path(named)
    assert (path / "job_events").is_dir() and (path / "stdout").is_file(), str(run)
    return path


def stats_event(artifacts: Path) -> dict:
    """The playbook_on_stats event ansible-runner kept in the artifacts."""
    events = [json.loads(path.read_text()) for path in (artifacts / "job_events").glob("*.json")]
    stats = [event for event in events if event.get("event") == "playbook_on_stats"]
    assert len(stats) == 1, [event.get("event") for event in events]
    return stats[0]


def assert_done(run: Run, statuses: set[str] = frozenset({"ok"})) -> dict:
    """Exit 0, every lab Mac reported with one of `statuses`; returns the hosts of the JSON document."""
    assert run.returncode == 0, str(run)
    hosts = run.document["hosts"]
    assert set(hosts) == set(MACS) and {entry["status"] for entry in hosts.values()} <= statuses, str(run)
    return hosts


def test_doctor_in_text_and_json(fleet, tmp_path):
    text = pfguard(fleet, tmp_path, "doctor")
    assert text.returncode == 0, str(text)
    for host in MACS:  # one progress line per Mac, then its row in the summary table
        assert f"{host}: protected\n" in text.stdout, str(text)
        assert [line for line in text.stdout.splitlines() if line.startswith(f"{host} ")], str(text)
    assert "protected (exit 0); artifacts: " in text.stdout, str(text)

    run = pfguard(fleet, tmp_path, "doctor", json_mode=True)
    hosts = assert_done(run, {"protected"})
    assert {host: (entry["link"], entry["verdict"]) for host, entry in hosts.items()} == dict.fromkeys(
        MACS, ("protected", "protected")), str(run)  # fmt: skip
    assert run.document["outcome"] == "protected" and run.document["totals"]["protected"] == len(MACS), str(run)
    artifacts = artifacts_of(run)
    # The play's set_stats, as ansible-runner recorded it, is what the command reported...
    published = stats_event(artifacts)["event_data"]["artifact_data"]["pfguard_result"]
    assert {host: entry["link"] for host, entry in published["hosts"].items()} == dict.fromkeys(MACS, "protected")
    # ...and what the play wrote on the controller (pfguard_result_dir, which the command points there).
    assert json.loads((artifacts / "result" / "doctor.json").read_text()) == published
    assert artifacts.parent.stat().st_mode & 0o077 == 0, "the runs are the user's alone"
    assert json.loads((artifacts / "pfguard.json").read_text()) == run.document


def test_doctor_names_pf_disabled_and_exits_1(fleet, breaker, tmp_path):  # noqa: F811
    # As test_doctor.py breaks it: the job that re-enables PF booted out first, then PF disabled.
    breaker("mac2", f"{bootout(PF_JOB)} && /sbin/pfctl -d", bootstrap(PF_JOB))
    run = pfguard(fleet, tmp_path, "doctor", json_mode=True)
    assert run.returncode == 1, str(run)
    hosts = run.document["hosts"]
    assert {host: entry["link"] for host, entry in hosts.items()} == {
        "mac1": "protected", "mac2": "pf_disabled", "mac3": "protected"}, str(run)  # fmt: skip
    assert hosts["mac2"]["status"] == "unprotected" and hosts["mac2"]["verdict"] == "PF is disabled", str(run)
    assert run.document["outcome"] == "unprotected", str(run)

    text = pfguard(fleet, tmp_path, "doctor", "--limit", "mac2")
    assert text.returncode == 1, str(text)
    assert "mac2: NOT PROTECTED: PF is disabled\n" in text.stdout, str(text)
    assert "unprotected (exit 1)" in text.stdout, str(text)


def test_ban_blocks_on_every_mac_and_again_changes_nothing(clean, tmp_path):  # noqa: F811
    fleet = clean
    run = pfguard(fleet, tmp_path, "ban", BANNED, json_mode=True)
    hosts = assert_done(run)
    assert {host: entry["added"] for host, entry in hosts.items()} == dict.fromkeys(MACS, [BANNED]), str(run)
    assert all(entry["recap"]["changed"] > 0 for entry in hosts.values()), str(run)
    assert run.document["totals"]["added"] == len(MACS), str(run)
    # Every Mac enforces it: in the table its block rule references, and in the file loaded at boot.
    assert blocklists(fleet) == dict.fromkeys(MACS, [BANNED])
    assert {host: persisted(fleet, host) for host in MACS} == dict.fromkeys(MACS, [BANNED])

    again = pfguard(fleet, tmp_path, "ban", BANNED)
    assert again.returncode == 0, str(again)
    for host in MACS:
        line = f"{host}: ok: already banned; 0 states killed; 1 entry in pfguard_blocklist\n"
        assert line in again.stdout, str(again)
    again_json = pfguard(fleet, tmp_path, "ban", BANNED, json_mode=True)
    hosts = assert_done(again_json)
    assert all(entry["added"] == [] and entry["recap"]["changed"] == 0 for entry in hosts.values()), str(again_json)

    lifted = pfguard(fleet, tmp_path, "unban", BANNED, json_mode=True)
    hosts = assert_done(lifted)
    assert {host: entry["removed"] for host, entry in hosts.items()} == dict.fromkeys(MACS, [BANNED]), str(lifted)
    assert blocklists(fleet) == dict.fromkeys(MACS, [])


def test_ban_of_everything_is_refused_and_changes_nothing(clean, tmp_path):  # noqa: F811
    fleet = clean
    run = pfguard(fleet, tmp_path, "ban", "0.0.0.0/0", json_mode=True)
    assert run.returncode == 2, str(run)
    assert run.document["outcome"] == "refused" and "Nothing was changed" in run.document["message"], str(run)
    assert all(entry["recap"].get("changed", 0) == 0 for entry in run.document["hosts"].values()), str(run)
    assert blocklists(fleet) == dict.fromkeys(MACS, [])
    assert all(persisted(fleet, host) == [] for host in MACS)

    text = pfguard(fleet, tmp_path, "ban", "0.0.0.0/0")
    assert text.returncode == 2 and "refused: " in text.stdout and "Nothing was changed" in text.stdout, str(text)


def test_an_address_that_is_not_one_is_refused_before_anything_runs(fleet, tmp_path):
    run = pfguard(fleet, tmp_path, "ban", "203.0.113.8", "mac1.example", json_mode=True)
    assert run.returncode == 2, str(run)
    assert "'mac1.example'" in run.document["message"] and run.document["artifacts"] is None, str(run)
    assert not (tmp_path / "runs").exists(), "a refused command started a run"


def test_an_unreachable_mac_exits_4(fleet, tmp_path):
    # mac3 behind a port nothing listens on: ssh is refused at once, as by a Mac that is switched off.
    inventory = fleet.lab.inventory()
    inventory["all"]["children"]["macs"]["hosts"]["mac3"]["ansible_port"] = 1
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    run = pfguard(fleet, tmp_path, "doctor", inventory=path, json_mode=True)
    assert run.returncode == 4, str(run)
    hosts = run.document["hosts"]
    assert {host: entry["status"] for host, entry in hosts.items()} == {
        "mac1": "protected", "mac2": "protected", "mac3": "unreachable"}, str(run)  # fmt: skip
    assert run.document["outcome"] == "unreachable" and hosts["mac3"]["message"], str(run)

    text = pfguard(fleet, tmp_path, "doctor", inventory=path)
    assert text.returncode == 4 and "mac3: UNREACHABLE: " in text.stdout, str(text)


# --check is passed through like every option (cli/tests/test_command.py); one site run each way is enough.
@pytest.mark.parametrize("args", [
    ("site", "-e", POLICY_VARS),
    ("sync", "--check"),
    ("report",),
    ("unban", "203.0.113.78, 2001:db8::/64"),
], ids=["site", "sync-check", "report", "unban"])  # fmt: skip
def test_every_other_subcommand_in_text_and_json(clean, tmp_path, args):  # noqa: F811
    fleet = clean
    # report writes its HTML file where it is told; never into the shared checkout.
    extra = ("-e", f"pfguard_report_path={tmp_path / 'report.html'}") if args[0] == "report" else ()
    text = pfguard(fleet, tmp_path, *args, *extra)
    assert text.returncode == 0, str(text)
    for host in MACS:
        assert text.stdout.count(f"\n{host}: ok: ") == 1, str(text)  # exactly one progress line per Mac
    assert "\nhost " in text.stdout and "(exit 0); artifacts: " in text.stdout, str(text)

    run = pfguard(fleet, tmp_path, *args, *extra, json_mode=True)
    hosts = assert_done(run)
    assert all(entry["recap"]["changed"] == 0 for entry in hosts.values()), str(run)  # idempotent, or nothing to do
    assert run.document["play"] == args[0] and run.document["check_mode"] == ("--check" in args), str(run)
    if args[0] == "report":
        assert all(isinstance(entry["blocklist"], int) and entry["banned"] == 0 for entry in hosts.values()), str(run)
        assert (tmp_path / "report.html").is_file()
    if args[0] == "unban":
        assert all(entry["removed"] == [] and entry["fail2ban_lifted"] == {} for entry in hosts.values()), str(run)
    if args[0] == "sync":
        assert all(entry["added"] == [] and entry["removed"] == [] for entry in hosts.values()), str(run)


def test_ansible_runner_runs_the_ban_play_and_keeps_its_result(clean, tmp_path, installed_collection):  # noqa: F811
    """ansible_runner.run() with the installed collection's playbook by name, from a directory with no
    ansible.cfg, as AWX and CI run it: the events, stdout and the play's set_stats are in the artifacts."""
    fleet = clean
    private = tmp_path / "private"
    private.mkdir()
    env = {"PATH": installed_collection.env["PATH"],
           "ANSIBLE_COLLECTIONS_PATH": installed_collection.collections_path}  # fmt: skip
    runner = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(installed_collection.workdir), playbook="pfguard.macos.ban",
        inventory=[str(fleet.lab.inventory_path)], extravars={"pfguard_ban": "203.0.113.9"},
        envvars=env, quiet=True, timeout=600,
    )  # fmt: skip
    assert (runner.status, runner.rc) == ("successful", 0), Path(runner.config.artifact_dir, "stdout").read_text()
    assert set(runner.stats["changed"]) == set(MACS), runner.stats  # every Mac changed
    assert all(runner.stats["changed"][host] > 0 for host in MACS), runner.stats
    assert runner.stats["failures"] == {} and runner.stats["dark"] == {}, runner.stats

    artifacts = Path(runner.config.artifact_dir)
    assert artifacts.parent == private / "artifacts"
    stdout = (artifacts / "stdout").read_text()
    assert "203.0.113.9" in stdout and "PLAY RECAP" in stdout
    result = stats_event(artifacts)["event_data"]["artifact_data"]["pfguard_result"]
    assert result["play"] == "ban" and result["check_mode"] is False, result
    assert {host: entry["added"] for host, entry in result["hosts"].items()} == dict.fromkeys(MACS, ["203.0.113.9"])
    # The runner's own view of the events holds the same stats event.
    assert [event["event_data"]["artifact_data"] for event in runner.events
            if event["event"] == "playbook_on_stats"] == [{"pfguard_result": result}]  # fmt: skip
    assert blocklists(fleet) == dict.fromkeys(MACS, ["203.0.113.9"])

    lifted = pfguard(fleet, tmp_path, "unban", "203.0.113.9")
    assert lifted.returncode == 0, str(lifted)
    assert blocklists(fleet) == dict.fromkeys(MACS, [])
