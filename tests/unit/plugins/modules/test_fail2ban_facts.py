# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
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
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import CommandTimeout
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


def run(monkeypatch, fake, args, check_mode=False, timeouts=None):
    """The module's result, with the client's bounded runner answered by `fake`."""

    def bounded(argv, timeout, data=None, environ_update=None, output_limit=None):
        assert data is None and output_limit == fail2ban.OUTPUT_LIMIT
        if timeouts is not None:
            timeouts.append(timeout)
        return fake(argv)

    monkeypatch.setattr(fail2ban, "run_bounded", bounded)
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
    # The client prints the jail asked for in the first line; the rest is recorded for sshd.
    recidive = RECORDED["status_sshd_idle"]["stdout"].replace("jail: sshd", "jail: recidive")
    answers = {"status recidive": (0, recidive, ""), "get recidive logpath": "get_sshd_logpath_space"}
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


# Hostile or broken output: every line is checked, and a bad one is named.

STATUS_SSHD = RECORDED["status_sshd_banned"]["stdout"]


@pytest.mark.parametrize(
    "command, stdout, named",
    [
        ("version", "1.0.2\nrm -rf /\n", "version output: 'rm -rf /'"),
        ("version", "\ufffd\ufffd\n", "version output: '\ufffd\ufffd'"),
        ("version", "<html>\n", "version output: '<html>'"),
        ("status", "Status\n|- Number of jail:\t1\n`- Jail list:\tsshd\nextra garbage\n", "'extra garbage'"),
        ("status", "Welcome\n", "status output: 'Welcome'"),
        ("status", "", "status printed nothing"),
        ("status", "Status\n|- Number of jail:\t2\n`- Jail list:\tsshd\n", "says 2 jails but lists 'sshd'"),
        ("status", "Status\n|- Number of jail:\t1\n`- Jail list:\t-h\n", "jail name '-h' is not accepted"),
        ("status", "Status\n|- Number of jail:\t1\n`- Jail list:\t..\n", "jail name '..' is not accepted"),
        ("status", "Status\n|- Number of jail:\t1\n`- Jail list:\tss\ufffdhd\n", "jail name 'ss\ufffdhd'"),
        ("status", "Status\n|- Number of jail:\t1\n`- Jail list:\t%s\n" % ("j" * 65), "at most 64 characters"),
        ("status", "Status\n|- Number of jail:\t1\n`- Jail list:\tsshd;reboot\n", "jail name 'sshd;reboot'"),
        ("status", "Status\n|- Number of jail:\tone\n`- Jail list:\tsshd\n", "'one' is not a count"),
        ("status sshd", STATUS_SSHD.replace("198.51.100.200", "evil.example"),
         "bans 'evil.example', which is not an address"),
        ("status sshd", STATUS_SSHD.replace("198.51.100.200", "198.51.100.200\x1b[2J"),
         "bans '198.51.100.200\\x1b[2J'"),
        ("status sshd", STATUS_SSHD.replace("Currently failed:\t0", "Currently failed:\t-3"), "'-3' is not a count"),
        ("status sshd", STATUS_SSHD.replace("Total banned:\t2", "Total banned:\t\u0662"), "'\u0662' is not a count"),
        ("status sshd", STATUS_SSHD.replace("`- Actions", "`- Actions\nHACKED"), "jail status output: 'HACKED'"),
        ("status sshd", STATUS_SSHD.replace("jail: sshd", "jail: other"), "output: 'Status for the jail: other'"),
        ("get sshd logpath", "Current monitored log file(s):\n`- relative.log\n", "'`- relative.log'"),
        ("get sshd logpath", "Current monitored log file(s):\n`- /var/log/\ufffd.log\n", "'`- /var/log/\ufffd.log'"),
        ("get sshd logpath", "Current monitored log file(s):\n|- /a.log\nnonsense\n", "output: 'nonsense'"),
        ("get sshd logpath", "oops\n", "get logpath output: 'oops'"),
        ("get dbfile", "Current database file is:\n`- db.sqlite3\n", "'`- db.sqlite3'"),
        ("get dbfile", "Current database file is:\n`- /db.sqlite3\n`- /other\n", "'`- /other'"),
        ("get dbfile", "Current database file is:\nnope\n", "get dbfile output: 'nope'"),
    ],
)
def test_unparsable_output_fails_naming_the_line(monkeypatch, client, command, stdout, named):
    result = run(monkeypatch, FakeClient(dict(RUNNING, **{command: (0, stdout, "")})),
                 dict(client=client, config_dir=CONFIG_DIR))  # fmt: skip
    assert result["failed"] is True
    assert named in result["msg"], result["msg"]
    assert result["cmd"] == [client, "-c", CONFIG_DIR] + command.split()


