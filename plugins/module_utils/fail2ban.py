# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Shared helpers for modules that read fail2ban's state: parsers for what `fail2ban-client` prints
(fail2ban/client/beautifier.py, 1.0.x), a runner that tells "server down" apart from real failures,
and a read-only reader of the ban history in fail2ban's sqlite database."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import sqlite3
from urllib.parse import quote

from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError

# Homebrew's prefixes: Apple silicon first, then Intel (fail2ban-macos.md §3).
CLIENT_CANDIDATES = ("/opt/homebrew/bin/fail2ban-client", "/usr/local/bin/fail2ban-client")

# What `ping` logs when nothing listens on the socket: no socket file ("Failed to access socket path:
# ... Is fail2ban running?") or a stale one left by a killed server ("[Errno 111] Connection refused";
# errno 61 on macOS, same text). Anything else (permissions, timeouts, bad config) is a failure.
_SERVER_DOWN_MARKERS = ("Is fail2ban running?", "Connection refused")

# "|  |- Currently failed:\t0": tree drawing, a key, a colon and a tab, then the value (may be empty).
_STATUS_LINE = re.compile(r"^[|`\- ]*(?P<key>[A-Za-z][^:\t]*):\t(?P<value>.*)$")
# "2026-11-22 06:19:45,823 fail2ban                [18204]: ERROR   " before each logged message.
_LOG_PREFIX = re.compile(r"^\S+ \S+ \S+\s+\[\d+\]: [A-Z]+\s+")
_JAIL_COUNTS = (
    ("Currently failed", "currently_failed"),
    ("Total failed", "total_failed"),
    ("Currently banned", "currently_banned"),
    ("Total banned", "total_banned"),
)
# Seconds `ping` waits for the server's answer: a hung server must fail the task, not hang it.
PING_TIMEOUT = 10
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


def server_down(stderr):
    """Whether a failed `ping` failed only because no server answers on the socket."""
    return any(marker in stderr for marker in _SERVER_DOWN_MARKERS)


def _lines(stdout):
    return [line for line in stdout.splitlines() if line.strip()]


def parse_ping(stdout):
    """Whether `ping` got the server's answer ("Server replied: pong")."""
    return any(line.strip() == "Server replied: pong" for line in stdout.splitlines())


def parse_version(stdout):
    """The version `version` (or `-V`) prints on its own line, e.g. "1.0.2"."""
    lines = _lines(stdout)
    if not lines:
        raise Fail2banError("fail2ban-client printed no version")
    return lines[-1].strip()


def _status_fields(stdout):
    fields = {}
    for line in stdout.splitlines():
        match = _STATUS_LINE.match(line)
        if match:
            fields[match.group("key").strip()] = match.group("value").strip()
    return fields


def parse_status(stdout):
    """Jail names from `status` ("`- Jail list:\tsshd, screensharingd"), in the server's order."""
    fields = _status_fields(stdout)
    if "Jail list" not in fields:
        raise Fail2banError("no 'Jail list' in fail2ban-client status output", stdout=stdout)
    return [name.strip() for name in fields["Jail list"].split(",") if name.strip()]


def parse_jail_status(stdout):
    """Counters and banned addresses from `status <jail>`; the banned list is empty ("Banned IP list:\t")
    when nothing is banned. Its "File list" joins paths with spaces, so log paths come from parse_logpaths."""
    fields = _status_fields(stdout)
    missing = [key for key, _name in _JAIL_COUNTS if key not in fields]
    if missing or "Banned IP list" not in fields:
        raise Fail2banError(
            "unexpected fail2ban-client jail status output (missing %s)" % ", ".join(missing or ["Banned IP list"]),
            stdout=stdout,
        )
    jail = {}
    for key, name in _JAIL_COUNTS:
        try:
            jail[name] = int(fields[key])
        except ValueError:
            raise Fail2banError(
                "'%s' is not a number in fail2ban-client jail status output" % fields[key], stdout=stdout
            ) from None
    jail["banned"] = fields["Banned IP list"].split()
    return jail


def parse_logpaths(stdout):
    """The log files from `get <jail> logpath`, one a line ("|- path", last "`- path"), so a path may
    hold spaces; [] when the client says "No file is currently monitored" (journal backends)."""
    lines = _lines(stdout)
    if any(line.strip() == "No file is currently monitored" for line in lines):
        return []
    if not lines or lines[0].strip() != "Current monitored log file(s):":
        raise Fail2banError("unexpected fail2ban-client get logpath output", stdout=stdout)
    return [line[3:] for line in lines[1:] if line.startswith(("|- ", "`- "))]


def parse_dbfile(stdout):
    """The database path from `get dbfile`, or None when the database is disabled."""
    lines = _lines(stdout)
    if any(line.strip() == "Database currently disabled" for line in lines):
        return None
    for line in lines:
        if line.startswith("`- "):
            return line[3:].strip()
    raise Fail2banError("unexpected fail2ban-client get dbfile output", stdout=stdout)


def read_history(dbfile):
    """Every row of the `bans` table as dicts, oldest first, read through a read-only connection
    (fail2ban keeps writing it); [] when there is no database file."""
    if not dbfile or not os.path.isfile(dbfile):
        return []
    uri = "file:%s?mode=ro" % quote(os.path.abspath(dbfile))
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=10)
        try:
            rows = connection.execute(_HISTORY_QUERY).fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise Fail2banError("cannot read the ban history from %s: %s" % (dbfile, exc)) from exc
    return [
        dict(jail=jail, ip=ip, timeofban=timeofban, bantime=bantime, bancount=bancount)
        for jail, ip, timeofban, bantime, bancount in rows
    ]


class Fail2banClient(object):
    """Runs `fail2ban-client -c <config_dir> ...` through an AnsibleModule; raises Fail2banError on failures."""

    def __init__(self, module, path, config_dir):
        self.module = module
        self.path = path
        self.config_dir = config_dir

    def run(self, *args):
        cmd = [self.path, "-c", self.config_dir] + list(args)
        rc, stdout, stderr = self.module.run_command(cmd)
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
            jail = self.query(parse_jail_status, "status", name)
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
