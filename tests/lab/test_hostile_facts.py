"""Hostile input for pfguard.macos.afctl, fail2ban_facts and jail_log_facts, each run by real
`ansible localhost`: afctl against the lab's emulated afctl in a Server.app root (as in
test_afctl_module.py), fail2ban_facts against a fake fail2ban-client given by its `client` option
(answering with fail2ban 1.0.2's recorded output, or hanging, flooding or printing garbage), and
jail_log_facts against files in a temp directory.

Every case must be refused with an error naming the bad value, with no traceback, and must leave
the watched files (and afctl's whitelist) exactly as they were. FIFOs and /dev/zero would block or
never end if a module read them, so every test here has a timeout and a hang fails fast."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hostile import assert_refused, refused_without_change, snapshot
from pfguard_lab.adhoc import run_module
from test_afctl_module import Server
from ulog_fixtures import remove_root

pytestmark = pytest.mark.timeout(90)

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


def afctl_refused(server: HostileServer, args: dict, *names: str) -> str:
    base = server.args(whitelist=["192.0.2.1"], block_time=5)
    message = refused_without_change(AFCTL, {**base, **args}, names, [server.root], state=server.whitelist_bytes)
    assert server.whitelist() == [SEEDED]
    return message


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
def test_afctl_refuses_files_it_must_not_read(server, option, kind, reason):
    afctl_refused(server, {option: server.bad[kind]}, option, server.bad[kind], reason)


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
def test_afctl_refuses_bad_arguments(server, args, names):
    afctl_refused(server, args, *names)


def test_afctl_refuses_a_directory_as_afctl(server):
    afctl_refused(server, dict(afctl_path=str(server.root)), "afctl not found or not executable at %s" % server.root)


def test_afctl_hung_command_fails_within_command_timeout_naming_it(server):
    started = time.monotonic()
    afctl_refused(server, dict(afctl_path=server.hung, command_timeout=2),
                  f"{server.hung} -w 192.0.2.1 did not finish within 2 seconds and was killed")  # fmt: skip
    assert time.monotonic() - started < 30


def test_afctl_output_that_is_not_utf8_is_reported_as_text(server):
    message = afctl_refused(server, dict(afctl_path=server.garbled), "-w 192.0.2.1 failed: afctl: \ufffd\ufffd broken")
    assert "\\377" not in message


def test_afctl_that_floods_output_is_killed(server):
    afctl_refused(server, dict(afctl_path=server.flood), f"{server.flood} -w 192.0.2.1 printed more than 1048576 bytes")


@pytest.mark.parametrize(
    "content, named",
    [
        (b"198.51.100.1\n\xff\xfe10.0.0.2\n", "line 2 is not UTF-8 text"),
        (b"198.51.100.1\n-e\n", "line 2 starts with '-'"),
        (b"198.51.100.1\n10.0.0.9\x1b[2J\n", "line 2 holds a control character"),
        (b"198.51.100.1\n" * 100000, "is larger than 1048576 bytes"),
    ],
    ids=["not-utf8", "option", "escape", "oversized"],
)
def test_afctl_refuses_whitelist_lines_it_would_pass_to_afctl(server, content, named):
    whitelist = server.path("/var/db/af/whitelist")
    original = whitelist.read_bytes()
    whitelist.write_bytes(content)
    try:
        base = server.args(whitelist=["192.0.2.1"], whitelist_state="exact")
        refused_without_change(AFCTL, base, (f"whitelist_file {whitelist}", named), [server.root],
                               state=server.whitelist_bytes)  # fmt: skip
    finally:
        whitelist.write_bytes(original)


def test_afctl_check_and_diff_mode_still_work(server):
    before = snapshot(server.root)
    # -vvv: below it the one-line callback drops the diff (and warnings) from what it prints.
    rc, result = run_module(AFCTL, server.args(whitelist=["192.0.2.1"], block_time=5), "--check", "--diff", "-vvv")
    assert rc == 0, result
    assert result["changed"] is True and result["added"] == ["192.0.2.1"]
    assert "  - 192.0.2.1" in result["diff"]["after"] and "block_time: 5" in result["diff"]["after"]
    assert snapshot(server.root) == before


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

    def answer(self, **changes: dict) -> str:
        """Write the client with the running server's answers, `changes` replacing some (by command)."""
        answers = self.running()
        answers.update({command.replace("_", " "): answer for command, answer in changes.items()})
        return script(self.client, CLIENT.format(answers=answers, config_dir=str(self.config_dir)))

    def args(self, **extra) -> dict:
        return {"client": str(self.client), "config_dir": str(self.config_dir), **extra}


