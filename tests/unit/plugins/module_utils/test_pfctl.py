# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""module_utils/pfctl: address and name checks, strict parsers, the bounded runner and the change lock."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import os
import time

import pytest
from ansible_collections.pfguard.macos.plugins.module_utils import pfctl
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import CommandTimeout


@pytest.mark.parametrize(
    "given, canonical",
    [
        ("10.1.2.3/9", "10.0.0.0/9"),
        ("1.2.3.4/0", "0.0.0.0/0"),
        ("1.2.3.4/32", "1.2.3.4"),
        (" 1.2.3.4\t", "1.2.3.4"),
        ("2001:DB8::1/128", "2001:db8::1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ],
)
def test_parse_entry_canonical(given, canonical):
    assert pfctl.parse_entry(given)[0] == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "1.2.3.4/010",
        "1.2.3.4/0x8",
        "1.2.3.4/+8",
        "1.2.3.4/ 8",
        "1.2.3.4/\u0668",
        "\u0661.2.3.4",
        "1.2.3.4\x00",
        7,
        None,
    ],
)
def test_parse_entry_refuses_what_pfctl_reads_differently(bad):
    with pytest.raises(ValueError):
        pfctl.parse_entry(bad)


def test_parse_show_reads_pfctls_format():
    shown = "   10.0.0.1\n   10.0.0.0/8\n  !192.168.1.5\n   2001:db8::/32\n"
    assert pfctl.parse_show(shown) == ["10.0.0.1", "10.0.0.0/8", "!192.168.1.5", "2001:db8::/32"]
    assert pfctl.parse_show("") == []


@pytest.mark.parametrize(
    "line", ["garbage", "  ?10.0.0.1", "   10.0.0.1 ", "   10.0.0.1/33", "   ::ffff:0:0/95\x00", "   10.0.0.1\r"]
)
def test_parse_show_refuses_other_lines(line):
    with pytest.raises(ValueError) as caught:
        pfctl.parse_show("   10.0.0.2\n" + line + "\n")
    assert str(caught.value) == line


def test_state_sources_by_direction():
    states = (
        "ALL tcp 172.16.7.27:59833 -> 10.82.16.60:389       ESTABLISHED:ESTABLISHED\n"
        "ALL tcp 127.0.0.1:12300 <- 10.82.16.60:389 <- 172.16.7.27:59833       ESTABLISHED:ESTABLISHED\n"
        "ALL udp 192.168.100.3:55009 -> ~192.168.100.1:53       SINGLE:NO_TRAFFIC\n"
        "ALL tcp 2001:db8::1[22] <- 2001:db8::2[50000]       ESTABLISHED:ESTABLISHED\n"
    )
    assert pfctl.state_sources(states) == [
        (4, 0xAC10071B),
        (4, 0xAC10071B),
        (4, 0xC0A86403),
        (6, 0x20010DB8000000000000000000000002),
    ]


@pytest.mark.parametrize("line", ["nonsense", "ALL tcp a -> b X:Y", "ALL tcp 1.2.3.4:1 => 5.6.7.8:2 A:B"])
def test_state_sources_refuses_other_lines(line):
    with pytest.raises(ValueError) as caught:
        pfctl.state_sources(line + "\n")
    assert str(caught.value) == line


def test_parse_killed_needs_the_count():
    assert pfctl.parse_killed("killed 3 states from 1 sources and 0 destinations\n") == 3
    with pytest.raises(ValueError):
        pfctl.parse_killed("")


@pytest.mark.parametrize(
    "given, text",
    [
        ("192.0.2.10", "192.0.2.10"),
        ("::ffff:192.0.2.10", "192.0.2.10"),
        ("fe80::1%en0", "fe80::1"),
        ("2001:DB8::10", "2001:db8::10"),
    ],
)
def test_parse_controller(given, text):
    assert pfctl.parse_controller(given)[0] == text


def test_controller_from_environment_prefers_ssh_connection():
    env = {"SSH_CONNECTION": "192.0.2.10 5 192.0.2.1 22", "SSH_CLIENT": "192.0.2.11 5 22"}
    assert pfctl.controller_from_environment(env)[0] == "192.0.2.10"
    assert pfctl.controller_from_environment({"SSH_CLIENT": "192.0.2.11 5 22"})[0] == "192.0.2.11"
    assert pfctl.controller_from_environment({"SSH_CONNECTION": "garbage", "SSH_CLIENT": ""}) is None
    assert pfctl.controller_from_environment({}) is None


def test_change_lock_waits_then_fails_naming_the_lock(tmp_path):
    path = str(tmp_path / "lock")
    holder = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    lock = pfctl.ChangeLock(path, 1)
    start = time.monotonic()
    with pytest.raises(pfctl.LockError) as caught:
        lock.acquire()
    assert 1 <= time.monotonic() - start < 5
    assert path in str(caught.value) and "nothing was changed" in str(caught.value)
    os.close(holder)
    lock.acquire()
    lock.release()


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_change_lock_refuses_anything_but_a_regular_file(tmp_path, kind):
    path = tmp_path / "lock"
    if kind == "symlink":
        os.symlink(str(tmp_path / "elsewhere"), str(path))
    elif kind == "fifo":
        os.mkfifo(str(path))
    else:
        path.mkdir()
    with pytest.raises(pfctl.LockError) as caught:
        pfctl.ChangeLock(str(path), 1).acquire()
    assert str(path) in str(caught.value)
    assert not (tmp_path / "elsewhere").exists()


def test_pfctl_runs_are_bounded(tmp_path):
    script = tmp_path / "pfctl"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    start = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        pfctl.Pfctl(None, str(script), 1).show("", "t")
    assert time.monotonic() - start < 10
    assert "%s -t t -T show did not finish within 1 seconds" % script in str(caught.value)


def test_check_pfctl_path(tmp_path):
    assert "not an absolute path" in pfctl.check_pfctl_path("pfctl")
    assert "control character" in pfctl.check_pfctl_path("/sbin/pf\x00ctl")
    assert "not found or not executable" in pfctl.check_pfctl_path(str(tmp_path))
    assert pfctl.check_pfctl_path("/bin/sh") is None
