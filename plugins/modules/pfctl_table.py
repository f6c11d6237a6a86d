#!/usr/bin/python
# -*- coding: utf-8 -*-
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
  - After adding addresses it can kill the PF states they initiated, so open connections of a banned
    host are cut, not only new ones.
  - A lockout guard refuses to put into the table any address that overlaps a O(protect) network or the
    address the controller is connected from (taken from C(SSH_CONNECTION)/C(SSH_CLIENT)).
  - Addresses are normalised the way pfctl stores them, so C(10.1.2.3/8) and C(10.0.0.0/8) are the same
    entry and a second run reports no change.
  - A table only blocks traffic when a rule reachable from the main ruleset references it and PF is
    enabled; this module manages membership only.
author:
  - pfguard developers (@pfguard)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - pfguard.macos.pfctl
attributes:
  check_mode:
    support: full
    details: Reads the table and, when states would be killed, the state list; changes nothing.
  diff_mode:
    support: full
    details: Shows the table entries before and after.
  platform:
    support: full
    platforms: [darwin, freebsd, openbsd]
options:
  table:
    description:
      - Name of the PF table, 1 to 31 characters.
    type: str
    required: true
  anchor:
    description:
      - Anchor path holding the table, for example C(pfguard) or C(f2b/sshd).
      - Each component is 1 to 63 characters, must not start with C(_) and must not contain C(*).
      - The empty string is the main ruleset.
    type: str
    default: ""
  addresses:
    description:
      - IPv4 or IPv6 hosts or CIDR networks.
      - Host bits are masked (C(10.1.2.3/8) is C(10.0.0.0/8)), C(/32) and C(/128) mean the host, IPv6 is
        compared in compressed form and duplicates collapse.
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
  kill_states:
    description:
      - After adding addresses, kill the PF states whose source is a newly added address, so that
        established connections from a banned host are cut.
      - Costs one C(pfctl -s states) and one C(pfctl -k) per added entry that actually has states.
    type: bool
    default: true
  protect:
    description:
      - Networks that must never enter the table. Any requested address that overlaps one of them
        (inside it, or a network containing it) makes the task fail before any change.
      - The address the controller is connected from is protected as well, unless O(protect_controller=false).
    type: list
    elements: str
    default: []
  protect_controller:
    description:
      - Also refuse any address that covers the address the controller is connected from.
      - Set it to V(false) only for tables that let traffic in rather than block it (for example
        a trusted table that a C(pass quick) rule references), which must hold the controller's network.
    type: bool
    default: true
  persist_file:
    description:
      - Keep this file equal to the table's full contents, one entry per line in pfctl's order,
        written atomically with mode 0644.
      - Use it with C(table <name> persist file "<path>") in the ruleset so the table is restored at boot.
    type: path
notes:
  - pfctl prints its counts, the ALTQ lines and the C(-f) warning on stderr; they are not errors.
  - Under C(become), sudo usually drops C(SSH_CONNECTION); list your admin networks in O(protect) too.
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
"""

import ipaddress
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import (
    PFCTL_ARGUMENT_SPEC,
    Pfctl,
    PfctlError,
    check_table_name,
    network_key,
    normalize_addresses,
    normalize_anchor,
    overlaps,
    pfctl_path,
    radix_key,
)

SSH_ENV_VARS = ("SSH_CONNECTION", "SSH_CLIENT")


def controller_address():
    """The address this module's SSH session comes from, if any (IPv4-mapped unwrapped)."""
    for name in SSH_ENV_VARS:
        words = os.environ.get(name, "").split()
        if not words:
            continue
        try:
            address = ipaddress.ip_address(words[0].split("%", 1)[0])
        except ValueError:
            continue
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        return address
    return None


def lockout_conflicts(wanted, protect, protect_controller):
    """Messages naming every wanted entry that overlaps a protected network or the controller."""
    guards = list(protect.items())
    controller = controller_address() if protect_controller else None
    if controller is not None:
        guards.append(("the controller's address %s" % controller, network_key(ipaddress.ip_network(controller))))
    conflicts = []
    for entry, key in wanted.items():
        for name, guard in guards:
            if overlaps(key, guard):
                conflicts.append("%s overlaps %s" % (entry, name))
    return conflicts


def plan(current, wanted, state):
    """Entries to delete and to add. `current` maps entry text (with '!' if negated) to itself."""
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


