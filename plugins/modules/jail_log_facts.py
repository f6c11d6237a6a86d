#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: jail_log_facts
short_description: Check that sshd's lines reach a fail2ban jail's log file
version_added: 0.1.0
description:
  - Finds the newest line written by sshd (C(sshd), C(sshd-session), C(sshd-auth)) in a jail's log files,
    in the C(log stream --style syslog) format, and reports its age.
  - So that an idle Mac is not mistaken for a broken one, it first makes sshd write a line of its own
    (O(probe)) and waits up to O(wait) seconds for a line newer than that to arrive in the log.
  - A line dated more than 5 seconds after the moment the file is read (a tolerance for the clock being
    stepped back a little) is not counted as fresh, nor as the probe's line; it is reported in
    C(future_lines) instead, so a forged or mis-dated line cannot make a dead log look alive.
  - Runs no external command.
author:
  - pfguard developers (@pfguard)
extends_documentation_fragment:
  - pfguard.macos.read_only_facts
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: Runs the same in check mode; the probe changes no configuration, sshd only logs it.
options:
  paths:
    description:
      - The jail's log files, for example the C(logpaths) of P(pfguard.macos.fail2ban_facts#module)'s jail.
      - Missing files count as holding no line.
      - Absolute paths without control characters, at most 64 of them. Only regular files are read, never
        through a symbolic link; a symbolic link, directory, FIFO, socket or device fails the task naming it.
    type: list
    elements: path
    required: true
  processes:
    description:
      - Process names whose lines count as sshd's.
      - At most 64 names, each 1 to 255 characters without spaces, control characters or C([).
    type: list
    elements: str
    default: [sshd, sshd-session, sshd-auth]
  probe:
    description:
      - Open a TCP connection to O(probe_host):O(probe_port), send an SSH identification string and close
        it, which makes sshd log a line about the connection; then wait for a newer line.
      - Use a loopback address, which the jails ignore, so the probe never counts as a failure.
    type: bool
    default: true
  probe_host:
    description:
      - Address sshd listens on, an IPv4 or IPv6 address. A host name is refused, as resolving it could
        take any time.
    type: str
    default: 127.0.0.1
  probe_port:
    description: sshd's port.
    type: int
    default: 22
  wait:
    description: Seconds to wait for a line newer than the probe, 0 to 600.
    type: int
    default: 10
  tail_bytes:
    description:
      - How much of the end of each file to read, 0 to 16777216 (16 MiB). A line cut by the start of
        that window is skipped.
    type: int
    default: 1048576
notes:
  - Lines start like C(2025-11-22 08:26:40.500000+0000  localhost sshd[812]:); the time is taken from
    the line, so a file that was rewritten does not look fresh.
  - Bytes that are not UTF-8 are read as replacement characters.
"""

EXAMPLES = r"""
- name: Check that sshd's lines reach the sshd jail's log
  pfguard.macos.jail_log_facts:
    paths: "{{ ansible_facts.fail2ban.jails.sshd.logpaths }}"

- name: Only look at the log, without a test connection
  pfguard.macos.jail_log_facts:
    paths: [/var/log/pfguard/auth.log]
    probe: false
"""

RETURN = r"""
ansible_facts:
  description: Facts about the jail's log.
  returned: always
  type: dict
  contains:
    jail_log:
      description: The newest sshd line and the probe's outcome.
      returned: always
      type: dict
      contains:
        paths:
          description: The files read.
          type: list
          elements: str
          sample: [/var/log/pfguard/auth.log]
        newest:
          description: The newest sshd line, or null when there is none.
          type: dict
          contains:
            path:
              description: The file holding it.
              type: str
            line:
              description: The line.
              type: str
            time:
              description: Its time, seconds since the epoch.
              type: float
            age:
              description: Seconds between that time and the end of the check (never negative).
              type: float
          sample:
            path: /var/log/pfguard/auth.log
            line: "2025-11-22 08:26:40.500000+0000  localhost sshd[812]: Connection closed by 127.0.0.1 port 50122"
            time: 1763800000.5
            age: 0.4
        probe:
          description: The test connection.
          type: dict
          contains:
            sent:
              description: Whether the connection was made and the identification string sent.
              type: bool
            time:
              description: When it was sent, seconds since the epoch; null if not sent.
              type: float
            seen:
              description: Whether a line newer than the probe reached the log within O(wait) seconds.
              type: bool
            wait:
              description: O(wait).
              type: int
            error:
              description: Why the connection failed, or null.
              type: str
          sample: {sent: true, time: 1763800000.1, seen: true, wait: 10, error: null}
        future_lines:
          description:
            - sshd lines dated more than 5 seconds after the moment their file was read, which are not
              counted as fresh; the 10 latest-dated, oldest first. The task also warns about them.
          type: list
          elements: dict
          contains:
            path:
              description: The file holding it.
              type: str
            line:
              description: The line.
              type: str
            time:
              description: Its time, seconds since the epoch.
              type: float
          sample:
            - path: /var/log/pfguard/auth.log
              line: "2099-01-01 00:00:00.000000+0000  localhost sshd[1]: Connection closed by 127.0.0.1 port 1"
              time: 4070908800.0
"""

import os
import re
import socket
import time
from datetime import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import parse_entry
from ansible_collections.pfguard.macos.plugins.module_utils.safe_files import (
    UnsafePath,
    check_path_text,
    open_regular,
)

# `log stream --style syslog`: "YYYY-MM-DD HH:MM:SS.ffffff+zzzz  localhost PROCESS[PID]: message".
LINE = re.compile(
    r"^(?P<stamp>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(?P<zone>[+-]\d{4})\s+\S+\s+"
    r"(?P<process>[^\s\[]+)\[\d+\]:",
    re.ASCII,
)
IDENTIFICATION = b"SSH-2.0-pfguard-doctor\r\n"
POLL_SECONDS = 0.25
# A line dated up to this many seconds after the file was read still counts: the log and the module
# read the same clock, so this only covers the clock being stepped back a little (NTP) meanwhile.
FUTURE_TOLERANCE = 5.0
FUTURE_KEPT = 10
MAX_PATHS = 64
MAX_PROCESSES = 64
MAX_WAIT = 600
MAX_TAIL_BYTES = 16 * 1024 * 1024
READ_CHUNK = 1024 * 1024
_PROCESS_BAD = re.compile(r"[\s\[\x00-\x1f\x7f]")


def line_time(line, processes):
    """Seconds since the epoch of a line written by one of `processes`, else None."""
    match = LINE.match(line)
    if not match or match.group("process") not in processes:
        return None
    stamp = match.group("stamp")
    pattern = "%Y-%m-%d %H:%M:%S.%f%z" if "." in stamp else "%Y-%m-%d %H:%M:%S%z"
    try:
        return datetime.strptime(stamp + match.group("zone"), pattern).timestamp()
    except (ValueError, OverflowError):
        return None


def read_tail(path, tail_bytes):
    """The last `tail_bytes` of the regular file `path` as text, starting at a line boundary; None when
    the file does not exist. Opened with O_NOFOLLOW|O_NONBLOCK and checked with fstat, so a symbolic
    link, FIFO, device or directory raises UnsafePath naming it instead of blocking or never ending."""
    fd = open_regular(path, "log file")
    if fd is None:
        return None
    try:
        info = os.fstat(fd)
        start = max(0, info.st_size - tail_bytes)
        # One byte before the window tells whether it starts at a line boundary.
        os.lseek(fd, max(0, start - 1), os.SEEK_SET)
        wanted = info.st_size - max(0, start - 1)  # the file may grow meanwhile: read no more than this
        chunks = []
        while wanted > 0:
            chunk = os.read(fd, min(READ_CHUNK, wanted))
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if start > 0:
        data = data.partition(b"\n")[2]  # the byte before the window, or the cut line, and its newline
    return data.decode("utf-8", "replace")


def newest_line(paths, processes, tail_bytes, future):
    """The newest line of `processes` in `paths` that is not dated in the future; lines that are go to
    the `future` dict (keyed by path and line)."""
    newest = None
    for path in paths:
        text = read_tail(path, tail_bytes)
        if not text:
            continue
        limit = time.time() + FUTURE_TOLERANCE
        for line in text.split("\n"):
            stamp = line_time(line, processes)
            if stamp is None:
                continue
            if stamp > limit:
                future[(path, line)] = {"path": path, "line": line, "time": stamp}
            elif newest is None or stamp >= newest["time"]:
                newest = {"path": path, "line": line, "time": stamp}
    return newest


def send_probe(host, port):
    """Make sshd log a line: connect, send an identification string, close. Returns an error or None."""
    try:
        connection = socket.create_connection((host, port), timeout=5)
    except (socket.error, OSError) as error:
        return "cannot connect to %s port %d: %s" % (host, port, error)
    try:
        connection.sendall(IDENTIFICATION)
    except (socket.error, OSError) as error:
        return "cannot send to %s port %d: %s" % (host, port, error)
    finally:
        connection.close()
    return None


def check_params(module, params):
    """Every value in range and every path safe to name, before anything is read or sent."""
    errors = []
    if not 0 <= params["wait"] <= MAX_WAIT:
        errors.append("wait must be 0 to %d, got %d" % (MAX_WAIT, params["wait"]))
    if not 0 <= params["tail_bytes"] <= MAX_TAIL_BYTES:
        errors.append("tail_bytes must be 0 to %d, got %d" % (MAX_TAIL_BYTES, params["tail_bytes"]))
    if not 0 < params["probe_port"] < 65536:
        errors.append("probe_port must be 1 to 65535, got %d" % params["probe_port"])
    try:
        if "/" in params["probe_host"]:
            raise ValueError("a network, not an address")
        parse_entry(params["probe_host"])
    except ValueError as exc:
        errors.append("probe_host %r is not an IP address (%s)" % (params["probe_host"], exc))
    for name, most in (("paths", MAX_PATHS), ("processes", MAX_PROCESSES)):
        if len(params[name]) > most:
            errors.append("%s has %d entries, at most %d are accepted" % (name, len(params[name]), most))
    if not errors:
        for path in params["paths"]:
            try:
                check_path_text(path, "log path")
            except UnsafePath as exc:
                errors.append(str(exc))
        for process in params["processes"]:
            if not 0 < len(process) <= 255 or _PROCESS_BAD.search(process):
                errors.append("process name %r must be 1 to 255 characters without spaces, control "
                              "characters or '['" % process)  # fmt: skip
    if errors:
        module.fail_json(msg="; ".join(errors))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="path", required=True),
            processes=dict(type="list", elements="str", default=["sshd", "sshd-session", "sshd-auth"]),
            probe=dict(type="bool", default=True),
            probe_host=dict(type="str", default="127.0.0.1"),
            probe_port=dict(type="int", default=22),
            wait=dict(type="int", default=10),
            tail_bytes=dict(type="int", default=1048576),
        ),
        supports_check_mode=True,
    )
    params = module.params
    check_params(module, params)
    processes = set(params["processes"])
    paths, tail_bytes = params["paths"], params["tail_bytes"]

    probe = {"sent": False, "time": None, "seen": False, "wait": params["wait"], "error": None}
    future = {}
    try:
        # Read once before the probe, so an unsafe path fails before sshd is made to log anything.
        newest = newest_line(paths, processes, tail_bytes, future)
        if params["probe"]:
            probe["time"] = time.time()
            probe["error"] = send_probe(params["probe_host"], params["probe_port"])
            probe["sent"] = probe["error"] is None
        if probe["sent"]:
            deadline = time.monotonic() + params["wait"]
            newest = newest_line(paths, processes, tail_bytes, future)
            while not (newest and newest["time"] >= probe["time"]) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
                newest = newest_line(paths, processes, tail_bytes, future)
            probe["seen"] = bool(newest and newest["time"] >= probe["time"])
    except UnsafePath as exc:
        module.fail_json(msg=str(exc))
    if newest:
        newest["age"] = max(0.0, round(time.time() - newest["time"], 3))

    future_lines = sorted(future.values(), key=lambda entry: entry["time"])[-FUTURE_KEPT:]
    if future:
        module.warn("%d sshd line(s) dated in the future were not counted as fresh, e.g. in %s: %r"
                    % (len(future), future_lines[-1]["path"], future_lines[-1]["line"]))  # fmt: skip
    module.exit_json(changed=False, ansible_facts={"jail_log": {"paths": paths, "newest": newest, "probe": probe,
                                                                "future_lines": future_lines}})  # fmt: skip


if __name__ == "__main__":
    main()
