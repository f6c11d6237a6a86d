# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The attributes of the modules that only read a Mac's state into ansible_facts. List it before
    # ansible.builtin.action_common_attributes(.facts): where two fragments set the same field the
    # first one wins, and those set support N/A. A module's own attributes win over both.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    support: full
    platforms: [darwin]
"""
