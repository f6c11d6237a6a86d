# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Shared helpers for modules that drive macOS/BSD pfctl: address normalisation, name checks,
strict parsing of pfctl's output, a runner with a time limit, and the lock that serialises changes.

Everything a module gets from a user is checked here before the first command runs, and everything
pfctl prints is parsed strictly: a line that is not what pfctl prints fails the task naming it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import re
import socket
import stat
import time

from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import (
    DEFAULT_COMMAND_TIMEOUT,
    run_bounded,
)
from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError
from ansible_collections.pfguard.macos.plugins.module_utils.safe_files import (
    command_path_problem,
)

# pfctl's counts and warnings are parsed from stderr, so the locale must not translate them.
PFCTL_ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
# The pfctl_path option, documented once in doc_fragments/pfctl.py. A plain string: the path is
# taken as given (type=path would expand ~ and $VARS from the module's environment first).
PFCTL_ARGUMENT_SPEC = dict(pfctl_path=dict(type="str", default="/sbin/pfctl"))

# Lines pfctl writes to stderr on every call that are not errors (pfctl(8) on macOS: the ALTQ probe
# and the warning -f prints).
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
# Limits of xnu's bsd/net/pfvar.h, in bytes, each buffer holding a terminating NUL:
# PF_TABLE_NAME_SIZE 32, PF_ANCHOR_NAME_SIZE 64 (one path component), MAXPATHLEN 1024 (the anchor
# path; pfctl refuses `-a` paths of 1024 bytes or more with "anchor name '...' too long").
TABLE_NAME_MAX = 31
ANCHOR_COMPONENT_MAX = 63
ANCHOR_PATH_MAX = 1023
_HOST_BITS = {4: 32, 6: 128}
# A network this wide or wider (prefix length at most this) is a ban that needs saying so
# (pfctl_table's allow_wide_networks, the plays' pfguard_allow_wide_networks). An IPv4 /8 is 16.7
# million addresses, a whole block of a regional registry; an IPv6 /32 is the usual allocation of a
# whole provider, so a ban of it cuts off every customer of an ISP.
WIDE_PREFIX = {4: 8, 6: 32}
# Characters pf.conf cannot hold unquoted in a table name (pf.conf(5): `<name>`), plus quotes and `$`
# (macros) that would make the name mean something else in a ruleset.
_TABLE_NAME_BAD = re.compile(r"[<>/{}()!=,\"'#$]")
# A netmask pfctl reads the same way we do. pfctl parses it with strtol(mask, NULL, 0): a leading
# zero makes it octal (/010 is /8), 0x hexadecimal, and signs and leading blanks are accepted, so
# only plain decimal without leading zeros means one thing. [0-9] is ASCII only (str.isdigit() is not).
_MASK_RE = re.compile(r"\A(?:0|[1-9][0-9]{0,2})\Z")
_KILLED_RE = re.compile(r"^killed (\d+) states from \d+ sources and \d+ destinations$")
# What str.strip() would remove that pfctl's tokenizer (isspace() in the C locale) also skips.
_ASCII_SPACE = " \t\n\r\f\v"

# The lock every changing pfctl_table run holds from reading the table to writing its persist file.
LOCK_PATH = "/var/run/pfguard.pfctl_table.lock"


class PfctlError(CommandError):
    """A pfctl call that failed, or output of it that is not what pfctl prints."""


class LockError(Exception):
    """The change lock could not be had; the message names the lock file."""


def shown(value):
    """`value` quoted for a message, with control and other non-printable characters escaped (repr),
    so no input can break a message, a log line or a terminal."""
    return repr(value)


def meaningful_stderr(stderr):
    """stderr without the ALTQ lines and the -f warning."""
    return "\n".join(line for line in stderr.splitlines() if line.strip() not in _NOISE_LINES)


