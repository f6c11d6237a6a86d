# SPDX-License-Identifier: GPL-3.0-or-later
"""Watch whether new TCP connections from one lab host to another get through, many times a second.

`pfguard-lab watch` uses it to measure, from the attacker's side, how long a Mac answers a banned
host after a reboot: from the first accepted connection of the new boot to the last one."""

from __future__ import annotations

import json
import socket
import time


def attempt(address: str, port: int, timeout: float) -> bool:
    """Whether a new TCP connection to address:port is accepted within `timeout` seconds."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def watch(address: str, port: int, seconds: float, interval: float, timeout: float, emit) -> None:
    """Try a connection every `interval` seconds for `seconds`; emit({"t": unix time, "open": bool})
    for each try (t is when the try started)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started_wall, started = time.time(), time.monotonic()
        emit({"t": round(started_wall, 3), "open": attempt(address, port, timeout)})
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def print_line(record: dict) -> None:
    print(json.dumps(record), flush=True)


def open_window(records: list[dict], after: float) -> tuple[float | None, float | None]:
    """(first, last) start times of the accepted connections that began after `after` (unix time),
    or (None, None) when none did."""
    opened = [r["t"] for r in records if r["open"] and r["t"] >= after]
    return (opened[0], opened[-1]) if opened else (None, None)
