# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Shared helpers for modules that read fail2ban's state: parsers for what `fail2ban-client` prints
(fail2ban/client/beautifier.py, 1.0.x), a runner that tells "server down" apart from real failures
and bounds every call in time and output, and a read-only reader of the ban history in fail2ban's
sqlite database.

The parsers accept exactly the lines the beautifier prints: any other line fails the task and the
message names it, so a changed or hostile client can never slip text into the facts unchecked."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import sqlite3
import stat
from urllib.parse import quote

from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import run_bounded
from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import parse_entry
from ansible_collections.pfguard.macos.plugins.module_utils.safe_files import UnsafePath, check_path_text

# Homebrew's prefixes: Apple silicon first, then Intel (docs/reference/fail2ban.md#homebrew-packaging).
CLIENT_CANDIDATES = ("/opt/homebrew/bin/fail2ban-client", "/usr/local/bin/fail2ban-client")

# What `ping` logs when nothing listens on the socket: no socket file ("Failed to access socket path:
# ... Is fail2ban running?") or a stale one left by a killed server ("[Errno 111] Connection refused";
# errno 61 on macOS, same text). Anything else (permissions, timeouts, bad config) is a failure.
_SERVER_DOWN_MARKERS = ("Is fail2ban running?", "Connection refused")

# "|  |- Currently failed:\t0": tree drawing, a key, a colon and a tab, then the value (may be empty).
_STATUS_LINE = re.compile(r"^[|`\- ]*(?P<key>[A-Za-z][^:\t]*):\t(?P<value>.*)$")
# "|- Filter", "`- Actions": the section lines of `status <jail>`.
_SECTION_LINE = re.compile(r"^[|`]- [A-Za-z][A-Za-z ]*$")
# "2026-11-22 06:19:45,823 fail2ban                [18204]: ERROR   " before each logged message.
_LOG_PREFIX = re.compile(r"^\S+ \S+ \S+\s+\[\d+\]: [A-Z]+\s+")
# "1.0.2", "1.1.0", "1.1.1.dev1", "0.11.2": what `version` and `-V` print.
_VERSION = re.compile(r"^[0-9]+(?:\.[0-9]+)+(?:[.+-]?[A-Za-z0-9]+)*\Z")
# Jail names pfguard accepts: fail2ban takes any jail.conf section name, but the names end up in PF
# table and anchor names (f2b-<jail>, f2b/<jail>), argv and reports, so letters, digits, '_', '.'
# and '-', not starting with '.' or '-', at most 64 characters.
JAIL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
# More jails than this is not a configuration but a fault; each one costs two client calls.
MAX_JAILS = 256
_JAIL_COUNTS = (
    ("Currently failed", "currently_failed"),
    ("Total failed", "total_failed"),
    ("Currently banned", "currently_banned"),
    ("Total banned", "total_banned"),
)
# Seconds `ping` asks the client to wait for the server's answer (its socket timeout); every call,
# `ping` included, is also killed after the module's command_timeout.
PING_TIMEOUT = 10
# Output of one client call beyond this is a fault (a large jail's banned list is a few MiB).
OUTPUT_LIMIT = 32 * 1024 * 1024
_HISTORY_QUERY = "SELECT jail, ip, timeofban, bantime, bancount FROM bans ORDER BY timeofban, rowid"


class Fail2banError(CommandError):
    """A fail2ban-client call that failed, or output that cannot be parsed."""


def default_client():
    """The first fail2ban-client that exists in Homebrew's prefixes, or None."""
    for path in CLIENT_CANDIDATES:
        if os.path.exists(path):
            return path
    return None


def default_config_dir(client):
    """<prefix>/etc/fail2ban for <prefix>/bin/fail2ban-client (symlinks not followed: Homebrew's bin/
    links point into the Cellar, but the configuration lives under the prefix)."""
    prefix = os.path.dirname(os.path.dirname(client))
    return os.path.join(prefix, "etc", "fail2ban")


def empty_facts(client, config_dir, installed):
    """The facts before asking the server anything (all of them when fail2ban is not installed)."""
    return dict(installed=installed, running=False, client=client, config_dir=config_dir,
                version=None, dbfile=None, jails={}, history=[])  # fmt: skip


def check_jail_name(name):
    """`name` if it is a jail name pfguard accepts (JAIL_NAME), else ValueError saying why."""
    if not isinstance(name, str):
        raise ValueError("jail name %r is not a string" % (name,))
    if not JAIL_NAME.match(name):
        raise ValueError(
            "jail name %r is not accepted: use letters, digits, '_', '.' and '-', not first '.' or '-', "
            "at most 64 characters" % name
        )
    return name


def server_down(stderr):
    """Whether a failed `ping` failed only because no server answers on the socket."""
    return any(marker in stderr for marker in _SERVER_DOWN_MARKERS)


def _lines(stdout):
    # split("\n"), not splitlines(): the client ends lines with "\n" only, and a path may hold
    # characters splitlines() would break it at (U+0085, U+2028, ...).
    return [line for line in stdout.split("\n") if line.strip()]


