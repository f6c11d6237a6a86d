# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""module_utils/launchd: label and path checks, the plist reader, and the strict parsers of `launchctl print`
and `launchctl print-disabled`, fed output in the shapes docs/reference/macos.md records (the lab's emulated
launchctl prints the same)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import plistlib

import pytest
from ansible_collections.pfguard.macos.plugins.module_utils import launchd

LABEL = "org.pfguard.test"

# The lab emulator's shape of a running KeepAlive job (docs/reference/macos.md#launchctl-print).
RUNNING = """system/org.pfguard.test = {
\tactive count = 1
\tpath = /Library/LaunchDaemons/org.pfguard.test.plist
\ttype = LaunchDaemon
\tstate = running

\tprogram = /bin/sh
\targuments = {
\t\t/bin/sh
\t\t-c
\t\texec sleep 600
\t}

\tdefault environment = {
\t\tPATH => /usr/bin:/bin:/usr/sbin:/sbin
\t}

\tenvironment = {
\t\tXPC_SERVICE_NAME => org.pfguard.test
\t}

\tdomain = system
\tminimum runtime = 10
\texit timeout = 5
\truns = 1
\tpid = 4242
\tlast exit code = (never exited)

\tspawn type = daemon (3)
\tproperties = keepalive | runatload
}
"""

# A macOS-shaped job that was killed: nested blocks (coalitions, event triggers with `=> {`, sockets) hold
# lines such as `state = active` that are not the job's, and the signal line replaces the exit code line.
KILLED = """system/org.pfguard.test = {
\tactive count = 0
\tpath = /Library/LaunchDaemons/org.pfguard.test.plist
\ttype = LaunchDaemon
\tstate = not running

\tprogram = /usr/local/bin/helper
\targuments = {
\t\t/usr/local/bin/helper
\t\t}
\t}

\tinherited environment = {
\t}

\tdomain = system
\tminimum runtime = 10
\texit timeout = 30
\truns = 7
\tchecked allocations = 0 (queried = 1)
\tlast terminating signal = Terminated: 15

\tevent triggers = {
\t\torg.pfguard.test.watch => {
\t\t\tkeepalive = 0
\t\t\tdescriptor = {
\t\t\t\t"Path" => "/var/log/pfguard"
\t\t\t}
\t\t}
\t}

\tresource coalition = {
\t\tID = 1114
\t\ttype = resource
\t\tstate = active
\t\tactive count = 1
\t}

\tspawn type = daemon (3)
\tjetsam memory limit (active) = (unlimited)
\tproperties = inferred program
}
"""


def test_parse_print_reads_the_top_level_fields_of_a_running_job():
    assert launchd.parse_print(RUNNING, LABEL) == dict(
        state="running", path="/Library/LaunchDaemons/org.pfguard.test.plist", pid=4242, runs=1,
        last_exit_code=None, last_signal=None,
    )  # fmt: skip


def test_parse_print_skips_nested_blocks_and_reads_the_signal():
    assert launchd.parse_print(KILLED, LABEL) == dict(
        state="not running", path="/Library/LaunchDaemons/org.pfguard.test.plist", pid=None, runs=7,
        last_exit_code=None, last_signal=15,
    )  # fmt: skip


@pytest.mark.parametrize("line, code", [("0", 0), ("78: EX_CONFIG", 78), ("1", 1), ("-1", -1)])
def test_parse_print_reads_exit_codes(line, code):
    text = RUNNING.replace("\tlast exit code = (never exited)", "\tlast exit code = %s" % line)
    assert launchd.parse_print(text, LABEL)["last_exit_code"] == code


@pytest.mark.parametrize(
    "text, named",
    [
        (RUNNING.replace("system/org.pfguard.test", "system/org.pfguard.other"), "system/org.pfguard.other = {"),
        ("", "(no output)"),
        ("Bad request.\n", "Bad request."),
        (RUNNING.replace("\tpid = 4242", "\tpid = 42a"), "\tpid = 42a"),
        (RUNNING.replace("\truns = 1", "\truns = many"), "\truns = many"),
        (RUNNING.replace("\tpid = 4242", "pid = 4242"), "pid = 4242"),
        (RUNNING.replace("\tpid = 4242", "\tpid 4242"), "\tpid 4242"),
        (RUNNING.replace("\tpid = 4242", "\t\tpid = 4242"), "\t\tpid = 4242"),
        (RUNNING.replace("last exit code = (never exited)", "last exit code = soon"), "last exit code = soon"),
        (RUNNING.replace("\t\t-c\n", "\t-c\n"), "\t-c"),
        (RUNNING.replace("\t}\n\n\tdefault", "\n\tdefault"), "\tdefault environment = {"),
        (RUNNING.replace("\tproperties = keepalive | runatload", "\tproperties = {\n\t\tkeepalive"),
         "(a block is not closed)"),
        (RUNNING[: -len("}\n")], "does not end with '}'"),
        (RUNNING.replace("\tstate = running\n", ""), "(no 'state = ' line)"),
        (RUNNING.replace("\tdomain = system", "\tdomain = system\x1b[2J\n\x00junk"), "\x00junk"),
    ],
    ids=["other-label", "empty", "bad-request", "pid", "runs", "unindented", "no-equals", "too-deep", "exit-code",
         "argument-out-of-block", "unclosed", "unclosed-at-end", "no-closing-brace", "no-state", "control-characters"],
)  # fmt: skip
def test_parse_print_refuses_what_launchctl_does_not_print_naming_the_line(text, named):
    with pytest.raises(ValueError) as caught:
        launchd.parse_print(text, LABEL)
    assert named in str(caught.value)


