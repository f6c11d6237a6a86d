# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""jail_log_facts on `log stream --style syslog` lines (docs/reference/macos.md#unified-log), with a real
loopback listener."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import threading
import time
from datetime import datetime, timezone

import pytest
from ansible_collections.pfguard.macos.plugins.modules import jail_log_facts
from ansible_collections.pfguard.macos.tests.unit.plugins.modules.utils import run_module

# Captured macOS lines (docs/reference/macos.md#sshd-log-samples; the second one shortened), and the header lines
# `log stream` prints first, which are not log lines.
HEADER = 'Filtering the log data using "process IN {"sshd", "sshd-session", "sshd-auth"}"\n' \
         "Timestamp                       (process)[PID]\n"  # fmt: skip
OLD_LINES = (
    "2020-03-24 08:38:42.344447-0700  localhost sshd[2519]: Failed password for user from 172.18.1.100 "
    "port 43042 ssh2\n"
    "2026-09-13 12:31:09.292032-0700 localhost sshd-session[16472]: Accepted publickey for vagrant from 10.211.55.2\n"
)


def no_commands(*args, **kwargs):
    raise AssertionError("jail_log_facts runs no command: %r" % (args,))


def stamp(epoch, zone="+0000"):
    """A line's timestamp as `log stream --style syslog` writes it."""
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f") + zone


def facts(monkeypatch, **args):
    result = run_module(monkeypatch, jail_log_facts, no_commands, args)
    assert not result.get("failed"), result
    assert result["changed"] is False
    return result["ansible_facts"]["jail_log"]


class Sshd(object):
    """A loopback listener that, like sshd, writes a line to the log when a client connects and leaves."""

    def __init__(self, log_path, process="sshd", delay=0.3):
        self.log_path, self.process, self.delay = log_path, process, delay
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.received = b""
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self):
        connection, peer = self.server.accept()
        self.received = connection.recv(100)
        connection.close()
        if self.log_path:
            time.sleep(self.delay)
            with open(self.log_path, "a") as log:
                log.write("%s  localhost %s[812]: Connection closed by %s port %d [preauth]\n"
                          % (stamp(time.time()), self.process, peer[0], peer[1]))  # fmt: skip

    def stop(self):
        self.thread.join(10)
        self.server.close()


