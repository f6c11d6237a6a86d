# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Shared helpers for modules that drive macOS/BSD pfctl: address normalisation, output parsing,
and a thin runner that keeps pfctl's stderr noise apart from real errors."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re
import socket

from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError

# pfctl's counts and warnings are parsed from stderr, so the locale must not translate them.
PFCTL_ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
# The pfctl_path option, documented once in doc_fragments/pfctl.py.
PFCTL_ARGUMENT_SPEC = dict(pfctl_path=dict(type="path", default="/sbin/pfctl"))

# Lines pfctl writes to stderr on every call that are not errors (pfctl-macos.md §3).
_NOISE_LINES = frozenset(
    (
        "No ALTQ support in kernel",
        "ALTQ related functions disabled",
        "pfctl: Use of -f option, could result in flushing of rules",
        "present in the main ruleset added by the system at startup.",
        "See /etc/pf.conf for further details.",
        "",
    )
)
TABLE_MISSING = "pfctl: Table does not exist."
TABLE_NAME_MAX = 31
ANCHOR_COMPONENT_MAX = 63
_HOST_BITS = {4: 32, 6: 128}
_KILLED_RE = re.compile(r"^killed (\d+) states from ")
_TABLE_NAME_BAD = re.compile(r"[\s<>/{}!\"'#$]")


class PfctlError(CommandError):
    """A pfctl call that failed."""


def meaningful_stderr(stderr):
    """stderr without the ALTQ lines and the -f warning."""
    return "\n".join(line for line in stderr.splitlines() if line.strip() not in _NOISE_LINES)


def _parse_host(address):
    """(family, width, int value) of a literal address, with the C library's parser: the same
    inet_pton pfctl uses (pfctl-macos.md §2.3), and far faster than ipaddress for large lists."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        packed = socket.inet_pton(family, address)
    except (OSError, ValueError):
        raise ValueError("not an IPv4 or IPv6 address (hostnames and interface names are not accepted)") from None
    return family, len(packed) * 8, int.from_bytes(packed, "big")


def _text(family, width, value):
    # inet_ntop is what pfctl prints with, so IPv6 comes out exactly as `pfctl -T show` shows it.
    return socket.inet_ntop(family, value.to_bytes(width // 8, "big"))


def parse_entry(value):
    """Parse a host or CIDR string into (canonical text, version, network as int, prefix length), host
    bits masked, or raise ValueError with the reason. Only literal addresses are accepted: pfctl would
    also resolve hostnames and interface names, which makes a ban depend on DNS or on which
    interfaces exist at the time."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    text = value.strip()
    if not text:
        raise ValueError("empty address")
    if text.startswith("!"):
        raise ValueError("negation ('!') is not supported")
    address, sep, mask = text.partition("/")
    if "%" in address:
        raise ValueError("scoped IPv6 addresses are not supported")
    family, width, host = _parse_host(address)
    version = 6 if width == 128 else 4
    if not sep:
        return _text(family, width, host), version, host, width
    if not mask.isdigit():
        raise ValueError("invalid netmask '/%s'" % mask)
    bits = int(mask)
    if bits > width:
        raise ValueError("netmask /%d is wider than an IPv%d address" % (bits, version))
    network = host >> (width - bits) << (width - bits)
    if bits == width:
        return _text(family, width, network), version, network, width
    return "%s/%d" % (_text(family, width, network), bits), version, network, bits


def normalize_address(value):
    """pfctl's canonical text for an address: host bits masked, /32 and /128 dropped, IPv6 compressed."""
    return parse_entry(value)[0]


def normalize_addresses(values):
    """Parse a list; returns ({canonical text: (version, network int, prefix)} in input order without
    duplicates, [(value, reason), ...] for the values that are not addresses)."""
    entries = {}
    errors = []
    for value in values:
        try:
            text, version, network, prefix = parse_entry(value)
        except ValueError as exc:
            errors.append((value, str(exc)))
            continue
        entries.setdefault(text, (version, network, prefix))
    return entries, errors


def table_entry_key(entry):
    """(version, network int, prefix) of a table entry as pfctl prints it (a leading '!' ignored)."""
    address, sep, mask = entry.lstrip("!").partition("/")
    _family, width, host = _parse_host(address)
    return 6 if width == 128 else 4, host, int(mask) if sep else width


def radix_key(entry):
    """Sort key giving pfctl's show order: IPv4 before IPv6, then ascending address, then prefix."""
    return table_entry_key(entry) + (entry.startswith("!"),)


def overlaps(first, second):
    """Whether two (version, network int, prefix) networks share any address."""
    if first[0] != second[0]:
        return False
    width = _HOST_BITS[first[0]]
    shift = width - min(first[2], second[2])
    return first[1] >> shift == second[1] >> shift


def network_key(network):
    """(version, network int, prefix) of an ipaddress network."""
    return network.version, int(network.network_address), network.prefixlen


