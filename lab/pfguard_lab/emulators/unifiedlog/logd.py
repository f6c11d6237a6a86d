# SPDX-License-Identifier: GPL-3.0-or-later
"""The host's unified-log collector: syslog datagrams on /dev/log -> JSON lines (design doc "Unified log").

Runs as the launchd job com.apple.logd. Each datagram becomes one record in
`<root>/var/db/diagnostics/pfguard-lab.jsonl`:
{"ts", "tz", "process", "pid", "sender", "image", "subsystem", "category", "level", "message"}.

sshd attribution follows the host's macOS version, i.e. its OpenSSH (docs/reference/macos.md#sshd-process-names):
- below 15 everything is `sshd` (/usr/sbin/sshd);
- 15.x (OpenSSH 9.8 split sshd into the listener and `sshd-session`): every per-connection
  message, the authentication phase's included, is `sshd-session`;
- 26 and later (OpenSSH 10.0 moved user authentication into `sshd-auth`): the authentication
  phase's messages are `sshd-auth`, the other per-connection messages `sshd-session`;
only the listener's own lines stay under `sshd`.
"""

from __future__ import annotations

import array
import json
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

from pfguard_lab.emulators.unifiedlog import lab_root, read_host_facts, socket_path, store_path

SSHD_FAMILY = {"sshd", "sshd-session", "sshd-auth"}
SSHD_IMAGES = {
    "sshd": "/usr/sbin/sshd",
    "sshd-session": "/usr/libexec/sshd-session",
    "sshd-auth": "/usr/libexec/sshd-auth",
}

# The listening daemon's own messages (sshd.c main loop / server_accept_loop).
LISTENER_MESSAGE = re.compile(
    r"^(?:error: )?(?:Server listening on |Received signal |Received SIGHUP|Bind to port |Cannot bind any address"
    r"|beginning MaxStartups throttling|exited MaxStartups throttling|drop connection #|Exiting on signal"
    r"|Couldn't create pid file|sshd re-exec requires)"
)
# Authentication-phase messages -> sshd-auth on macOS 26+. Choice (docs/reference/macos.md#sshd-process-names only says
# failures appear under sshd-session/sshd-auth): every "[preauth]" line (OpenSSH tags what the
# pre-auth child logs) plus the auth failures fail2ban's sshd filter looks for. "Accepted ..." stays
# under sshd-session: a public capture shows `sshd-session[16472]: Accepted publickey for ...`.
AUTH_MESSAGE = re.compile(
    r"^(?:(?:error|fatal): )?(?:Failed |Invalid user |input_userauth_request: invalid user |PAM: |Postponed "
    r"|maximum authentication attempts exceeded |Connection (?:closed|reset) by (?:authenticating|invalid) user "
    r"|Disconnect(?:ed from|ing) (?:authenticating|invalid) user |User \S+ from \S+ not allowed because "
    r"|pam_\w+\(sshd:auth\): )"
    r"|\[preauth\]$"
)

# syslog(3) as glibc sends it: "<PRI>Mmm dd hh:mm:ss ident[pid]: msg" (timestamp optional).
BSD_HEADER = re.compile(
    r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d )?(?:(?P<tag>[^\s:\[\]]+)(?:\[(?P<pid>\d+)\])?: ?)?(?P<msg>.*)\Z",
    re.DOTALL,
)
# RFC 5424 (logger --rfc5424): "<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]".
RFC5424_HEADER = re.compile(
    r'^1 \S+ \S+ (?P<app>\S+) (?P<procid>\S+) \S+ (?:-|(?:\[(?:[^\]"\\]|\\.|"(?:[^"\\]|\\.)*")*\])+)'
    r"(?: (?P<msg>.*))?\Z",
    re.DOTALL,
)

# syslog severity -> unified-log type. emerg/alert -> fault is UNVERIFIED (macOS maps the most
# severe syslog levels to Fault as far as we know); warning -> default likewise.
SEVERITY_LEVELS = {0: "fault", 1: "fault", 2: "error", 3: "error", 4: "default", 5: "default", 6: "info", 7: "debug"}


def os_major(facts: dict) -> int:
    try:
        return int(str(facts.get("os_version", "")).split(".")[0])
    except ValueError:
        return 0


