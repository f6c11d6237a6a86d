# SPDX-License-Identifier: GPL-3.0-or-later
"""`pfguard`'s argument handling, what it hands to ansible_runner.run(), its exit codes and what it prints,
from recorded runs: cli/tests/events/*.jsonl are the job events of real runs on the lab fleet (and one
without pfguard.macos on the collections path), trimmed by record_events.py. ansible_runner.run() is
replaced by a stand-in that plays such a recording to the event handler, as the runner does."""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import ansible_runner
import pytest
from pfguard_cli import main as cli
from pfguard_cli import outcome

EVENTS = Path(__file__).with_name("events")
MACS = ("mac1", "mac2", "mac3")


def recording(name: str) -> list[dict]:
    return [json.loads(line) for line in (EVENTS / f"{name}.jsonl").read_text().splitlines()]


class FakeRunner:
    """ansible_runner.run() playing a recording: it makes the artifacts directory as the runner does and
    gives each event to the event handler; `calls` keeps what it was asked."""

    def __init__(self, events: list[dict], status: str = "successful", rc: int = 0):
        self.events, self.status, self.rc, self.calls = events, status, rc, []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        artifacts = Path(kwargs["artifact_dir"], kwargs["ident"])
        (artifacts / "job_events").mkdir(parents=True)
        (artifacts / "stdout").write_text("")
        for event in self.events:
            kwargs["event_handler"](event)
        return SimpleNamespace(status=self.status, rc=self.rc, config=SimpleNamespace(artifact_dir=str(artifacts)))


@pytest.fixture
def project(tmp_path):
    """A checkout-like working directory: ansible.cfg naming an inventory that exists."""
    root = tmp_path / "project"
    (root / "inventory").mkdir(parents=True)
    (root / "inventory" / "hosts.yml").write_text("all: {}\n")
    (root / "ansible.cfg").write_text("[defaults]\ninventory = ./inventory/hosts.yml\n")
    return root


def pfguard(monkeypatch, tmp_path, project, argv, events=(), status="successful", rc=0, env=None):
    """Run the command's main(); returns (exit code, stdout, stderr, the fake runner)."""
    runner = FakeRunner(list(events), status, rc)
    monkeypatch.setattr(ansible_runner, "run", runner)
    out, err = io.StringIO(), io.StringIO()
    environment = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", **(env or {})}
    code = cli.main([*argv, "--artifacts", str(tmp_path / "runs")], env=environment, cwd=str(project), out=out,
                    err=err)  # fmt: skip
    return code, out.getvalue(), err.getvalue(), runner


def test_what_the_runner_is_given(monkeypatch, tmp_path, project):
    (project / "vars.yml").write_text("pfguard_allow_wide_networks: false\n")
    argv = ["ban", "203.0.113.7", "2001:db8::/64,198.51.100.0/26", "-l", "mac1", "-C", "-e", "pfguard_hosts=studio",
            "-e", "@vars.yml", "--timeout", "60"]  # fmt: skip
    code, _, _, runner = pfguard(monkeypatch, tmp_path, project, argv, recording("ban_added"))
    assert code == 0
    [call] = runner.calls
    artifacts = Path(call["artifact_dir"], call["ident"])
    assert call["playbook"] == "pfguard.macos.ban"
    assert call["project_dir"] == str(project)  # ansible-playbook runs where the user started pfguard
    assert call["inventory"] == [str(project / "inventory" / "hosts.yml")]  # from the cwd's ansible.cfg
    assert call["limit"] == "mac1"
    assert call["extravars"] == {"pfguard_ban": "203.0.113.7, 2001:db8::/64, 198.51.100.0/26"}
    # The result file goes with the artifacts unless the user's own -e (later on the line) says otherwise.
    result_dir = json.dumps({"pfguard_result_dir": str(artifacts / "result")})
    assert shlex.split(call["cmdline"]) == ["-e", result_dir, "--check", "-e", "pfguard_hosts=studio",
                                            "-e", "@vars.yml"]  # fmt: skip
    assert call["envvars"]["ANSIBLE_CONFIG"] == str(project / "ansible.cfg")
    assert call["suppress_env_files"] is True and call["quiet"] is True and call["timeout"] == 60
    assert artifacts.parent == tmp_path / "runs" and re.fullmatch(r"\d{8}T\d{6}Z-ban-[0-9a-f]{6}", artifacts.name)
    assert json.loads((artifacts / "pfguard.json").read_text())["artifacts"] == str(artifacts)


