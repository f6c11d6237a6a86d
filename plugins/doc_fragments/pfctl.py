# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The option every pfctl-driving module takes (module_utils/pfctl.py PFCTL_ARGUMENT_SPEC).
    DOCUMENTATION = r"""
options:
  pfctl_path:
    description:
      - Absolute path of the pfctl binary, taken as given (no C(~) or variable expansion), without
        control characters; it must be an executable file.
    type: str
    default: /sbin/pfctl
"""