def test_ping_that_is_not_pong_fails_naming_what_was_printed(monkeypatch, client):
    result = run(monkeypatch, FakeClient({"ping 10": (0, "Server replied: p\ufffdng\n", "")}),
                 dict(client=client, config_dir=CONFIG_DIR))  # fmt: skip
    assert result["failed"] is True and result["msg"] == "fail2ban-client ping failed: Server replied: p\ufffdng"


def test_too_many_jails_fail(monkeypatch, client):
    names = ["j%d" % n for n in range(257)]
    stdout = "Status\n|- Number of jail:\t257\n`- Jail list:\t%s\n" % ", ".join(names)
    fake = FakeClient(dict(RUNNING, status=(0, stdout, "")))
    result = run(monkeypatch, fake, dict(client=client, config_dir=CONFIG_DIR))
    assert result["failed"] is True and "lists 257 jails; at most 256 are read" in result["msg"]


def test_journal_backend_jail_status_is_read():
    # What the beautifier prints for a systemd backend: "Journal matches" instead of "File list".
    stdout = STATUS_SSHD.replace("File list:\t/var/log/pfguard/auth.log", "Journal matches:\t_COMM=sshd")
    assert fail2ban.parse_jail_status(stdout, "sshd")["banned"] == [ATTACKER]


@pytest.mark.parametrize("name", ["sshd", "sshd-ddos", "apache_auth", "3proxy", "nginx.http", "a" * 64])
def test_jail_names_accepted(name):
    assert fail2ban.check_jail_name(name) == name


@pytest.mark.parametrize("name", ["", "-sshd", ".sshd", "a" * 65, "ss hd", "ssh/d", "sshd\n", "\u0455shd", 7])
def test_jail_names_refused(name):
    with pytest.raises(ValueError):
        fail2ban.check_jail_name(name)


def test_every_call_is_bounded_by_command_timeout(monkeypatch, client):
    timeouts = []
    args = dict(client=client, config_dir=CONFIG_DIR, command_timeout=4)
    run(monkeypatch, FakeClient(RUNNING), args, timeouts=timeouts)
    assert timeouts == [4] * 6


def test_a_hung_client_fails_naming_the_command(monkeypatch, client):
    def hung(args):
        if args[3:] == ["status"]:
            raise CommandTimeout("%s did not finish within 3 seconds and was killed (command_timeout)" % " ".join(args),
                                 cmd=args)  # fmt: skip
        return FakeClient(RUNNING)(args)

    result = run(monkeypatch, hung, dict(client=client, config_dir=CONFIG_DIR, command_timeout=3))
    assert result["failed"] is True
    assert result["msg"] == "%s -c %s status did not finish within 3 seconds and was killed (command_timeout)" % (
        client, CONFIG_DIR)
    assert result["cmd"] == [client, "-c", CONFIG_DIR, "status"]


@pytest.mark.parametrize("value", [0, 3601])
def test_command_timeout_out_of_range_is_refused(monkeypatch, client, value):
    fake = FakeClient({})
    result = run(monkeypatch, fake, dict(client=client, config_dir=CONFIG_DIR, command_timeout=value))
    assert result["failed"] is True and "command_timeout %d is out of range" % value in result["msg"]
    assert fake.calls == []


