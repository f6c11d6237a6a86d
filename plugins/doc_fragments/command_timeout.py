# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The command_timeout option of every module that runs an external command."""

    DOCUMENTATION = r"""
options:
  command_timeout:
    description:
      - Seconds each external command the module runs may take, 1 to 3600.
      - A command still running then is killed with everything it started, and the task fails
        naming the command; nothing after it is run.
    type: int
    default: 30
"""
