#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: fail2ban_facts
short_description: Read fail2ban's state on a Mac as facts
version_added: 0.1.0
description:
  - Tells whether fail2ban is installed and its server answers, and for each jail the failure and
    ban counters, the banned addresses and the log files it reads, through C(fail2ban-client).
  - Optionally reads the ban history from fail2ban's sqlite database, opened read-only.
  - fail2ban not installed, or installed with no server answering on its socket (stopped, or killed
    and not yet restarted), is a state to report, not a failure. Any other failure of
    C(fail2ban-client) fails the task with the command and its output.
  - Every line C(fail2ban-client) prints is checked against the format fail2ban's client prints
    (C(fail2ban/client/beautifier.py)); a line that does not fit fails the task naming the line, so
    nothing unchecked reaches the facts.
author:
  - pfguard developers (@pfguard)
extends_documentation_fragment:
  - pfguard.macos.read_only_facts
  - pfguard.macos.command_timeout
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
options:
  client:
    description:
      - Absolute path of C(fail2ban-client).
      - Default is the first that exists of C(/opt/homebrew/bin/fail2ban-client) (Apple silicon) and
        C(/usr/local/bin/fail2ban-client) (Intel).
      - A path that does not exist means fail2ban is not installed.
      - It may be a symbolic link (Homebrew links it into the Cellar), but what it leads to must be an
        executable regular file; anything else, a relative path or a path with control characters is
        refused by name.
    type: path
  config_dir:
    description:
      - fail2ban's configuration directory, passed as C(fail2ban-client -c); it tells the client
        where the server's socket is.
      - Default is C(<prefix>/etc/fail2ban) for a client C(<prefix>/bin/fail2ban-client), where
        Homebrew puts it.
      - Must be an absolute path without control characters; when it exists it must be a directory.
    type: path
  history:
    description:
      - Also return every row of the C(bans) table of fail2ban's database (the file C(fail2ban-client get dbfile)
        names), read through a read-only connection.
      - The history is empty when fail2ban is not running, its database is disabled or the file does not exist.
      - The database must be a regular file; a symbolic link, FIFO or device fails the task naming it.
    type: bool
    default: false
notes:
  - A server that accepts the connection but does not answer C(ping) within 10 seconds (the client's
    own socket timeout, C(fail2ban-client ping 10)) fails the task. Every call, C(ping) included, is
    also killed after O(command_timeout) seconds, and the task fails naming it; a call that prints
    more than 32 MiB is killed too.
  - Runs C(fail2ban-client ping), C(version), C(get dbfile), C(status), then C(status <jail>) and
    C(get <jail> logpath) for each jail. The log files come from C(get <jail> logpath), which prints one a
    line, because C(status <jail>) joins them with spaces.
  - Jail names must be letters, digits, C(_), C(.) and C(-), not starting with C(.) or C(-), at most 64
    characters (they end up in PF table names, command lines and reports); a jail list with any other
    name, or with more than 256 jails, fails the task naming it. Every banned entry must be an address.
  - Output that is not UTF-8 is decoded with replacement characters, which no check accepts in a jail
    name, address, version or path.
requirements:
  - fail2ban 0.10 or later (tested with 1.0.2)
seealso:
  - module: pfguard.macos.pfctl_table
  - name: fail2ban-client(1)
    description: fail2ban's command-line client.
    link: https://github.com/fail2ban/fail2ban/blob/master/man/fail2ban-client.1
"""

EXAMPLES = r"""
- name: Read fail2ban's state
  pfguard.macos.fail2ban_facts:

- name: Fail when the sshd jail does not run
  ansible.builtin.assert:
    that:
      - ansible_facts.fail2ban.running
      - "'sshd' in ansible_facts.fail2ban.jails"
    fail_msg: fail2ban is not protecting sshd on {{ inventory_hostname }}

- name: Read the ban history too, from an Intel Mac's Homebrew
  pfguard.macos.fail2ban_facts:
    client: /usr/local/bin/fail2ban-client
    history: true

