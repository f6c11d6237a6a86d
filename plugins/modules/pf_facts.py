#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pf_facts
short_description: Gather what PF actually enforces, as facts
version_added: 0.1.0
description:
  - Reads PF's status, its enable tokens, every anchor, the filter rules and tables of the main ruleset
    and of each anchor, with C(pfctl)'s show commands only.
  - Works out which anchors the main ruleset's filter rules reach (C(anchor "X") evaluates C(X) relative
    to the calling ruleset, C(anchor "X/*") each child of C(X), nested), and which tables block rules in
    those rulesets reference without negation, resolved like PF does (the rule's anchor's table when it
    is active there, else the main ruleset's table of that name).
  - A table only blocks when it is in RV(ansible_facts.pf.blocking_tables) and PF is enabled.
author:
  - pfguard developers (@pfguard)
extends_documentation_fragment:
  - pfguard.macos.read_only_facts
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
  - pfguard.macos.pfctl
  - pfguard.macos.command_timeout
notes:
  - Needs root (C(become)); pfctl cannot open C(/dev/pf) otherwise and the module fails with its message.
  - Every line pfctl prints is checked against the format pfctl prints; a line that is not fails the task
    naming the command and the line.
  - Names and rules are reported with every character that is not printable ASCII escaped (C(\xNN),
    C(\uNNNN), a backslash as C(\\)). The rules and tables of an anchor whose name holds such a
    character are not read (its name cannot be given back to pfctl reliably); the task warns.
  - Runs C(pfctl -s info), C(-s memory), C(-s References), C(-v -s Anchors), then C(-s rules) and C(-vv -s Tables) for
    the main ruleset and each anchor, all with C(-q).
  - Rules inside the braces of a brace anchor (C(anchor { ... }), named C(_1), C(_2), ...) are that
    anchor's rules, reported under its own name.
seealso:
  - module: pfguard.macos.pfctl_table
  - name: pfctl(8)
    description: The PF control command.
    link: https://man.openbsd.org/pfctl
"""

EXAMPLES = r"""
- name: Gather PF facts
  pfguard.macos.pf_facts:
  become: true

- name: Fail unless fail2ban's table blocks
  ansible.builtin.assert:
    that:
      - ansible_facts.pf.enabled
      - "'f2b/sshd:f2b-sshd' in ansible_facts.pf.blocking_tables"
    fail_msg: fail2ban's bans are not enforced
"""

RETURN = r"""
ansible_facts:
  description: Facts about PF.
  returned: always
  type: complex
  contains:
    pf:
      description: PF's state.
      returned: always
      type: complex
      contains:
        enabled:
          description: Whether PF is enabled.
          returned: always
          type: bool
          sample: true
        status:
          description: The status from C(pfctl -s info), without C(Status:) and the debug level.
          returned: always
          type: str
          sample: Enabled for 0 days 00:03:10
        tokens:
          description: PF enable references (C(pfctl -s References)), newest first; empty when none are held.
          returned: always
          type: list
          elements: dict
          sample: [{pid: 4077, process: pfctl, token: "9084387343160548126", age: "0 days 00:00:00"}]
        anchors:
          description: Every anchor (C(pfctl -v -s Anchors)), as full paths, escaped as the notes say.
          returned: always
          type: list
          elements: str
          sample: ["com.apple", "com.apple/200.AirDrop", "f2b", "f2b/sshd", "pfguard"]
        reachable_anchors:
          description: Anchors whose filter rules PF evaluates starting from the main ruleset, in evaluation order.
          returned: always
          type: list
          elements: str
          sample: ["com.apple/200.AirDrop", "com.apple/250.ApplicationFirewall", "pfguard", "f2b/sshd"]
        rulesets:
          description:
            - Filter rules of the main ruleset (key C("")) and of every anchor, as C(pfctl -a ANCHOR -s rules)
              prints them. Scrub rules are left out, and so are the rules of a brace anchor under its caller.
          returned: always
          type: dict
          sample: {"": ['anchor "com.apple/*" all', 'anchor "pfguard" all'],
                   "pfguard": ["block drop in log quick from <pfguard_blocklist> to any"]}
        tables:
          description:
            - Active tables of the main ruleset (anchor C("")) and of every anchor, with their number of
              entries and whether they are in RV(ansible_facts.pf.blocking_tables).
          returned: always
          type: list
          elements: dict
          sample: [{anchor: pfguard, name: pfguard_blocklist, count: 1, blocking: true}]
        blocking_tables:
          description:
            - C(anchor:table) of each table that a block rule in the main ruleset or a reachable anchor
              references without negation, resolved like PF; C(:name) is a main-ruleset table.
          returned: always
          type: list
          elements: str
          sample: ["pfguard:pfguard_blocklist", "f2b/sshd:f2b-sshd"]
        limits:
          description:
            - PF's pool hard limits (C(pfctl -s memory)), keyed by pool name with C(_) for C(-), V(null) when
              unlimited. C(table_entries) is the number of entries all tables together may hold (200000 by
              default on macOS, raised with C(set limit table-entries N) in C(/etc/pf.conf)).
          returned: always
          type: dict
          sample: {states: 10000, app_states: 10000, src_nodes: 10000, frags: 5000, tables: 1000, table_entries: 200000}
        table_entries:
          description:
            - The entries of every table in RV(ansible_facts.pf.tables), added up, which is what counts against
              C(table_entries) of RV(ansible_facts.pf.limits).
          returned: always
          type: int
          sample: 12
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import (
    COMMAND_TIMEOUT_ARGUMENT_SPEC,
    check_command_timeout,
)
from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError
from ansible_collections.pfguard.macos.plugins.module_utils.pf_ruleset import PfReader
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import PFCTL_ARGUMENT_SPEC, pfctl_path


def run_module():
    module = AnsibleModule(
        argument_spec=dict(PFCTL_ARGUMENT_SPEC, **COMMAND_TIMEOUT_ARGUMENT_SPEC),
        supports_check_mode=True,
    )
    timeout = check_command_timeout(module)
    reader = PfReader(module, pfctl_path(module), timeout)
    try:
        pf = reader.facts()
    except CommandError as exc:
        module.fail_json(**exc.result())
    for warning in reader.warnings:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts=dict(pf=pf))


def main():
    run_module()


if __name__ == "__main__":
    main()
