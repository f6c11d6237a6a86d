# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Shared helpers for modules that drive launchd's system domain with launchctl's modern verbs: label
and path checks, the job's plist read safely, strict parsers of `launchctl print` and
`launchctl print-disabled`, and a runner with a time limit that records every changing command.

launchctl's exit codes, messages and output shapes are in docs/reference/macos.md (launchctl exit
codes, launchctl print, launchctl quirks). A line of output that is not what launchctl prints fails
the task naming it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import plistlib
import re
import stat

from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import run_bounded
from ansible_collections.pfguard.macos.plugins.module_utils.command_error import CommandError
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import output_line, shown
from ansible_collections.pfguard.macos.plugins.module_utils.safe_files import (
    UnsafePath,
    check_path_text,
    check_write_target,
    command_path_problem,
    open_regular,
)

# launchctl's messages are returned to the user and parsed; they must not depend on the locale.
LAUNCHCTL_ENV = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
DEFAULT_LAUNCHCTL = "/bin/launchctl"
# The launchctl_path option, documented once in the module. A plain string: taken as given.
LAUNCHCTL_ARGUMENT_SPEC = dict(launchctl_path=dict(type="str", default=DEFAULT_LAUNCHCTL))
# `print` of one job is a few KiB; more is a runaway command.
OUTPUT_LIMIT = 1024 * 1024
# A LaunchDaemon plist is a few KiB; more than this is not one.
PLIST_READ_LIMIT = 1024 * 1024
# uid and gid launchd wants a LaunchDaemon plist owned by: root:wheel.
PLIST_OWNER = (0, 0)
PLIST_MODE = 0o644

# launchd's error numbers (docs/reference/macos.md#launchctl-exit-codes).
ESRCH = 3  # Boot-out failed: 3: No such process (not loaded)
EIO = 5  # Bootstrap failed: 5: Input/output error (already loaded, or any generic failure)
EINPROGRESS = 36  # Boot-out failed: 36: Operation now in progress (the unload goes on)
EALREADY = 37  # Operation already in progress (already bootstrapped, some versions)
NOT_FOUND = 113  # Could not find service "LABEL" in domain for system
DISABLED = 119  # Bootstrap failed: 119: Service is disabled
BAD_PERMISSIONS = 122  # Path had bad ownership/permissions
HINTS = {
    EIO: "launchd gives 5 for a job that is already loaded, a plist it cannot read and other failures",
    DISABLED: "the job is disabled in launchd's store (launchctl enable system/LABEL)",
    BAD_PERMISSIONS: "the plist must be owned by root:wheel and writable by nobody else",
}

# What a non-root bootstrap adds to its generic 5 on newer macOS.
NOT_ROOT_HINT = "re-running the command as root"

# A launchd label as pfguard accepts it: reverse-DNS-like, ASCII letters, digits, '.', '_' and '-',
# starting with a letter or digit. launchd takes more, but such a label needs no quoting anywhere
# (`system/LABEL`, `"LABEL" => disabled`, a file name).
_LABEL_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")
LABEL_MAX = 255

# `launchctl print system/LABEL`: a header, then one tab-indented `key = value` per line at the top
# level, with nested `key = {` / `key => {` blocks indented one more tab each; blank lines between.
_PRINT_FIELD = re.compile(r"\A\t([^\t =][^=]*?) = (.*)\Z")
_EXIT_CODE = re.compile(r"\A(-?[0-9]+)(?:: .*)?\Z")  # `0`, `78: EX_CONFIG`
_SIGNAL = re.compile(r"\A.*: ([0-9]+)\Z")  # `Terminated: 15`
_NUMBER = re.compile(r"\A[0-9]+\Z")
# `launchctl print-disabled system`: `disabled services = {` holding `"LABEL" => disabled|enabled`
# (older releases print true|false, true meaning disabled), then other blocks on newer releases.
_BLOCK_HEADER = re.compile(r"\A([^\s\"=][^\"=]*?) = \{\Z")
_DISABLED_ENTRY = re.compile(r"\A\"([^\"]+)\" => (disabled|enabled|true|false)\Z")
_DISABLED_VALUES = {"disabled": True, "true": True, "enabled": False, "false": False}
# Job states on the way out: a bootstrap that fails while one shows is racing a bootout.
STOPPING_STATES = ("SIGTERMed", "SIGKILLed")


class LaunchctlError(CommandError):
    """A launchctl call that failed, or output of it that is not what launchctl prints."""


class PlistProblem(Exception):
    """The job's plist is unusable; the message names the path and the reason."""