SSHD_SESSION_MAJOR = 15  # macOS 15: OpenSSH 9.8, sshd-session
SSHD_AUTH_MAJOR = 26  # macOS 26: OpenSSH 10.0, sshd-auth


def sshd_process(message: str, major: int) -> str:
    """Which of sshd / sshd-session / sshd-auth logs `message` on this macOS version."""
    if major < SSHD_SESSION_MAJOR or LISTENER_MESSAGE.search(message):
        return "sshd"
    if major >= SSHD_AUTH_MAJOR and AUTH_MESSAGE.search(message):
        return "sshd-auth"
    return "sshd-session"


def image_for(ident: str, pid: int) -> str:
    """Executable path: the real one from /proc when it is the named program, else a plausible one."""
    if pid > 0:
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = ""
        if os.path.basename(exe) == ident:
            return exe
    return f"/usr/bin/{ident}"  # lab guess: the process is gone or logged under another name


def timezone_offset(ts: float) -> str:
    offset = time.localtime(ts).tm_gmtoff
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    return f"{sign}{offset // 3600:02d}{offset % 3600 // 60:02d}"


def parse_datagram(data: bytes, sender_pid: int = 0) -> tuple[str, int, int, str]:
    """(ident, pid, severity, message) from one syslog datagram."""
    text = data.decode("utf-8", errors="replace").rstrip("\0").rstrip("\n")
    match = re.match(r"^<(\d{1,3})>", text)
    priority = int(match.group(1)) if match else 13  # user.notice, as syslogd assumes
    body = text[match.end() :] if match else text
    ident, pid, message = "", 0, body
    rfc5424 = RFC5424_HEADER.match(body)
    if rfc5424:
        ident = "" if rfc5424.group("app") == "-" else rfc5424.group("app")
        pid = int(rfc5424.group("procid")) if rfc5424.group("procid").isdigit() else 0
        message = (rfc5424.group("msg") or "").removeprefix("\ufeff")
    else:
        header = BSD_HEADER.match(body)
        if header:
            ident = header.group("tag") or ""
            pid = int(header.group("pid")) if header.group("pid") else 0
            message = header.group("msg")
    return ident, pid or sender_pid, priority & 7, message


def make_record(data: bytes, sender_pid: int, major: int, now: float | None = None) -> dict:
    ident, pid, severity, message = parse_datagram(data, sender_pid)
    ts = time.time() if now is None else now
    ident = ident or "syslog"
    if ident in SSHD_FAMILY:
        process = sshd_process(message, major)
        image = SSHD_IMAGES[process]
    else:
        process = ident
        image = image_for(ident, pid)
    return {
        "ts": ts,
        "tz": timezone_offset(ts),
        "process": process,
        "pid": pid,
        "sender": os.path.basename(image),
        "image": image,
        "subsystem": "",
        "category": "",
        "level": SEVERITY_LEVELS[severity],
        "message": message,
    }


class _Stop(Exception):
    pass


def _stop(signum, frame):
    raise _Stop()


def bind_socket(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()  # stale socket from a previous boot or a crashed logd
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # sender pid when the header has none
    sock.bind(str(path))
    os.chmod(path, 0o666)
    return sock


def receive(sock: socket.socket) -> tuple[bytes, int]:
    creds_size = array.array("i", [0, 0, 0]).itemsize * 3
    data, ancillary, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(creds_size))
    pid = 0
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= creds_size:
            pid = array.array("i", payload[:creds_size])[0]
    return data, pid


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print("usage: pfguard-lab-logd", file=sys.stderr)
        return 64
    root = lab_root()
    facts = read_host_facts(root)
    major = os_major(facts)
    if not facts:
        print("pfguard-lab: logd: no host.json, recording sshd as macOS 14 does", file=sys.stderr)
    store = store_path(root)
    store.parent.mkdir(parents=True, exist_ok=True)
    sock_path = socket_path(root)
    sock = bind_socket(sock_path)
    bound_inode = sock_path.stat().st_ino
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        with open(store, "a", encoding="utf-8") as out:
            while True:
                data, pid = receive(sock)
                if not data:
                    continue
                out.write(json.dumps(make_record(data, pid, major), ensure_ascii=False) + "\n")
                out.flush()
    except _Stop:
        pass
    finally:
        sock.close()
        try:
            if sock_path.stat().st_ino == bound_inode:
                sock_path.unlink()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
