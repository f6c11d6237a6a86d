# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Drive fail2ban_facts through AnsibleModule with real fail2ban-client 1.0.2 output: recorded on the lab's
mac1 after site.yml (its fail2ban is the real 1.0.2), and on the same fail2ban with its own configuration
for the states the fleet is never left in (server down, stale socket, no jails, database disabled).
Each record in fixtures/fail2ban_client.json has the client's arguments, exit code, stdout and stderr."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sqlite3

import pytest
from ansible_collections.pfguard.macos.plugins.module_utils import fail2ban
from ansible_collections.pfguard.macos.plugins.modules import fail2ban_facts
from ansible_collections.pfguard.macos.tests.unit.plugins.modules.utils import run_module

with open(os.path.join(os.path.dirname(__file__), "fixtures", "fail2ban_client.json")) as _handle:
    RECORDED = json.load(_handle)

ATTACKER = "198.51.100.200"
CONFIG_DIR = "/opt/homebrew/etc/fail2ban"
# fail2ban 1.0.2's bans table (fail2ban/server/database.py), as in the lab's database.
BANS_SCHEMA = (
    "CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL, "
    "bancount INTEGER NOT NULL default 1, data JSON)"
)


def recorded(name):
    record = RECORDED[name]
    return record["rc"], record["stdout"], record["stderr"]


class FakeClient:
    """Answers run_command like fail2ban-client does, from recorded output, and records every call."""

    def __init__(self, answers):
        self.answers = answers  # {"status sshd": record name or (rc, stdout, stderr)}
        self.calls = []

    def __call__(self, args, **kwargs):
        self.calls.append(list(args))
        assert args[1:3] == ["-c", CONFIG_DIR], args
        command = " ".join(args[3:])
        if command not in self.answers:
            raise AssertionError("unexpected fail2ban-client call %r" % (args,))
        answer = self.answers[command]
        return recorded(answer) if isinstance(answer, str) else answer

    def commands(self):
        return [" ".join(call[3:]) for call in self.calls]


RUNNING = {
    "ping 10": "ping",
    "version": "version",
    "get dbfile": "get_dbfile",
    "status": "status",
    "status sshd": "status_sshd_banned",
    "get sshd logpath": "get_sshd_logpath",
}


@pytest.fixture
def client(tmp_path):
    """An executable <prefix>/bin/fail2ban-client (never run: run_command is faked)."""
    path = tmp_path / "prefix" / "bin" / "fail2ban-client"
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\nexit 99\n")
    path.chmod(0o755)
    return str(path)


def run(monkeypatch, fake, args, check_mode=False):
    result = run_module(monkeypatch, fail2ban_facts, fake, args, check_mode=check_mode)
    if not result.get("failed"):
        assert result["changed"] is False
    return result


def facts_of(result):
    assert not result.get("failed"), result
    return result["ansible_facts"]["fail2ban"]