@pytest.fixture
def f2b(tmp_path):
    machine = Fail2ban(tmp_path / "prefix")
    machine.answer()
    return machine


def f2b_refused(f2b: Fail2ban, args: dict, *names: str) -> str:
    return refused_without_change(FAIL2BAN, f2b.args(**args), names, [f2b.root])


def jail_status(**replace: str) -> dict:
    stdout = RECORDED["status_sshd_banned"]["stdout"]
    for old, new in replace.items():
        stdout = stdout.replace(old.replace("_", " "), new)
    return {"stdout": stdout.encode()}


def test_fake_client_answers_like_fail2ban(f2b):
    rc, result = run_module(FAIL2BAN, f2b.args())
    assert rc == 0, result
    facts = result["ansible_facts"]["fail2ban"]
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
def test_fail2ban_facts_refuses_bad_arguments(f2b, args, names):
    f2b_refused(f2b, args, *names)


@pytest.mark.parametrize("kind", ["fifo", "zero", "dir"])
def test_fail2ban_facts_refuses_a_client_that_is_not_a_regular_file(f2b, kind):
    path = f2b.bad[kind]
    f2b_refused(f2b, dict(client=path), f"fail2ban-client at {path} is not an executable regular file")


def test_fail2ban_facts_refuses_a_config_dir_that_is_a_file(f2b):
    f2b_refused(f2b, dict(config_dir=str(f2b.client)), f"config_dir {f2b.client} is not a directory")


@pytest.mark.parametrize("command", ["ping 10", "status", "get sshd logpath"])
def test_fail2ban_facts_hung_client_fails_within_command_timeout_naming_the_call(f2b, command):
    f2b.answer(**{command.replace(" ", "_"): {"sleep": 600}})
    started = time.monotonic()
    f2b_refused(f2b, dict(command_timeout=2),
                f"{f2b.client} -c {f2b.config_dir} {command} did not finish within 2 seconds")  # fmt: skip
    assert time.monotonic() - started < 30


def test_fail2ban_facts_flooding_client_is_killed(f2b):
    f2b.answer(status={"flood": True})
    f2b_refused(f2b, {}, f"{f2b.client} -c {f2b.config_dir} status printed more than 33554432 bytes")


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
def test_fail2ban_facts_refuses_output_it_cannot_parse_naming_the_line(f2b, answers, names):
    f2b.answer(**answers)
    f2b_refused(f2b, {}, *names)


@pytest.mark.parametrize("kind", ["fifo", "zero", "link", "dir"])
def test_fail2ban_facts_refuses_a_ban_database_that_is_not_a_regular_file(f2b, kind):
    path = f2b.bad[kind]
    f2b.answer(get_dbfile={"stdout": b"Current database file is:\n`- %s\n" % path.encode()})
    f2b_refused(f2b, dict(history=True), f"the ban database {path} is not a regular file")


# jail_log_facts


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+0000")


@pytest.fixture
def logs(tmp_path):
    directory = tmp_path / "logs"
    bad = hostile_files(directory)
    (directory / "auth.log").write_text(f"{stamp(time.time() - 60)}  localhost sshd[812]: Connection closed\n")
    return directory, bad


def log_refused(directory: Path, args: dict, *names: str) -> str:
    base = {"paths": [str(directory / "auth.log")], "probe": False}
    return refused_without_change(JAIL_LOG, {**base, **args}, names, [directory])


@pytest.mark.parametrize("kind, reason", [("fifo", "not a regular file"), ("zero", "not a regular file"),
                                          ("link", "is a symbolic link"), ("dir", "not a regular file")])  # fmt: skip
def test_jail_log_facts_refuses_paths_that_are_not_regular_files(logs, kind, reason):
    directory, bad = logs
    log_refused(directory, {"paths": [str(directory / "auth.log"), bad[kind]]}, f"log file {bad[kind]}", reason)


def test_jail_log_facts_refuses_a_socket(logs):
    directory, _bad = logs
    path = directory / "sock"
    holder = socket.socket(socket.AF_UNIX)
    try:
        holder.bind(str(path))
        log_refused(directory, {"paths": [str(path)]}, f"log file {path} is not a regular file")
    finally:
        holder.close()


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
def test_jail_log_facts_refuses_bad_arguments(logs, args, names):
    log_refused(logs[0], args, *names)


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


def test_refusals_carry_no_traceback_even_for_ansible_type_errors(logs):
    rc, result = run_module(JAIL_LOG, {"paths": [str(logs[0] / "auth.log")], "wait": "a while"})
    assert_refused(rc, result, "wait")
