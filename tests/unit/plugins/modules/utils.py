# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run a module's main() through AnsibleModule with a fake run_command and return its result."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


def run_module(monkeypatch, module, fake, args, check_mode=False, diff=False):
    """The dict the module passed to exit_json or fail_json (with failed=True for the latter)."""

    def exit_json(self, **kwargs):
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):
        kwargs["failed"] = True
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, *a, **k: fake(*a, **k))
    # From Python 3.12 syslog refuses a message with a NUL, and AnsibleModule logs its arguments there
    # before the module runs; the hostile-input cases pass NULs on purpose. (The Macs run 3.9.)
    monkeypatch.setattr(basic.AnsibleModule, "_log_to_syslog", lambda self, msg: None)
    full = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(full), pytest.raises((ExitJson, FailJson)) as caught:
        module.main()
    return caught.value.args[0]