def make_bans_db(path, rows):
    connection = sqlite3.connect(str(path))
    connection.execute(BANS_SCHEMA)
    connection.executemany("INSERT INTO bans(jail, ip, timeofban, bantime, bancount) VALUES (?, ?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()


# Parsers, on the recorded output.


def test_jail_status_with_one_ban():
    jail = fail2ban.parse_jail_status(RECORDED["status_sshd_banned"]["stdout"])
    assert jail == dict(currently_failed=0, total_failed=6, currently_banned=1, total_banned=2,
                        banned=[ATTACKER])  # fmt: skip


def test_jail_status_with_several_bans_ipv4_and_ipv6():
    jail = fail2ban.parse_jail_status(RECORDED["status_sshd_several"]["stdout"])
    assert jail["banned"] == [ATTACKER, "2001:db8::7", "203.0.113.7", "2001:db8:0:1::/64"]
    assert jail["currently_banned"] == 4


def test_jail_status_with_an_empty_banned_list():
    stdout = RECORDED["status_sshd_idle"]["stdout"]
    assert "Banned IP list:\t\n" in stdout  # the client prints the label and nothing after the tab
    jail = fail2ban.parse_jail_status(stdout)
    assert jail["banned"] == [] and jail["currently_banned"] == 0


def test_jail_status_with_two_log_files():
    jail = fail2ban.parse_jail_status(RECORDED["status_sshd_two_logs"]["stdout"])
    assert jail["banned"] == [ATTACKER, "2001:db8::1", "203.0.113.7"]


@pytest.mark.parametrize(
    "name, paths",
    [
        ("get_sshd_logpath", ["/var/log/pfguard/auth.log"]),
        ("get_sshd_logpath_two_logs", ["/tmp/f2bfacts/auth.log", "/tmp/f2bfacts/auth2.log"]),
        ("get_sshd_logpath_space", ["/tmp/f2bfacts/auth.log", "/tmp/f2bfacts/auth 3.log"]),
    ],
)
def test_log_paths_one_a_line(name, paths):
    assert fail2ban.parse_logpaths(RECORDED[name]["stdout"]) == paths


def test_status_joins_log_paths_with_spaces_which_is_why_they_are_asked_for_apart():
    joined = "File list:\t/tmp/f2bfacts/auth.log /tmp/f2bfacts/auth 3.log\n"
    assert joined in RECORDED["status_sshd_space_log"]["stdout"]


def test_no_monitored_file_is_no_log_path():
    # What fail2ban/client/beautifier.py prints for an empty list (a journal backend).
    assert fail2ban.parse_logpaths("No file is currently monitored\n") == []


@pytest.mark.parametrize(
    "name, jails",
    [("status", ["sshd"]), ("status_two_jails", ["recidive", "sshd"]), ("status_no_jails", [])],
)
def test_jail_list(name, jails):
    assert fail2ban.parse_status(RECORDED[name]["stdout"]) == jails


def test_dbfile_and_disabled_database():
    assert fail2ban.parse_dbfile(RECORDED["get_dbfile"]["stdout"]) == "/opt/homebrew/var/lib/fail2ban/fail2ban.sqlite3"
    assert fail2ban.parse_dbfile(RECORDED["get_dbfile_disabled"]["stdout"]) is None


def test_versions():
    assert fail2ban.parse_version(RECORDED["version"]["stdout"]) == "1.0.2"
    assert fail2ban.parse_version(RECORDED["client_version"]["stdout"]) == "1.0.2"


@pytest.mark.parametrize(
    "name, down",
    [
        ("ping_no_socket", True),
        ("ping_stale_socket", True),
        ("ping_permission_denied", False),
        ("ping_missing_config_dir", False),
        ("ping_hung_server", False),
    ],
)
def test_server_down_is_told_apart_from_failures(name, down):
    assert fail2ban.server_down(RECORDED[name]["stderr"]) is down


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "Status for the jail: sshd\n|- Filter\n`- Actions\n",
        RECORDED["status_sshd_banned"]["stdout"].replace("Currently banned:\t1", "Currently banned:\tone"),
        RECORDED["status_sshd_banned"]["stdout"].replace("Banned IP list", "Banned list"),
    ],
)
def test_unexpected_jail_status_is_an_error(stdout):
    with pytest.raises(fail2ban.Fail2banError):
        fail2ban.parse_jail_status(stdout)


def test_unexpected_status_dbfile_and_logpath_are_errors():
    with pytest.raises(fail2ban.Fail2banError):
        fail2ban.parse_status("Status\n")
    with pytest.raises(fail2ban.Fail2banError):
        fail2ban.parse_logpaths("`- /var/log/pfguard/auth.log\n")
    with pytest.raises(fail2ban.Fail2banError):
        fail2ban.parse_dbfile("something else\n")


# The module.


def test_running_server(monkeypatch, client):
    fake = FakeClient(RUNNING)
    facts = facts_of(run(monkeypatch, fake, dict(client=client, config_dir=CONFIG_DIR)))
    assert facts == dict(
        installed=True, running=True, client=client, config_dir=CONFIG_DIR, version="1.0.2",
        dbfile="/opt/homebrew/var/lib/fail2ban/fail2ban.sqlite3",
        jails=dict(sshd=dict(currently_failed=0, total_failed=6, currently_banned=1, total_banned=2,
                             banned=[ATTACKER], logpaths=["/var/log/pfguard/auth.log"])),
        history=[],
    )  # fmt: skip
    assert fake.commands() == ["ping 10", "version", "get dbfile", "status", "status sshd", "get sshd logpath"]
    assert fake.calls[0] == [client, "-c", CONFIG_DIR, "ping", "10"]