def _parse_host(address):
    """(family, width, int value) of a literal address, with the C library's parser: the same
    inet_pton pfctl uses, and far faster than ipaddress for large lists. inet_pton reads ASCII only:
    any other character (a Unicode digit, NUL) makes it fail."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        packed = socket.inet_pton(family, address)
    except (OSError, ValueError):  # ValueError: embedded NUL, UnicodeEncodeError (surrogates)
        raise ValueError("not an IPv4 or IPv6 address (hostnames and interface names are not accepted)") from None
    return family, len(packed) * 8, int.from_bytes(packed, "big")


def _text(family, width, value):
    # inet_ntop is what pfctl prints with, so IPv6 comes out exactly as `pfctl -T show` shows it.
    return socket.inet_ntop(family, value.to_bytes(width // 8, "big"))


def _mask_problem(mask):
    """Why a netmask text is refused (it is not plain ASCII decimal without leading zeros)."""
    if mask[:2].lower() == "0x":
        return "netmask '/%s' is hexadecimal; write the prefix length in decimal" % mask
    if mask[:1] == "0" and mask[1:].isdigit():
        return (
            "netmask '/%s' has a leading zero, which pfctl reads as octal; write the prefix length "
            "in decimal without leading zeros" % mask
        )
    if mask[:1] in ("+", "-") or mask != mask.strip():
        return "netmask '/%s' has a sign or blanks; write a plain decimal prefix length" % mask
    if any(char > "~" for char in mask):
        return "netmask '/%s' is not written with ASCII digits 0-9" % mask
    return "invalid netmask '/%s'" % mask


def parse_entry(value):
    """Parse a host or CIDR string into (canonical text, version, network as int, prefix length), host
    bits masked, or raise ValueError with the reason. Only literal addresses are accepted: pfctl would
    also resolve hostnames and interface names, which makes a ban depend on DNS or on which
    interfaces exist at the time."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    text = value.strip(_ASCII_SPACE)
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
    if not _MASK_RE.match(mask):
        raise ValueError(_mask_problem(mask))
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
    pton, inet, from_bytes = socket.inet_pton, socket.AF_INET, int.from_bytes
    for value in values:
        try:  # hot path: a dotted quad inet_pton takes is already pfctl's text for it
            entries.setdefault(value, (4, from_bytes(pton(inet, value), "big"), 32))
            continue
        except (OSError, TypeError, ValueError):
            pass
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


def _canonical_entry(address):
    """Whether `address` (without '!') is an entry exactly as pfctl prints it: inet_ntop text, host
    bits clear, '/N' only for networks."""
    try:
        socket.inet_pton(socket.AF_INET, address)  # hot path: a dotted quad inet_pton takes is canonical
        return True
    except (OSError, ValueError):
        pass
    try:
        return parse_entry(address)[0] == address
    except ValueError:
        return False


def output_line(line, limit=200):
    """A line of command output for a message: escaped (see shown) and cut to `limit` characters."""
    return shown(line if len(line) <= limit else line[:limit] + "...")


def parse_show(stdout):
    """Entries of `pfctl -t T -T show`, one per line: a feedback column (blank), a '!' column, the
    address (pfctl_table.c print_addrx: "%c %c%s"). Raises ValueError naming the first line that is
    not such an entry."""
    entries = []
    append = entries.append
    for line in stdout.split("\n"):
        if not line:
            continue
        head, address = line[:3], line[3:]
        if head == "   ":
            if not _canonical_entry(address):
                raise ValueError(line)
            append(address)
        elif head == "  !":
            if not _canonical_entry(address):
                raise ValueError(line)
            append("!" + address)
        else:
            raise ValueError(line)
    return entries


def _state_host(host):
    """(version, int) of the address of a host in a `pfctl -s states` line: `a.b.c.d[:port]`,
    `v6addr[port]`, with the tilde marks of UDP endpoint filtering; ValueError if it is none."""
    host = host.strip("~")
    if "[" in host:  # IPv6 with port: 2001:db8::1[22]
        if not host.endswith("]"):
            raise ValueError(host)
        host = host.split("[", 1)[0]
    elif host.count(":") == 1:  # IPv4 with port (or ICMP id, ESP spi)
        host = host.split(":", 1)[0].rstrip("~")
    family, width, value = _parse_host(host)
    return (6 if width == 128 else 4), value


def state_sources(stdout):
    """For each state line, (version, int) of the address that initiated it: for `->` (outbound)
    states the first host, for `<-` (inbound) states the last one (pf_print_state.c; xnu matches
    `pfctl -k` on the same side). Raises ValueError naming the first line that is not a state."""
    sources = []
    for line in stdout.split("\n"):
        if not line.strip():
            continue
        parts = line.split()
        body = line.strip().rsplit(None, 1)[0]
        try:
            if len(parts) < 6:
                raise ValueError(line)
            if " <- " in body:
                source = body.split(" <- ")[-1].split()[0]
            elif " -> " in body:
                source = body.split(" -> ")[0].split()[-1]
            else:
                raise ValueError(line)
            sources.append(_state_host(source))
        except ValueError:
            raise ValueError(line) from None
    return sources


