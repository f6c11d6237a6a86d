# SPDX-License-Identifier: GPL-3.0-or-later
"""launchctl <-> launchd: one JSON object per line over the unix socket <root>/var/run/pfguard-lab/launchd.sock.

Request: {"op": "...", ...}. Reply: {"error": 0 | launchd error number | "unsupported", ...}.
"""

from __future__ import annotations

import json
import socket

from pfguard_lab.emulators.launchd.plist import SOCKET_PATH, host_path

MAX_MESSAGE = 4 * 1024 * 1024


class LaunchdUnavailable(Exception):
    """No launchd is listening on the lab root's socket."""


def socket_path(root: str | None = None) -> str:
    return host_path(SOCKET_PATH, root)


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def read_line(sock: socket.socket) -> bytes:
    chunks = []
    total = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if b"\n" in chunk or total > MAX_MESSAGE:
            break
    return b"".join(chunks).split(b"\n", 1)[0]


def request(message: dict, root: str | None = None, timeout: float = 120.0) -> dict:
    path = socket_path(root)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise LaunchdUnavailable(f"launchd is not running (no listener on {path})") from exc
        sock.sendall(encode(message))
        line = read_line(sock)
    finally:
        sock.close()
    if not line:
        raise LaunchdUnavailable("launchd closed the connection without replying")
    return json.loads(line)