def test_the_default_artifacts_directory_follows_xdg(tmp_path):
    env = {"HOME": "/home/admin"}
    assert cli.artifacts_root(None, env, "/w") == Path("/home/admin/.local/state/pfguard/runs")
    assert cli.artifacts_root(None, {**env, "XDG_STATE_HOME": "/var/state"}, "/w") == Path("/var/state/pfguard/runs")
    assert cli.artifacts_root(None, {**env, "XDG_STATE_HOME": "relative"}, "/w") == Path(
        "/home/admin/.local/state/pfguard/runs")  # fmt: skip
    assert cli.artifacts_root("runs", env, "/w") == Path("/w/runs")


@pytest.mark.parametrize("argv,named", [
    (["ban", "203.0.113.7", "mac1.example"], "'mac1.example': not an IPv4 or IPv6 address"),
    (["unban", "10.0.0.0/08"], "'10.0.0.0/08': prefix length '/08'"),
    (["doctor", "-i", "missing.yml"], "missing.yml (from -i) does not exist"),
    (["sync", "-e", "@vars/missing.yml"], "no such variables file: @vars/missing.yml"),
])  # fmt: skip
def test_bad_input_is_refused_before_anything_runs(monkeypatch, tmp_path, project, argv, named):
    code, out, err, runner = pfguard(monkeypatch, tmp_path, project, [*argv, "--json"])
    assert code == 2 and runner.calls == [] and not (tmp_path / "runs").exists()
    assert named in err and "Nothing was changed" in err
    document = json.loads(out)
    assert document["outcome"] == "refused" and named in document["message"] and document["artifacts"] is None