def parse_killed(stderr):
    """The number of states `pfctl -k` reports killed; ValueError when it printed no count."""
    for line in stderr.splitlines():
        match = _KILLED_RE.match(line.strip())
        if match:
            return int(match.group(1))
    raise ValueError("no 'killed N states' line")


def _odd_characters(text):
    """Whether `text` holds anything but printable ASCII without blanks (control characters, NUL,
    whitespace, non-ASCII)."""
    return any(not ("!" <= char <= "~") for char in text)


def check_table_name(name):
    """Reason the table name is unusable, or None.

    PF's kernel only checks a table name's length in bytes (xnu pf_table.c pfr_validate_table), so
    pfctl would pass other bytes through. Non-ASCII names are refused all the same: pf.conf's lexer
    reads an unquoted `<name>` with isalnum()/ispunct() in the C locale, which no byte above 127
    passes, so no rule could reference such a table, and pfctl's output of it could not be read back
    reliably (it is decoded with replacement characters)."""
    if not isinstance(name, str) or not name:
        return "table name must not be empty"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > TABLE_NAME_MAX:
        return "table name %s is %d bytes long; PF allows at most %d bytes (PF_TABLE_NAME_SIZE 32)" % (
            shown(name),
            size,
            TABLE_NAME_MAX,
        )
    if _odd_characters(name):
        return (
            "table name %s contains whitespace, a control character or a non-ASCII character; "
            "use printable ASCII only" % shown(name)
        )
    if _TABLE_NAME_BAD.search(name):
        return "table name %s contains a character PF table names cannot hold" % shown(name)
    return None


def normalize_anchor(anchor):
    """Anchor path as the kernel stores it (leading '/' stripped); raises ValueError naming the problem.

    Refused: control characters, NUL, whitespace, non-ASCII (see check_table_name; anchor paths are
    also printed by `pfctl -s Anchors` and in rules, and must read back the same), '"' (pf.conf quotes
    anchor names with it), empty, '.' and '..' components (pfctl passes `-a` verbatim: the kernel
    would create an anchor literally named '..'), components over 63 bytes, paths over 1023 bytes,
    components starting with '_' (reserved) and wildcards."""
    if not isinstance(anchor, str):
        raise ValueError("anchor must be a string")
    if _odd_characters(anchor) or '"' in anchor:
        raise ValueError(
            "anchor %s contains whitespace, a control character, a quote or a non-ASCII character; "
            "use printable ASCII only" % shown(anchor)
        )
    path = anchor.lstrip("/")
    if not path:
        return ""
    if len(path) > ANCHOR_PATH_MAX:
        raise ValueError(
            "anchor %s is %d bytes long; PF allows at most %d bytes (MAXPATHLEN)"
            % (shown(anchor[:64] + "..."), len(path), ANCHOR_PATH_MAX)
        )
    for component in path.split("/"):
        if not component:
            raise ValueError("anchor %s has an empty path component" % shown(anchor))
        if component in (".", ".."):
            raise ValueError(
                "anchor %s has a '%s' component; pfctl does not resolve it, PF would create an anchor "
                "named '%s'" % (shown(anchor), component, component)
            )
        if len(component) > ANCHOR_COMPONENT_MAX:
            raise ValueError(
                "anchor %s: component %s is %d bytes long; PF allows at most %d (PF_ANCHOR_NAME_SIZE 64)"
                % (shown(anchor), shown(component), len(component), ANCHOR_COMPONENT_MAX)
            )
        if component.startswith("_"):
            raise ValueError("anchor %s: components starting with '_' are reserved" % shown(anchor))
        if "*" in component:
            raise ValueError("anchor %s: wildcards are not allowed here" % shown(anchor))
    return path


def check_pfctl_path(path):
    """Reason pfctl_path is unusable, or None: it must be an absolute path without control
    characters, naming an executable regular file."""
    return command_path_problem(path, "pfctl_path", "pfctl")


def pfctl_path(module):
    """The module's pfctl_path, or a failed task naming it when it is unusable."""
    path = module.params["pfctl_path"]
    problem = check_pfctl_path(path)
    if problem:
        module.fail_json(msg=problem, cmd=[path] if isinstance(path, str) else None)
    return path


