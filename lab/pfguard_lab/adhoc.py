# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a module with `ansible localhost -m ...` from the checkout and read its JSON result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = str(Path(sys.executable).with_name("ansible"))
QUIET = {
    "ANSIBLE_LOCALHOST_WARNING": "false",
    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    "ANSIBLE_DEPRECATION_WARNINGS": "false",
    "ANSIBLE_NOCOLOR": "1",
}


class AdhocError(RuntimeError):
    """ansible printed no result line for localhost."""


def run_module(module: str, args: dict, *extra: str, env: dict | None = None) -> tuple[int, dict]:
    """Run `module` on localhost (ansible.cfg of the checkout applies); return (exit code, result)."""
    proc = subprocess.run(
        [ANSIBLE, "localhost", "-o", "-m", module, "-a", json.dumps(args), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **QUIET, **(env or {})},
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("localhost |")), None)
    if line is None:
        raise AdhocError(proc.stdout[-2000:] + proc.stderr[-2000:])
    status, _arrow, payload = line.partition(" => ")
    result = json.loads(payload)
    # ansible-core 2.19 drops `failed` from the result before a callback prints it; the status says it.
    if status.split("|", 1)[1].strip().startswith("FAILED"):
        result["failed"] = True
    return proc.returncode, result