DISABLED_NEW = """disabled services = {
\t"com.apple.ftpd" => disabled
\t"org.pfguard.test" => disabled
\t"com.apple.mdmclient.daemon.runatboot" => enabled
}

login item associations = {
\t"com.example.helper" => {
\t\t"com.example.app"
\t}
}
"""
DISABLED_OLD = 'disabled services = {\n\t"com.apple.ftpd" => true\n\t"org.pfguard.test" => false\n}\n'
# Some releases indent the whole listing after a blank line; login items map to file-list references.
DISABLED_INDENTED = """
\tdisabled services = {
\t\t"com.apple.ftpd" => disabled
\t\t"org.pfguard.test" => enabled
\t}

\tlogin item associations = {
\t\t"com.example.helper" => <LSSharedFileListItemSR:0x600002c0a1c2>
\t}
"""


def test_parse_print_disabled_reads_both_formats_and_skips_other_blocks():
    assert launchd.parse_print_disabled(DISABLED_NEW) == {
        "com.apple.ftpd": True, "org.pfguard.test": True, "com.apple.mdmclient.daemon.runatboot": False,
    }  # fmt: skip
    assert launchd.parse_print_disabled(DISABLED_OLD) == {"com.apple.ftpd": True, "org.pfguard.test": False}
    assert launchd.parse_print_disabled(DISABLED_INDENTED) == {"com.apple.ftpd": True, "org.pfguard.test": False}
    assert launchd.parse_print_disabled("disabled services = {\n}\n") == {}


@pytest.mark.parametrize(
    "text, named",
    [
        ('disabled services = {\n\t"org.pfguard.test" => maybe\n}\n', '"org.pfguard.test" => maybe'),
        ('disabled services = {\n"org.pfguard.test" => disabled\n}\n', '"org.pfguard.test" => disabled'),
        ('disabled services = {\n\t"a" => disabled "b" => enabled\n}\n', '"a" => disabled "b" => enabled'),
        ('disabled services = {\n\t"a" => disabled\n}\n}\n', "}"),
        ("disabled services = {\n\torg.pfguard.test => disabled\n}\n", "org.pfguard.test => disabled"),
        ('disabled services = {\n\t"org.pfguard.test" => disabled\n', "(a block is not closed)"),
        ("Usage: launchctl print-disabled <domain-target>\n", "Usage: launchctl print-disabled"),
        ("", "(no 'disabled services = {' block)"),
        ("login item associations = {\n}\n", "(no 'disabled services = {' block)"),
        ("login item associations = {\nstray\n}\ndisabled services = {\n}\n", "stray"),
    ],
    ids=[
        "value",
        "unindented",
        "two-on-a-line",
        "extra-brace",
        "unquoted",
        "unclosed",
        "usage",
        "empty",
        "no-block",
        "stray-line",
    ],
)
def test_parse_print_disabled_refuses_what_launchctl_does_not_print(text, named):
    with pytest.raises(ValueError) as caught:
        launchd.parse_print_disabled(text)
    assert named in str(caught.value)


@pytest.mark.parametrize("override, spec, enabled", [
    (None, None, True), (None, {}, True), (None, {"Disabled": True}, False), (None, {"Disabled": False}, True),
    (True, {"Disabled": False}, False), (False, {"Disabled": True}, True), (True, None, False),
])  # fmt: skip
def test_the_store_wins_over_the_disabled_key(override, spec, enabled):
    assert launchd.effective_enabled(override, spec) is enabled


@pytest.mark.parametrize("label", ["org.pfguard.pf", "com.apple.pfctl", "a", "org.pfguard.logstream-reopen",
                                   "x_y.Z9", "1password.helper", "a" * 255])  # fmt: skip
def test_labels_accepted(label):
    assert launchd.check_label(label) is None


@pytest.mark.parametrize(
    "label",
    [
        "",
        "-w",
        ".hidden",
        "org/pfguard",
        "org.pfguard pf",
        "org.pfguard;reboot",
        "system/org.pfguard",
        "org.pfguard\n",
        "\u00e9t\u00e9",
        '"x"',
        "a" * 256,
        None,
        5,
    ],
)
def test_labels_refused_naming_the_value(label):
    problem = launchd.check_label(label)
    assert problem and repr(label) in problem


def write_plist(path, spec, mode=0o644, fmt=plistlib.FMT_XML):
    path.write_bytes(plistlib.dumps(spec, fmt=fmt))
    path.chmod(mode)
    return str(path)