def parse_show(stdout):
    """Entries of `pfctl -t T -T show`: one per line after a feedback column and a '!' column."""
    entries = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        # "%c %c%s": feedback char, space, '!' or space, address (pfctl-macos.md §2.4).
        negated = line[2:3] == "!"
        address = line[3:].split("\t", 1)[0].strip()
        entries.append("!" + address if negated else address)
    return entries


def _state_host_address(host):
    """The address part of a host in a `pfctl -s states` line (pfctl-macos.md §8.2)."""
    host = host.strip().strip("~")
    if "[" in host:  # IPv6 with port: 2001:db8::1[22]
        return host.split("[", 1)[0]
    if host.count(":") == 1:  # IPv4 with port (or ICMP id, ESP spi)
        return host.split(":", 1)[0].rstrip("~")
    return host


def state_sources(stdout):
    """For each state line, the address that initiated it: for `->` (outbound) states the first
    host, for `<-` (inbound) states the last one (pfctl-macos.md §8.2 "Direction")."""
    sources = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        body = line.strip().rsplit(None, 1)[0]
        if " <- " in body:
            hosts = body.split(" <- ")
            source = hosts[-1]
        elif " -> " in body:
            hosts = body.split(" -> ")
            source = hosts[0].split()[-1]
        else:
            continue
        try:
            sources.append(ipaddress.ip_address(_state_host_address(source.split()[-1])))
        except ValueError:
            continue
    return sources


def parse_killed(stderr):
    for line in stderr.splitlines():
        match = _KILLED_RE.match(line.strip())
        if match:
            return int(match.group(1))
    return 0


def check_table_name(name):
    """Reason the table name is unusable, or None."""
    if not name:
        return "table name must not be empty"
    if len(name) > TABLE_NAME_MAX:
        return "table name '%s' is %d characters long; PF allows at most %d" % (name, len(name), TABLE_NAME_MAX)
    if _TABLE_NAME_BAD.search(name):
        return "table name '%s' contains a character PF table names cannot hold" % name
    return None


def normalize_anchor(anchor):
    """Anchor path as the kernel stores it (leading '/' stripped); raises ValueError naming the problem."""
    path = anchor.lstrip("/")
    if not path:
        return ""
    for component in path.split("/"):
        if not component:
            raise ValueError("anchor '%s' has an empty path component" % anchor)
        if len(component) > ANCHOR_COMPONENT_MAX:
            raise ValueError(
                "anchor '%s': component '%s' is longer than %d characters" % (anchor, component, ANCHOR_COMPONENT_MAX)
            )
        if component.startswith("_"):
            raise ValueError("anchor '%s': components starting with '_' are reserved" % anchor)
        if "*" in component:
            raise ValueError("anchor '%s': wildcards are not allowed here" % anchor)
    return path


def pfctl_path(module):
    """The module's pfctl_path, or a failed task naming it when it is no executable file."""
    path = module.params["pfctl_path"]
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        module.fail_json(msg="pfctl not found or not executable at %s" % path, cmd=[path])
    return path


class Pfctl(object):
    """Runs pfctl through an AnsibleModule with a C locale; raises PfctlError on real failures."""

    def __init__(self, module, path):
        self.module = module
        self.path = path

    def _run(self, args, data=None):
        cmd = [self.path] + args
        rc, stdout, stderr = self.module.run_command(cmd, data=data, environ_update=PFCTL_ENV)
        return cmd, rc, stdout, stderr

    def _table_args(self, anchor, table):
        return (["-a", anchor] if anchor else []) + ["-t", table]

    def show(self, anchor, table):
        """Entries of the table; a missing table (or anchor) is an empty table."""
        cmd, rc, stdout, stderr = self._run(self._table_args(anchor, table) + ["-T", "show"])
        if rc == 0:
            return parse_show(stdout)
        if rc == 255 and TABLE_MISSING in stderr:
            return []
        raise PfctlError("pfctl could not show table %s" % table, cmd, rc, stdout, stderr)

    def _change(self, verb, anchor, table, entries):
        cmd, rc, stdout, stderr = self._run(
            self._table_args(anchor, table) + ["-T", verb, "-f", "-"], data="\n".join(entries)
        )
        if rc != 0:
            raise PfctlError(
                "pfctl -T %s failed: %s" % (verb, meaningful_stderr(stderr) or "exit %d" % rc), cmd, rc, stdout, stderr
            )
        return cmd

    def add(self, anchor, table, entries):
        return self._change("add", anchor, table, entries)

    def delete(self, anchor, table, entries):
        return self._change("delete", anchor, table, entries)

    def states(self):
        cmd, rc, stdout, stderr = self._run(["-s", "states"])
        # -s ignores errors in its exit code (pfctl-macos.md §8.4), so a warning on stderr is the signal.
        problem = meaningful_stderr(stderr)
        if rc != 0 or problem:
            raise PfctlError("pfctl could not list states: %s" % (problem or "exit %d" % rc), cmd, rc, stdout, stderr)
        return state_sources(stdout)

    def kill(self, entry):
        cmd, rc, stdout, stderr = self._run(["-k", entry])
        if rc != 0:
            raise PfctlError("pfctl -k %s failed" % entry, cmd, rc, stdout, stderr)
        return parse_killed(stderr)
