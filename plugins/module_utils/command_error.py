# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The error the modules' command runners raise (pfctl, fail2ban-client)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class CommandError(Exception):
    """A command that failed, or output that cannot be parsed; carries what fail_json should report."""

    def __init__(self, msg, cmd=None, rc=None, stdout="", stderr=""):
        super(CommandError, self).__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def result(self):
        return dict(msg=self.msg, cmd=self.cmd, rc=self.rc, stdout=self.stdout, stderr=self.stderr)
