# SPDX-License-Identifier: GPL-3.0-or-later
"""logd (/dev/log collector) and /usr/bin/log against docs/reference/macos.md#unified-log."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import time

import pytest
from pfguard_lab import commands, fail2ban_dist
from ulog_fixtures import Logd, LogStream, lab_env, make_root, remove_root

SYSLOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}[+-]\d{4}  localhost (?P<process>[\w-]+)\[(?P<pid>\d+)\]: (?P<msg>.+)$"
)
SYSLOG_HEADER = "Timestamp                       (process)[PID]"

FAILED = "Failed password for root from 198.51.100.200 port 40000 ssh2"
ACCEPTED = "Accepted publickey for admin from 198.51.100.1 port 40001 ssh2: ED25519 SHA256:abc"
PAM_ERROR = "error: PAM: authentication error for root from 198.51.100.200"
LISTENING = "Server listening on 0.0.0.0 port 22."  # the listener's own line: sshd on every version


def sshd(message: str, severity: int = 6, pid: int = 4242) -> str:
    """A datagram as glibc's syslog(3) sends it from sshd (facility auth = 4)."""
    return f"<{4 * 8 + severity}>{time.strftime('%b %e %H:%M:%S')} sshd[{pid}]: {message}"


@pytest.fixture
def host(request):
    """(root, logd) for a Mac whose host.json says `request.param` (default 15.1)."""
    root = make_root(getattr(request, "param", "15.1"))
    logd = None
    try:
        logd = Logd(root)
        yield root, logd
    finally:
        if logd is not None:
            logd.stop()
        remove_root(root)


def run_log(root, *args, timeout=20) -> subprocess.CompletedProcess:
    wrapper = commands.write_wrapper(root / "usr/bin/log", "pfguard_lab.emulators.unifiedlog.log_cmd")
    return subprocess.run([str(wrapper), *args], env=lab_env(root), capture_output=True, text=True, timeout=timeout)


# --- logd ---------------------------------------------------------------------------------------


def test_logd_replaces_stale_socket_and_binds_world_writable():
    root = make_root("14.6")
    logd = None
    try:
        stale = root / "dev/log"
        stale.parent.mkdir(parents=True)
        stale.write_text("left over from the previous boot")
        logd = Logd(root)
        mode = stale.lstat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o666
    finally:
        if logd is not None:
            logd.stop()
        assert not (root / "dev/log").exists(), "logd removes its socket on SIGTERM"
        remove_root(root)


@pytest.mark.parametrize("host", ["14.6"], indirect=True)
def test_logd_parses_syslog_datagrams_with_and_without_timestamp(host):
    root, logd = host
    logd.send("<38>Nov 22 10:00:00 sshd[123]: first with timestamp")
    logd.send("<35>sshd[124]: second without timestamp")  # auth.err
    logd.send("<13>plain message without a tag")  # user.notice, pid from SO_PASSCRED
    logd.send("<15>Nov  2 03:04:05 cron[77]: debug line\n")  # user.debug, trailing newline dropped
    logd.send("<10>kernel[0]: critical thing")  # user.crit
    records = logd.wait_records(5)
    assert [r["message"] for r in records] == [
        "first with timestamp", "second without timestamp", "plain message without a tag", "debug line",
        "critical thing",
    ]  # fmt: skip
    assert [r["level"] for r in records] == ["info", "error", "default", "debug", "error"]
    assert [r["pid"] for r in records[:2]] == [123, 124]
    assert records[2]["pid"] > 0, "the sender's pid comes from the socket credentials"
    first = records[0]
    assert set(first) >= {"ts", "tz", "process", "pid", "sender", "image", "subsystem", "category", "level"}
    assert (first["process"], first["sender"], first["image"]) == ("sshd", "sshd", "/usr/sbin/sshd")
    assert re.fullmatch(r"[+-]\d{4}", first["tz"])
    assert abs(first["ts"] - time.time()) < 30