def check_label(label):
    """Reason the label is refused, or None."""
    if not isinstance(label, str) or not label:
        return "name must be a launchd label, got %s" % shown(label)
    if len(label) > LABEL_MAX or not _LABEL_RE.match(label):
        return (
            "name %s is not a label pfguard accepts: use 1 to %d ASCII letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (for example org.pfguard.pf)" % (shown(label), LABEL_MAX)
        )
    return None


def check_launchctl_path(path):
    """Reason launchctl_path is unusable, or None: an absolute path without control characters naming
    an executable regular file."""
    return command_path_problem(path, "launchctl_path", "launchctl")


def _read_plist_file(path):
    """(bytes, fstat result) of the regular file `path`, or (None, None) when it does not exist. Raises
    PlistProblem for a path that is not a regular file (a symbolic link is not followed) or too large."""
    try:
        check_path_text(path, "plist")
        fd = open_regular(path, "plist")
    except UnsafePath as exc:
        raise PlistProblem(str(exc)) from None
    if fd is None:
        return None, None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        data = handle.read(PLIST_READ_LIMIT + 1)
    if len(data) > PLIST_READ_LIMIT:
        raise PlistProblem("plist %s is larger than %d bytes" % (path, PLIST_READ_LIMIT))
    return data, info


def _job_spec(path, data, info, label):
    """The job definition in the plist `data` read from `path` (`info`: its fstat), or PlistProblem unless
    launchd would accept it for a LaunchDaemon (owned by root:wheel, writable by nobody else,
    docs/reference/macos.md#launchdaemon-permissions) and it holds a property list whose Label is `label`."""
    if (info.st_uid, info.st_gid) != PLIST_OWNER:
        raise PlistProblem(
            "plist %s is owned by uid %d gid %d; launchd loads a LaunchDaemon only from a file owned by "
            "root:wheel (%d:%d)" % ((path, info.st_uid, info.st_gid) + PLIST_OWNER)
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PlistProblem(
            "plist %s has mode %04o; launchd refuses a LaunchDaemon plist that group or others may write"
            % (path, stat.S_IMODE(info.st_mode))
        )
    try:
        spec = plistlib.loads(data)
    except Exception:  # plistlib raises several types for malformed input
        raise PlistProblem("plist %s is not a property list launchd can read" % path) from None
    if not isinstance(spec, dict):
        raise PlistProblem("plist %s does not hold a dictionary" % path)
    if spec.get("Label") != label:
        raise PlistProblem("plist %s has Label %s, not %s" % (path, shown(spec.get("Label")), shown(label)))
    if "Disabled" in spec and not isinstance(spec["Disabled"], bool):
        raise PlistProblem("plist %s: Disabled must be a boolean, got %s" % (path, shown(spec["Disabled"])))
    return spec


def read_job_plist(path, label):
    """The job definition in `path` as a dict, or None when the file does not exist; PlistProblem unless
    it is a regular file (a symbolic link is not followed) holding a job launchd would load (_job_spec)."""
    data, info = _read_plist_file(path)
    return None if data is None else _job_spec(path, data, info, label)


# What an integer in a property list can hold (plistlib writes signed and unsigned 64-bit values).
PLIST_INT_RANGE = (-(1 << 63), (1 << 64) - 1)
# XML 1.0 allows these control characters in text; plistlib refuses the others.
_PLIST_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _value_problems(value, where):
    """Why `value` (at `where`, for messages) cannot go into a property list, as a list of reasons."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        if not PLIST_INT_RANGE[0] <= value <= PLIST_INT_RANGE[1]:
            return ["%s %d is out of a property list integer's range" % (where, value)]
        return []
    if isinstance(value, str):
        if _PLIST_CONTROL.search(value):
            return ["%s %s holds a control character, which a property list cannot hold" % (where, shown(value))]
        return []
    if isinstance(value, list):
        problems = []
        for index, item in enumerate(value):
            problems.extend(_value_problems(item, "%s[%d]" % (where, index)))
        return problems
    if isinstance(value, dict):
        problems = []
        for key, item in value.items():
            if not isinstance(key, str) or _PLIST_CONTROL.search(key):
                problems.append("%s has the key %s; keys must be text without control characters" % (where, shown(key)))
            else:
                problems.extend(_value_problems(item, "%s.%s" % (where, key)))
        return problems
    return ["%s is %s, which a launchd property list cannot hold (text, integers, booleans, lists and "
            "dictionaries only)" % (where, shown(value))]  # fmt: skip


def job_definition(definition, label):
    """The property list bytes for the job `definition` (a dict; Label set to `label` when absent), or
    PlistProblem naming what is refused: a Label other than `label`, a Disabled that is not a boolean,
    a value a property list cannot hold."""
    if not isinstance(definition, dict):
        raise PlistProblem("definition must be a dictionary of launchd.plist keys, got %s" % shown(definition))
    definition = dict(definition)
    definition.setdefault("Label", label)
    problems = _value_problems(definition, "definition")
    if not problems and definition["Label"] != label:
        problems.append("definition's Label %s is not name %s" % (shown(definition["Label"]), shown(label)))
    if not problems and "Disabled" in definition and not isinstance(definition["Disabled"], bool):
        problems.append("definition's Disabled must be a boolean, got %s" % shown(definition["Disabled"]))
    if problems:
        raise PlistProblem("; ".join(problems))
    return plistlib.dumps(definition, fmt=plistlib.FMT_XML, sort_keys=True)


def installed_plist(path, label):
    """(spec, data) of the plist at `path` as it is installed, for comparing with a definition: spec is
    None when the file is missing or launchd would not load it as written (its owner, mode or contents),
    data the file's bytes (b"" when missing). Raises PlistProblem for a path that is not a regular file (a
    link is not followed) or in no directory, which is never replaced."""
    try:
        check_write_target(path, "plist")
    except UnsafePath as exc:
        raise PlistProblem(str(exc)) from None
    data, info = _read_plist_file(path)
    if data is None:
        return None, b""
    if stat.S_IMODE(info.st_mode) != PLIST_MODE:
        return None, data
    try:
        return _job_spec(path, data, info, label), data
    except PlistProblem:
        return None, data


def parse_print(stdout, label):
    """The fields pfguard uses from `launchctl print system/LABEL` of a loaded job: state, pid, runs,
    path, last_exit_code and last_signal (None where the output has no such line). Raises ValueError
    with the first line that is not launchctl print output (or names what is missing)."""
    lines = stdout.split("\n")
    while lines and not lines[-1]:
        lines.pop()
    header = "system/%s = {" % label
    if not lines or lines[0] != header:
        raise ValueError(lines[0] if lines else "(no output)")
    if len(lines) < 2 or lines[-1] != "}":
        raise ValueError("%s (the output does not end with '}')" % lines[-1])
    fields = {}
    level = 0  # nested blocks open below the top level
    for line in lines[1:-1]:
        if not line:
            continue
        if level:
            if line == "\t" * level + "}":
                level -= 1
            elif not line.startswith("\t" * (level + 1)):
                raise ValueError(line)
            elif line.endswith(" = {") or line.endswith(" => {"):
                level += 1
            continue
        match = _PRINT_FIELD.match(line)
        if not match:
            raise ValueError(line)
        key, value = match.groups()
        if value == "{":
            level = 1
        else:
            fields.setdefault(key, (value, line))
    if level:
        raise ValueError("%s (a block is not closed)" % lines[-2])
    return _print_status(fields)


def _print_status(fields):
    def value(key, pattern=None):
        if key not in fields:
            return None
        text, line = fields[key]
        if pattern is not None and not pattern.match(text):
            raise ValueError(line)
        return text

    status = dict(state=value("state"), path=value("path"), pid=None, runs=None, last_exit_code=None, last_signal=None)
    for key, name in (("pid", "pid"), ("runs", "runs")):
        text = value(key, _NUMBER)
        status[name] = int(text) if text is not None else None
    text = value("last exit code")
    if text is not None and text != "(never exited)":
        match = _EXIT_CODE.match(text)
        if not match:
            raise ValueError(fields["last exit code"][1])
        status["last_exit_code"] = int(match.group(1))
    text = value("last terminating signal", _SIGNAL)
    if text is not None:
        status["last_signal"] = int(_SIGNAL.match(text).group(1))
    if status["state"] is None:
        raise ValueError("(no 'state = ' line)")
    return status


def parse_print_disabled(stdout):
    """{label: True when disabled, False when enabled} from `launchctl print-disabled system`. Raises
    ValueError with the first line that is not print-disabled output. Releases differ in indentation
    (some indent the whole listing) and in what follows the block (`login item associations = {`)."""
    overrides = {}
    found = False
    depth = 0  # blocks open
    in_disabled = False
    for line in stdout.split("\n"):
        text = line.strip()
        if not text:
            continue
        if not depth:
            match = _BLOCK_HEADER.match(text)
            if not match:
                raise ValueError(line)
            depth, in_disabled = 1, match.group(1) == "disabled services"
            found = found or in_disabled
        elif text == "}":
            depth -= 1
        elif line == text:  # inside a block every line is indented
            raise ValueError(line)
        elif in_disabled:
            match = _DISABLED_ENTRY.match(text)
            if not match:
                raise ValueError(line)
            overrides[match.group(1)] = _DISABLED_VALUES[match.group(2)]
        elif text.endswith("{"):
            depth += 1
    if depth:
        raise ValueError("(a block is not closed)")
    if not found:
        raise ValueError("(no 'disabled services = {' block)")
    return overrides


def effective_enabled(override, spec):
    """Whether launchd would load the job: its store's override wins over the plist's Disabled key
    (docs/reference/macos.md#disabled-services); without either it is enabled."""
    if override is not None:
        return not override
    return not (spec or {}).get("Disabled", False)


def needs_root(stderr):
    """Whether launchctl says it was not run as root (docs/reference/macos.md#launchctl-exit-codes)."""
    return NOT_ROOT_HINT in stderr


def describe_failure(cmd, rc, stdout, stderr):
    """`launchctl VERB ... failed (exit N): <launchctl's message>; <hint>`."""
    message = (stderr.strip() or stdout.strip() or "no message").replace("\n", " / ")
    hint = "run the task as root (become: true)" if needs_root(stderr) else HINTS.get(rc)
    return "%s failed (exit %d): %s%s" % (" ".join(cmd), rc, message, "; %s" % hint if hint else "")


class Launchctl(object):
    """Runs launchctl with a C locale, a time limit and an output limit (run_bounded). Reads run in
    check mode too; changing verbs are recorded in `commands` (and their verbs in `actions`) and run
    only outside check mode. Raises CommandError (LaunchctlError, or CommandTimeout naming the
    command) on failures and on output it cannot parse."""

    def __init__(self, path, timeout, check_mode=False):
        self.path = path
        self.timeout = timeout
        self.check_mode = check_mode
        self.commands = []
        self.actions = []

    def run(self, args):
        cmd = [self.path] + list(args)
        rc, stdout, stderr = run_bounded(cmd, self.timeout, environ_update=LAUNCHCTL_ENV, output_limit=OUTPUT_LIMIT)
        return cmd, rc, stdout, stderr

    def change(self, args):
        """Run a changing verb (recorded); (cmd, rc, stdout, stderr), or None in check mode."""
        self.commands.append([self.path] + list(args))
        self.actions.append(args[0])
        if self.check_mode:
            return None
        return self.run(args)

    def job(self, label):
        """parse_print's fields of the loaded job, or None when launchd does not know it (113)."""
        cmd, rc, stdout, stderr = self.run(["print", "system/" + label])
        if rc == NOT_FOUND:
            return None
        if rc != 0:
            raise LaunchctlError(describe_failure(cmd, rc, stdout, stderr), cmd, rc, stdout, stderr)
        try:
            return parse_print(stdout, label)
        except ValueError as exc:
            raise LaunchctlError(
                "%s printed a line that is not launchctl print output: %s" % (" ".join(cmd), output_line(str(exc))),
                cmd, rc, stdout, stderr,
            ) from None  # fmt: skip

    def overrides(self):
        """launchd's store of enable/disable overrides for the system domain."""
        cmd, rc, stdout, stderr = self.run(["print-disabled", "system"])
        if rc != 0:
            raise LaunchctlError(describe_failure(cmd, rc, stdout, stderr), cmd, rc, stdout, stderr)
        try:
            return parse_print_disabled(stdout)
        except ValueError as exc:
            raise LaunchctlError(
                "%s printed a line that is not launchctl print-disabled output: %s"
                % (" ".join(cmd), output_line(str(exc))),
                cmd, rc, stdout, stderr,
            ) from None  # fmt: skip

    def status(self, label, spec, overrides=None):
        """The job's status: loaded, enabled (launchd would load it), override (the store's
        `enabled`/`disabled`, None without one) and parse_print's fields (None when not loaded).
        `overrides`: print-disabled's answer when the caller has read it already."""
        job = self.job(label)
        override = (self.overrides() if overrides is None else overrides).get(label)
        status = dict(state=None, path=None, pid=None, runs=None, last_exit_code=None, last_signal=None)
        status.update(job or {})
        status.update(
            loaded=job is not None,
            enabled=effective_enabled(override, spec),
            override=None if override is None else ("disabled" if override else "enabled"),
        )
        return status
