#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pfctl_table
short_description: Manage the addresses in a PF table idempotently
version_added: 0.1.0
description:
  - Makes a PF table (in the main ruleset or in an anchor) hold the addresses it should, with one
    C(pfctl -T show), at most one C(pfctl -T add -f -) and one C(pfctl -T delete -f -), whatever the
    number of addresses.
  - It can kill the PF states the listed addresses initiated, so open connections of a banned host are
    cut, not only new ones.
  - A lockout guard refuses to put into the table any address that overlaps a O(protect) network or the
    address the controller is connected from, and any network as wide as an IPv4 C(/8) or an IPv6
    C(/32) unless O(allow_wide_networks=true). The module's action plugin learns the controller's address
    from the SSH connection as the login user, before C(become) (sudo drops C(SSH_CONNECTION)).
  - Addresses are normalised the way pfctl stores them, so C(10.1.2.3/8) and C(10.0.0.0/8) are the same
    entry and a second run reports no change.
  - Every option is checked before the first command runs; a value that is refused is named in the
    error and nothing is changed. Every line pfctl prints is parsed strictly; a line that is not what
    pfctl prints fails the task naming it.
  - Runs that change a table on one host take turns on the lock file C(/var/run/pfguard.pfctl_table.lock).
    Reading the table, changing it and writing O(persist_file) happen under the lock, so two plays at
    once cannot lose each other's entries.
  - A table only blocks traffic when a rule reachable from the main ruleset references it and PF is
    enabled; this module manages membership only.
author:
  - pfguard developers (@pfguard)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - pfguard.macos.pfctl
  - pfguard.macos.command_timeout
attributes:
  action:
    support: full
    details: The action plugin reads the controller's address as the login user and passes it in O(controller_address).
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: Reads the table, O(persist_file) and, when states would be killed, the state list; changes nothing.
  diff_mode:
    support: full
    details: Shows the table entries before and after.
  platform:
    support: full
    platforms: [darwin, freebsd, openbsd]
options:
  table:
    description:
      - "Name of the PF table, 1 to 31 bytes (PF_TABLE_NAME_SIZE), printable ASCII without blanks,
        quotes, parentheses or any of C(<), C(>), C(/), C({), C(}), C(!), C(=), C(,), C(#) and C($)."
    type: str
    required: true
  anchor:
    description:
      - Anchor path holding the table, for example C(pfguard) or C(f2b/sshd).
      - Printable ASCII without blanks and quotes, at most 1023 bytes; each component is 1 to 63 bytes,
        is not C(.) or C(..), does not start with C(_) and does not contain C(*).
      - The empty string is the main ruleset.
    type: str
    default: ""
  addresses:
    description:
      - IPv4 or IPv6 hosts or CIDR networks.
      - Host bits are masked (C(10.1.2.3/8) is C(10.0.0.0/8)), C(/32) and C(/128) mean the host, IPv6 is
        compared in compressed form and duplicates collapse.
      - A prefix length is plain decimal with ASCII digits. Leading zeros (pfctl reads C(/010) as octal,
        C(/8)), C(0x), signs and blanks are refused.
      - Hostnames, interface names, C(!) negation and malformed values are refused with an error that
        names each bad value; nothing is changed then.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) adds the addresses that are missing.
      - V(absent) removes the listed addresses.
      - V(exact) makes the table hold exactly the listed addresses, removing every other entry.
    type: str
    choices: [present, absent, exact]
    default: present
  match:
    description:
      - How O(state=absent) finds the entries to remove.
      - V(exact) removes the listed addresses and networks themselves.
      - V(inside) removes every entry that lies inside one of the listed networks (an entry equal to one
        counts), so that lifting C(198.51.100.0/24) also lifts C(198.51.100.7) and C(198.51.100.64/26).
        Negated entries (C(!address)) stay - they block nothing, and removing one could block its address
        again through a wider entry.
      - Only with O(state=absent).
    type: str
    choices: [exact, inside]
    default: exact
  kill_states:
    description:
      - With O(state=present) or O(state=exact), kill the PF states whose source is a listed address,
        newly added or already in the table, so that established connections from a banned host are cut.
        A run whose kill failed is finished by the next run.
      - Costs one C(pfctl -s states) per run and one C(pfctl -k) per listed entry that actually has states;
        killing states is a change.
    type: bool
    default: true
  protect:
    description:
      - Networks that must never enter the table. Any requested address that overlaps one of them
        (inside it, or a network containing it) makes the task fail before any change.
    type: list
    elements: str
    default: []
  protect_controller:
    description:
      - Refuse any address that covers the address the controller is connected from, any C(/0), and
        networks as wide as IPv4 C(/8) or IPv6 C(/32) without O(allow_wide_networks).
      - Set it to V(false) only for tables that let traffic in rather than block it (for example
        a trusted table that a C(pass quick) rule references), which must hold the controller's network;
        O(protect) still applies.
    type: bool
    default: true
  controller_address:
    description:
      - The address (or addresses) the controller connects from, as this host sees it.
      - The action plugin adds the client address of the login user's C(SSH_CONNECTION), read before
        C(become) without a shell argument from the task; with the C(local) connection it adds the
        controller's own C(SSH_CONNECTION), if any. The module also protects its own C(SSH_CONNECTION)
        or C(SSH_CLIENT) when C(become) kept them.
      - A scope (C(%en0)) is dropped and an IPv4-mapped address (C(::ffff:192.0.2.10)) counts as the
        IPv4 address. When no address is known at all the task warns and only wide networks are refused.
    type: list
    elements: str
  allow_wide_networks:
    description:
      - Allow IPv4 networks of C(/1) to C(/8) and IPv6 networks of C(/1) to C(/32) into a table that
        O(protect_controller) guards. An IPv4 C(/8) is a whole registry block; an IPv6 C(/32) is the usual
        allocation of a whole provider. C(/0) is never allowed there.
    type: bool
    default: false
  persist_file:
    description:
      - Keep this file equal to the table's full contents, one entry per line in pfctl's order, mode 0644.
      - An absolute path, taken as given (no C(~) or variable expansion), without control characters, in an
        existing directory (in check mode the directory may be missing, as a play creates it first). It
        must be a regular file or not exist; a symlink, device, FIFO or directory is refused before
        anything changes.
      - A temporary file a killed run left beside it is removed by the next run.
      - The new contents are written and flushed to a temporary file beside it before the table changes
        (a full disk changes nothing) and renamed over it once the table is changed.
      - Use it with C(table <name> persist file "<path>") in the ruleset so the table is restored at boot.
    type: str
