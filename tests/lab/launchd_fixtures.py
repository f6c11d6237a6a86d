# SPDX-License-Identifier: GPL-3.0-or-later
"""A throwaway lab root with the emulated launchd running in it, for tests/lab/test_launchd.py."""

from __future__ import annotations

import contextlib
import os
import plistlib
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import lab_fixtures
from pfguard_lab.commands import write_wrapper

STARTUP_TIMEOUT = 10.0


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05, what: str = "condition", detail=None):
    """lab_fixtures.wait_for at the local emulator's pace (5 s, every 50 ms): returns the first truthy
    value of `predicate()`, fails the test on timeout."""
    return lab_fixtures.wait_for(predicate, timeout, interval, what, detail)


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


class LaunchdRoot:
    """A temp dir laid out like a Mac's root, with launchd/launchctl wrappers at their macOS paths."""

    def __init__(self) -> None:
        # Not pytest's tmp_path: jobs running as nobody need to traverse it (0755 all the way).
        self.root = Path(tempfile.mkdtemp(prefix="pfglab-ld-", dir="/tmp"))
        self.root.chmod(0o755)
        self.env = {"PFGUARD_LAB_ROOT": str(self.root)}
        write_wrapper(self.root / "sbin/launchd", "pfguard_lab.emulators.launchd.daemon", self.env)
        write_wrapper(self.root / "bin/launchctl", "pfguard_lab.emulators.launchd.launchctl", self.env)
        for directory in ("etc", "var/run", "var/log", "var/tmp", "usr/local/bin", "Library/LaunchDaemons",
                          "System/Library/LaunchDaemons"):
            (self.root / directory).mkdir(parents=True, exist_ok=True)
            (self.root / directory).chmod(0o755)
        shutil.copy("/etc/passwd", self.root / "etc/passwd")
        shutil.copy("/etc/group", self.root / "etc/group")
        self.process: subprocess.Popen | None = None
        self.console = self.root / "launchd-console.txt"

    # ---- files

    def path(self, mac_path: str) -> Path:
        return self.root / mac_path.lstrip("/")

    def write_script(self, mac_path: str, text: str) -> str:
        target = self.path(mac_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o755)
        return mac_path

    def write_plist(self, spec: dict, directory: str = "/Library/LaunchDaemons", mode: int = 0o644,
                    name: str | None = None, fmt=plistlib.FMT_XML) -> str:
        mac_path = f"{directory}/{name or spec.get('Label', 'unnamed') + '.plist'}"
        target = self.path(mac_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(plistlib.dumps(spec, fmt=fmt))
        target.chmod(mode)
        return mac_path

    def read(self, mac_path: str) -> str:
        target = self.path(mac_path)
        return target.read_text() if target.exists() else ""

    def launchd_log(self) -> str:
        return self.read("/var/log/com.apple.xpc.launchd/launchd.log")

    @property
    def socket(self) -> Path:
        return self.path("/var/run/pfguard-lab/launchd.sock")

    # ---- processes

    def start(self) -> subprocess.Popen:
        with open(self.console, "ab") as console:
            self.process = subprocess.Popen(
                [str(self.path("/sbin/launchd"))], stdout=console, stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LEAKED_FROM_PARENT": "1"},
            )
        wait_for(lambda: self.socket.exists() or self.process.poll() is not None, STARTUP_TIMEOUT,
                 what="launchd to create its socket", detail=self.console.read_text)  # fmt: skip
        if self.process.poll() is not None:
            raise RuntimeError(f"launchd exited: {self.console.read_text()}")
        return self.process

    def launchctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.path("/bin/launchctl")), *args], capture_output=True, text=True,
                              timeout=timeout)

    def list_entry(self, label: str) -> tuple[str, str] | None:
        """(pid column, status column) of `launchctl list` for `label`, or None if not listed."""
        for line in self.launchctl("list").stdout.splitlines()[1:]:
            pid, status, name = line.split("\t")
            if name == label:
                return pid, status
        return None

    def running_pid(self, label: str, timeout: float = 5.0) -> int | None:
        def pid():
            entry = self.list_entry(label)
            return int(entry[0]) if entry and entry[0] != "-" else None

        return wait_for(pid, timeout, what=f"{label} to run")

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def processes_under_root(self) -> list[int]:
        """Live pids started for this root: launchd passes PFGUARD_LAB_ROOT on to its jobs."""
        found = []
        marker = f"PFGUARD_LAB_ROOT={self.root}".encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if (marker in environ or str(self.root).encode() in cmdline) and pid_alive(int(entry)):
                found.append(int(entry))
        return found

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            for pid in self.processes_under_root():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(self.root, ignore_errors=True)