@pytest.fixture
def owner(monkeypatch):
    """The tests' own uid and gid stand for root:wheel (the default is checked below)."""
    assert launchd.PLIST_OWNER == (0, 0)
    monkeypatch.setattr(launchd, "PLIST_OWNER", (os.getuid(), os.getgid()))


def test_read_job_plist_returns_the_definition(tmp_path, owner):
    spec = {"Label": LABEL, "ProgramArguments": ["/bin/true"], "Disabled": True}
    assert launchd.read_job_plist(write_plist(tmp_path / "a.plist", spec), LABEL) == spec
    binary = write_plist(tmp_path / "b.plist", spec, fmt=plistlib.FMT_BINARY)
    assert launchd.read_job_plist(binary, LABEL) == spec
    assert launchd.read_job_plist(str(tmp_path / "missing.plist"), LABEL) is None


def test_read_job_plist_refuses_unsafe_or_wrong_files(tmp_path, owner):
    good = write_plist(tmp_path / "good.plist", {"Label": LABEL, "Program": "/bin/true"})
    link = tmp_path / "link.plist"
    link.symlink_to(good)
    fifo = tmp_path / "fifo.plist"
    os.mkfifo(str(fifo))
    cases = {
        str(link): "is a symbolic link",
        str(fifo): "is not a regular file (it is a FIFO)",
        str(tmp_path): "is not a regular file (it is a directory)",
        "/dev/zero": "is not a regular file (it is a character device)",
        "Library/LaunchDaemons/x.plist": "is not an absolute path",
        "/tmp/x\n.plist": "contains a control character",
        write_plist(tmp_path / "gw.plist", {"Label": LABEL}, mode=0o664): "has mode 0664",
        write_plist(tmp_path / "ow.plist", {"Label": LABEL}, mode=0o646): "has mode 0646",
        write_plist(tmp_path / "other.plist", {"Label": "org.pfguard.other"}): "has Label 'org.pfguard.other', not",
        write_plist(tmp_path / "nolabel.plist", {"Program": "/bin/true"}): "has Label None",
        write_plist(tmp_path / "array.plist", [LABEL]): "does not hold a dictionary",
        write_plist(tmp_path / "dis.plist", {"Label": LABEL, "Disabled": "yes"}): "Disabled must be a boolean",
    }
    garbage = tmp_path / "garbage.plist"
    garbage.write_bytes(b"<?xml version='1.0'?><plist><dict><key>Label</key>")
    cases[str(garbage)] = "is not a property list launchd can read"
    entity = tmp_path / "entity.plist"
    entity.write_bytes(b'<?xml version="1.0"?><!DOCTYPE plist [<!ENTITY a "aaaa">]><plist><string>&a;</string></plist>')
    cases[str(entity)] = "is not a property list launchd can read"
    huge = tmp_path / "huge.plist"
    huge.write_bytes(b" " * (launchd.PLIST_READ_LIMIT + 1))
    cases[str(huge)] = "is larger than 1048576 bytes"
    for path, reason in cases.items():
        with pytest.raises(launchd.PlistProblem) as caught:
            launchd.read_job_plist(path, LABEL)
        assert path in str(caught.value) or repr(path) in str(caught.value), caught.value
        assert reason in str(caught.value), (path, caught.value)


def test_read_job_plist_requires_root_wheel(tmp_path):
    path = write_plist(tmp_path / "a.plist", {"Label": LABEL})
    if os.getuid() == 0:
        assert launchd.read_job_plist(path, LABEL) == {"Label": LABEL}  # root's files are 0:0
        os.chown(path, 1, 0)
    with pytest.raises(launchd.PlistProblem) as caught:
        launchd.read_job_plist(path, LABEL)
    assert "is owned by uid" in str(caught.value) and "root:wheel (0:0)" in str(caught.value)


def test_launchctl_path_must_be_an_executable_regular_file(tmp_path):
    tool = tmp_path / "launchctl"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert launchd.check_launchctl_path(str(tool)) is None
    tool.chmod(0o644)
    assert launchd.check_launchctl_path(str(tool)) == "launchctl not found or not executable at %s" % tool
    assert "not found or not executable at /dev/null" in launchd.check_launchctl_path("/dev/null")
    assert "is not an absolute path" in launchd.check_launchctl_path("bin/launchctl")
    assert "contains a control character" in launchd.check_launchctl_path("/bin/launch\tctl")


def test_failures_quote_launchctl_and_add_a_hint():
    message = launchd.describe_failure(["/bin/launchctl", "bootstrap", "system", "/x.plist"], 119, "",
                                       "Bootstrap failed: 119: Service is disabled\n")  # fmt: skip
    assert message == (
        "/bin/launchctl bootstrap system /x.plist failed (exit 119): Bootstrap failed: 119: Service is disabled; "
        "the job is disabled in launchd's store (launchctl enable system/LABEL)"
    )
    two_lines = launchd.describe_failure(["launchctl", "bootstrap"], 5, "",
                                         "Bootstrap failed: 5: Input/output error\nTry re-running the command as root "
                                         "for richer errors.\n")  # fmt: skip
    assert "Input/output error / Try re-running the command as root" in two_lines