@pytest.mark.parametrize("host", ["15.1"], indirect=True)
def test_logd_accepts_logger(host):
    root, logd = host
    logger = shutil.which("logger")
    assert logger, "util-linux logger is part of the lab's packages"
    subprocess.run([logger, "--socket", str(logd.socket_path), "-t", "sshd", "-p", "auth.info", FAILED], check=True)
    subprocess.run(
        [logger, "--socket", str(logd.socket_path), "--rfc5424", "-t", "sshd", "-p", "auth.notice", LISTENING],
        check=True,
    )
    records = logd.wait_records(2)
    assert [(r["process"], r["level"], r["message"]) for r in records] == [
        ("sshd-session", "info", FAILED),
        ("sshd", "default", LISTENING),
    ]


# (message, its process on macOS 26 / OpenSSH 10.0). On macOS 15 (OpenSSH 9.8) sshd-auth's lines are
# sshd-session's (there is no sshd-auth before 10.0); before 15 everything is sshd.
SSHD_CASES = [
    (FAILED, "sshd-auth"),
    ("Invalid user oracle from 198.51.100.200 port 40002", "sshd-auth"),
    (PAM_ERROR, "sshd-auth"),
    ("Failed keyboard-interactive/pam for invalid user bob from 198.51.100.200 port 1 ssh2", "sshd-auth"),
    ("Connection closed by authenticating user root 198.51.100.200 port 40003 [preauth]", "sshd-auth"),
    ("Disconnected from authenticating user root 198.51.100.200 port 40004 [preauth]", "sshd-auth"),
    ("error: maximum authentication attempts exceeded for root from 198.51.100.200 port 5 ssh2 [preauth]",
     "sshd-auth"),
    ("Postponed keyboard-interactive for root from 198.51.100.200 port 6 ssh2 [preauth]", "sshd-auth"),
    (ACCEPTED, "sshd-session"),
    ("pam_unix(sshd:session): session opened for user admin(uid=501) by (uid=0)", "sshd-session"),
    ("Received disconnect from 198.51.100.1 port 40001:11: disconnected by user", "sshd-session"),
    (LISTENING, "sshd"),
    ("Received signal 15; terminating.", "sshd"),
]  # fmt: skip
IMAGES = {"sshd": "/usr/sbin/sshd", "sshd-session": "/usr/libexec/sshd-session", "sshd-auth": "/usr/libexec/sshd-auth"}


def expected_process(process_on_26: str, os_version: str) -> str:
    major = int(os_version.split(".")[0])
    if major < 15:
        return "sshd"
    return "sshd-session" if process_on_26 == "sshd-auth" and major < 26 else process_on_26


@pytest.mark.parametrize("host", ["14.6", "15.1", "15.7", "26.0", "26.2"], indirect=True)
def test_sshd_attribution_follows_the_macos_version(host):
    root, logd = host
    os_version = json.loads((root / "var/db/.pfguard-lab/host.json").read_text())["os_version"]
    for message, _ in SSHD_CASES:
        logd.send(sshd(message))
    records = logd.wait_records(len(SSHD_CASES))
    assert len(records) == len(SSHD_CASES)
    processes = set()
    for record, (message, process_on_26) in zip(records, SSHD_CASES):
        expected = expected_process(process_on_26, os_version)
        processes.add(expected)
        assert record["message"] == message
        assert (record["process"], record["sender"], record["image"]) == (expected, expected, IMAGES[expected])
    assert processes == {"14": {"sshd"}, "15": {"sshd", "sshd-session"}}.get(
        os_version.split(".")[0], {"sshd", "sshd-session", "sshd-auth"}
    )


# --- log stream ---------------------------------------------------------------------------------

PREDICATES = {
    'process == "sshd"': {"14.6": "all", "15.1": "listener"},
    '(sender == "sshd")': {"14.6": "all", "15.1": "listener"},
    'processImagePath contains "sshd"': {"14.6": "all", "15.1": "all"},
    'process IN {"sshd","sshd-session","sshd-auth"}': {"14.6": "all", "15.1": "all"},
}