@pytest.mark.parametrize(
    "option, value, named",
    [
        ("client", "bin/fail2ban-client", "client 'bin/fail2ban-client' is not an absolute path"),
        ("client", "/opt/homebrew/bin/fail2ban-client\n", "contains a control character"),
        ("config_dir", "etc/fail2ban", "config_dir 'etc/fail2ban' is not an absolute path"),
        ("config_dir", "/opt/homebrew/etc/\x07fail2ban", "contains a control character"),
    ],
)
def test_paths_must_be_absolute_without_control_characters(monkeypatch, client, option, value, named):
    fake = FakeClient({})
    result = run(monkeypatch, fake, dict(dict(client=client, config_dir=CONFIG_DIR), **{option: value}))
    assert result["failed"] is True and named in result["msg"], result["msg"]
    assert fake.calls == []


def test_a_client_that_is_not_a_regular_file_is_refused(monkeypatch, tmp_path, client):
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    link = tmp_path / "link"
    link.symlink_to(client)
    for bad in (str(fifo), "/dev/zero", str(tmp_path)):
        result = run(monkeypatch, FakeClient({}), dict(client=bad, config_dir=CONFIG_DIR))
        assert result["failed"] is True
        assert result["msg"] == "fail2ban-client at %s is not an executable regular file" % bad
    # A link to the client (Homebrew's bin/ links into the Cellar) is run.
    facts = facts_of(run(monkeypatch, FakeClient({"ping 10": "ping_no_socket", "-V": "client_version"}),
                         dict(client=str(link), config_dir=CONFIG_DIR)))  # fmt: skip
    assert facts["installed"] is True and facts["client"] == str(link)


def test_a_config_dir_that_is_a_file_is_refused(monkeypatch, client):
    result = run(monkeypatch, FakeClient({}), dict(client=client, config_dir=client))
    assert result["failed"] is True and result["msg"] == "config_dir %s is not a directory" % client


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_a_ban_database_that_is_not_a_regular_file_is_refused(monkeypatch, client, tmp_path, kind):
    dbfile = tmp_path / "fail2ban.sqlite3"
    if kind == "symlink":
        real = tmp_path / "real.sqlite3"
        make_bans_db(real, [])
        dbfile.symlink_to(real)
    elif kind == "fifo":
        os.mkfifo(str(dbfile))
    else:
        dbfile.mkdir()
    args = dict(client=client, config_dir=CONFIG_DIR, history=True)
    result = run(monkeypatch, FakeClient(running_with_db(dbfile)), args)
    assert result["failed"] is True
    assert result["msg"] == "the ban database %s is not a regular file (symlinks are not followed)" % dbfile


def test_history_text_that_is_not_utf8_is_replaced_and_blobs_are_refused(monkeypatch, client, tmp_path):
    dbfile = tmp_path / "fail2ban.sqlite3"
    make_bans_db(dbfile, [])
    connection = sqlite3.connect(str(dbfile))
    connection.execute("INSERT INTO bans(jail, ip, timeofban, bantime, bancount) "
                       "VALUES ('sshd', CAST(X'3139382EFF' AS TEXT), 1, 600, 1)")  # fmt: skip
    connection.commit()
    args = dict(client=client, config_dir=CONFIG_DIR, history=True)
    facts = facts_of(run(monkeypatch, FakeClient(running_with_db(dbfile)), args))
    assert facts["history"] == [dict(jail="sshd", ip="198.\ufffd", timeofban=1, bantime=600, bancount=1)]
    connection.execute("INSERT INTO bans(jail, ip, timeofban, bantime, bancount) VALUES ('sshd', X'00FF', 2, 600, 1)")
    connection.commit()
    connection.close()
    result = run(monkeypatch, FakeClient(running_with_db(dbfile)), args)
    assert result["failed"] is True and "unexpected row in the bans table of %s" % dbfile in result["msg"]