def write_persist_file(module, path, content):
    """Replace `path` atomically with `content` when it differs; returns whether it changed."""
    try:
        with open(path, "r") as handle:
            if handle.read() == content:
                return False
    except (IOError, OSError):
        pass
    if module.check_mode:
        return True
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        module.fail_json(msg="persist_file directory %s does not exist" % directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pfctl_table.")
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(tmp, 0o644)
    module.atomic_move(tmp, path)
    os.chmod(path, 0o644)
    return True


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            table=dict(type="str", required=True),
            anchor=dict(type="str", default=""),
            addresses=dict(type="list", elements="str", default=[]),
            state=dict(type="str", default="present", choices=["present", "absent", "exact"]),
            kill_states=dict(type="bool", default=True),
            protect=dict(type="list", elements="str", default=[]),
            protect_controller=dict(type="bool", default=True),
            persist_file=dict(type="path"),
            **PFCTL_ARGUMENT_SPEC,
        ),
        supports_check_mode=True,
    )
    params = module.params
    table, state = params["table"], params["state"]

    problem = check_table_name(table)
    if problem:
        module.fail_json(msg=problem)
    try:
        anchor = normalize_anchor(params["anchor"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))

    wanted, bad = normalize_addresses(params["addresses"])
    if bad:
        module.fail_json(
            msg="Not valid PF table addresses: %s" % "; ".join("'%s' (%s)" % item for item in bad),
            invalid=[value for value, _reason in bad],
        )
    protect, bad = normalize_addresses(params["protect"])
    if bad:
        module.fail_json(msg="Not valid protect networks: %s" % "; ".join("'%s' (%s)" % item for item in bad))
    if state != "absent":
        conflicts = lockout_conflicts(wanted, protect, params["protect_controller"])
        if conflicts:
            module.fail_json(msg="Refusing to change table %s: %s" % (table, "; ".join(conflicts)), conflicts=conflicts)

    pfctl = Pfctl(module, pfctl_path(module))
    result = dict(changed=False, added=[], removed=[], entries=0, states_killed=0)
    try:
        before = pfctl.show(anchor, table)
        to_delete, to_add = plan(dict.fromkeys(before), wanted, state)
        after = set(before).difference(to_delete)
        after.update(to_add)
        result.update(added=to_add, removed=to_delete, entries=len(after), changed=bool(to_add or to_delete))
        if params["persist_file"] or module._diff:
            # Sorting 100 000 entries is a noticeable part of a large run; only do it when shown.
            after = sorted(after, key=radix_key)

        if not module.check_mode:
            if to_delete:
                pfctl.delete(anchor, table, to_delete)
            if to_add:
                pfctl.add(anchor, table, to_add)
        if to_add and params["kill_states"]:
            result["states_killed"] = kill_states(module, pfctl, dict((e, wanted[e]) for e in to_add))
    except PfctlError as exc:
        module.fail_json(**exc.result())

    if params["persist_file"]:
        content = "".join(entry + "\n" for entry in after)
        if write_persist_file(module, params["persist_file"], content):
            result["changed"] = True
    if module._diff:
        result["diff"] = dict(
            before="".join(e + "\n" for e in sorted(before, key=radix_key)),
            after="".join(e + "\n" for e in after),
            before_header="<%s>%s" % (table, " in anchor %s" % anchor if anchor else ""),
            after_header="<%s>%s" % (table, " in anchor %s" % anchor if anchor else ""),
        )
    module.exit_json(**result)


def kill_states(module, pfctl, added):
    """Kill the states initiated from the added entries ({text: (version, network, prefix)}): one state
    listing, then one -k per entry that has states. Matching goes by prefix length so that 100 000
    entries cost one dictionary lookup per state and prefix length, not a scan."""
    networks_by_prefix = {}
    for entry, (version, network, prefix) in added.items():
        networks_by_prefix.setdefault((version, prefix), {})[network] = entry
    matches = {}
    for source in pfctl.states():
        width = 32 if source.version == 4 else 128
        value = int(source)
        for (version, prefix), networks in networks_by_prefix.items():
            shift = width - prefix
            entry = networks.get(value >> shift << shift) if version == source.version else None
            if entry is not None:
                matches[entry] = matches.get(entry, 0) + 1
    killed = 0
    for entry in added:
        if entry in matches:
            killed += matches[entry] if module.check_mode else pfctl.kill(entry)
    return killed


def main():
    run_module()


if __name__ == "__main__":
    main()
