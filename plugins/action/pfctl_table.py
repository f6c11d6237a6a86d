# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of pfguard.macos.pfctl_table: tells the module where the controller connects from.

The module's lockout guard must know the controller's address as the managed host sees it. sshd puts
it in SSH_CONNECTION, but sudo (become) drops that variable, so the module itself usually cannot see
it. Before the module runs, this plugin reads SSH_CONNECTION and SSH_CLIENT over the same connection
as the login user (sudoable=False: no become), with a fixed command that holds nothing from the task,
and adds the client address to the module's controller_address option.

- local connection: the "host" is the controller itself; its own SSH_CONNECTION, if ansible runs in an
  SSH session, is the operator's address and is protected. Nothing is run.
- The probe is skipped when the guard is off (protect_controller false) or nothing is added (absent).
- When the address cannot be learned, the module warns and still refuses wide networks."""

from __future__ import annotations

import os

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import controller_from_environment

MODULE = "pfguard.macos.pfctl_table"
# Constant: the login shell prints the two variables on two lines; nothing from the task goes in.
PROBE = 'printf "%s\\n%s\\n" "${SSH_CONNECTION-}" "${SSH_CLIENT-}"'
LOCAL_TRANSPORTS = ("local",)


def controller_from_probe(stdout):
    """The controller's address (text) from the probe's output (SSH_CONNECTION line, then
    SSH_CLIENT line), or None when neither names a literal address."""
    lines = (stdout or "").split("\n")
    found = controller_from_environment(
        {"SSH_CONNECTION": lines[0] if lines else "", "SSH_CLIENT": lines[1] if len(lines) > 1 else ""}
    )
    return found[0] if found else None


def guard_needed(args):
    """Whether the module will guard this task's addresses (so the address is worth a round trip).
    Values that are not booleans or states are left for the module to refuse."""
    try:
        guarded = boolean(args.get("protect_controller", True), strict=True)
    except TypeError:
        guarded = True
    return guarded and args.get("state", "present") != "absent"


def with_controller(args, address):
    """A copy of the module arguments with `address` added to controller_address (a list or a
    comma-separated string); arguments of another type are left for the module to refuse."""
    args = dict(args)
    given = args.get("controller_address")
    if given is None:
        args["controller_address"] = [address]
    elif isinstance(given, str):
        args["controller_address"] = [part for part in given.split(",") if part.strip()] + [address]
    elif isinstance(given, (list, tuple)):
        args["controller_address"] = list(given) + [address]
    return args


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def _controller_address(self, task_vars):
        """(address or None, warning or None) as the login user sees the connection."""
        transport = getattr(self._connection, "transport", "") or ""
        if transport in LOCAL_TRANSPORTS or transport.endswith(".local"):
            found = controller_from_environment(os.environ)
            return (found[0] if found else None), None
        try:
            probe = self._low_level_execute_command(PROBE, sudoable=False)
        except Exception as exc:  # any connection plugin's failure: report it, let the module decide
            return None, "could not read SSH_CONNECTION as the login user (%s)" % exc
        if probe.get("rc") != 0:
            return None, "could not read SSH_CONNECTION as the login user: exit %s, %s" % (
                probe.get("rc"),
                (probe.get("stderr") or "").strip()[:200],
            )
        return controller_from_probe(probe.get("stdout")), None

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        warnings = []
        if guard_needed(args):
            address, warning = self._controller_address(task_vars)
            if warning:
                warnings.append(warning)
            if address:
                args = with_controller(args, address)
        module_result = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        warnings += module_result.get("warnings") or []
        result.update(module_result)
        if warnings:
            result["warnings"] = warnings
        return result