@pytest.mark.parametrize("predicate", list(PREDICATES))
@pytest.mark.parametrize("host", ["14.6", "15.1"], indirect=True)
def test_stream_predicates_from_the_references(host, predicate):
    root, logd = host
    os_version = json.loads((root / "var/db/.pfguard-lab/host.json").read_text())["os_version"]
    logd.send(sshd("Failed password for old from 198.51.100.9 port 1 ssh2"))  # before the stream: never shown
    logd.wait_records(1)
    stream = LogStream(root, ["--info", "--style", "syslog", "--predicate", predicate])
    try:
        stream.wait_for(lambda line: line == SYSLOG_HEADER)
        for message, severity in ((FAILED, 6), (ACCEPTED, 6), (PAM_ERROR, 3), (LISTENING, 5)):
            logd.send(sshd(message, severity))
        lines = stream.wait_for(lambda line: line.endswith(LISTENING))
    finally:
        rc, stderr = stream.stop()
    assert rc == 0, stderr
    canonical = predicate.strip("()").replace("contains", "CONTAINS").replace('","', '", "')
    assert lines[0] == f'Filtering the log data using "{canonical}"'
    assert lines[1] == SYSLOG_HEADER
    entries = [SYSLOG_LINE.match(line) for line in lines[2:]]
    assert all(entries), lines
    shown = [(m["process"], m["msg"]) for m in entries]
    if PREDICATES[predicate][os_version] == "listener":
        assert shown == [("sshd", LISTENING)]
    elif os_version.startswith("14"):
        assert shown == [("sshd", FAILED), ("sshd", ACCEPTED), ("sshd", PAM_ERROR), ("sshd", LISTENING)]
    else:
        assert shown == [("sshd-session", FAILED), ("sshd-session", ACCEPTED), ("sshd-session", PAM_ERROR),
                         ("sshd", LISTENING)]  # fmt: skip


@pytest.mark.parametrize("host", ["14.6"], indirect=True)
def test_stream_hides_info_unless_asked(host):
    root, logd = host
    plain = LogStream(root, ["--style", "syslog"])
    leveled = LogStream(root, ["--style", "syslog", "--level", "info"])
    try:
        for stream in (plain, leveled):
            stream.wait_for(lambda line: line == SYSLOG_HEADER)
        logd.send(sshd(FAILED, 6))
        logd.send(sshd("a debug line", 7))
        logd.send(sshd(PAM_ERROR, 3))
        logd.send(sshd(LISTENING, 5))
        plain_lines = plain.wait_for(lambda line: line.endswith(LISTENING))
        leveled_lines = leveled.wait_for(lambda line: line.endswith(LISTENING))
    finally:
        plain.stop()
        leveled.stop()
    assert [line.split(": ", 1)[1] for line in plain_lines[1:]] == [PAM_ERROR, LISTENING]
    assert [line.split(": ", 1)[1] for line in leveled_lines[1:]] == [FAILED, PAM_ERROR, LISTENING]


@pytest.mark.parametrize("host", ["26.2"], indirect=True)
def test_stream_timeout_and_process_filter(host):
    root, logd = host
    started = time.monotonic()
    stream = LogStream(root, ["--style", "ndjson", "--info", "--process", "sshd-auth", "--timeout", "2s"])
    try:
        time.sleep(0.5)  # time for the stream to connect to logd: a line sent before that is never shown
        logd.send(sshd(FAILED))
        logd.send(sshd(ACCEPTED))
        stream.process.wait(timeout=10)
    finally:
        rc, stderr = stream.stop()
    assert rc == 0, stderr
    assert 1.5 < time.monotonic() - started < 9
    objects = [json.loads(line) for line in stream.snapshot()]
    assert [(o["processImagePath"], o["eventMessage"], o["messageType"]) for o in objects] == [
        ("/usr/libexec/sshd-auth", FAILED, "Info")
    ]


# --- log show -----------------------------------------------------------------------------------