- name: Show the addresses banned by the sshd jail
  ansible.builtin.debug:
    msg: "{{ ansible_facts.fail2ban.jails.sshd.banned | default([]) }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    fail2ban:
      description: fail2ban's state.
      returned: always
      type: dict
      contains:
        installed:
          description: Whether the client exists.
          type: bool
          returned: always
          sample: true
        running:
          description: Whether the server answers C(fail2ban-client ping).
          type: bool
          returned: always
          sample: true
        client:
          description: Path of the client used, or null when none of the default paths exists.
          type: str
          returned: always
          sample: /opt/homebrew/bin/fail2ban-client
        config_dir:
          description: Configuration directory passed to the client, or null without a client.
          type: str
          returned: always
          sample: /opt/homebrew/etc/fail2ban
        version:
          description:
            - The server's version when it runs, else the client's; null when not installed.
          type: str
          returned: always
          sample: "1.0.2"
        dbfile:
          description: fail2ban's database file; null when the database is disabled or the server is not running.
          type: str
          returned: always
          sample: /opt/homebrew/var/lib/fail2ban/fail2ban.sqlite3
        jails:
          description:
            - The running jails by name; empty when the server is not running.
            - Each has C(currently_failed), C(total_failed), C(currently_banned), C(total_banned) (integers),
              C(banned) (the addresses banned now) and C(logpaths) (the log files the jail reads).
          type: dict
          returned: always
          sample:
            sshd:
              currently_failed: 0
              total_failed: 6
              currently_banned: 1
              total_banned: 1
              banned: ["198.51.100.200"]
              logpaths: ["/var/log/pfguard/auth.log"]
        history:
          description:
            - With O(history=true), every row of the database's C(bans) table, oldest first; otherwise empty.
            - C(timeofban) is a Unix time, C(bantime) is in seconds (-1 is forever), C(bancount) counts the
              bans of that address the row's ban is (fail2ban's C(bantime.increment) uses it).
          type: list
          elements: dict
          returned: always
          sample:
            - {jail: sshd, ip: 198.51.100.200, timeofban: 1763800000, bantime: 600, bancount: 1}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import (
    COMMAND_TIMEOUT_ARGUMENT_SPEC,
    check_command_timeout,
)
from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError
from ansible_collections.pfguard.macos.plugins.module_utils.fail2ban import (
    Fail2banClient,
    default_client,
    default_config_dir,
    empty_facts,
)
from ansible_collections.pfguard.macos.plugins.module_utils.safe_files import UnsafePath, check_path_text


def check_paths(module, client, config_dir):
    """Fail naming the option when a path is relative, holds control characters or is the wrong kind."""
    for name, value in (("client", client), ("config_dir", config_dir)):
        if value is None:
            continue
        try:
            check_path_text(value, name)
        except UnsafePath as exc:
            module.fail_json(msg=str(exc))
    if config_dir is not None and os.path.lexists(config_dir) and not os.path.isdir(config_dir):
        module.fail_json(msg="config_dir %s is not a directory" % config_dir)


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            client=dict(type="path"),
            config_dir=dict(type="path"),
            history=dict(type="bool", default=False),
            **COMMAND_TIMEOUT_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    timeout = check_command_timeout(module)
    client = module.params["client"] or default_client()
    config_dir = module.params["config_dir"] or (default_config_dir(client) if client else None)
    check_paths(module, client, config_dir)

    if client is None or not os.path.exists(client):
        facts = empty_facts(client, config_dir, installed=False)
    elif not (os.path.isfile(client) and os.access(client, os.X_OK)):
        # isfile follows a symlink: a Homebrew link to the Cellar is fine, a directory, FIFO or
        # device (or a link to one) is not.
        module.fail_json(msg="fail2ban-client at %s is not an executable regular file" % client)
    else:
        try:
            facts = Fail2banClient(module, client, config_dir, timeout).state(history=module.params["history"])
        except CommandError as exc:
            module.fail_json(**exc.result())
    module.exit_json(changed=False, ansible_facts=dict(fail2ban=facts))


def main():
    run_module()


if __name__ == "__main__":
    main()