def test_no_inventory_anywhere_is_said_plainly(monkeypatch, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    monkeypatch.setattr(cli.config, "SYSTEM_CONFIG", str(tmp_path / "none.cfg"))
    monkeypatch.setattr(cli.config, "DEFAULT_INVENTORY", str(tmp_path / "none"))
    code, out, err, runner = pfguard(monkeypatch, tmp_path, bare, ["doctor"])
    assert code == 2 and runner.calls == [] and out == ""
    assert "no inventory: pass -i INVENTORY, set ANSIBLE_INVENTORY, or set inventory" in err


@pytest.mark.parametrize("argv", [["ban"], ["doctor", "--timeout", "0"], ["shutdown"], []])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        cli.main(["doctor", "--help"])
    text = capsys.readouterr().out
    for line in ("2  refused", "3  the play could not run", "4  a host was unreachable", "1  a host failed",
                 "0  done on every host"):  # fmt: skip
        assert line in text


def test_doctor_with_pf_disabled_on_one_mac(monkeypatch, tmp_path, project):
    code, out, _, _ = pfguard(monkeypatch, tmp_path, project, ["doctor"], recording("doctor_pf_disabled"))
    assert code == outcome.EXIT_FAILED
    lines = out.splitlines()
    assert sorted(line for line in lines if re.match(r"mac\d: ", line)) == [
        "mac1: protected", "mac2: NOT PROTECTED: PF is disabled", "mac3: protected"]  # fmt: skip
    assert any(line.startswith("mac2 ") and "| pf_disabled " in line and line.endswith("| PF is disabled")
               for line in lines), out  # fmt: skip
    assert lines[-1].startswith("unprotected (exit 1); artifacts: ")

    code, out, err, _ = pfguard(monkeypatch, tmp_path, project, ["doctor", "--json"], recording("doctor_pf_disabled"))
    document = json.loads(out)
    assert code == document["exit_code"] == 1 and document["outcome"] == "unprotected"
    assert {host: entry["link"] for host, entry in document["hosts"].items()} == {
        "mac1": "protected", "mac2": "pf_disabled", "mac3": "protected"}  # fmt: skip
    assert document["hosts"]["mac2"]["recap"]["failures"] == 1
    assert "mac2: NOT PROTECTED: PF is disabled" in err  # progress goes to stderr with --json


def test_an_unreachable_mac_exits_4(monkeypatch, tmp_path, project):
    code, out, _, _ = pfguard(monkeypatch, tmp_path, project, ["doctor", "--json"], recording("doctor_unreachable"))
    document = json.loads(out)
    assert code == 4 and document["outcome"] == "unreachable"
    assert {host: entry["status"] for host, entry in document["hosts"].items()} == {
        "mac1": "protected", "mac2": "protected", "mac3": "unreachable"}  # fmt: skip
    assert "Connection refused" in document["hosts"]["mac3"]["message"]


def test_a_refusal_of_the_play_exits_2(monkeypatch, tmp_path, project):
    code, out, _, _ = pfguard(monkeypatch, tmp_path, project, ["ban", "0.0.0.0/0"], recording("ban_refused"),
                              status="failed", rc=2)  # fmt: skip
    assert code == 2
    assert "\nrefused: " in out and "Nothing was changed" in out
    # The wide-network check refuses on the first Mac; the others stop there too, unchanged.
    assert "mac1: REFUSED: Refusing to ban 0.0.0.0/0" in out
    assert "mac2: REFUSED: nothing was changed" in out and "mac3: REFUSED: nothing was changed" in out
    assert out.rstrip().splitlines()[-1].startswith("refused (exit 2); artifacts: ")


def test_a_ban_shows_each_mac_then_the_table(monkeypatch, tmp_path, project):
    code, out, _, _ = pfguard(monkeypatch, tmp_path, project, ["ban", "203.0.113.77"], recording("ban_added"))
    assert code == 0
    for host in MACS:
        assert f"{host}: ok: added 203.0.113.77; 0 states killed; 1 entry in pfguard_blocklist" in out
    table = out[out.index("\nhost "):]
    assert table.splitlines()[1].startswith("host | status | added ")
    assert "total: hosts 3, hosts changed 3, added 3, states killed 0, skipped 0" in table


@pytest.mark.parametrize("name,play", [("site", "site"), ("sync", "sync"), ("report", "report"),
                                       ("unban", "unban")])  # fmt: skip
def test_every_play_renders_one_line_per_mac_and_a_row_each(monkeypatch, tmp_path, project, name, play):
    argv = [play, "203.0.113.77"] if play == "unban" else [play]
    code, out, _, _ = pfguard(monkeypatch, tmp_path, project, argv, recording(name))
    assert code == 0, out
    lines = out.splitlines()
    assert sorted(line.split(":")[0] for line in lines if re.match(r"mac\d: ok: ", line)) == list(MACS), out
    assert [line.split(" ")[0] for line in lines if re.match(r"mac\d +\| ok +\| ", line)] == list(MACS), out


def test_pfguard_macos_not_found_exits_3_with_the_fix(monkeypatch, tmp_path, project):
    code, out, _, _ = pfguard(monkeypatch, tmp_path, project, ["doctor", "--json"], recording("collection_not_found"),
                              status="failed", rc=1)  # fmt: skip
    document = json.loads(out)
    assert code == 3 and document["outcome"] == "error" and document["hosts"] == {}
    assert "the playbook: pfguard.macos.doctor could not be found" in document["message"]
    assert "run pfguard from the checkout's root" in document["message"]


@pytest.mark.parametrize("status,code", [("timeout", 3), ("canceled", 130)])
def test_a_run_that_did_not_finish(monkeypatch, tmp_path, project, status, code):
    events = recording("doctor_pf_disabled")[:5]  # the run ended early
    assert pfguard(monkeypatch, tmp_path, project, ["doctor"], events, status=status, rc=254)[0] == code


def test_no_host_selected_is_refused(monkeypatch, tmp_path, project):
    events = [{"event": "playbook_on_no_hosts_matched", "event_data": {}},
              {"event": "playbook_on_stats", "event_data": {"artifact_data": {}}}]  # fmt: skip
    code, out, _, _ = pfguard(monkeypatch, tmp_path, project, ["doctor", "-l", "nomac", "--json"], events)
    assert code == 2 and "no host matched" in json.loads(out)["message"]


@pytest.mark.parametrize("codes,expected", [
    ([0, 0], 0), ([0, 1], 1), ([1, 4], 4), ([4, 2, 1], 2), ([3, 4], 3), ([], 0), ([130, 2], 130),
])  # fmt: skip
def test_exit_code_precedence(codes, expected):
    assert outcome.exit_code(codes) == expected


def test_a_setting_refused_by_an_argument_spec_exits_2(monkeypatch, tmp_path, project):
    """A bad value in the inventory fails validate_argument_spec of pfguard.macos.common before any change;
    its message has no "Nothing was changed", the result's validation context says what it is."""
    events = recording("ban_refused")
    for event in events:
        if event.get("event") == "runner_on_failed":
            event["event_data"]["task_action"] = "ansible.builtin.validate_argument_spec"
            event["event_data"]["res"] = {
                "msg": "Validation of arguments failed:\nargument 'pfguard_sync_min_hosts' is of type str and we "
                       "were unable to convert to int",
                "validate_args_context": {"argument_spec_name": "main", "name": "common", "type": "role"},
                "failed": True,
            }
    code, out, _, _ = pfguard(monkeypatch, tmp_path, project, ["sync"], events, status="failed", rc=2)
    assert code == 2, out
    assert "pfguard_sync_min_hosts" in out
