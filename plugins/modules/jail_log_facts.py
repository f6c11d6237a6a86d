#!/usr/bin/python
# -*- coding: utf-8 -*-
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
    type: list
    elements: path
    required: true
  processes:
    description: Process names whose lines count as sshd's.
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
    description: Address sshd listens on.
    type: str
    default: 127.0.0.1
  probe_port:
    description: sshd's port.
    type: int
    default: 22
  wait:
    description: Seconds to wait for a line newer than the probe.
    type: int
    default: 10
  tail_bytes:
    description: How much of the end of each file to read.
    type: int
    default: 1048576
notes:
  - Lines start like C(2025-11-22 08:26:40.500000+0000  localhost sshd[812]:); the time is taken from
    the line, so a file that was rewritten does not look fresh.
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
"""

import os
import re
import socket
import time
from datetime import datetime

from ansible.module_utils.basic import AnsibleModule

# `log stream --style syslog`: "YYYY-MM-DD HH:MM:SS.ffffff+zzzz  localhost PROCESS[PID]: message".
LINE = re.compile(
    r"^(?P<stamp>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)(?P<zone>[+-]\d{4})\s+\S+\s+"
    r"(?P<process>[^\s\[]+)\[\d+\]:"
)
IDENTIFICATION = b"SSH-2.0-pfguard-doctor\r\n"
POLL_SECONDS = 0.25


def line_time(line, processes):
    """Seconds since the epoch of a line written by one of `processes`, else None."""
    match = LINE.match(line)
    if not match or match.group("process") not in processes:
        return None
    stamp = match.group("stamp")
    pattern = "%Y-%m-%d %H:%M:%S.%f%z" if "." in stamp else "%Y-%m-%d %H:%M:%S%z"
    try:
        return datetime.strptime(stamp + match.group("zone"), pattern).timestamp()
    except ValueError:
        return None


def newest_line(paths, processes, tail_bytes):
    newest = None
    for path in paths:
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - tail_bytes))
                text = handle.read().decode("utf-8", "replace")
        except (IOError, OSError):
            continue
        for line in text.splitlines():
            stamp = line_time(line, processes)
            if stamp is not None and (newest is None or stamp >= newest["time"]):
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
    for name in ("wait", "tail_bytes"):
        if params[name] < 0:
            module.fail_json(msg="%s must not be negative, got %d" % (name, params[name]))
    if not 0 < params["probe_port"] < 65536:
        module.fail_json(msg="probe_port must be 1 to 65535, got %d" % params["probe_port"])
    processes = set(params["processes"])

    probe = {"sent": False, "time": None, "seen": False, "wait": params["wait"], "error": None}
    if params["probe"]:
        probe["time"] = time.time()
        probe["error"] = send_probe(params["probe_host"], params["probe_port"])
        probe["sent"] = probe["error"] is None
    newest = newest_line(params["paths"], processes, params["tail_bytes"])
    if probe["sent"]:
        deadline = time.monotonic() + params["wait"]
        while not (newest and newest["time"] >= probe["time"]) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            newest = newest_line(params["paths"], processes, params["tail_bytes"])
        probe["seen"] = bool(newest and newest["time"] >= probe["time"])
    if newest:
        newest["age"] = max(0.0, round(time.time() - newest["time"], 3))

    module.exit_json(changed=False, ansible_facts={"jail_log": {"paths": params["paths"], "newest": newest,
                                                                "probe": probe}})  # fmt: skip


if __name__ == "__main__":
    main()