def test_newest_sshd_line_and_its_age(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    written = time.time() - 120
    log.write_text(HEADER + OLD_LINES + "%s  localhost sshd-auth[9]: Invalid user git from 185.52.1.9 port 35968\n"
                   % stamp(written) + "%s  localhost screensharingd[5]: Authentication: FAILED\n" % stamp(time.time()))
    result = facts(monkeypatch, paths=[str(log), str(tmp_path / "missing.log")], probe=False)
    assert result["newest"]["path"] == str(log)
    assert result["newest"]["line"].endswith("Invalid user git from 185.52.1.9 port 35968")
    assert result["newest"]["time"] == pytest.approx(written, abs=0.001)
    assert 119 < result["newest"]["age"] < 130
    assert result["probe"] == {"sent": False, "time": None, "seen": False, "wait": 10, "error": None}


def test_time_zone_offsets_are_honoured(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    log.write_text(OLD_LINES)
    result = facts(monkeypatch, paths=[str(log)], probe=False)
    # 2026-09-13 12:31:09.292032-0700 is 19:31:09.292032 UTC.
    expected = datetime(2026, 9, 13, 19, 31, 9, 292032, tzinfo=timezone.utc).timestamp()
    assert result["newest"]["time"] == pytest.approx(expected)
    assert result["newest"]["line"].startswith("2026-09-13 12:31:09.292032-0700 localhost sshd-session[16472]:")


def test_no_sshd_line_gives_no_newest(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    log.write_text(HEADER + "%s  localhost screensharingd[5]: Authentication: FAILED\n" % stamp(time.time()))
    assert facts(monkeypatch, paths=[str(log)], probe=False)["newest"] is None


def test_probe_line_seen(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    log.write_text(OLD_LINES)
    sshd = Sshd(str(log), process="sshd-session")
    try:
        result = facts(monkeypatch, paths=[str(log)], probe_port=sshd.port, wait=5)
    finally:
        sshd.stop()
    assert sshd.received.startswith(b"SSH-2.0-")
    assert result["probe"]["sent"] and result["probe"]["seen"] and result["probe"]["error"] is None
    assert "sshd-session[812]: Connection closed by 127.0.0.1" in result["newest"]["line"]
    assert result["newest"]["time"] >= result["probe"]["time"]


def test_probe_line_not_seen_within_wait(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    log.write_text(OLD_LINES)
    sshd = Sshd(None)
    started = time.monotonic()
    try:
        result = facts(monkeypatch, paths=[str(log)], probe_port=sshd.port, wait=1)
    finally:
        sshd.stop()
    assert time.monotonic() - started >= 1
    assert result["probe"]["sent"] and not result["probe"]["seen"]
    assert result["newest"]["line"].startswith("2026-09-13")


def test_probe_that_cannot_connect_says_why(monkeypatch, tmp_path):
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()
    result = facts(monkeypatch, paths=[str(tmp_path / "auth.log")], probe_port=port, wait=1)
    assert not result["probe"]["sent"] and not result["probe"]["seen"]
    assert result["probe"]["error"].startswith("cannot connect to 127.0.0.1 port %d" % port)


@pytest.mark.parametrize("args,message", [
    ({"probe_port": 0}, "probe_port must be 1 to 65535, got 0"),
    ({"probe_port": 70000}, "probe_port must be 1 to 65535, got 70000"),
    ({"wait": -1}, "wait must be 0 to 600, got -1"),
    ({"wait": 601}, "wait must be 0 to 600, got 601"),
    ({"tail_bytes": -5}, "tail_bytes must be 0 to 16777216, got -5"),
    ({"tail_bytes": 2 ** 40}, "tail_bytes must be 0 to 16777216, got 1099511627776"),
    ({"probe_host": "localhost"}, "probe_host 'localhost' is not an IP address"),
    ({"probe_host": "127.0.0.0/8"}, "probe_host '127.0.0.0/8' is not an IP address (a network, not an address)"),
    ({"probe_host": ""}, "probe_host '' is not an IP address"),
    ({"processes": ["sshd", ""]}, "process name '' must be 1 to 255 characters"),
    ({"processes": ["ss hd"]}, "process name 'ss hd' must be"),
    ({"processes": ["sshd[1]"]}, "process name 'sshd[1]' must be"),
    ({"processes": ["sshd\n"]}, "process name 'sshd\\n' must be"),
    ({"processes": ["p%d" % n for n in range(65)]}, "processes has 65 entries, at most 64 are accepted"),
    ({"paths": ["/var/log/a%d.log" % n for n in range(65)]}, "paths has 65 entries, at most 64 are accepted"),
    ({"paths": ["auth.log"]}, "log path 'auth.log' is not an absolute path"),
    ({"paths": ["/var/log/auth\x00.log"]}, "log path '/var/log/auth\\x00.log' contains a control character"),
])  # fmt: skip
def test_bad_values_are_named(monkeypatch, tmp_path, args, message):
    result = run_module(monkeypatch, jail_log_facts, no_commands, dict(dict(paths=[str(tmp_path / "a.log")]), **args))
    assert result["failed"] and result["msg"].startswith(message), result["msg"]


def test_tail_bytes_reads_only_the_end(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    recent = "%s  localhost sshd[3]: Connection closed by 127.0.0.1 port 1 [preauth]\n" % stamp(time.time())
    log.write_text(recent + "x" * 4096 + "\n")
    assert facts(monkeypatch, paths=[str(log)], probe=False, tail_bytes=1024)["newest"] is None
    assert facts(monkeypatch, paths=[str(log)], probe=False)["newest"]["line"] == recent.rstrip("\n")


def test_a_window_start_inside_a_line_skips_that_line(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    # A user name can carry text shaped like a line start; cut there, it must not count as a line.
    injected = "%s  localhost sshd[3]: Connection closed by 127.0.0.1 port 1\n" % stamp(time.time())
    log.write_text("%s  localhost sshd[2]: Invalid user x%s" % (stamp(time.time() - 3600), injected))
    result = facts(monkeypatch, paths=[str(log)], probe=False, tail_bytes=len(injected))
    assert result["newest"] is None
    whole = facts(monkeypatch, paths=[str(log)], probe=False, tail_bytes=len(log.read_bytes()))
    assert whole["newest"]["line"].startswith(stamp(time.time() - 3600)[:10])


def test_future_dated_lines_are_not_fresh_and_are_reported(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    old = time.time() - 3600
    future = time.time() + 3600
    log.write_text("%s  localhost sshd[1]: Accepted publickey for admin\n" % stamp(old)
                   + "%s  localhost sshd[2]: Connection closed by 127.0.0.1 port 1\n" % stamp(future)
                   + "9999-12-31 23:59:59.999999+0000  localhost sshd[3]: far\n"
                   + "%s  localhost sshd[4]: a second ago\n" % stamp(time.time() + 1))  # fmt: skip
    warnings = []
    monkeypatch.setattr(jail_log_facts.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    result = facts(monkeypatch, paths=[str(log)], probe=False)
    assert result["newest"]["line"].endswith("a second ago")  # within the clock-skew tolerance
    assert [entry["line"][-3:] for entry in result["future_lines"]] == ["t 1", "far"]
    assert result["future_lines"][0]["time"] == pytest.approx(future, abs=0.001)
    assert warnings and "2 sshd line(s) dated in the future were not counted as fresh" in warnings[0]


def test_a_future_dated_line_is_not_the_probes_line(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    log.write_text("%s  localhost sshd[2]: planted\n" % stamp(time.time() + 600))
    sshd = Sshd(None)
    try:
        result = facts(monkeypatch, paths=[str(log)], probe_port=sshd.port, wait=1)
    finally:
        sshd.stop()
    assert result["probe"]["sent"] and not result["probe"]["seen"]
    assert result["newest"] is None and len(result["future_lines"]) == 1


def test_bytes_that_are_not_utf8_are_replaced(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    log.write_bytes(b"%s  localhost sshd[2]: Invalid user \xff\xfe from 192.0.2.1\n" % stamp(time.time()).encode())
    result = facts(monkeypatch, paths=[str(log)], probe=False)
    assert result["newest"]["line"].endswith("Invalid user \ufffd\ufffd from 192.0.2.1")


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "device", "socket"])
def test_paths_that_are_not_regular_files_are_refused_by_name(monkeypatch, tmp_path, kind):
    real = tmp_path / "real.log"
    real.write_text("%s  localhost sshd[2]: x\n" % stamp(time.time()))
    path = tmp_path / "auth.log"
    holder = None
    if kind == "symlink":
        path.symlink_to(real)
    elif kind == "fifo":
        os.mkfifo(str(path))
    elif kind == "directory":
        path.mkdir()
    elif kind == "device":
        path = "/dev/zero"
    else:
        holder = socket.socket(socket.AF_UNIX)
        holder.bind(str(path))
    try:
        result = run_module(monkeypatch, jail_log_facts, no_commands, dict(paths=[str(real), str(path)], probe=False))
    finally:
        if holder is not None:
            holder.close()
    assert result["failed"] is True
    assert result["msg"].startswith("log file %s " % path), result["msg"]
    if kind == "symlink":
        assert result["msg"] == "log file %s is a symbolic link; it is not followed" % path
