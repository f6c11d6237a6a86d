# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""jail_log_facts on `log stream --style syslog` lines (fail2ban-macos.md §2), with a real loopback listener."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import threading
import time
from datetime import datetime, timezone

import pytest
from ansible_collections.pfguard.macos.plugins.modules import jail_log_facts
from ansible_collections.pfguard.macos.tests.unit.plugins.modules.utils import run_module

# Captured macOS lines (fail2ban-macos.md §2; the second one shortened), and the header lines
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
    ({"wait": -1}, "wait must not be negative, got -1"),
    ({"tail_bytes": -5}, "tail_bytes must not be negative, got -5"),
])  # fmt: skip
def test_bad_values_are_named(monkeypatch, tmp_path, args, message):
    result = run_module(monkeypatch, jail_log_facts, no_commands, dict(args, paths=[str(tmp_path / "a.log")]))
    assert result["failed"] and result["msg"] == message


def test_tail_bytes_reads_only_the_end(monkeypatch, tmp_path):
    log = tmp_path / "auth.log"
    recent = "%s  localhost sshd[3]: Connection closed by 127.0.0.1 port 1 [preauth]\n" % stamp(time.time())
    log.write_text(recent + "x" * 4096 + "\n")
    assert facts(monkeypatch, paths=[str(log)], probe=False, tail_bytes=1024)["newest"] is None
    assert facts(monkeypatch, paths=[str(log)], probe=False)["newest"]["line"] == recent.rstrip("\n")