def test_every_jail_is_read(monkeypatch, client):
    answers = {"status recidive": "status_sshd_idle", "get recidive logpath": "get_sshd_logpath_space"}
    fake = FakeClient(dict(RUNNING, status="status_two_jails", **answers))
    facts = facts_of(run(monkeypatch, fake, dict(client=client, config_dir=CONFIG_DIR)))
    assert sorted(facts["jails"]) == ["recidive", "sshd"]
    assert facts["jails"]["recidive"]["banned"] == []
    assert facts["jails"]["recidive"]["logpaths"] == ["/tmp/f2bfacts/auth.log", "/tmp/f2bfacts/auth 3.log"]


def test_no_jails(monkeypatch, client):
    fake = FakeClient(dict(RUNNING, status="status_no_jails"))
    facts = facts_of(run(monkeypatch, fake, dict(client=client, config_dir=CONFIG_DIR)))
    assert facts["running"] is True and facts["jails"] == {}
    assert fake.commands() == ["ping 10", "version", "get dbfile", "status"]


def test_check_mode_reads_the_same(monkeypatch, client):
    normal = run(monkeypatch, FakeClient(RUNNING), dict(client=client, config_dir=CONFIG_DIR))
    checked = run(monkeypatch, FakeClient(RUNNING), dict(client=client, config_dir=CONFIG_DIR), check_mode=True)
    assert facts_of(checked) == facts_of(normal)


def test_config_dir_defaults_to_the_clients_prefix(monkeypatch, client):
    prefix = os.path.dirname(os.path.dirname(client))
    seen = []

    def fake(args, **kwargs):
        seen.append(args[2])
        return recorded("ping_no_socket") if args[3:] == ["ping", "10"] else recorded("client_version")

    facts = facts_of(run(monkeypatch, fake, dict(client=client)))
    assert facts["config_dir"] == os.path.join(prefix, "etc", "fail2ban")
    assert seen == [facts["config_dir"]] * 2


def test_client_defaults_to_the_first_homebrew_prefix_that_has_it(monkeypatch, tmp_path, client):
    missing = str(tmp_path / "opt" / "homebrew" / "bin" / "fail2ban-client")
    monkeypatch.setattr(fail2ban, "CLIENT_CANDIDATES", (missing, client))
    fake = FakeClient({"ping 10": "ping_no_socket", "-V": "client_version"})
    facts = facts_of(run(monkeypatch, fake, dict(config_dir=CONFIG_DIR)))
    assert facts["client"] == client and facts["installed"] is True


def test_not_installed(monkeypatch, tmp_path):
    fake = FakeClient({})
    client = str(tmp_path / "nowhere" / "bin" / "fail2ban-client")
    facts = facts_of(run(monkeypatch, fake, dict(client=client, history=True)))
    config_dir = str(tmp_path / "nowhere" / "etc" / "fail2ban")
    assert facts == dict(installed=False, running=False, client=client, config_dir=config_dir,
                         version=None, dbfile=None, jails={}, history=[])  # fmt: skip
    assert fake.calls == []


def test_not_installed_anywhere(monkeypatch, tmp_path):
    monkeypatch.setattr(fail2ban, "CLIENT_CANDIDATES", (str(tmp_path / "a"), str(tmp_path / "b")))
    facts = facts_of(run(monkeypatch, FakeClient({}), {}))
    assert facts["installed"] is False and facts["client"] is None and facts["config_dir"] is None


@pytest.mark.parametrize("ping", ["ping_no_socket", "ping_stale_socket"])
def test_server_down_is_not_a_failure(monkeypatch, client, ping):
    fake = FakeClient({"ping 10": ping, "-V": "client_version"})
    facts = facts_of(run(monkeypatch, fake, dict(client=client, config_dir=CONFIG_DIR, history=True)))
    assert facts == dict(installed=True, running=False, client=client, config_dir=CONFIG_DIR, version="1.0.2",
                         dbfile=None, jails={}, history=[])  # fmt: skip
    assert fake.commands() == ["ping 10", "-V"]


