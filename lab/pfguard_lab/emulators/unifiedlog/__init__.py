# SPDX-License-Identifier: GPL-3.0-or-later
"""The unified log: `logd` (the host's /dev/log collector) and `/usr/bin/log`."""

from __future__ import annotations

import json
import os
from pathlib import Path

# Records live in one JSON-lines file (design doc "Unified log").
STORE_RELPATH = "var/db/diagnostics/pfguard-lab.jsonl"
SOCKET_RELPATH = "dev/log"
HOST_FACTS_RELPATH = "var/db/.pfguard-lab/host.json"


def lab_root() -> Path:
    return Path(os.environ.get("PFGUARD_LAB_ROOT") or "/")


def store_path(root: Path | None = None) -> Path:
    return (root or lab_root()) / STORE_RELPATH


def socket_path(root: Path | None = None) -> Path:
    return (root or lab_root()) / SOCKET_RELPATH


def read_host_facts(root: Path | None = None) -> dict:
    """host.json, or {} when the host has none (standalone use)."""
    try:
        return json.loads(((root or lab_root()) / HOST_FACTS_RELPATH).read_text())
    except (OSError, ValueError):
        return {}
