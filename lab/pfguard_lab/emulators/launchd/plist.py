# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared launchd helpers: the lab root, job plists, the disabled store, launchd error numbers, users."""

from __future__ import annotations

import os
import plistlib
import stat
from dataclasses import dataclass
from pathlib import Path

SYSTEM_DAEMON_DIRS = ("/System/Library/LaunchDaemons", "/Library/LaunchDaemons")
DISABLED_STORE = "/var/db/com.apple.xpc.launchd/disabled.plist"
SOCKET_PATH = "/var/run/pfguard-lab/launchd.sock"
LAUNCHD_LOG = "/var/log/com.apple.xpc.launchd/launchd.log"
DEFAULT_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
DEFAULT_THROTTLE_INTERVAL = 10
DEFAULT_EXIT_TIMEOUT = 5

# launchd's error numbers as launchctl prints them ("<verb> failed: N: <text>"),
# docs/reference/macos.md#launchctl-exit-codes.
# Below 107 they are errno values with macOS's strerror() text. 109-111 and 114-115 follow the same
# numbering as the documented ones but are UNVERIFIED by capture.
ERROR_TEXT = {
    1: "Operation not permitted",
    2: "No such file or directory",
    3: "No such process",
    5: "Input/output error",
    13: "Permission denied",
    37: "Operation already in progress",
    108: "Invalid path",
    109: "Invalid property list",
    110: "Invalid or missing service identifier",
    111: "Invalid or missing Program/ProgramArguments",
    112: "Could not find specified domain",
    113: "Could not find specified service",
    114: "The specified username does not exist",
    115: "The specified group does not exist",
    119: "Service is disabled",
    122: "Path had bad ownership/permissions",
    125: "Domain does not support specified action",
    134: "Service cannot load in requested session",
}

EPERM, ENOENT, ESRCH, EIO = 1, 2, 3, 5
E_NOT_FOUND, E_DISABLED, E_BAD_PERMISSIONS = 113, 119, 122
EX_CONFIG = 78  # what launchctl list shows for a job launchd could not spawn

# Keys launchd honours whose behaviour the lab does not emulate: refused loudly, never ignored.
UNSUPPORTED_KEYS = ("Sockets", "MachServices", "inetdCompatibility", "QueueDirectories", "LaunchEvents")
UNSUPPORTED_KEEPALIVE_KEYS = ("AfterInitialDemand",)


def lab_root() -> str:
    return os.environ.get("PFGUARD_LAB_ROOT") or "/"


def host_path(mac_path: str, root: str | None = None) -> str:
    """Where the macOS path `mac_path` lives on this machine (under $PFGUARD_LAB_ROOT)."""
    root = root or lab_root()
    if root == "/" or not mac_path.startswith("/"):
        return mac_path
    return os.path.join(root, mac_path.lstrip("/"))


def error_text(code: int) -> str:
    return ERROR_TEXT.get(code, f"Unknown error: {code}")


class PlistProblem(Exception):
    """A job plist launchd refuses. `code` is launchd's error number, `text` what a legacy load prints."""

    def __init__(self, code: int, text: str, detail: str = "") -> None:
        super().__init__(detail or text)
        self.code = code
        self.text = text
        self.detail = detail or text


class LabUnsupported(Exception):
    """A construct real launchd accepts but the lab does not emulate."""

    def __init__(self, construct: str) -> None:
        super().__init__(f"{construct} is not supported by the lab")
        self.construct = construct


def read_plist_bytes(data: bytes):
    """Parse XML or binary plist data. OpenStep text plists are refused loudly (launchd reads them)."""
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"(") and not stripped.startswith(b"<"):
        raise LabUnsupported("an OpenStep-format property list")
    return plistlib.loads(data)


def ownership_ok(path: str) -> bool:
    """launchd's rule for daemons: owned by root:wheel (gid 0 on Linux), not group/world-writable."""
    st = os.stat(path)
    return st.st_uid == 0 and st.st_gid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def load_job_plist(mac_path: str, root: str | None = None) -> dict:
    """Read and check a LaunchDaemon plist the way launchd does before loading it.

    Raises PlistProblem (with launchd's error number) or LabUnsupported.
    """
    path = host_path(mac_path, root)
    if not os.path.lexists(path):
        raise PlistProblem(ENOENT, error_text(ENOENT))
    if not os.path.isfile(path):
        raise PlistProblem(EIO, "Invalid property list", "not a regular file")
    if not ownership_ok(path):
        raise PlistProblem(E_BAD_PERMISSIONS, error_text(E_BAD_PERMISSIONS))
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PlistProblem(EIO, "Invalid property list", str(exc)) from None
    try:
        spec = read_plist_bytes(data)
    except LabUnsupported:
        raise
    except Exception as exc:  # plistlib raises several types for malformed input
        raise PlistProblem(EIO, "Invalid property list", f"malformed plist: {exc}") from None
    validate_job(spec)
    return spec