@pytest.mark.parametrize(
    "answers, command, message",
    [
        ({"ping 10": "ping_permission_denied"}, "ping 10", "Permission denied to socket"),
        ({"ping 10": "ping_hung_server"}, "ping 10", "timed out"),
        ({"ping 10": "ping_missing_config_dir"}, "ping 10", "Base configuration directory /tmp/f2bfacts/nope"),
        (dict(RUNNING, **{"status sshd": "status_nosuchjail"}), "status sshd", "Sorry but the jail 'nosuchjail'"),
        (dict(RUNNING, status=(255, "", "boom\n")), "status", "boom"),
        (dict(RUNNING, **{"get dbfile": (0, "what?\n", "")}), "get dbfile", "get dbfile output"),
        (dict(RUNNING, **{"status sshd": (0, "Status for the jail: sshd\n", "")}), "status sshd", "missing"),
        (dict(RUNNING, **{"get sshd logpath": "get_nosuchjail_logpath"}), "get sshd logpath",
         "Sorry but the jail 'nosuchjail'"),
    ],
)
def test_other_client_failures_fail_with_the_command(monkeypatch, client, answers, command, message):
    result = run(monkeypatch, FakeClient(answers), dict(client=client, config_dir=CONFIG_DIR))
    assert result["failed"] is True
    assert message in result["msg"]
    assert result["cmd"] == [client, "-c", CONFIG_DIR] + command.split()
    assert "stderr" in result and "stdout" in result and "rc" in result


def test_a_client_that_is_not_executable_fails(monkeypatch, client):
    os.chmod(client, 0o644)
    result = run(monkeypatch, FakeClient({}), dict(client=client, config_dir=CONFIG_DIR))
    assert result["failed"] is True and client in result["msg"]


# History.


def running_with_db(dbfile):
    return dict(RUNNING, **{"get dbfile": (0, "Current database file is:\n`- %s\n" % dbfile, "")})


def test_history_reads_every_ban_oldest_first(monkeypatch, client, tmp_path):
    dbfile = tmp_path / "a dir #1" / "fail2ban.sqlite3"  # characters a sqlite URI must escape
    dbfile.parent.mkdir()
    make_bans_db(dbfile, [("sshd", "2001:db8::7", 1763800100, 600, 2), ("sshd", ATTACKER, 1763800000, 600, 1),
                          ("screensharingd", ATTACKER, 1763800100, -1, 1)])  # fmt: skip
    before = dbfile.read_bytes()
    args = dict(client=client, config_dir=CONFIG_DIR, history=True)
    facts = facts_of(run(monkeypatch, FakeClient(running_with_db(dbfile)), args))
    assert facts["dbfile"] == str(dbfile)
    assert facts["history"] == [
        dict(jail="sshd", ip=ATTACKER, timeofban=1763800000, bantime=600, bancount=1),
        dict(jail="sshd", ip="2001:db8::7", timeofban=1763800100, bantime=600, bancount=2),
        dict(jail="screensharingd", ip=ATTACKER, timeofban=1763800100, bantime=-1, bancount=1),
    ]
    assert dbfile.read_bytes() == before


def test_history_opens_the_database_read_only(monkeypatch, tmp_path):
    dbfile = tmp_path / "fail2ban.sqlite3"
    make_bans_db(dbfile, [])
    opened = []
    real_connect = sqlite3.connect

    def spy(database, *args, **kwargs):
        opened.append((database, kwargs.get("uri")))
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", spy)
    assert fail2ban.read_history(str(dbfile)) == []
    assert opened == [("file:%s?mode=ro" % dbfile, True)]


def test_history_of_a_missing_or_disabled_database_is_empty(monkeypatch, client, tmp_path):
    args = dict(client=client, config_dir=CONFIG_DIR, history=True)
    missing = FakeClient(running_with_db(tmp_path / "gone.sqlite3"))
    assert facts_of(run(monkeypatch, missing, args))["history"] == []
    disabled = FakeClient(dict(RUNNING, **{"get dbfile": "get_dbfile_disabled"}))
    facts = facts_of(run(monkeypatch, disabled, args))
    assert facts["dbfile"] is None and facts["history"] == []


def test_history_is_only_read_when_asked(monkeypatch, client, tmp_path):
    dbfile = tmp_path / "fail2ban.sqlite3"
    make_bans_db(dbfile, [("sshd", ATTACKER, 1763800000, 600, 1)])
    facts = facts_of(run(monkeypatch, FakeClient(running_with_db(dbfile)), dict(client=client, config_dir=CONFIG_DIR)))
    assert facts["history"] == []


def test_an_unreadable_database_fails_naming_it(monkeypatch, client, tmp_path):
    dbfile = tmp_path / "fail2ban.sqlite3"
    dbfile.write_text("not a database")
    args = dict(client=client, config_dir=CONFIG_DIR, history=True)
    result = run(monkeypatch, FakeClient(running_with_db(dbfile)), args)
    assert result["failed"] is True and str(dbfile) in result["msg"]
