#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: fail2ban_config
short_description: Install fail2ban configuration files after testing them with fail2ban-client -t
version_added: 0.3.0
description:
  - Puts the given files into fail2ban's configuration directory (C(jail.local), C(fail2ban.local),
    C(filter.d/*.local), C(action.d/*.conf), ...) in one call, and only when at least one differs from
    what is installed.
  - Before anything is installed, the whole configuration directory is copied into a private scratch
    directory, the new files are put into the copy, and C(fail2ban-client -c COPY -t) must accept it.
    A configuration fail2ban refuses fails the task with fail2ban's own messages and installs nothing,
    so the running fail2ban never restarts into a broken configuration.
  - Each file is written to a temporary file beside it, owned by root with mode 0644, and renamed over
    the old one; an existing file that is not a regular file (a symbolic link, a directory) is refused by
    name before anything is written.
  - Unchanged files are never tested or written, so a converged Mac costs one module call and no
    fail2ban-client run.
author:
  - pfguard developers (@pfguard)
extends_documentation_fragment:
  - pfguard.macos.command_timeout
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: >-
      Tells which files would change and runs the same C(fail2ban-client -t) test on a scratch copy, so
      check mode also says whether fail2ban would accept them; installs nothing.
  diff_mode:
    support: full
    details: Shows each changed file before and after.
  platform:
    platforms: darwin
options:
  config_dir:
    description:
      - fail2ban's configuration directory, as Homebrew lays it out (C(<prefix>/etc/fail2ban)).
      - An absolute path to an existing directory. In check mode it may be missing (fail2ban not installed
        yet); every file is then reported as a change and nothing is tested.
    type: path
    required: true
  client:
    description:
      - Absolute path of C(fail2ban-client), used for the test (C(-c DIR -t)).
      - It may be a symbolic link (Homebrew links it into the Cellar), but what it leads to must be an
        executable regular file.
    type: path
    required: true
  files:
    description:
      - The files to install, by path relative to O(config_dir), with their whole text as the value.
      - A name is C(NAME.local) or C(NAME.conf) at the top or in C(action.d), C(filter.d), C(jail.d) or
        C(fail2ban.d); NAME is letters, digits, C(_), C(.) and C(-), starting with a letter or digit.
        Any other name, a text with a NUL character or over 1 MiB is refused by name, before anything is
        read or written.
    type: dict
    required: true
notes:
  - The scratch copy copies symbolic links as links, leaves out FIFOs, sockets and devices, and is
    removed when the module ends, also when the test fails or is killed after O(command_timeout) seconds.
requirements:
  - fail2ban 0.10 or later (C(fail2ban-client -t))
seealso:
  - module: pfguard.macos.fail2ban_facts
  - name: fail2ban-client(1)
    description: fail2ban's command-line client, whose C(-t) tests a configuration.
    link: https://github.com/fail2ban/fail2ban/blob/master/man/fail2ban-client.1
"""

EXAMPLES = r"""
- name: Configure fail2ban's jails (tested before they are installed)
  pfguard.macos.fail2ban_config:
    config_dir: /opt/homebrew/etc/fail2ban
    client: /opt/homebrew/bin/fail2ban-client
    files:
      jail.local: "{{ lookup('ansible.builtin.template', 'jail.local.j2') }}"
      filter.d/sshd.local: "{{ lookup('ansible.builtin.file', 'filter.d/sshd.local', rstrip=false) }}"
  notify: Restart fail2ban
"""

RETURN = r"""
changed_files:
  description: The files (relative to O(config_dir)) that were, or in check mode would be, written.
  returned: always
  type: list
  elements: str
  sample: [jail.local]
tested:
  description: Whether C(fail2ban-client -t) accepted the configuration with the new files; false when no
    file changed (nothing to test) or, in check mode, when O(config_dir) does not exist yet.
  returned: always
  type: bool
  sample: true
"""

import os
import re
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import (
    COMMAND_TIMEOUT_ARGUMENT_SPEC,
    check_command_timeout,
    run_bounded,
)
from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError
from ansible_collections.pfguard.macos.plugins.module_utils.safe_files import (
    StagedFile,
    UnsafePath,
    check_path_text,
    check_write_target,
    command_path_problem,
    read_bounded,
)

FILE_NAME_RE = re.compile(
    r"\A(?:(?:action|filter|jail|fail2ban)\.d/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.(?:local|conf)\Z"
)
MAX_FILE_BYTES = 1024 * 1024
TEST_OUTPUT_LIMIT = 1024 * 1024


class Refused(Exception):
    """Bad input or an unsafe path: the message names it; nothing was written."""


def check_files(files):
    """{relative name: bytes}; Refused for a name or text fail2ban's directory must not get."""
    checked = {}
    for name in sorted(files):
        if not FILE_NAME_RE.match(name) or ".." in name:
            raise Refused("files: %r is not a fail2ban configuration file name (NAME.local or NAME.conf, at the "
                          "top or in action.d, filter.d, jail.d or fail2ban.d)" % name)
        text = files[name]
        if not isinstance(text, str):
            raise Refused("files: the text of %s must be a string, got %s" % (name, type(text).__name__))
        data = text.encode("utf-8", "surrogateescape")
        if b"\0" in data:
            raise Refused("files: the text of %s contains a NUL character" % name)
        if len(data) > MAX_FILE_BYTES:
            raise Refused("files: the text of %s is larger than %d bytes" % (name, MAX_FILE_BYTES))
        checked[name] = data
    if not checked:
        raise Refused("files is empty: name at least one file")
    return checked


def installed_bytes(config_dir, name):
    """What is installed as `name` (None when nothing is); Refused for anything but a regular file."""
    path = os.path.join(config_dir, name)
    try:
        check_write_target(path, "fail2ban file")
        return read_bounded(path, MAX_FILE_BYTES, "fail2ban file")
    except UnsafePath as exc:
        raise Refused(str(exc)) from None


def not_file_or_directory(directory, names):
    """copytree's ignore: FIFOs, sockets and devices are left out (reading a FIFO would block)."""
    ignored = []
    for name in names:
        mode = os.lstat(os.path.join(directory, name)).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            ignored.append(name)
    return ignored


def check_configuration(client, config_dir, changed, timeout):
    """Run `fail2ban-client -t` on a scratch copy of config_dir holding the changed files; Refused with
    fail2ban's output when it does not accept them."""
    scratch = tempfile.mkdtemp(prefix="pfguard-fail2ban.")
    try:
        copy = os.path.join(scratch, "fail2ban")
        shutil.copytree(config_dir, copy, symlinks=True, ignore=not_file_or_directory)
        for name, data in changed.items():
            path = os.path.join(copy, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.lexists(path):
                os.unlink(path)
            with open(path, "wb") as handle:
                handle.write(data)
        rc, stdout, stderr = run_bounded([client, "-c", copy, "-t"], timeout, output_limit=TEST_OUTPUT_LIMIT)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if rc != 0:
        output = "\n".join(part for part in (stdout.strip(), stderr.strip()) if part)
        raise Refused("fail2ban-client -t refused the configuration with %s (rc %d); nothing was installed:\n%s"
                      % (", ".join(sorted(changed)), rc, output))


def install(config_dir, changed):
    """Write every changed file, all staged first so a full disk or a bad path installs none of them."""
    staged = []
    try:
        for name, data in sorted(changed.items()):
            path = os.path.join(config_dir, name)
            if not os.path.isdir(os.path.dirname(path)):
                raise Refused("fail2ban file %s: directory %s does not exist" % (path, os.path.dirname(path)))
            staged.append(StagedFile(path, data, 0o644, owner=(0, 0)))
        for item in staged:
            item.commit()
    except (OSError, UnsafePath) as exc:
        raise Refused("installing fail2ban's files failed: %s" % exc) from None
    finally:
        for item in staged:
            item.discard()


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            config_dir=dict(type="path", required=True),
            client=dict(type="path", required=True),
            files=dict(type="dict", required=True),
            **COMMAND_TIMEOUT_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    timeout = check_command_timeout(module)
    config_dir, client = module.params["config_dir"], module.params["client"]
    result = dict(changed=False, changed_files=[], tested=False)
    try:
        check_path_text(config_dir, "config_dir")
        files = check_files(module.params["files"])
        try:
            mode = os.lstat(config_dir).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISDIR(mode):
            raise Refused("config_dir %s is not a directory" % config_dir)
        if mode is None and not module.check_mode:
            raise Refused("config_dir %s does not exist: install fail2ban first" % config_dir)
        before = {name: installed_bytes(config_dir, name) if mode is not None else None for name in files}
        changed = {name: data for name, data in files.items() if before[name] != data}
        if changed and mode is not None:
            problem = command_path_problem(client, "client", "fail2ban-client")
            if problem:
                raise Refused(problem)
            check_configuration(client, config_dir, changed, timeout)
            result["tested"] = True
        if changed and not module.check_mode:
            install(config_dir, changed)
    except (Refused, UnsafePath) as exc:
        module.fail_json(msg=str(exc), **result)
    except CommandError as exc:
        module.fail_json(**exc.result())
    result.update(changed=bool(changed), changed_files=sorted(changed))
    if module._diff and changed:
        result["diff"] = [
            dict(before_header=os.path.join(config_dir, name), after_header=os.path.join(config_dir, name),
                 before=(before[name] or b"").decode("utf-8", "replace"), after=data.decode("utf-8", "replace"))
            for name, data in sorted(changed.items())
        ]
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