def _unexpected(what, line):
    return Fail2banError("unexpected line in fail2ban-client %s output: %r" % (what, line))


def parse_ping(stdout):
    """Whether `ping` got the server's answer ("Server replied: pong")."""
    return any(line.strip() == "Server replied: pong" for line in _lines(stdout))


def parse_version(stdout):
    """The version `version` (or `-V`) prints on a line of its own, e.g. "1.0.2"."""
    lines = _lines(stdout)
    if not lines:
        raise Fail2banError("fail2ban-client printed no version")
    for line in lines:
        if not _VERSION.match(line.strip()):
            raise _unexpected("version", line)
    if len(lines) > 1:
        raise _unexpected("version", lines[1])
    return lines[0].strip()


def _status_fields(stdout, what, header, sections=False):
    """{key: value} of the "<tree> key:\tvalue" lines after the `header` line; any other line raises."""
    lines = _lines(stdout)
    if not lines:
        raise Fail2banError("fail2ban-client %s printed nothing" % what)
    if lines[0] != header:
        raise _unexpected(what, lines[0])
    fields = {}
    for line in lines[1:]:
        match = _STATUS_LINE.match(line)
        if match:
            key = match.group("key").strip()
            if key in fields:
                raise _unexpected(what, line)
            fields[key] = match.group("value").strip()
        elif not (sections and _SECTION_LINE.match(line)):
            raise _unexpected(what, line)
    return fields


def _count(fields, key, what):
    value = fields[key]
    if not value.isdigit() or not value.isascii() or len(value) > 18:
        raise Fail2banError("%r is not a count in fail2ban-client %s output (%s)" % (value, what, key))
    return int(value)


def parse_status(stdout):
    """Jail names from `status` ("`- Jail list:\tsshd, screensharingd"), in the server's order; a name
    outside JAIL_NAME, a count that does not match the list or more than MAX_JAILS jails raise."""
    fields = _status_fields(stdout, "status", "Status")
    if "Jail list" not in fields or "Number of jail" not in fields:
        raise Fail2banError("no 'Number of jail' and 'Jail list' in fail2ban-client status output")
    names = [name.strip() for name in fields["Jail list"].split(",") if name.strip()]
    for name in names:
        try:
            check_jail_name(name)
        except ValueError as exc:
            raise Fail2banError("fail2ban-client status lists a bad jail: %s" % exc) from None
    count = _count(fields, "Number of jail", "status")
    if count != len(names) or len(set(names)) != len(names):
        raise Fail2banError(
            "fail2ban-client status says %d jails but lists %r" % (count, fields["Jail list"])
        )
    if count > MAX_JAILS:
        raise Fail2banError("fail2ban-client status lists %d jails; at most %d are read" % (count, MAX_JAILS))
    return names


def parse_jail_status(stdout, name=None):
    """Counters and banned addresses from `status <jail>`; the banned list is empty ("Banned IP list:\t")
    when nothing is banned, and every entry must be an address. Its "File list" joins paths with
    spaces, so log paths come from parse_logpaths."""
    if name is None:  # any jail's
        first = (_lines(stdout) or [""])[0]
        name = first[len("Status for the jail: "):] if first.startswith("Status for the jail: ") else "<jail>"
    fields = _status_fields(stdout, "jail status", "Status for the jail: %s" % name, sections=True)
    missing = [key for key, _name in _JAIL_COUNTS if key not in fields]
    if missing or "Banned IP list" not in fields:
        raise Fail2banError(
            "unexpected fail2ban-client jail status output (missing %s)" % ", ".join(missing or ["Banned IP list"])
        )
    jail = {}
    for key, field in _JAIL_COUNTS:
        jail[field] = _count(fields, key, "jail status")
    jail["banned"] = fields["Banned IP list"].split()
    for entry in jail["banned"]:
        try:
            parse_entry(entry)
        except ValueError as exc:
            raise Fail2banError(
                "fail2ban-client jail status bans %r, which is not an address (%s)" % (entry, exc)
            ) from None
    return jail


def _path(what, line, path):
    """A path the client printed: absolute, no control characters, no undecodable bytes."""
    try:
        check_path_text(path, "path")
    except UnsafePath:
        raise _unexpected(what, line) from None
    if "\ufffd" in path:
        raise _unexpected(what, line)
    return path


def parse_logpaths(stdout):
    """The log files from `get <jail> logpath`, one a line ("|- path", last "`- path"), so a path may
    hold spaces; [] when the client says "No file is currently monitored" (journal backends)."""
    lines = _lines(stdout)
    if lines == ["No file is currently monitored"]:
        return []
    if not lines or lines[0] != "Current monitored log file(s):":
        raise Fail2banError(
            "unexpected fail2ban-client get logpath output: %r" % (lines[0] if lines else "",)
        )
    paths = []
    for number, line in enumerate(lines[1:], start=1):
        prefix = "`- " if number == len(lines) - 1 else "|- "
        if not line.startswith(prefix):
            raise _unexpected("get logpath", line)
        paths.append(_path("get logpath", line, line[len(prefix):]))
    return paths