def parse_controller(value):
    """(text, (version, int, host prefix)) of a controller address as SSH_CONNECTION shows it: a
    scope (`%en0`) is dropped and an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, a dual-stack sshd's
    view of an IPv4 client) is unwrapped, since PF sees that client's packets as IPv4. ValueError
    when it is not a literal address."""
    if not isinstance(value, str):
        raise ValueError("not a string")
    text = value.strip(_ASCII_SPACE).split("%", 1)[0]
    family, width, host = _parse_host(text)
    if width == 128 and host >> 32 == 0xFFFF:
        family, width, host = socket.AF_INET, 32, host & 0xFFFFFFFF
    return _text(family, width, host), (6 if width == 128 else 4, host, width)


def controller_from_environment(environ):
    """The controller's address from SSH_CONNECTION (`client port server port`) or SSH_CLIENT
    (`client port port`) in `environ`, as parse_controller returns it, or None."""
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        words = (environ.get(name) or "").split()
        if words:
            try:
                return parse_controller(words[0])
            except ValueError:
                continue
    return None


class ChangeLock(object):
    """An exclusive flock on `path` (a regular file, created 0600, never through a symlink), waited
    for at most `timeout` seconds. Released when the process exits, whatever happens."""

    def __init__(self, path, timeout):
        self.path = path
        self.timeout = timeout
        self.fd = None

    def acquire(self):
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LockError("lock file %s is a symbolic link; it is not followed" % self.path) from None
            raise LockError("cannot open the lock file %s: %s" % (self.path, exc.strerror)) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LockError("lock file %s is not a regular file" % self.path)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise LockError("cannot lock %s: %s" % (self.path, exc.strerror)) from None
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LockError(
                    "another pfctl_table run on this host held the lock %s for more than %d seconds "
                    "(command_timeout); nothing was changed" % (self.path, self.timeout)
                )
            time.sleep(0.05)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Pfctl(object):
    """Runs pfctl with a C locale and a time limit (run_bounded); raises CommandError (PfctlError,
    or CommandTimeout naming the command) on real failures and on output it cannot parse."""

    def __init__(self, module, path, timeout=DEFAULT_COMMAND_TIMEOUT):
        self.module = module
        self.path = path
        self.timeout = timeout

    def _run(self, args, data=None):
        cmd = [self.path] + args
        rc, stdout, stderr = run_bounded(cmd, self.timeout, data=data, environ_update=PFCTL_ENV)
        return cmd, rc, stdout, stderr

    def _table_args(self, anchor, table):
        return (["-a", anchor] if anchor else []) + ["-t", table]

    def show(self, anchor, table):
        """Entries of the table; a missing table (or anchor) is an empty table."""
        cmd, rc, stdout, stderr = self._run(self._table_args(anchor, table) + ["-T", "show"])
        if rc == 0:
            try:
                return parse_show(stdout)
            except ValueError as exc:
                raise PfctlError(
                    "%s printed a line that is not a table entry: %s; nothing was changed"
                    % (" ".join(cmd), output_line(str(exc))),
                    cmd,
                    rc,
                    stdout,
                    stderr,
                ) from None
        if rc == 255 and TABLE_MISSING in stderr:
            return []
        raise PfctlError(
            "%s failed: %s" % (" ".join(cmd), meaningful_stderr(stderr) or "exit %d" % rc), cmd, rc, stdout, stderr
        )

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
        """(version, int) of the source of every state."""
        cmd, rc, stdout, stderr = self._run(["-s", "states"])
        # -s ignores errors in its exit code (pfctl(8) on macOS), so a warning on stderr is the signal.
        problem = meaningful_stderr(stderr)
        if rc != 0 or problem:
            raise PfctlError("pfctl could not list states: %s" % (problem or "exit %d" % rc), cmd, rc, stdout, stderr)
        try:
            return state_sources(stdout)
        except ValueError as exc:
            raise PfctlError(
                "%s printed a line that is not a state: %s" % (" ".join(cmd), output_line(str(exc))),
                cmd,
                rc,
                stdout,
                stderr,
            ) from None

    def kill(self, entry):
        cmd, rc, stdout, stderr = self._run(["-k", entry])
        if rc != 0:
            raise PfctlError(
                "pfctl -k %s failed: %s" % (entry, meaningful_stderr(stderr) or "exit %d" % rc), cmd, rc, stdout, stderr
            )
        try:
            return parse_killed(stderr)
        except ValueError:
            raise PfctlError(
                "pfctl -k %s printed no 'killed N states' count: %s" % (entry, output_line(meaningful_stderr(stderr))),
                cmd,
                rc,
                stdout,
                stderr,
            ) from None


def is_wide(key):
    """Whether a (version, network int, prefix) network is as wide as WIDE_PREFIX or wider."""
    return key[2] <= WIDE_PREFIX[key[0]]