def write_records(root, records):
    store = root / "var/db/diagnostics/pfguard-lab.jsonl"
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store, "a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def record(message, age_seconds, level="info", process="sshd-auth"):
    image = IMAGES[process]
    return {"ts": time.time() - age_seconds, "tz": "-0700", "process": process, "pid": 900, "sender": process,
            "image": image, "subsystem": "", "category": "", "level": level, "message": message}  # fmt: skip


def test_show_last_levels_and_footer():
    root = make_root("15.1")
    try:
        write_records(root, [record("an hour ago", 3600), record("just now", 5), record("an error", 4, "error")])
        recent = run_log(root, "show", "--style", "syslog", "--last", "5m", "--info")
        assert recent.returncode == 0, recent.stderr
        lines = recent.stdout.splitlines()
        assert lines[0] == "Skipping debug messages, pass --debug to include."
        assert lines[1] == SYSLOG_HEADER
        assert [SYSLOG_LINE.match(line)["msg"] for line in lines[2:4]] == ["just now", "an error"]
        assert lines[2].split("  ")[0].endswith("-0700")
        assert lines[4] == "-" * 116
        assert lines[5] == ("Log      - Default:          0, Info:                1, Debug:             0, "
                            "Error:          1, Fault:          0")  # fmt: skip
        assert lines[6] == "Activity - Create:           0, Transition:          0, Actions:           0"
        everything = run_log(root, "show", "--style", "syslog", "--last=2h", "--info")
        assert "an hour ago" in everything.stdout
        default_level = run_log(root, "show", "--style", "syslog", "--last", "1h")
        assert "Skipping info and debug messages, pass --info and/or --debug to include." in default_level.stdout
        assert "just now" not in default_level.stdout and "an error" in default_level.stdout
        columns = run_log(root, "show", "--last", "1m")
        assert columns.stdout.splitlines()[1].startswith("Timestamp                       Thread     Type")
        assert re.search(r"^\S+ \S+ 0x384\s+Error\s+0x0\s+900\s+0\s+sshd-auth: an error$", columns.stdout, re.M)
    finally:
        remove_root(root)


def test_show_json_styles_and_predicate_operators():
    root = make_root("15.1")
    try:
        write_records(root, [record(FAILED, 5), record(ACCEPTED, 4, process="sshd-session"),
                             record("Server listening", 3, level="default", process="sshd")])  # fmt: skip
        cases = {
            'eventMessage BEGINSWITH[c] "failed"': [FAILED],
            "processImagePath ENDSWITH 'sshd'": ["Server listening"],
            'process LIKE "sshd-*" AND NOT eventMessage CONTAINS "publickey"': [FAILED],
            'eventMessage MATCHES ".*198\\\\.51\\\\.100\\\\.1 .*"': [ACCEPTED],
            "messageType == info && processIdentifier == 900": [FAILED, ACCEPTED],
            'process == "nope" || messageType == default': ["Server listening"],
            'senderImagePath CONTAINS[cd] "SSHD-SESSION"': [ACCEPTED],
        }
        for predicate, expected in cases.items():
            result = run_log(root, "show", "--info", "--style", "ndjson", "--predicate", predicate)
            assert result.returncode == 0, (predicate, result.stderr)
            lines = result.stdout.splitlines()
            assert lines[0].startswith("Filtering the log data using ")
            assert [json.loads(line)["eventMessage"] for line in lines[1:]] == expected, predicate
        array = run_log(root, "show", "--info", "--style", "json")
        assert [o["processID"] for o in json.loads(array.stdout)] == [900, 900, 900]
    finally:
        remove_root(root)