def parse_dbfile(stdout):
    """The database path from `get dbfile`, or None when the database is disabled."""
    lines = _lines(stdout)
    if lines == ["Database currently disabled"]:
        return None
    if not lines:
        raise Fail2banError("fail2ban-client get dbfile printed nothing")
    if lines[0] != "Current database file is:":
        raise _unexpected("get dbfile", lines[0])
    if len(lines) < 2 or not lines[1].startswith("`- "):
        raise _unexpected("get dbfile", lines[1] if len(lines) > 1 else lines[0])
    if len(lines) > 2:
        raise _unexpected("get dbfile", lines[2])
    return _path("get dbfile", lines[1], lines[1][3:])


def _history_row(row, dbfile):
    jail, ip, timeofban, bantime, bancount = row
    numbers_ok = all(isinstance(value, int) and not isinstance(value, bool) for value in (timeofban, bantime, bancount))
    if not (isinstance(jail, str) and (ip is None or isinstance(ip, str)) and numbers_ok):
        raise Fail2banError("unexpected row in the bans table of %s: %r" % (dbfile, (row,)))
    return dict(jail=jail, ip=ip, timeofban=timeofban, bantime=bantime, bancount=bancount)


def read_history(dbfile):
    """Every row of the `bans` table as dicts, oldest first, read through a read-only connection
    (fail2ban keeps writing it); [] when there is no database file. Only a regular file is opened
    (a FIFO would block sqlite for ever); text that is not UTF-8 comes back with replacement characters."""
    if not dbfile:
        return []
    try:
        mode = os.lstat(dbfile).st_mode
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return []
        raise Fail2banError("cannot examine the ban database %s: %s" % (dbfile, exc.strerror)) from None
    if not stat.S_ISREG(mode):
        raise Fail2banError("the ban database %s is not a regular file (symlinks are not followed)" % dbfile)
    uri = "file:%s?mode=ro" % quote(os.path.abspath(dbfile))
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=10)
        connection.text_factory = lambda data: data.decode("utf-8", "replace")
        try:
            rows = connection.execute(_HISTORY_QUERY).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise Fail2banError("cannot read the ban history from %s: %s" % (dbfile, exc)) from exc
    return [_history_row(row, dbfile) for row in rows]


class Fail2banClient(object):
    """Runs `fail2ban-client -c <config_dir> ...`, each call bounded by `timeout` seconds; raises
    Fail2banError on failures and unparsable output, CommandTimeout (a CommandError) on a hung call."""

    def __init__(self, module, path, config_dir, timeout):
        self.module = module
        self.path = path
        self.config_dir = config_dir
        self.timeout = timeout

    def run(self, *args):
        cmd = [self.path, "-c", self.config_dir] + list(args)
        rc, stdout, stderr = run_bounded(cmd, self.timeout, output_limit=OUTPUT_LIMIT)
        return cmd, rc, stdout, stderr

    def query(self, parser, *args):
        """`parser(stdout)` of a command that must succeed; failures and unparsable output raise."""
        cmd, rc, stdout, stderr = self.run(*args)
        if rc != 0:
            problem = _problem(rc, stdout, stderr)
            raise Fail2banError("fail2ban-client %s failed: %s" % (" ".join(args), problem), cmd, rc, stdout, stderr)
        try:
            return parser(stdout)
        except Fail2banError as exc:
            raise Fail2banError(exc.msg, cmd, rc, stdout, stderr) from None

    def ping(self):
        """True if the server answers, False if none listens on its socket; raises on anything else."""
        cmd, rc, stdout, stderr = self.run("ping", str(PING_TIMEOUT))
        if rc == 0 and parse_ping(stdout):
            return True
        if rc != 0 and server_down(stderr):
            return False
        raise Fail2banError("fail2ban-client ping failed: %s" % _problem(rc, stdout, stderr), cmd, rc, stdout, stderr)

    def state(self, history=False):
        """The fail2ban facts of a client that exists (see the fail2ban_facts module's RETURN)."""
        facts = empty_facts(self.path, self.config_dir, installed=True)
        facts["running"] = self.ping()
        if not facts["running"]:
            # The client's own version; `version` asks the server.
            facts["version"] = self.query(parse_version, "-V")
            return facts
        facts["version"] = self.query(parse_version, "version")
        facts["dbfile"] = self.query(parse_dbfile, "get", "dbfile")
        for name in self.query(parse_status, "status"):
            jail = self.query(lambda stdout, name=name: parse_jail_status(stdout, name), "status", name)
            jail["logpaths"] = self.query(parse_logpaths, "get", name, "logpath")
            facts["jails"][name] = jail
        if history:
            facts["history"] = read_history(facts["dbfile"])
        return facts


def _problem(rc, stdout, stderr):
    """The client's complaint: what it printed ("ERROR: Base configuration directory ... does not exist",
    "Sorry but the jail 'x' does not exist"), else its last log line on stderr without the log prefix."""
    printed = _lines(stdout)
    if printed:
        return printed[-1].strip()
    logged = _lines(stderr)
    if logged:
        return _LOG_PREFIX.sub("", logged[-1]).strip()
    return "exit %d" % rc
