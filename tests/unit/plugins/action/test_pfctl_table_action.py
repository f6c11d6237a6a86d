# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The pfctl_table action plugin: how it learns the controller's address and hands it to the module."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible_collections.pfguard.macos.plugins.action import pfctl_table as action


@pytest.mark.parametrize(
    "stdout, address",
    [
        ("192.0.2.10 50222 192.0.2.1 22\n192.0.2.10 50222 22\n", "192.0.2.10"),
        ("\n192.0.2.11 50222 22\n", "192.0.2.11"),
        ("2001:db8::5 50222 2001:db8::1 22\n\n", "2001:db8::5"),
        ("::ffff:192.0.2.10 50222 ::ffff:192.0.2.1 22\n\n", "192.0.2.10"),
        ("fe80::5%en0 50222 fe80::1%en0 22\n\n", "fe80::5"),
        ("\n\n", None),
        ("", None),
        ("Last login: yesterday\n\n", None),
    ],
)
def test_controller_from_probe(stdout, address):
    assert action.controller_from_probe(stdout) == address


@pytest.mark.parametrize(
    "args, needed",
    [
        ({}, True),
        ({"state": "exact"}, True),
        ({"state": "absent"}, False),
        ({"protect_controller": False}, False),
        ({"protect_controller": "no"}, False),
        ({"protect_controller": "maybe"}, True),  # the module refuses it; probing costs nothing
    ],
)
def test_guard_needed(args, needed):
    assert action.guard_needed(args) is needed


@pytest.mark.parametrize(
    "given, expected",
    [
        (None, ["192.0.2.10"]),
        ("198.51.100.1", ["198.51.100.1", "192.0.2.10"]),
        ("198.51.100.1,198.51.100.2", ["198.51.100.1", "198.51.100.2", "192.0.2.10"]),
        (["198.51.100.1"], ["198.51.100.1", "192.0.2.10"]),
        ({"bad": 1}, {"bad": 1}),
    ],
)
def test_with_controller_adds_without_losing_what_the_task_gave(given, expected):
    args = {"table": "t"} if given is None else {"table": "t", "controller_address": given}
    assert action.with_controller(args, "192.0.2.10")["controller_address"] == expected


class Connection:
    def __init__(self, transport):
        self.transport = transport


class Probe(action.ActionModule):
    """The plugin with its connection and module run replaced."""

    def __init__(self, transport, probe=None, args=None):  # no ActionBase set-up: only what run() uses
        self._connection = Connection(transport)
        self.probe = probe
        self.commands = []
        self.task_args = args or {"table": "t", "addresses": ["192.0.2.0/24"]}
        self.module_args = None

    def _low_level_execute_command(self, cmd, sudoable=True, **kwargs):
        self.commands.append((cmd, sudoable))
        if isinstance(self.probe, Exception):
            raise self.probe
        return self.probe

    def _execute_module(self, module_name=None, module_args=None, task_vars=None, **kwargs):
        self.module_args = module_args
        return {"changed": False, "warnings": ["from the module"]}


def run(plugin, monkeypatch):
    monkeypatch.setattr(action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})

    class Task:
        args = plugin.task_args

    plugin._task = Task()
    return plugin.run(task_vars={})


def test_ssh_probe_runs_without_become_and_passes_the_address(monkeypatch):
    plugin = Probe("ssh", {"rc": 0, "stdout": "192.0.2.10 50222 192.0.2.1 22\n\n", "stderr": ""})
    result = run(plugin, monkeypatch)
    assert plugin.commands == [(action.PROBE, False)]
    assert plugin.module_args["controller_address"] == ["192.0.2.10"]
    assert result["warnings"] == ["from the module"]


def test_failed_probe_warns_and_the_module_still_runs(monkeypatch):
    plugin = Probe("ssh", {"rc": 127, "stdout": "", "stderr": "printf: not found"})
    result = run(plugin, monkeypatch)
    assert "controller_address" not in plugin.module_args
    assert "exit 127" in result["warnings"][0] and result["warnings"][1] == "from the module"
    plugin = Probe("ssh", RuntimeError("connection lost"))
    result = run(plugin, monkeypatch)
    assert "connection lost" in result["warnings"][0]


def test_local_connection_reads_the_controllers_own_environment(monkeypatch):
    monkeypatch.setenv("SSH_CONNECTION", "2001:db8::5 50222 2001:db8::1 22")
    plugin = Probe("local")
    run(plugin, monkeypatch)
    assert plugin.commands == [] and plugin.module_args["controller_address"] == ["2001:db8::5"]
    monkeypatch.delenv("SSH_CONNECTION")
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    plugin = Probe("local")
    run(plugin, monkeypatch)
    assert "controller_address" not in plugin.module_args


def test_no_probe_when_the_guard_is_off(monkeypatch):
    plugin = Probe("ssh", {"rc": 0, "stdout": "192.0.2.10 1 2 3\n\n"}, args={"table": "t", "state": "absent"})
    run(plugin, monkeypatch)
    assert plugin.commands == [] and "controller_address" not in plugin.module_args
