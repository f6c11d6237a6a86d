"""A lab shared by tests/lab/test_lab_*.py: brought up once per session, always taken down.

Test modules load this as a plugin (`pytest_plugins = ["lab_fixtures"]`, not an import) so that
the session fixture exists once, not once per importing module; they reach the helpers through
the `lab` fixture. `PFGUARD_LAB_COMMAND` may name another
`pfguard-lab` executable (the default runs this venv's `python -m pfguard_lab.cli`).
"""

from __future__ import annotations

import atexit
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

LAB_DIR = Path(os.environ.get("PFGUARD_LAB_DIR") or "/run/pfguard-lab")
DIAGNOSTICS = "/var/db/diagnostics/pfguard-lab.jsonl"  # logd's store (docs/lab-design.md)


def lab_command() -> list[str]:
    override = os.environ.get("PFGUARD_LAB_COMMAND")
    return shlex.split(override) if override else [sys.executable, "-m", "pfguard_lab.cli"]


def run_lab(*args: str, input_text: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `pfguard-lab ARGS...` and capture its output (never raises on a non-zero exit)."""
    return subprocess.run(
        [*lab_command(), *args], input=input_text, capture_output=True, text=True, timeout=timeout,
        stdin=None if input_text is not None else subprocess.DEVNULL,
    )  # fmt: skip


class LabSession:
    """The running lab as tests see it: the CLI plus a few helpers."""

    dir = LAB_DIR

    def __init__(self) -> None:
        self.inventory_path: Path | None = None

    @staticmethod
    def run(*args: str, input_text: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_lab(*args, input_text=input_text, timeout=timeout)

    @staticmethod
    def command() -> list[str]:
        return lab_command()

    def up(self, *args: str) -> subprocess.CompletedProcess:
        result = run_lab("up", *args, timeout=180)
        assert result.returncode == 0, f"pfguard-lab up failed:\n{result.stdout}\n{result.stderr}"
        self.inventory_path = Path(result.stdout.strip().splitlines()[-1])
        return result

    def down(self) -> subprocess.CompletedProcess:
        return run_lab("down", timeout=60)

    def inventory(self) -> dict:
        assert self.inventory_path is not None
        return yaml.safe_load(self.inventory_path.read_text())

    def macs(self) -> dict:
        return self.inventory()["all"]["children"]["macs"]["hosts"]

    def exec(self, host: str, *argv: str, input_text: str | None = None, timeout: float = 60):
        return run_lab("exec", host, "--", *argv, input_text=input_text, timeout=timeout)

    def sh(self, host: str, script: str) -> str:
        """Run a shell script on a host; fail the test if it fails; return stdout."""
        result = self.exec(host, "/bin/sh", "-c", script)
        assert result.returncode == 0, f"{host}: {script!r} -> {result.returncode}\n{result.stderr}"
        return result.stdout

    def log_messages(self, host: str) -> list[dict]:
        """The host's unified log store (one JSON object per line)."""
        text = self.exec(host, "cat", DIAGNOSTICS).stdout
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _down_at_exit() -> None:
    # Last resort if the interpreter exits without running fixture finalizers.
    if (LAB_DIR / "lab.json").exists():
        run_lab("down", timeout=60)


@pytest.fixture(scope="session")
def lab():
    assert os.geteuid() == 0, "the lab tests need root (network namespaces, mounts, nftables)"
    session = LabSession()
    session.down()  # an earlier run may have crashed and left a lab behind
    atexit.register(_down_at_exit)
    try:
        session.up()
        yield session
    finally:
        result = session.down()
        assert result.returncode == 0, f"pfguard-lab down failed: {result.stderr}"