notes:
  - pfctl prints its counts, the ALTQ lines and the C(-f) warning on stderr; they are not errors.
  - If C(pfctl -s states) or C(pfctl -k) fails after the table changed, O(persist_file) has already been
    written to match the table; the error says what was changed and a re-run kills the remaining states.
  - Without the action plugin (for example when the module is run by another action), only the module's
    own C(SSH_CONNECTION) is known, and sudo drops it; pass O(controller_address) or list your admin
    networks in O(protect).
seealso:
  - name: pfctl(8)
    description: The PF control command.
    link: https://man.openbsd.org/pfctl
"""

EXAMPLES = r"""
- name: Ban two addresses everywhere, cutting their open connections
  pfguard.macos.pfctl_table:
    anchor: pfguard
    table: pfguard_blocklist
    addresses:
      - 203.0.113.7
      - 2001:db8::/64
    protect: "{{ pfguard_trusted_networks }}"
    persist_file: /usr/local/etc/pfguard/blocklist.txt

- name: Ban a whole /8 on purpose
  pfguard.macos.pfctl_table:
    anchor: pfguard
    table: pfguard_blocklist
    addresses: [198.0.0.0/8]
    allow_wide_networks: true
    protect: "{{ pfguard_trusted_networks }}"

- name: Lift a ban
  pfguard.macos.pfctl_table:
    anchor: pfguard
    table: pfguard_blocklist
    addresses: [203.0.113.7]
    state: absent

- name: Make the trusted table hold exactly the trusted networks
  pfguard.macos.pfctl_table:
    anchor: pfguard
    table: pfguard_trusted
    addresses: "{{ pfguard_trusted_networks }}"
    state: exact
    kill_states: false
    protect_controller: false  # a pass table: it must hold the admin's own network
"""

RETURN = r"""
added:
  description: Entries added to the table (or that would be, in check mode), in pfctl's form.
  returned: always
  type: list
  elements: str
  sample: ["203.0.113.7", "2001:db8::/64"]
