#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: afctl
short_description: Manage macOS Server's Adaptive Firewall idempotently
version_added: 0.1.0
description:
  - Keeps the Adaptive Firewall (C(afctl) from macOS Server's Server.app) whitelist, blacklist, on/off
    state, block time and bad-authentication threshold as requested.
  - Reads the whitelist and blacklist files and afctl's settings first and runs C(afctl -w), C(-x), C(-r),
    C(-H), C(-T), C(-e) or C(-d) only for real differences, one address per call, so a second run reports
    no change.
  - Addresses are normalised the way pfctl stores them (host bits masked, C(/32) and C(/128) dropped, IPv6
    compressed), both in the request and in the files, so C(10.1.2.3/8) and C(10.0.0.0/8) are the same entry.
  - macOS Server was discontinued in April 2022 (last release 5.12.2, Monterey only); C(afctl) does not exist
    on client macOS. The task fails when O(afctl_path) is missing; roles decide whether to skip such hosts.
  - Every option is checked before the first afctl call, and every file is read before it too, so a bad
    value or an unsafe file fails the task with an error naming it and nothing is changed.
author:
  - pfguard developers (@pfguard)
extends_documentation_fragment:
  - pfguard.macos.command_timeout
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads the files and settings and reports what would change; runs no afctl command.
  diff_mode:
    support: full
    details: Shows the whitelist, the unblocked addresses and the settings before and after.
  platform:
    support: full
    platforms: darwin
options:
  whitelist:
    description:
      - IPv4 or IPv6 hosts or CIDR networks for the whitelist. Adaptive Firewall never blocks them.
      - Hostnames, interface names, C(!) negation and malformed values are refused with an error naming each
        bad value; nothing is changed then.
      - At most 1024 entries.
      - When omitted the whitelist is not touched, whatever O(whitelist_state) says.
    type: list
    elements: str
  whitelist_state:
    description:
      - V(present) adds the O(whitelist) entries that are missing and keeps every other entry (for example the
        routers, interfaces and name servers C(afctl -c) whitelisted).
      - V(exact) also removes every entry not in O(whitelist).
      - V(absent) removes the O(whitelist) entries that are listed.
    type: str
    choices: [present, exact, absent]
    default: present
  unblock:
    description:
      - Addresses to take off the blacklist (and out of the PF table C(blockedHosts)) with C(afctl -r).
      - Only addresses the blacklist file actually lists are passed to afctl, in the form the file holds them.
      - At most 1024 entries.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(enabled) runs C(afctl -e) (enable the afctl-managed rules) and V(disabled) runs C(afctl -d), each
        only when afctl's state differs.
      - The state is read from O(af_state_file); when that does not say, from C(start_behavior) in af.plist.
      - When omitted the state is not touched.
    type: str
    choices: [enabled, disabled]
  block_time:
    description:
      - Minutes a blocked host stays blocked (C(afctl -H)); compared with C(default_timeout) in af.plist.
      - 1 to 2147483647.
      - When omitted the block time is not touched.
    type: int
  threshold:
    description:
      - Failed authentications before a host is blocked (C(afctl -T)); compared with C(hostBlockThreshold) in
        emond's C(AdaptiveFirewall.plist).
      - 1 to 2147483647.
      - When omitted the threshold is not touched.
    type: int
  afctl_path:
    description:
      - Absolute path of afctl. On OS X 10.6 and 10.7 it was C(/usr/libexec/afctl), a symbolic link to
        the AdaptiveFirewall bundle's afctl; what it leads to must be an executable regular file.
    type: path
    default: /Applications/Server.app/Contents/ServerRoot/usr/libexec/afctl
  whitelist_file:
    description:
      - The whitelist afctl keeps, one address per line.
    type: path
    default: /var/db/af/whitelist
  blacklist_file:
    description:
      - The blacklist afctl keeps, one address per line (further columns, such as an expiry, are ignored).
    type: path
    default: /var/db/af/blacklist
  settings_file:
    description:
      - afctl's af.plist, holding C(default_timeout) and C(start_behavior).
      - Default is C(<ServerRoot>/etc/af.plist) where C(<ServerRoot>) is O(afctl_path) without
        C(/usr/libexec/afctl), or C(/etc/af.plist) when only that one exists.
    type: path
  threshold_file:
    description:
      - emond's Adaptive Firewall rule file holding C(hostBlockThreshold).
      - Default is C(<ServerRoot>/private/etc/emond.d/rules/AdaptiveFirewall.plist).
    type: path
  af_state_file:
    description:
      - The run-time state afctl records (whether its rules are enabled).
    type: path
    default: /var/run/af_state
notes:
  - Runs afctl with C(LANG=C). afctl must run as root.
  - Each afctl call is killed after O(command_timeout) seconds (or when it prints more than 1 MiB) and the
    task fails naming the call; the calls made before it are listed in C(commands).
  - The file options must be absolute paths without control characters. Each file is read only if it is
    a regular file, never through a symbolic link, and at most 1 MiB of it; a symbolic link, directory,
    FIFO, device or larger file fails the task naming the option and the path. A missing file is empty
    (the whitelist and blacklist) or unknown (the property lists).
  - A whitelist or blacklist line that is not UTF-8 text, holds control characters or starts with C(-)
    fails the task naming the file and the line, as the module would otherwise pass it to C(afctl -x) or
    C(afctl -r).
  - The blacklist line format and the af_state format are not documented by Apple; the module reads the first
    word of each line and a property list with an C(enabled) boolean, and verifies every whitelist and
    blacklist change by reading the file again.
  - Adaptive Firewall's own PF anchor is C(com.apple/400.AdaptiveFirewall) with the table C(blockedHosts).
seealso:
  - name: afctl(8)
    description: Adaptive Firewall control (macOS Server).
    link: https://support.apple.com/guide/server/welcome/mac
"""

EXAMPLES = r"""
- name: Whitelist the admin networks and enable Adaptive Firewall
  pfguard.macos.afctl:
    whitelist:
      - 192.0.2.0/24
      - 2001:db8::/48
    state: enabled
    block_time: 60
    threshold: 5

- name: Lift Adaptive Firewall's block on an address
  pfguard.macos.afctl:
    unblock: [203.0.113.7]

- name: Take pfguard's entries off the whitelist again
  pfguard.macos.afctl:
    whitelist: [192.0.2.0/24]
    whitelist_state: absent
"""

RETURN = r"""
whitelist:
  description: The whitelist after the task (in check mode, as it would be), as the file lists it.
  returned: always
  type: list
  elements: str
  sample: ["192.168.1.1", "192.0.2.0/24"]
wanted:
  description: The requested O(whitelist) in normalised form.
  returned: always
  type: list
  elements: str
  sample: ["192.0.2.0/24"]
added:
  description: Entries added to the whitelist with C(afctl -w) (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["192.0.2.0/24"]
removed:
  description: Entries removed from the whitelist with C(afctl -x), as the file listed them.
  returned: always
  type: list
  elements: str
  sample: ["198.51.100.9"]
unblocked:
  description: Blacklist entries removed with C(afctl -r), as the file listed them.
  returned: always
  type: list
  elements: str
  sample: ["203.0.113.7"]
settings:
  description:
    - State, block time (minutes) and threshold after the task; C(null) where afctl's files do not say.
  returned: always
  type: dict
  sample: {"state": "enabled", "block_time": 60, "threshold": 5}
settings_before:
  description: State, block time and threshold before the task; C(null) where afctl's files do not say.
  returned: always
  type: dict
  sample: {"state": "disabled", "block_time": 15, "threshold": 10}
commands:
  description: The afctl command lines run (in check mode, that would run).
  returned: always
  type: list
  elements: list
  sample: [["/Applications/Server.app/Contents/ServerRoot/usr/libexec/afctl", "-w", "192.0.2.0/24"]]
"""

import os
import plistlib

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import (
    COMMAND_TIMEOUT_ARGUMENT_SPEC,
    CommandError,
    check_command_timeout,
    run_bounded,
)
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import normalize_address, normalize_addresses
from ansible_collections.pfguard.macos.plugins.module_utils.safe_files import (
    UnsafePath,
    check_path_text,
    read_bounded,
)

# afctl's messages are returned to the user and must not depend on the controller's locale.
AFCTL_ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
AFCTL_SUFFIX = "/usr/libexec/afctl"
DEFAULT_SERVER_ROOT = "/Applications/Server.app/Contents/ServerRoot"
LEGACY_SETTINGS_FILE = "/etc/af.plist"  # OS X 10.6/10.7 Server, and where krypted.com finds it
SETTINGS = ("state", "block_time", "threshold")
PATH_OPTIONS = ("afctl_path", "whitelist_file", "blacklist_file", "settings_file", "threshold_file", "af_state_file")
# afctl's files are a few KiB; more than this is not a file afctl wrote.
READ_LIMIT = 1024 * 1024
# What afctl prints is a line or two; more is a runaway command.
OUTPUT_LIMIT = 1024 * 1024
# One afctl call per entry: more than this is a mistake (a whole feed), not a whitelist.
MAX_ENTRIES = 1024
# afctl parses -H and -T into a C int.
INT_MAX = 2147483647
# Nesting deeper than this in emond's rule file is not a rule file.
MAX_PLIST_DEPTH = 32


class AfctlFailure(Exception):
    """Ends the task with fail_json(**self.result)."""

    def __init__(self, **result):
        super(AfctlFailure, self).__init__(result.get("msg"))
        self.result = result


def server_root(afctl_path):
    """Server.app's ServerRoot for an afctl path (the prefix before usr/libexec/afctl)."""
    if afctl_path.endswith(AFCTL_SUFFIX):
        return afctl_path[: -len(AFCTL_SUFFIX)]
    return DEFAULT_SERVER_ROOT


def default_settings_file(root):
    """af.plist: Server.app keeps it under ServerRoot/etc, 10.6/10.7 and some Server.app installs in /etc."""
    candidate = root + "/etc/af.plist"
    if not os.path.exists(candidate) and os.path.exists(LEGACY_SETTINGS_FILE):
        return LEGACY_SETTINGS_FILE
    return candidate


def read_file(option, path):
    """Bytes of a regular file (None when missing), or AfctlFailure naming the option and the path."""
    try:
        return read_bounded(path, READ_LIMIT, option)
    except UnsafePath as exc:
        raise AfctlFailure(msg=str(exc)) from None


def read_address_lines(option, path):
    """Entries of a whitelist/blacklist file: first word of each line, blank lines and comments skipped.
    A missing file is an empty list (afctl creates it on the first change). Entries are passed to afctl
    verbatim, so a line that is not clean text fails naming it."""
    data = read_file(option, path)
    if data is None:
        return []
    entries = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = None
        words = line.split() if line is not None else []
        problem = None
        if line is None:
            problem = "is not UTF-8 text"
        elif any(ord(char) < 32 and char not in "\t\r" or ord(char) == 127 for char in line):
            problem = "holds a control character"
        elif words and words[0].startswith("-"):
            problem = "starts with '-', which afctl would read as an option"
        if problem:
            raise AfctlFailure(
                msg="%s %s line %d %s: %r" % (option, path, number, problem, raw.decode("utf-8", "replace"))
            )
        if words and not words[0].startswith("#"):
            entries.append(words[0])
    return entries


def canonical(entry):
    """Normalised form of a file entry, or None for text that is not an address (kept, never matched)."""
    try:
        return normalize_address(entry)
    except ValueError:
        return None


def read_plist(option, path):
    """Parsed property list (XML or binary), or None when missing or malformed; AfctlFailure when the
    path is not a regular file (a FIFO or /dev/zero would never end)."""
    data = read_file(option, path)
    if data is None:
        return None
    try:
        return plistlib.loads(data)
    except Exception:  # plistlib raises several types for malformed files; malformed means "unknown"
        return None


def find_key(data, key):
    """First value of `key` in nested dicts/lists (emond rule files are arrays of rule dicts), depth
    first in file order, looking at most MAX_PLIST_DEPTH levels deep (no recursion to run out of)."""
    stack = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if node.get(key) is not None:
                return node[key]
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth < MAX_PLIST_DEPTH:
            stack.extend((child, depth + 1) for child in reversed(children))
    return None


def as_int(value):
    """af.plist(5) stores numbers as strings; accept both, anything else is unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -INT_MAX - 1 <= value <= INT_MAX else None
    text = value.strip() if isinstance(value, str) else ""
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isdigit() and digits.isascii() and len(digits) <= 10):
        return None
    number = int(text)
    return number if -INT_MAX - 1 <= number <= INT_MAX else None


def read_settings(paths):
    settings = read_plist("settings_file", paths["settings_file"])
    settings = settings if isinstance(settings, dict) else {}
    af_state = read_plist("af_state_file", paths["af_state_file"])
    enabled = af_state.get("enabled") if isinstance(af_state, dict) else None
    if isinstance(enabled, bool):
        state = "enabled" if enabled else "disabled"
    else:
        # No run-time record (e.g. after a reboot): what afctl does at start, default disable (af.plist(5)).
        state = "enabled" if str(settings.get("start_behavior", "")).strip() == "enable" else "disabled"
    return dict(
        state=state,
        block_time=as_int(settings.get("default_timeout")),
        threshold=as_int(find_key(read_plist("threshold_file", paths["threshold_file"]), "hostBlockThreshold")),
    )


def plan_whitelist(current, wanted, whitelist_state):
    """(entries to add, file entries to remove); `current` is the file's list, `wanted` normalised."""
    normalised = [(entry, canonical(entry)) for entry in current]
    present = set(value for _entry, value in normalised if value is not None)
    if whitelist_state == "absent":
        return [], [entry for entry, value in normalised if value in wanted]
    to_remove = []
    if whitelist_state == "exact":
        to_remove = [entry for entry, value in normalised if value not in wanted]
    return [entry for entry in wanted if entry not in present], to_remove


def plan_unblock(blacklist, unblock):
    """File entries of the blacklist that match a requested address."""
    return [entry for entry in blacklist if canonical(entry) in unblock]


def render(whitelist, settings, heading):
    lines = ["# %s" % heading, "whitelist:"] + ["  - %s" % entry for entry in whitelist]
    lines += ["%s: %s" % (name, "unknown" if settings[name] is None else settings[name]) for name in SETTINGS]
    return "\n".join(lines) + "\n"


class Afctl(object):
    """Runs afctl, one flag per call, each bounded by `timeout` seconds, and records every command."""

    def __init__(self, module, path, timeout):
        self.module = module
        self.path = path
        self.timeout = timeout
        self.commands = []

    def run(self, flag, value=None):
        cmd = [self.path, flag] + ([] if value is None else [str(value)])
        self.commands.append(cmd)
        if self.module.check_mode:
            return
        try:
            rc, stdout, stderr = run_bounded(cmd, self.timeout, environ_update=AFCTL_ENV, output_limit=OUTPUT_LIMIT)
        except CommandError as exc:
            raise AfctlFailure(**exc.result()) from None
        if rc != 0:
            raise AfctlFailure(
                msg="%s failed: %s" % (" ".join(cmd[1:]), stderr.strip() or stdout.strip() or "exit %d" % rc),
                cmd=cmd, rc=rc, stdout=stdout, stderr=stderr,
            )  # fmt: skip


def verify_lists(params, added, removed, unblocked):
    """afctl exits 0 even if it kept its lists elsewhere; a change the files do not show would repeat on
    every run, so say which file option is wrong."""
    whitelist = set(canonical(e) for e in read_address_lines("whitelist_file", params["whitelist_file"]))
    blacklist = read_address_lines("blacklist_file", params["blacklist_file"])
    problems = ["afctl -w %s ran but %s does not list it" % (e, params["whitelist_file"])
                for e in added if e not in whitelist]  # fmt: skip
    problems += ["afctl -x %s ran but %s still lists it" % (e, params["whitelist_file"])
                 for e in removed if canonical(e) in whitelist]  # fmt: skip
    problems += ["afctl -r %s ran but %s still lists it" % (e, params["blacklist_file"])
                 for e in unblocked if e in blacklist]  # fmt: skip
    if problems:
        raise AfctlFailure(msg="; ".join(problems) + " (check whitelist_file/blacklist_file)")


def check_paths(module, params):
    """Every path option absolute and free of control characters; afctl an executable regular file
    (a symbolic link to one is fine: 10.6/10.7's /usr/libexec/afctl is one)."""
    errors = []
    for name in PATH_OPTIONS:
        if params[name] is not None:
            try:
                check_path_text(params[name], name)
            except UnsafePath as exc:
                errors.append(str(exc))
    if errors:
        module.fail_json(msg="Invalid afctl arguments: %s" % "; ".join(errors))
    if not (os.path.isfile(params["afctl_path"]) and os.access(params["afctl_path"], os.X_OK)):
        module.fail_json(
            msg="afctl not found or not executable at %s: Adaptive Firewall needs macOS Server (Server.app), "
            "which was discontinued in 2022 and does not exist on client macOS" % params["afctl_path"]
        )


def check_input(module, params):
    errors = []
    for name in ("whitelist", "unblock"):
        if params[name] is not None and len(params[name]) > MAX_ENTRIES:
            errors.append("%s has %d entries, at most %d are accepted" % (name, len(params[name]), MAX_ENTRIES))
    if errors:
        module.fail_json(msg="Invalid afctl arguments: %s" % "; ".join(errors))
    wanted, bad = normalize_addresses(params["whitelist"] or [])
    unblock, bad_unblock = normalize_addresses(params["unblock"])
    errors = ["whitelist '%s' (%s)" % item for item in bad] + ["unblock '%s' (%s)" % item for item in bad_unblock]
    for name in ("block_time", "threshold"):
        if params[name] is not None and not 1 <= params[name] <= INT_MAX:
            errors.append("%s must be 1 to %d, got %d" % (name, INT_MAX, params[name]))
    if errors:
        module.fail_json(
            msg="Invalid afctl arguments: %s" % "; ".join(errors),
            invalid=[value for value, _reason in bad + bad_unblock],
        )
    check_paths(module, params)
    return list(wanted), set(unblock)


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            whitelist=dict(type="list", elements="str"),
            whitelist_state=dict(type="str", default="present", choices=["present", "exact", "absent"]),
            unblock=dict(type="list", elements="str", default=[]),
            state=dict(type="str", choices=["enabled", "disabled"]),
            block_time=dict(type="int"),
            threshold=dict(type="int"),
            afctl_path=dict(type="path", default=DEFAULT_SERVER_ROOT + AFCTL_SUFFIX),
            whitelist_file=dict(type="path", default="/var/db/af/whitelist"),
            blacklist_file=dict(type="path", default="/var/db/af/blacklist"),
            settings_file=dict(type="path"),
            threshold_file=dict(type="path"),
            af_state_file=dict(type="path", default="/var/run/af_state"),
            **COMMAND_TIMEOUT_ARGUMENT_SPEC
        ),
        supports_check_mode=True,
    )
    params = module.params
    timeout = check_command_timeout(module)
    wanted, unblock = check_input(module, params)
    root = server_root(params["afctl_path"])
    paths = dict(
        settings_file=params["settings_file"] or default_settings_file(root),
        threshold_file=params["threshold_file"] or root + "/private/etc/emond.d/rules/AdaptiveFirewall.plist",
        af_state_file=params["af_state_file"],
    )
    afctl = Afctl(module, params["afctl_path"], timeout)
    result = dict(changed=False, wanted=wanted, added=[], removed=[], unblocked=[], commands=afctl.commands)
    try:
        # Everything is read (and every file checked) before the first afctl call.
        whitelist = read_address_lines("whitelist_file", params["whitelist_file"])
        blacklist = read_address_lines("blacklist_file", params["blacklist_file"])
        before = read_settings(paths)
        to_add, to_remove = [], []
        if params["whitelist"] is not None:
            to_add, to_remove = plan_whitelist(whitelist, wanted, params["whitelist_state"])
        to_unblock = plan_unblock(blacklist, unblock)
        result.update(added=to_add, removed=to_remove, unblocked=to_unblock, settings_before=before)

        # Removals first, so an exact whitelist never holds both an old and a new form of an entry; the state
        # last, so `-e` reloads a blacklist that no longer holds the unblocked addresses.
        for entry in to_remove:
            afctl.run("-x", entry)
        for entry in to_add:
            afctl.run("-w", entry)
        for entry in to_unblock:
            afctl.run("-r", entry)
        if params["block_time"] is not None and before["block_time"] != params["block_time"]:
            afctl.run("-H", params["block_time"])
        if params["threshold"] is not None and before["threshold"] != params["threshold"]:
            afctl.run("-T", params["threshold"])
        if params["state"] is not None and before["state"] != params["state"]:
            afctl.run("-e" if params["state"] == "enabled" else "-d")

        requested = dict((name, params[name]) for name in SETTINGS if params[name] is not None)
        if module.check_mode:
            gone = set(to_remove)
            result["whitelist"] = [entry for entry in whitelist if entry not in gone] + to_add
            result["settings"] = dict(before, **requested)
        else:
            if to_add or to_remove or to_unblock:
                verify_lists(params, to_add, to_remove, to_unblock)
            result["whitelist"] = read_address_lines("whitelist_file", params["whitelist_file"])
            result["settings"] = read_settings(paths)
            for name, value in requested.items():
                if result["settings"][name] != value:
                    module.warn(
                        "afctl was asked to set %s to %s but afctl's files say %s; the next run will set it again"
                        % (name, value, result["settings"][name])
                    )
    except AfctlFailure as exc:
        failure = dict(exc.result, commands=afctl.commands)
        module.fail_json(**failure)

    result["changed"] = bool(afctl.commands)
    if module._diff:
        result["diff"] = dict(
            before=render(whitelist, before, "before"),
            after=render(result["whitelist"], result["settings"], "after"),
            before_header="Adaptive Firewall",
            after_header="Adaptive Firewall",
        )
        if to_unblock:
            result["diff"]["after"] += "unblocked:\n" + "".join("  - %s\n" % entry for entry in to_unblock)
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()