@pytest.mark.parametrize(
    ("args", "rc", "stderr"),
    [
        (["show", "--predicate", 'process =='], 64, 'log: invalid predicate:\nUnable to parse the format string'),
        (["stream", "--predicate", 'process == "a" AND'], 64, "log: invalid predicate:"),
        (["show", "--predicate", 'substructure == "x"'], 64, "log: invalid predicate:\nno such field: substructure"),
        (["show", "--predicate", "process == sshd"], 64, "no such field: sshd"),
        (["show", "--predicate", "threadIdentifier == 1"], 1,
         "pfguard-lab: log: predicate key threadIdentifier is not supported by the lab"),
        (["show", "--last", "boot"], 1, "pfguard-lab: log: --last boot is not supported by the lab"),
        (["stream", "--source"], 1, "pfguard-lab: log: option --source is not supported by the lab"),
        (["collect"], 1, "pfguard-lab: log: log collect is not supported by the lab"),
        (["stream", "--bogus"], 64, "log: unrecognized option '--bogus'"),
        (["stream", "--style", "fancy"], 64, "log: Invalid style 'fancy'"),
        ([], 64, "usage:"),
    ],
)
def test_errors(args, rc, stderr):
    root = make_root("15.1")
    try:
        result = run_log(root, *args)
        assert result.returncode == rc
        assert stderr in result.stderr
        assert result.stdout == ""
    finally:
        remove_root(root)


# --- the produced line is what fail2ban parses --------------------------------------------------

# docs/reference/fail2ban.md#sshd-filter: _daemon needs -session and -auth (roles/fail2ban's sshd.local)
MACOS15_DAEMON = '[_daemon="sshd(?:-session|-auth)?"]'
# fail2ban-regex's name for the stock sshd filter: 1.1.0 would take a plain "sshd" for the jail.
FILTER_NAME = {"1.0.2": "sshd", "1.1.0": "filter.d/sshd"}


def fail2ban_regex(version: str, *args: str) -> subprocess.CompletedProcess:
    """That release's real fail2ban-regex with its own configuration (as the brew emulator's keg runs it)."""
    release = fail2ban_dist.release(version)
    assert not release.missing(), f"fail2ban {version} is not in the lab's cache: run `make deps`"
    env = dict(os.environ, LC_ALL="C.UTF-8")
    if release.python_path:
        env["PYTHONPATH"] = release.python_path
    return subprocess.run([str(release.executable("fail2ban-regex")), "--config", str(release.config_dir), *args],
                          capture_output=True, text=True, timeout=60, env=env, cwd="/tmp")  # fmt: skip


@pytest.mark.parametrize("host", ["14.6", "15.1", "26.2"], indirect=True)
def test_fail2ban_regex_parses_syslog_style_output(host):
    root, logd = host
    os_version = json.loads((root / "var/db/.pfguard-lab/host.json").read_text())["os_version"]
    logd.send(sshd(FAILED))
    logd.wait_records(1)
    shown = run_log(root, "show", "--info", "--style", "syslog", "--predicate", 'processImagePath CONTAINS "sshd"')
    lines = [line for line in shown.stdout.splitlines() if SYSLOG_LINE.match(line)]
    assert len(lines) == 1
    assert SYSLOG_LINE.match(lines[0])["process"] == expected_process("sshd-auth", os_version)
    logfile = root / "sshd.log"
    logfile.write_text(lines[0] + "\n")

    def banned_ips(version, filter_spec):
        result = fail2ban_regex(version, "-o", "ip", str(logfile), filter_spec)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    for version, name in FILTER_NAME.items():
        assert banned_ips(version, name + MACOS15_DAEMON) == ["198.51.100.200"], version
        # Neither release's stock sshd filter sees sshd-session (macOS 15) or sshd-auth (macOS 26): upstream
        # 1.1.0's _daemon is still "sshd" (docs/reference/fail2ban.md#sshd-filter).
        assert banned_ips(version, name) == (["198.51.100.200"] if os_version.startswith("14") else []), version
        verbose = fail2ban_regex(version, str(logfile), name + MACOS15_DAEMON)
        # The default date pattern (datedetector.py) matched the timestamp: one hit on that template.
        assert re.search(r"\[1\] \{\^LN-BEG\}ExYear\(\?P<_sep>\[-/\.\]\)Month", verbose.stdout), verbose.stdout
        assert "Lines: 1 lines, 0 ignored, 1 matched, 0 missed" in verbose.stdout
