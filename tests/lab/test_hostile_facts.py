# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile input for pfguard.macos.afctl, fail2ban_facts and jail_log_facts, run by real Ansible on
localhost: afctl against the lab's emulated afctl in a Server.app root (as in test_afctl_module.py),
fail2ban_facts against fake fail2ban-clients given by its `client` option (answering with fail2ban
1.0.2's recorded output, or hanging, flooding or printing garbage), and jail_log_facts against files
in a temp directory.

Every case must be refused with an error naming the bad value, with no traceback, and must leave
the watched files (and afctl's whitelist) exactly as they were. The cases of each module run as one
batch (hostile.Batch: one ansible-playbook run, a snapshot after every case), the three side by
side. FIFOs and /dev/zero would block or never end if a module read them, so every case has a task
timeout and a hang fails fast."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from hostile import Batch, Case, snapshot, wait_all
from pfguard_lab.adhoc import run_module
from test_afctl_module import Server
from ulog_fixtures import remove_root

# The batches run in a fixture, bounded by their own timeouts (hostile.TASK_TIMEOUT per case).
pytestmark = pytest.mark.timeout(90, func_only=True)

REPO = Path(__file__).resolve().parents[2]
RECORDED = json.loads((REPO / "tests/unit/plugins/modules/fixtures/fail2ban_client.json").read_text())
AFCTL = "pfguard.macos.afctl"
FAIL2BAN = "pfguard.macos.fail2ban_facts"
JAIL_LOG = "pfguard.macos.jail_log_facts"
SEEDED = "198.51.100.1"  # on the whitelist before every afctl case, so "unchanged" means something


def hostile_files(directory: Path) -> dict[str, str]:
    """A FIFO, a symlink to a real file, a directory and a device: nothing a module may read."""
    directory.mkdir(parents=True, exist_ok=True)
    real = directory / "real"
    real.write_text("10.0.0.1\n")
    (directory / "link").symlink_to(real)
    os.mkfifo(directory / "fifo")
    (directory / "dir").mkdir()
    return {"fifo": str(directory / "fifo"), "link": str(directory / "link"), "dir": str(directory / "dir"),
            "zero": "/dev/zero"}  # fmt: skip


def script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


# afctl


class HostileServer(Server):
    """The emulated Server.app root plus hostile files and fake afctl commands inside it."""

    def __init__(self):
        super().__init__()
        assert self.afctl("-w", SEEDED).returncode == 0
        self.bad = hostile_files(self.root / "hostile")
        bin_dir = self.root / "hostile-bin"
        bin_dir.mkdir()
        self.hung = script(bin_dir / "afctl-hung", "#!/bin/sh\nsleep 600\n")
        garbled = "#!/bin/sh\nprintf 'afctl: \\377\\376 broken\\n' >&2\nexit 1\n"
        self.garbled = script(bin_dir / "afctl-garbled", garbled)
        self.flood = script(bin_dir / "afctl-flood", "#!/bin/sh\nexec cat /dev/zero\n")

    def whitelist_bytes(self) -> bytes:
        return self.path("/var/db/af/whitelist").read_bytes()


@pytest.fixture(scope="module")
def server():
    machine = None
    try:
        machine = HostileServer()
        yield machine
    finally:
        if machine is not None:
            remove_root(machine.root)


def afctl_refused(batches, case: str, *names: str):
    """The afctl case failed naming `names`, changed nothing, and left the seeded whitelist as it was."""
    outcome = batches.afctl.refused(case, *names)
    assert outcome.after[batches.whitelist][3] == batches.seeded, f"{case} changed the whitelist"
    return outcome


AFCTL_FILE_CASES = [
    ("whitelist_file", "fifo", "a FIFO"),
    ("whitelist_file", "zero", "a character device"),
    ("whitelist_file", "link", "symbolic link"),
    ("whitelist_file", "dir", "a directory"),
    ("blacklist_file", "fifo", "a FIFO"),
    ("blacklist_file", "zero", "a character device"),
    ("blacklist_file", "link", "symbolic link"),
    ("settings_file", "fifo", "a FIFO"),
    ("settings_file", "zero", "a character device"),
    ("settings_file", "link", "symbolic link"),
    ("threshold_file", "dir", "a directory"),
    ("threshold_file", "fifo", "a FIFO"),
    ("af_state_file", "zero", "a character device"),
    ("af_state_file", "link", "symbolic link"),
]


@pytest.mark.parametrize("option, kind, reason", AFCTL_FILE_CASES, ids=[f"{o}-{k}" for o, k, _r in AFCTL_FILE_CASES])
def test_afctl_refuses_files_it_must_not_read(batches, option, kind, reason):
    afctl_refused(batches, f"{option}-{kind}", option, batches.server.bad[kind], reason)


AFCTL_ARG_CASES = [
    ("relative-whitelist-file", dict(whitelist_file="var/db/af/whitelist"),
     ("whitelist_file", "'var/db/af/whitelist' is not an absolute path")),
    ("newline-whitelist-file", dict(whitelist_file="/var/db/af/white\nlist"),
     ("whitelist_file", "contains a control character")),
    ("relative-afctl", dict(afctl_path="usr/libexec/afctl"), ("afctl_path", "'usr/libexec/afctl' is not an absolute")),
    ("tab-afctl", dict(afctl_path="/usr/libexec/af\tctl"), ("afctl_path", "contains a control character")),
    ("devnull-afctl", dict(afctl_path="/dev/null"), ("afctl not found or not executable at /dev/null",)),
    ("shell-whitelist", dict(whitelist=["192.0.2.1; reboot"]), ("whitelist '192.0.2.1; reboot'",)),
    ("option-whitelist", dict(whitelist=["-d"]), ("whitelist '-d'",)),
    ("hostname-whitelist", dict(whitelist=["mac1.example"]), ("whitelist 'mac1.example'",)),
    ("wide-netmask", dict(whitelist=["192.0.2.0/33"]), ("whitelist '192.0.2.0/33'",)),
    ("arabic-digits", dict(whitelist=["\u0661\u0662.0.0.1"]), ("whitelist '\u0661\u0662.0.0.1'",)),
    ("newline-address", dict(whitelist=["192.0.2.1\n198.51.100.7"]), ("whitelist '192.0.2.1\n198.51.100.7'",)),
    ("string-list", dict(whitelist="192.0.2.1,evil"), ("whitelist 'evil'",)),
    ("dict-list", dict(whitelist={"192.0.2.1": True}), ("whitelist",)),
    ("huge-list", dict(whitelist=["192.0.2.%d" % (n % 256) for n in range(2000)]),
     ("whitelist has 2000 entries, at most 1024",)),
    ("interface-unblock", dict(unblock=["en0"]), ("unblock 'en0'",)),
    ("text-block-time", dict(block_time="soon"), ("block_time",)),
    ("huge-block-time", dict(block_time=2**31), ("block_time must be 1 to 2147483647, got 2147483648",)),
    ("negative-threshold", dict(threshold=-1), ("threshold must be 1 to 2147483647, got -1",)),
    ("bad-choice", dict(whitelist_state="everything"), ("whitelist_state", "everything")),
    ("zero-timeout", dict(command_timeout=0), ("command_timeout 0 is out of range",)),
    ("text-timeout", dict(command_timeout="forever"), ("command_timeout",)),
]  # fmt: skip


@pytest.mark.parametrize("args, names", [c[1:] for c in AFCTL_ARG_CASES], ids=[c[0] for c in AFCTL_ARG_CASES])
def test_afctl_refuses_bad_arguments(request, batches, args, names):
    afctl_refused(batches, request.node.callspec.id, *names)


def test_afctl_refuses_a_directory_as_afctl(batches):
    root = batches.server.root
    afctl_refused(batches, "directory-afctl", "afctl not found or not executable at %s" % root)


def test_afctl_hung_command_fails_within_command_timeout_naming_it(batches):
    message = f"{batches.server.hung} -w 192.0.2.1 did not finish within 2 seconds and was killed"
    outcome = afctl_refused(batches, "hung-afctl", message)
    assert outcome.seconds < 30


def test_afctl_output_that_is_not_utf8_is_reported_as_text(batches):
    outcome = afctl_refused(batches, "garbled-afctl", "-w 192.0.2.1 failed: afctl: \ufffd\ufffd broken")
    assert "\\377" not in outcome.result["msg"]


def test_afctl_that_floods_output_is_killed(batches):
    flood = batches.server.flood
    afctl_refused(batches, "flooding-afctl", f"{flood} -w 192.0.2.1 printed more than 1048576 bytes")


WHITELIST_LINES = [
    ("not-utf8", b"198.51.100.1\n\xff\xfe10.0.0.2\n", "line 2 is not UTF-8 text"),
    ("option", b"198.51.100.1\n-e\n", "line 2 starts with '-'"),
    ("escape", b"198.51.100.1\n10.0.0.9\x1b[2J\n", "line 2 holds a control character"),
    ("oversized", b"198.51.100.1\n" * 100000, "is larger than 1048576 bytes"),
]


@pytest.mark.parametrize("name, content, named", [pytest.param(*case, id=case[0]) for case in WHITELIST_LINES])
def test_afctl_refuses_whitelist_lines_it_would_pass_to_afctl(batches, name, content, named):
    """The whitelist holds `content` while the case runs (written just before it, put back after)."""
    whitelist = batches.whitelist
    outcome = batches.afctl.refused(f"whitelist-{name}", f"whitelist_file {whitelist}", named)
    assert outcome.before[whitelist][3] == hashlib.sha256(content).hexdigest()


def test_afctl_check_and_diff_mode_still_work(batches):
    outcome = batches.afctl.outcome("check-diff")
    assert not outcome.refused, outcome.result
    assert outcome.result["changed"] is True and outcome.result["added"] == ["192.0.2.1"]
    assert "  - 192.0.2.1" in outcome.result["diff"]["after"] and "block_time: 5" in outcome.result["diff"]["after"]
    batches.afctl.unchanged(outcome, "check-diff")


def afctl_cases(server: HostileServer, contents: Path) -> list[Case]:
    """Every afctl case; the whitelist-line ones write the whitelist first (from files in `contents`,
    with cp: same file, same mode) and put it back after."""
    base = server.args(whitelist=["192.0.2.1"], block_time=5)
    cases = [Case(f"{o}-{k}", AFCTL, {**base, o: server.bad[k]}) for o, k, _r in AFCTL_FILE_CASES]
    cases += [Case(name, AFCTL, {**base, **args}) for name, args, _names in AFCTL_ARG_CASES]
    cases += [
        Case("directory-afctl", AFCTL, {**base, "afctl_path": str(server.root)}),
        Case("hung-afctl", AFCTL, {**base, "afctl_path": server.hung, "command_timeout": 2}),
        Case("garbled-afctl", AFCTL, {**base, "afctl_path": server.garbled}),
        Case("flooding-afctl", AFCTL, {**base, "afctl_path": server.flood}),
    ]
    whitelist, CP = str(server.path("/var/db/af/whitelist")), "ansible.builtin.command"
    original = contents / "original"
    original.write_bytes(server.whitelist_bytes())
    for name, content, _named in WHITELIST_LINES:
        (contents / name).write_bytes(content)
        copy = [{"name": f"whitelist-{name} | write", CP: {"argv": ["cp", str(contents / name), whitelist]}}]
        restore = [{"name": f"whitelist-{name} | restore", CP: {"argv": ["cp", str(original), whitelist]}}]
        exact = server.args(whitelist=["192.0.2.1"], whitelist_state="exact")
        cases.append(Case(f"whitelist-{name}", AFCTL, exact, setup=copy, teardown=restore))
    return cases + [Case("check-diff", AFCTL, base, {"check_mode": True, "diff": True})]


# fail2ban_facts

CLIENT = """#!/usr/bin/python3
import sys
import time

ANSWERS = {answers!r}
command = " ".join(sys.argv[3:])
if sys.argv[1:3] != ["-c", {config_dir!r}] or command not in ANSWERS:
    sys.stderr.write("fake fail2ban-client: unexpected %r\\n" % (sys.argv[1:],))
    sys.exit(99)
answer = ANSWERS[command]
time.sleep(answer.get("sleep", 0))
while answer.get("flood"):
    sys.stdout.buffer.write(b"x" * 65536)
sys.stdout.buffer.write(answer.get("stdout", b""))
sys.stderr.buffer.write(answer.get("stderr", b""))
sys.exit(answer.get("rc", 0))
"""


def recorded(name: str) -> dict:
    record = RECORDED[name]
    return {"rc": record["rc"], "stdout": record["stdout"].encode(), "stderr": record["stderr"].encode()}


class Fail2ban:
    """A temp prefix with a fake fail2ban-client, its configuration directory and ban database."""

    def __init__(self, root: Path):
        self.root = root
        self.config_dir = root / "etc/fail2ban"
        self.config_dir.mkdir(parents=True)
        (root / "bin").mkdir()
        self.client = root / "bin/fail2ban-client"
        self.bad = hostile_files(root / "hostile")
        self.dbfile = root / "var/lib/fail2ban/fail2ban.sqlite3"

    def running(self, dbfile: str | None = None) -> dict:
        return {
            "ping 10": recorded("ping"),
            "version": recorded("version"),
            "get dbfile": {"stdout": b"Current database file is:\n`- %s\n" % (dbfile or str(self.dbfile)).encode()},
            "status": recorded("status"),
            "status sshd": recorded("status_sshd_banned"),
            "get sshd logpath": recorded("get_sshd_logpath"),
        }

    def answer(self, name: str | None = None, **changes: dict) -> str:
        """Write a client (the default one, or bin/NAME/fail2ban-client) with the running server's
        answers, `changes` replacing some (by command); returns its path."""
        answers = self.running()
        answers.update({command.replace("_", " "): answer for command, answer in changes.items()})
        path = self.client_path(name) if name else self.client
        path.parent.mkdir(exist_ok=True)
        return script(path, CLIENT.format(answers=answers, config_dir=str(self.config_dir)))

    def client_path(self, name: str) -> Path:
        return self.root / "bin" / name / "fail2ban-client"

    def args(self, **extra) -> dict:
        return {"client": str(self.client), "config_dir": str(self.config_dir), **extra}


def jail_status(**replace: str) -> dict:
    stdout = RECORDED["status_sshd_banned"]["stdout"]
    for old, new in replace.items():
        stdout = stdout.replace(old.replace("_", " "), new)
    return {"stdout": stdout.encode()}


def test_fake_client_answers_like_fail2ban(batches):
    outcome = batches.f2b.outcome("fake-client")
    assert not outcome.refused, outcome.result
    facts = outcome.result["ansible_facts"]["fail2ban"]
    assert facts["running"] is True and facts["version"] == "1.0.2"
    assert facts["jails"]["sshd"]["banned"] == ["198.51.100.200"]


F2B_ARG_CASES = [
    ("relative-client", dict(client="bin/fail2ban-client"), ("client 'bin/fail2ban-client' is not an absolute path",)),
    ("newline-client", dict(client="/opt/homebrew/bin/fail2ban-client\n"), ("client", "contains a control character")),
    ("relative-config-dir", dict(config_dir="etc/fail2ban"), ("config_dir 'etc/fail2ban' is not an absolute path",)),
    ("zero-timeout", dict(command_timeout=0), ("command_timeout 0 is out of range",)),
    ("huge-timeout", dict(command_timeout=10**6), ("command_timeout 1000000 is out of range",)),
    ("text-history", dict(history="maybe"), ("history",)),
]  # fmt: skip


@pytest.mark.parametrize("args, names", [c[1:] for c in F2B_ARG_CASES], ids=[c[0] for c in F2B_ARG_CASES])
def test_fail2ban_facts_refuses_bad_arguments(request, batches, args, names):
    batches.f2b.refused(request.node.callspec.id, *names)


CLIENT_KINDS = ["fifo", "zero", "dir"]


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_fail2ban_facts_refuses_a_client_that_is_not_a_regular_file(batches, kind):
    path = batches.fail2ban.bad[kind]
    batches.f2b.refused(f"client-{kind}", f"fail2ban-client at {path} is not an executable regular file")


def test_fail2ban_facts_refuses_a_config_dir_that_is_a_file(batches):
    client = batches.fail2ban.client
    batches.f2b.refused("config-dir-file", f"config_dir {client} is not a directory")


HUNG_CALLS = ["ping 10", "status", "get sshd logpath"]


@pytest.mark.parametrize("command", HUNG_CALLS)
def test_fail2ban_facts_hung_client_fails_within_command_timeout_naming_the_call(batches, command):
    client, config_dir = batches.fail2ban.client_path(f"hung-{command}"), batches.fail2ban.config_dir
    message = f"{client} -c {config_dir} {command} did not finish within 2 seconds"
    outcome = batches.f2b.refused(f"hung-{command}", message)
    assert outcome.seconds < 30


def test_fail2ban_facts_flooding_client_is_killed(batches):
    client, config_dir = batches.fail2ban.client_path("flood"), batches.fail2ban.config_dir
    batches.f2b.refused("flood", f"{client} -c {config_dir} status printed more than 33554432 bytes")


F2B_OUTPUT_CASES = [
    ("version-not-utf8", dict(version={"stdout": b"1.0.\xff\n"}), ("version output: '1.0.\ufffd'",)),
    ("version-garbage", dict(version={"stdout": b"1.0.2\n<script>\n"}), ("version output: '<script>'",)),
    ("status-garbage", dict(status={"stdout": b"Welcome to fail2ban\n"}), ("status output: 'Welcome to fail2ban'",)),
    ("status-extra-line", dict(status={"stdout": RECORDED["status"]["stdout"].encode() + b"rm -rf /\n"}),
     ("status output: 'rm -rf /'",)),
    ("jail-not-utf8", dict(status={"stdout": b"Status\n|- Number of jail:\t1\n`- Jail list:\tss\xffhd\n"}),
     ("jail name 'ss\ufffdhd' is not accepted",)),
    ("jail-option", dict(status={"stdout": b"Status\n|- Number of jail:\t1\n`- Jail list:\t-h\n"}),
     ("jail name '-h' is not accepted",)),
    ("jail-path", dict(status={"stdout": b"Status\n|- Number of jail:\t1\n`- Jail list:\t../../etc\n"}),
     ("jail name '../../etc' is not accepted",)),
    ("jail-count", dict(status={"stdout": b"Status\n|- Number of jail:\t3\n`- Jail list:\tsshd\n"}),
     ("says 3 jails but lists 'sshd'",)),
    ("banned-hostname", dict(status_sshd=jail_status(**{"198.51.100.200": "evil.example"})),
     ("bans 'evil.example', which is not an address",)),
    ("banned-not-utf8", dict(status_sshd={"stdout": jail_status()["stdout"].replace(b"198.51.100.200", b"198.\xff")}),
     ("bans '198.\ufffd'",)),
    ("negative-count", dict(status_sshd=jail_status(**{"Total_failed:\t6": "Total failed:\t-6"})),
     ("'-6' is not a count",)),
    ("other-jail", dict(status_sshd=jail_status(**{"jail:_sshd": "jail: other"})),
     ("jail status output: 'Status for the jail: other'",)),
    ("relative-logpath", dict(get_sshd_logpath={"stdout": b"Current monitored log file(s):\n`- auth.log\n"}),
     ("get logpath output: '`- auth.log'",)),
    ("garbage-dbfile", dict(get_dbfile={"stdout": b"Current database file is:\n\x1b[31mred\n"}),
     ("get dbfile output: '\\x1b[31mred'",)),
    ("ping-not-utf8", dict(ping_10={"rc": 255, "stderr": b"ERROR \xff\xfe Permission denied\n"}),
     ("fail2ban-client ping failed: ERROR \ufffd\ufffd Permission denied",)),
]  # fmt: skip


@pytest.mark.parametrize("answers, names", [c[1:] for c in F2B_OUTPUT_CASES], ids=[c[0] for c in F2B_OUTPUT_CASES])
def test_fail2ban_facts_refuses_output_it_cannot_parse_naming_the_line(request, batches, answers, names):
    batches.f2b.refused(request.node.callspec.id, *names)


DBFILE_KINDS = ["fifo", "zero", "link", "dir"]


@pytest.mark.parametrize("kind", DBFILE_KINDS)
def test_fail2ban_facts_refuses_a_ban_database_that_is_not_a_regular_file(batches, kind):
    path = batches.fail2ban.bad[kind]
    batches.f2b.refused(f"dbfile-{kind}", f"the ban database {path} is not a regular file")


def f2b_cases(f2b: Fail2ban) -> list[Case]:
    """Every fail2ban_facts case; one that needs other answers has a client of its own."""
    f2b.answer()
    cases = [Case("fake-client", FAIL2BAN, f2b.args())]
    cases += [Case(name, FAIL2BAN, f2b.args(**args)) for name, args, _names in F2B_ARG_CASES]
    cases += [Case(f"client-{kind}", FAIL2BAN, f2b.args(client=f2b.bad[kind])) for kind in CLIENT_KINDS]
    cases.append(Case("config-dir-file", FAIL2BAN, f2b.args(config_dir=str(f2b.client))))
    for command in HUNG_CALLS:
        client = f2b.answer(f"hung-{command}", **{command.replace(" ", "_"): {"sleep": 600}})
        cases.append(Case(f"hung-{command}", FAIL2BAN, f2b.args(client=client, command_timeout=2)))
    cases.append(Case("flood", FAIL2BAN, f2b.args(client=f2b.answer("flood", status={"flood": True}))))
    for name, answers, _names in F2B_OUTPUT_CASES:
        cases.append(Case(name, FAIL2BAN, f2b.args(client=f2b.answer(name, **answers))))
    for kind in DBFILE_KINDS:
        answer = {"stdout": b"Current database file is:\n`- %s\n" % f2b.bad[kind].encode()}
        client = f2b.answer(f"dbfile-{kind}", get_dbfile=answer)
        cases.append(Case(f"dbfile-{kind}", FAIL2BAN, f2b.args(client=client, history=True)))
    return cases


# jail_log_facts


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+0000")


def log_directory(directory: Path) -> dict[str, str]:
    """auth.log with a fresh line, next to the hostile files (returned)."""
    bad = hostile_files(directory)
    (directory / "auth.log").write_text(f"{stamp(time.time() - 60)}  localhost sshd[812]: Connection closed\n")
    return bad


@pytest.fixture
def logs(tmp_path):
    directory = tmp_path / "logs"
    return directory, log_directory(directory)


NOT_REGULAR = [("fifo", "not a regular file"), ("zero", "not a regular file"), ("link", "is a symbolic link"),
               ("dir", "not a regular file")]  # fmt: skip


@pytest.mark.parametrize("kind, reason", NOT_REGULAR)
def test_jail_log_facts_refuses_paths_that_are_not_regular_files(batches, kind, reason):
    path = batches.bad_logs[kind]
    batches.logs.refused(f"paths-{kind}", f"log file {path}", reason)


def test_jail_log_facts_refuses_a_socket(batches):
    """The socket is bound, and held, by the batch fixture while the cases run."""
    path = batches.log_dir / "sock"
    batches.logs.refused("socket", f"log file {path} is not a regular file")


LOG_ARG_CASES = [
    ("relative-path", {"paths": ["auth.log"]}, ("log path 'auth.log' is not an absolute path",)),
    ("escape-path", {"paths": ["/var/log/\x1b[2Jauth.log"]}, ("log path", "contains a control character")),
    ("too-many-paths", {"paths": ["/var/log/a%d.log" % n for n in range(100)]},
     ("paths has 100 entries, at most 64",)),
    ("dict-paths", {"paths": {"a": "/var/log/auth.log"}}, ("paths",)),
    ("empty-process", {"processes": ["sshd", ""]}, ("process name '' must be",)),
    ("bracket-process", {"processes": ["sshd[1]"]}, ("process name 'sshd[1]' must be",)),
    ("hostname-probe", {"probe_host": "localhost"}, ("probe_host 'localhost' is not an IP address",)),
    ("huge-wait", {"wait": 100000}, ("wait must be 0 to 600, got 100000",)),
    ("huge-tail", {"tail_bytes": 2**40}, ("tail_bytes must be 0 to 16777216, got 1099511627776",)),
    ("zero-port", {"probe_port": 0}, ("probe_port must be 1 to 65535, got 0",)),
]  # fmt: skip


@pytest.mark.parametrize("args, names", [c[1:] for c in LOG_ARG_CASES], ids=[c[0] for c in LOG_ARG_CASES])
def test_jail_log_facts_refuses_bad_arguments(request, batches, args, names):
    batches.logs.refused(request.node.callspec.id, *names)


def test_jail_log_facts_does_not_count_future_lines_as_fresh(logs):
    directory, _bad = logs
    log = directory / "auth.log"
    old = time.time() - 3600
    log.write_text(f"{stamp(old)}  localhost sshd[1]: Accepted publickey for admin\n"
                   f"{stamp(time.time() + 86400)}  localhost sshd[2]: planted tomorrow\n"
                   "2099-01-01 00:00:00.000000+0000  localhost sshd-session[3]: planted far ahead\n")  # fmt: skip
    before = snapshot(directory)
    rc, result = run_module(JAIL_LOG, {"paths": [str(log)], "probe": False})
    assert rc == 0, result
    facts = result["ansible_facts"]["jail_log"]
    assert facts["newest"]["line"].endswith("Accepted publickey for admin")
    assert facts["newest"]["age"] > 3500
    assert [line["line"].rsplit(": ", 1)[1] for line in facts["future_lines"]] == ["planted tomorrow",
                                                                                  "planted far ahead"]  # fmt: skip
    assert snapshot(directory) == before


def test_jail_log_facts_reads_bytes_that_are_not_utf8_as_text(logs):
    directory, _bad = logs
    log = directory / "auth.log"
    log.write_bytes(f"{stamp(time.time() - 5)}  localhost sshd[1]: Invalid user ".encode() + b"\xff\xfe\x00 from x\n")
    rc, result = run_module(JAIL_LOG, {"paths": [str(log)], "probe": False})
    assert rc == 0, result
    assert result["ansible_facts"]["jail_log"]["newest"]["line"].endswith("Invalid user \ufffd\ufffd\x00 from x")


def test_refusals_carry_no_traceback_even_for_ansible_type_errors(batches):
    batches.logs.refused("text-wait", "wait")


def log_cases(directory: Path, bad: dict[str, str]) -> list[Case]:
    log = str(directory / "auth.log")
    base = {"paths": [log], "probe": False}
    cases = [Case(f"paths-{kind}", JAIL_LOG, {**base, "paths": [log, bad[kind]]}) for kind, _reason in NOT_REGULAR]
    cases.append(Case("socket", JAIL_LOG, {**base, "paths": [str(directory / "sock")]}))
    cases += [Case(name, JAIL_LOG, {**base, **args}) for name, args, _names in LOG_ARG_CASES]
    return cases + [Case("text-wait", JAIL_LOG, {**base, "wait": "a while"})]


@pytest.fixture(scope="module")
def batches(server, tmp_path_factory):
    """Every case of this file in three batches run side by side, one per module, each watching
    its own root (afctl's Server.app root, fail2ban's prefix, the log directory)."""
    f2b = Fail2ban(tmp_path_factory.mktemp("fail2ban") / "prefix")
    log_dir = tmp_path_factory.mktemp("logs") / "logs"
    bad_logs = log_directory(log_dir)
    whitelist = str(server.path("/var/db/af/whitelist"))
    assert server.whitelist() == [SEEDED]
    seeded = hashlib.sha256(server.whitelist_bytes()).hexdigest()
    with socket.socket(socket.AF_UNIX) as holder:
        holder.bind(str(log_dir / "sock"))
        afctl = afctl_cases(server, tmp_path_factory.mktemp("lines"))
        runs = dict(
            afctl=Batch(tmp_path_factory.mktemp("afctl-playbook"), afctl, watched=[server.root]),
            f2b=Batch(tmp_path_factory.mktemp("fail2ban-playbook"), f2b_cases(f2b), watched=[f2b.root]),
            logs=Batch(tmp_path_factory.mktemp("logs-playbook"), log_cases(log_dir, bad_logs), watched=[log_dir]),
        )
        wait_all(*runs.values(), timeout=1200)
    return SimpleNamespace(**runs, server=server, whitelist=whitelist, seeded=seeded, fail2ban=f2b, log_dir=log_dir,
                           bad_logs=bad_logs)  # fmt: skip