def validate_job(spec) -> None:
    """Refuse what launchd refuses (missing Label, no program); refuse loudly what the lab lacks."""
    if not isinstance(spec, dict):
        raise PlistProblem(EIO, "Invalid property list", "the top level is not a dictionary")
    label = spec.get("Label")
    if not isinstance(label, str) or not label:
        # docs/reference/macos.md#launchd-plist-keys: Label is required. launchctl reports the generic 5 for
        # it (UNVERIFIED).
        raise PlistProblem(EIO, "Invalid property list", "missing or invalid Label")
    program = spec.get("Program")
    arguments = spec.get("ProgramArguments")
    if program is not None and not isinstance(program, str):
        raise PlistProblem(EIO, "Invalid property list", "Program is not a string")
    if arguments is not None and (
        not isinstance(arguments, list) or not all(isinstance(arg, str) for arg in arguments)
    ):
        raise PlistProblem(EIO, "Invalid property list", "ProgramArguments is not an array of strings")
    if not program and not arguments:
        raise PlistProblem(EIO, "Invalid property list", "neither Program nor ProgramArguments")
    for key in UNSUPPORTED_KEYS:
        if key in spec:
            raise LabUnsupported(f"launchd key {key}")
    keep_alive = spec.get("KeepAlive")
    if isinstance(keep_alive, dict):
        for key in UNSUPPORTED_KEEPALIVE_KEYS:
            if key in keep_alive:
                raise LabUnsupported(f"launchd key KeepAlive.{key}")
    typed = {
        "RunAtLoad": bool,
        "LaunchOnlyOnce": bool,
        "AbandonProcessGroup": bool,
        "Disabled": bool,
        "StartInterval": int,
        "ThrottleInterval": int,
        "ExitTimeOut": int,
        "WorkingDirectory": str,
        "StandardOutPath": str,
        "StandardErrorPath": str,
        "UserName": str,
        "GroupName": str,
        "EnvironmentVariables": dict,
        "WatchPaths": list,
        "KeepAlive": (bool, dict),
        "StartCalendarInterval": (dict, list),
    }
    for key, kind in typed.items():
        if key in spec and not isinstance(spec[key], kind):
            raise PlistProblem(EIO, "Invalid property list", f"{key} has the wrong type")
    for key in ("StartInterval", "ThrottleInterval", "ExitTimeOut"):
        if isinstance(spec.get(key), bool) or spec.get(key, 0) < 0:
            raise PlistProblem(EIO, "Invalid property list", f"{key} must be a non-negative integer")
    if isinstance(keep_alive, dict):
        for key in ("PathState", "OtherJobEnabled"):
            if not isinstance(keep_alive.get(key, {}), dict):
                raise PlistProblem(EIO, "Invalid property list", f"KeepAlive.{key} is not a dictionary")
    if not all(isinstance(path, str) for path in spec.get("WatchPaths", [])):
        raise PlistProblem(EIO, "Invalid property list", "WatchPaths is not an array of strings")
    calendar = spec.get("StartCalendarInterval")
    entries = [calendar] if isinstance(calendar, dict) else calendar or []
    calendar_keys = {"Minute", "Hour", "Day", "Weekday", "Month"}
    for entry in entries:
        if not isinstance(entry, dict) or not all(
            key in calendar_keys and isinstance(value, int) and not isinstance(value, bool)
            for key, value in entry.items()
        ):
            raise PlistProblem(EIO, "Invalid property list", "StartCalendarInterval entries are malformed")


def program_and_arguments(spec: dict) -> tuple[str, list[str]]:
    """Program defaults to ProgramArguments[0]; argv defaults to [Program] (launchd.plist(5))."""
    arguments = list(spec.get("ProgramArguments") or [])
    program = spec.get("Program") or arguments[0]
    if not arguments:
        arguments = [program]
    return program, arguments


# The external disabled store: label -> True (disabled) / False (enabled); it wins over the
# plist's Disabled key (docs/reference/macos.md#disabled-services).


def read_disabled_store(root: str | None = None) -> dict[str, bool]:
    path = host_path(DISABLED_STORE, root)
    try:
        data = plistlib.loads(Path(path).read_bytes())
    except (OSError, plistlib.InvalidFileException, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(label): bool(value) for label, value in data.items()}


def write_disabled_store(overrides: dict[str, bool], root: str | None = None) -> None:
    path = Path(host_path(DISABLED_STORE, root))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(plistlib.dumps(dict(sorted(overrides.items())), fmt=plistlib.FMT_XML))
    tmp.chmod(0o644)
    tmp.replace(path)


def is_disabled(spec: dict, overrides: dict[str, bool]) -> bool:
    label = spec.get("Label")
    if label in overrides:
        return overrides[label]
    return bool(spec.get("Disabled", False))


# Users and groups come from the host's own /etc/passwd and /etc/group (under the lab root).


@dataclass
class Account:
    name: str
    uid: int
    gid: int
    home: str
    shell: str


def lookup_user(name: str, root: str | None = None) -> Account | None:
    try:
        lines = Path(host_path("/etc/passwd", root)).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == name:
            try:
                return Account(fields[0], int(fields[2]), int(fields[3]), fields[5], fields[6])
            except ValueError:
                return None
    return None


def read_groups(root: str | None = None) -> list[tuple[str, int, list[str]]]:
    try:
        lines = Path(host_path("/etc/group", root)).read_text().splitlines()
    except OSError:
        return []
    groups = []
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4:
            try:
                groups.append((fields[0], int(fields[2]), [m for m in fields[3].split(",") if m]))
            except ValueError:
                continue
    return groups


def lookup_group(name: str, root: str | None = None) -> int | None:
    for group_name, gid, _members in read_groups(root):
        if group_name == name:
            return gid
    return None


def supplementary_groups(user: str, root: str | None = None) -> list[int]:
    return [gid for _name, gid, members in read_groups(root) if user in members]
