# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run an external command with a time limit.

AnsibleModule.run_command has no timeout, so a hung pfctl or fail2ban-client would hang the play
for ever. This runner kills the command's whole process group when its time is up and raises
CommandTimeout naming the command. Output is decoded as UTF-8 with replacement characters, so no
byte a command prints can break the module's JSON result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import select
import selectors
import signal
import subprocess
import time

from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError

# The option every module that runs commands has, documented once in doc_fragments/command_timeout.py.
DEFAULT_COMMAND_TIMEOUT = 30
COMMAND_TIMEOUT_ARGUMENT_SPEC = dict(command_timeout=dict(type="int", default=DEFAULT_COMMAND_TIMEOUT))
COMMAND_TIMEOUT_MAX = 3600
# Bytes written to a command's stdin per write: what select() guarantees fits without blocking.
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)


class CommandTimeout(CommandError):
    """A command that did not finish within its time limit (and was killed)."""


def check_command_timeout(module):
    """The module's command_timeout, or a failed task naming it when it is out of range."""
    value = module.params["command_timeout"]
    if not 1 <= value <= COMMAND_TIMEOUT_MAX:
        module.fail_json(msg="command_timeout %s is out of range: use 1 to %d seconds" % (value, COMMAND_TIMEOUT_MAX))
    return value


def _kill_group(process):
    with contextlib.suppress(OSError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)


def run_bounded(argv, timeout, data=None, environ_update=None, output_limit=None):
    """Run argv (a list, never a shell string) with stdin `data` (str or None); returns
    (rc, stdout, stderr) as text. Raises CommandTimeout after `timeout` seconds, having killed the
    command and everything it started, and CommandError when the command cannot be started.
    With `output_limit` (bytes), a command that prints more than that on stdout and stderr together
    is killed the same way and CommandError names it, so a runaway command cannot exhaust memory."""
    env = dict(os.environ)
    env.update(environ_update or {})
    try:
        # Not AnsibleModule.run_command: it has no timeout, and a hung pfctl or launchctl must not hang
        # the play (every external command here is bounded).
        process = subprocess.Popen(  # pylint: disable=ansible-bad-function
            argv,
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            close_fds=True,
            start_new_session=True,  # its own process group, so a timeout kills its children too
        )
    except OSError as exc:
        raise CommandError("cannot run %s: %s" % (argv[0], exc.strerror or exc), cmd=argv) from None
    payload = data.encode("utf-8", "surrogateescape") if data is not None else None
    if output_limit is not None:
        return _run_limited(process, argv, payload, timeout, output_limit)
    try:
        stdout, stderr = process.communicate(payload, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        stdout, stderr = process.communicate()
        raise _timeout_error(argv, timeout, process.returncode, stdout, stderr) from None
    return process.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")


def _timeout_error(argv, timeout, rc, stdout, stderr):
    return CommandTimeout(
        "%s did not finish within %d seconds and was killed (command_timeout)" % (" ".join(argv), timeout),
        cmd=argv,
        rc=rc,
        stdout=stdout.decode("utf-8", "replace"),
        stderr=stderr.decode("utf-8", "replace"),
    )


def _run_limited(process, argv, payload, timeout, limit):
    """communicate() that also stops at `limit` bytes of output (subprocess's own loop, plus a count)."""
    deadline = time.monotonic() + timeout
    output = {process.stdout: [], process.stderr: []}
    total = 0
    offset = 0
    stopped = None
    with selectors.DefaultSelector() as selector:
        if process.stdin is not None:
            if payload:
                selector.register(process.stdin, selectors.EVENT_WRITE)
            else:
                process.stdin.close()
        for stream in output:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map() and stopped is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stopped = "timeout"
                break
            for key, _events in selector.select(remaining):
                if key.fileobj is process.stdin:
                    try:
                        offset += os.write(key.fd, payload[offset:offset + _PIPE_BUF])
                    except BrokenPipeError:
                        offset = len(payload)  # the command stopped reading; its exit code tells
                    if offset >= len(payload):
                        selector.unregister(key.fileobj)
                        key.fileobj.close()
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()
                    continue
                output[key.fileobj].append(chunk)
                total += len(chunk)
                if total > limit:
                    stopped = "limit"
                    break
    if stopped is None:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.001))
        except subprocess.TimeoutExpired:
            stopped = "timeout"
    stdout, stderr = (b"".join(output[stream]) for stream in (process.stdout, process.stderr))
    if stopped is None:
        return process.returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    _kill_group(process)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    process.wait()
    if stopped == "timeout":
        raise _timeout_error(argv, timeout, process.returncode, stdout, stderr)
    raise CommandError(
        "%s printed more than %d bytes and was killed" % (" ".join(argv), limit),
        cmd=argv,
        rc=process.returncode,
        stdout=stdout[:4096].decode("utf-8", "replace"),
        stderr=stderr[:4096].decode("utf-8", "replace"),
    )