removed:
  description: Entries removed from the table (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["198.51.100.9"]
entries:
  description: Number of entries in the table after the task.
  returned: always
  type: int
  sample: 2
states_killed:
  description: Number of PF states killed (in check mode, the number that would be killed).
  returned: always
  type: int
  sample: 1
controller_address:
  description: The controller's address(es) the guard used, as this host sees them; empty when unknown.
  returned: always
  type: list
  elements: str
  sample: ["192.0.2.10"]
"""

import os
import signal

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import (
    COMMAND_TIMEOUT_ARGUMENT_SPEC,
    check_command_timeout,
)
from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import (
    LOCK_PATH,
    PFCTL_ARGUMENT_SPEC,
    WIDE_PREFIX,
    ChangeLock,
    LockError,
    Pfctl,
    check_table_name,
    controller_from_environment,
    is_wide,
    normalize_addresses,
    normalize_anchor,
    overlaps,
    parse_controller,
    pfctl_path,
    radix_key,
    shown,
)
from ansible_collections.pfguard.macos.plugins.module_utils.safe_files import (
    StagedFile,
    UnsafePath,
    check_path_text,
    check_write_target,
    read_bounded,
    remove_stale_staged,
)

# A persist file larger than this is no table file (PF's default table-entries limit is 200 000).
PERSIST_READ_LIMIT = 64 * 1024 * 1024
UNKNOWN_CONTROLLER = "unknown (no controller_address and no SSH_CONNECTION or SSH_CLIENT)"


def controller_addresses(module):
    """{text: key} of the controller's address as this host sees it: the controller_address option
    (the action plugin fills it in from the login user's SSH connection, before become) and this
    process's own SSH_CONNECTION/SSH_CLIENT (present without become, gone under sudo)."""
    found = {}
    bad = []
    for value in module.params["controller_address"] or []:
        try:
            text, key = parse_controller(value)
        except ValueError:
            bad.append(value)
            continue
        found.setdefault(text, key)
    if bad:
        module.fail_json(
            msg="Not valid controller addresses: %s (give the literal address the controller connects from)"
            % ", ".join(shown(value) for value in bad),
            invalid=bad,
        )
    from_environment = controller_from_environment(os.environ)
    if from_environment is not None:
        found.setdefault(*from_environment)
    return found


def lockout_conflicts(wanted, protect, controllers, guard_controller, allow_wide):
    """Messages naming every wanted entry that overlaps a protected network or the controller, or
    that is too wide (see WIDE_PREFIX)."""
    guards = list(protect.items())
    if guard_controller:
        guards += [("the controller's address %s" % text, key) for text, key in controllers.items()]
    conflicts = []
    for entry, key in wanted.items():
        version, _network, prefix = key
        if guard_controller and prefix == 0:
            conflicts.append("%s covers every IPv%d address" % (entry, version))
        elif guard_controller and is_wide(key) and not allow_wide:
            conflicts.append(
                "%s is a /%d network: IPv4 networks of /%d or wider and IPv6 networks of /%d or wider need "
                "allow_wide_networks: true" % (entry, prefix, WIDE_PREFIX[4], WIDE_PREFIX[6])
            )
        for name, guard in guards:
            if overlaps(key, guard):
                conflicts.append("%s overlaps %s" % (entry, name))
    return conflicts


def inside(entries, networks):
    """The entries that lie inside one of `networks` ({text: key}). Negated entries are left alone: they
    block nothing, and removing one would block the address again in a wider entry that stays."""
    containers = list(networks.values())
    found = []
    for entry in entries:
        if entry.startswith("!"):
            continue
        parsed, _bad = normalize_addresses([entry])
        for key in parsed.values():
            if any(key[2] >= net[2] and overlaps(key, net) for net in containers):
                found.append(entry)
    return found


def plan(current, wanted, state, match="exact"):
    """Entries to delete and to add. `current` maps entry text (with '!' if negated) to itself."""
    if state == "absent" and match == "inside":
        return inside(current, wanted), []
    positive = set(entry for entry in current if not entry.startswith("!"))
    negated = set(entry[1:] for entry in current if entry.startswith("!"))
    if state == "absent":
        to_delete = [e for e in wanted if e in positive] + ["!" + e for e in wanted if e in negated]
        return to_delete, []
    # A negated entry for a wanted address would keep it from matching: replace it.
    to_delete = ["!" + e for e in wanted if e in negated]
    if state == "exact":
        to_delete += [e for e in positive if e not in wanted]
        to_delete += ["!" + e for e in negated if e not in wanted]
    to_add = [e for e in wanted if e not in positive]
    return to_delete, to_add


def check_inputs(module):
    """Every option checked before anything runs or changes; returns what the run needs."""
    params = module.params
    timeout = check_command_timeout(module)
    path = pfctl_path(module)
    table, state = params["table"], params["state"]
    problem = check_table_name(table)
    if problem:
        module.fail_json(msg=problem)
    if params["match"] == "inside" and state != "absent":
        module.fail_json(msg="match=inside only goes with state=absent, not state=%s; nothing was changed" % state)
    try:
        anchor = normalize_anchor(params["anchor"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    wanted, bad = normalize_addresses(params["addresses"])
    if bad:
        module.fail_json(
            msg="Not valid PF table addresses: %s" % "; ".join("%s (%s)" % (shown(v), why) for v, why in bad),
            invalid=[value for value, _reason in bad],
        )
    protect, bad = normalize_addresses(params["protect"])
    if bad:
        module.fail_json(
            msg="Not valid protect networks: %s" % "; ".join("%s (%s)" % (shown(v), why) for v, why in bad),
            invalid=[value for value, _reason in bad],
        )
    controllers = controller_addresses(module)
    seen_as = ", ".join(controllers) or UNKNOWN_CONTROLLER
    if state != "absent":
        guard = params["protect_controller"]
        conflicts = lockout_conflicts(wanted, protect, controllers, guard, params["allow_wide_networks"])
        if conflicts:
            module.fail_json(
                msg="Refusing to change table %s: %s. The controller's address as this host sees it: %s. "
                "Nothing was changed." % (table, "; ".join(conflicts), seen_as),
                conflicts=conflicts,
                controller_address=list(controllers),
            )
        if guard and wanted and not controllers:
            module.warn(
                "The controller's address is not known (no controller_address and no SSH_CONNECTION or "
                "SSH_CLIENT): only networks of /%d or wider (IPv6 /%d) are refused. List your admin "
                "networks in protect." % (WIDE_PREFIX[4], WIDE_PREFIX[6])
            )

    persist, old = params["persist_file"], None
    if persist is not None:
        try:
            check_path_text(persist, "persist_file")
            # In check mode a play has not created the directory it creates before this task (the
            # roles do); there is no file to read then, and none is written.
            if not (module.check_mode and not os.path.lexists(os.path.dirname(persist))):
                check_write_target(persist, "persist_file")
                old = read_bounded(persist, PERSIST_READ_LIMIT, "persist_file")
        except UnsafePath as exc:
            module.fail_json(msg="%s; nothing was changed" % exc)
    return dict(timeout=timeout, path=path, anchor=anchor, wanted=wanted, controllers=controllers, old=old)


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            table=dict(type="str", required=True),
            anchor=dict(type="str", default=""),
            addresses=dict(type="list", elements="str", default=[]),
            state=dict(type="str", default="present", choices=["present", "absent", "exact"]),
            match=dict(type="str", default="exact", choices=["exact", "inside"]),
            kill_states=dict(type="bool", default=True),
            protect=dict(type="list", elements="str", default=[]),
            protect_controller=dict(type="bool", default=True),
            controller_address=dict(type="list", elements="str"),
            allow_wide_networks=dict(type="bool", default=False),
            persist_file=dict(type="str"),
            **dict(PFCTL_ARGUMENT_SPEC, **COMMAND_TIMEOUT_ARGUMENT_SPEC),
        ),
        supports_check_mode=True,
    )
    checked = check_inputs(module)
    # An SSH session cut while the table changes must not stop the change half-way: finish it, and the
    # persist file with it, even when nobody is left to read the result.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    pfctl = Pfctl(module, checked["path"], checked["timeout"])
    lock = None
    if not module.check_mode:
        lock = ChangeLock(LOCK_PATH, checked["timeout"])
        try:
            lock.acquire()
        except LockError as exc:
            module.fail_json(msg=str(exc))
    try:
        result = converge(module, pfctl, checked)
    finally:
        if lock is not None:
            lock.release()
    result["controller_address"] = list(checked["controllers"])
    module.exit_json(**result)


def converge(module, pfctl, checked):
    """show -> plan -> stage the persist file -> change -> commit it -> kill states; under the lock."""
    params = module.params
    table, state, persist = params["table"], params["state"], params["persist_file"]
    anchor, wanted = checked["anchor"], checked["wanted"]
    where = "table %s%s" % (table, " in anchor %s" % anchor if anchor else "")
    try:
        before = pfctl.show(anchor, table)
    except CommandError as exc:
        module.fail_json(**exc.result())
    to_delete, to_add = plan(dict.fromkeys(before), wanted, state, params["match"])
    after = set(before).difference(to_delete)
    after.update(to_add)
    result = dict(
        changed=bool(to_add or to_delete), added=to_add, removed=to_delete, entries=len(after), states_killed=0
    )
    if persist or module._diff:
        # Sorting 100 000 entries is a noticeable part of a large run; only do it when shown.
        after = sorted(after, key=radix_key)

    staged = None
    if persist:
        content = "".join(entry + "\n" for entry in after).encode("ascii")
        if not module.check_mode:
            # Under the lock: a temporary file left now is from a run that was killed (power, kill -9).
            try:
                remove_stale_staged(persist)
            except OSError as exc:
                module.fail_json(msg="cannot clean up beside persist_file %s: %s; nothing was changed"
                                 % (persist, exc.strerror or exc))
        if content != checked["old"]:
            result["changed"] = True
            if not module.check_mode:
                # Written and flushed before the kernel changes, so a full disk changes nothing.
                try:
                    staged = StagedFile(persist, content, 0o644)
                except (OSError, UnsafePath) as exc:
                    module.fail_json(
                        msg="cannot write persist_file %s: %s; nothing was changed"
                        % (persist, getattr(exc, "strerror", None) or exc)
                    )

    if not module.check_mode:
        deleted = False
        try:
            if to_delete:
                pfctl.delete(anchor, table, to_delete)
                deleted = True
            if to_add:
                pfctl.add(anchor, table, to_add)
        except CommandError as exc:
            if staged is not None:
                staged.discard()
            failure = exc.result()
            if deleted:
                done = "the %d removals from %s had been made" % (len(to_delete), where)
            else:
                done = "%s is unchanged" % where
            failure["msg"] = "%s; %s; persist_file was not written" % (exc.msg, done)
            module.fail_json(**failure)
        if staged is not None:
            try:
                staged.commit()
            except (OSError, UnsafePath) as exc:
                staged.discard()
                module.fail_json(
                    msg="%s was changed (%d added, %d removed) but persist_file %s could not be replaced: %s; "
                    "a re-run writes it"
                    % (where, len(to_add), len(to_delete), persist, getattr(exc, "strerror", None) or exc)
                )

    if params["kill_states"] and state != "absent" and wanted:
        try:
            result["states_killed"] = kill_states(module, pfctl, wanted)
        except CommandError as exc:
            failure = exc.result()
            if (to_add or to_delete) and not module.check_mode:
                done = "was changed (%d added, %d removed)%s" % (
                    len(to_add),
                    len(to_delete),
                    " and persist_file written" if staged is not None else "",
                )
            else:
                done = "was not changed"
            failure["msg"] = (
                "%s %s; then %s. Not every state of the listed addresses was killed; "
                "a re-run kills them"
                % (
                    where,
                    done,
                    exc.msg,
                )
            )
            module.fail_json(**failure)
        if result["states_killed"]:
            result["changed"] = True
    if module._diff:
        result["diff"] = dict(
            before="".join(e + "\n" for e in sorted(before, key=radix_key)),
            after="".join(e + "\n" for e in after),
            before_header="<%s>%s" % (table, " in anchor %s" % anchor if anchor else ""),
            after_header="<%s>%s" % (table, " in anchor %s" % anchor if anchor else ""),
        )
    return result


def kill_states(module, pfctl, listed):
    """Kill the states initiated from the listed entries ({text: (version, network, prefix)}), all of
    them in the table now: one state listing, then one -k per entry that has states. Matching goes by
    prefix length, so that 100 000 entries cost one dictionary lookup per state and prefix length,
    not a scan."""
    networks_by_prefix = {}
    for entry, (version, network, prefix) in listed.items():
        networks_by_prefix.setdefault((version, prefix), {})[network] = entry
    matches = {}
    for version, value in pfctl.states():
        width = 32 if version == 4 else 128
        for (entry_version, prefix), networks in networks_by_prefix.items():
            if entry_version != version:
                continue
            shift = width - prefix
            entry = networks.get(value >> shift << shift)
            if entry is not None:
                matches[entry] = matches.get(entry, 0) + 1
    killed = 0
    for entry in listed:
        if entry in matches:
            killed += matches[entry] if module.check_mode else pfctl.kill(entry)
    return killed


def main():
    run_module()


if __name__ == "__main__":
    main()
