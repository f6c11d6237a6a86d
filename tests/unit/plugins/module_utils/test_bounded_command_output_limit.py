# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""run_bounded's output_limit: a command that prints too much is killed and named, stdin still flows,
and the time limit still holds on that path."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

import pytest
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import (
    CommandError,
    CommandTimeout,
    run_bounded,
)


def test_output_within_the_limit_is_returned_decoded_with_replacement():
    rc, stdout, stderr = run_bounded(["/bin/sh", "-c", "printf 'ok \\377\\n'; printf 'err\\n' >&2; exit 3"], 10,
                                     output_limit=1000)  # fmt: skip
    assert (rc, stdout, stderr) == (3, "ok \ufffd\n", "err\n")


def test_stdin_larger_than_a_pipe_buffer_is_written_while_output_is_read():
    data = "x" * 300000
    rc, stdout, _stderr = run_bounded(["/bin/cat"], 10, data=data, output_limit=len(data))
    assert rc == 0 and stdout == data


def test_a_command_that_stops_reading_stdin_does_not_break_the_runner():
    rc, stdout, _stderr = run_bounded(["/usr/bin/head", "-c", "1"], 10, data="y" * 1000000, output_limit=100)
    assert rc == 0 and stdout == "y"


def test_a_flood_of_output_is_killed_and_named():
    started = time.monotonic()
    with pytest.raises(CommandError) as caught:
        run_bounded(["/bin/cat", "/dev/zero"], 30, output_limit=1000000)
    assert not isinstance(caught.value, CommandTimeout)
    assert caught.value.msg == "/bin/cat /dev/zero printed more than 1000000 bytes and was killed"
    assert caught.value.cmd == ["/bin/cat", "/dev/zero"] and len(caught.value.stdout) <= 4096
    assert time.monotonic() - started < 10


def test_the_time_limit_holds_with_an_output_limit_and_kills_children():
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        run_bounded(["/bin/sh", "-c", "sleep 60 & echo started; wait"], 1, output_limit=1000)
    assert time.monotonic() - started < 10
    assert caught.value.msg == "/bin/sh -c sleep 60 & echo started; wait did not finish within 1 seconds and was " \
                               "killed (command_timeout)"  # fmt: skip
    assert caught.value.stdout == "started\n"
