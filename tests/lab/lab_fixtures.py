# SPDX-License-Identifier: GPL-3.0-or-later
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
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = str(Path(sys.executable).with_name("ansible"))
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
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


def wait_for(condition, timeout: float, interval: float = 0.5, what: str = "condition", detail=None):
    """Poll `condition()` until it returns something truthy; fail after `timeout` seconds (with `detail()`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}" + (f"\n{detail()}" if detail else ""))
        time.sleep(interval)


class PlaybookRun:
    """One finished ansible-playbook run: exit code, output and the PLAY RECAP counters per host."""

    def __init__(self, argv: list[str], proc: subprocess.CompletedProcess):
        self.argv = argv
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.recap = {
            match.group(1): {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
            for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", proc.stdout, re.MULTILINE)
        }

    def changed(self) -> dict[str, int]:
        """changed= per host."""
        return {host: counters["changed"] for host, counters in self.recap.items()}

    def __str__(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}\n{self.stdout[-8000:]}\n{self.stderr[-3000:]}"


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

    def playbook(
        self, playbook: str | Path, *args: str, extra_vars: dict | None = None, timeout: float = 600
    ) -> PlaybookRun:
        """Run ansible-playbook (default callback, from the repo root) against the lab's inventory.

        A relative `playbook` is taken from the repo root (`playbooks/ban.yml`); never raises on failure.
        """
        argv = [ANSIBLE_PLAYBOOK, "-i", str(self.inventory_path), str(playbook), *args]
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        return PlaybookRun(argv, proc)

    def adhoc(self, host: str, module: str, args: str | dict | None = None, *extra: str, timeout: float = 120):
        """Ad hoc `ansible HOST -m MODULE [-a ARGS] EXTRA...` against the lab's inventory (as Ansible
        reaches a Mac: admin over ssh, root by sudo); returns (exit code, the host's result dict)."""
        if isinstance(args, dict):
            args = json.dumps(args)
        argv = [ANSIBLE, host, "-i", str(self.inventory_path), "-m", module, *(["-a", args] if args else []), *extra]
        env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            return proc.returncode, json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][host]
        except (ValueError, LookupError):
            pytest.fail(f"$ {' '.join(argv)}\nexit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")

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
