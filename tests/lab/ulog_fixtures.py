# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the unified-log, brew and afctl tests: temp roots, a running logd, `log stream`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from lab_fixtures import wait_for
from pfguard_lab import commands
from pfguard_lab.emulators import afctl

DATA = commands.LAB_SOURCE / "pfguard_lab" / "data"
SYSTEM_PYTHON = "/usr/bin/python3"
ADMIN_UID, ADMIN_GID = 501, 20


def make_root(os_version: str | None = "15.1") -> Path:
    """A temp host root readable by everyone (non-root users run commands in it); caller removes it."""
    root = Path(tempfile.mkdtemp(prefix="pfglab-test-"))
    root.chmod(0o755)
    if os_version is not None:
        facts = root / "var/db/.pfguard-lab/host.json"
        facts.parent.mkdir(parents=True)
        facts.write_text(json.dumps({"name": "mac1", "os_version": os_version}))
    return root


def remove_root(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class ServerAppRoot:
    root: Path
    afctl_path: Path
    pfctl_path: Path
    pf_state: Path


def server_app_root(root_in_wrapper: bool = False) -> ServerAppRoot:
    """A temp root with Apple's stock com.apple anchor file, a standalone /sbin/pfctl and Server.app
    provisioned; with `root_in_wrapper`, afctl's wrapper finds the root on its own (for callers such
    as an Ansible module that do not pass our environment). Caller removes `root`."""
    root = make_root(None)
    com_apple = root / "etc/pf.anchors/com.apple"
    com_apple.parent.mkdir(parents=True)
    shutil.copyfile(DATA / "pf.anchors/com.apple", com_apple)
    afctl_path = afctl.provision(root, {"PFGUARD_LAB_ROOT": str(root)}) if root_in_wrapper else afctl.provision(root)
    pf_state = root / "var/run/pfguard-lab/pf"
    pfctl_path = commands.write_wrapper(
        root / "sbin/pfctl", "pfguard_lab.emulators.pf.pfctl", {"PFGUARD_LAB_PF_STATE": str(pf_state)}
    )
    return ServerAppRoot(root, afctl_path, pfctl_path, pf_state)


def lab_env(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PFGUARD_LAB_ROOT=str(root), LC_ALL="C.UTF-8")
    env.update(extra)
    return env


def system_python_launcher(directory: Path, module: str) -> Path:
    """Like commands.write_wrapper, but on Debian's python3 so uid 501 can run it: the venv's
    interpreter lives under /root (mode 0700 here). The emulator code is the same module."""
    path = directory / f"run-{module.rsplit('.', 1)[-1]}"
    path.write_text(commands.wrapper_text(module, python=SYSTEM_PYTHON))
    path.chmod(0o755)
    return path


def run_as_admin(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, env=dict(env, HOME="/tmp"), capture_output=True, text=True, timeout=timeout,
        user=ADMIN_UID, group=ADMIN_GID, extra_groups=[], cwd="/tmp",
    )  # fmt: skip


class Logd:
    """logd running as a child process on `<root>/dev/log`; stop() always cleans up."""

    def __init__(self, root: Path):
        self.root = root
        self.socket_path = root / "dev/log"
        self.store = root / "var/db/diagnostics/pfguard-lab.jsonl"
        wrapper = commands.write_wrapper(root / "usr/libexec/pfguard-lab-logd", "pfguard_lab.emulators.unifiedlog.logd")
        self.process = subprocess.Popen(
            [str(wrapper)], env=lab_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

        def up_or_gone() -> bool:
            return self.process.poll() is not None or (self.socket_path.is_socket() and self._bound_by_us())

        if not wait_for(up_or_gone, 10, interval=0.05, fail=False) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"logd did not start: {self.process.stderr.read()}")

    def _bound_by_us(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.connect(str(self.socket_path))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def send(self, datagram: str | bytes) -> None:
        data = datagram.encode() if isinstance(datagram, str) else datagram
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(data, str(self.socket_path))

    def records(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.store.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def wait_records(self, count: int, timeout: float = 10) -> list[dict]:
        """The store's records once there are `count` of them, or what there is after `timeout` seconds
        (the caller's assertions show what is missing)."""
        wait_for(lambda: len(self.records()) >= count, timeout, interval=0.05, fail=False)
        return self.records()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


class LogStream:
    """`log stream ARGS` as a child process; lines are collected by a reader thread."""

    def __init__(self, root: Path, args: list[str]):
        wrapper = commands.write_wrapper(root / "usr/bin/log", "pfguard_lab.emulators.unifiedlog.log_cmd")
        self.process = subprocess.Popen(
            [str(wrapper), "stream", *args], env=lab_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def wait_for(self, predicate, timeout: float = 10) -> list[str]:
        """The lines so far once one satisfies `predicate`, the stream ended or `timeout` seconds passed
        (the caller's assertions show what is missing)."""
        def seen() -> bool:
            return self.process.poll() is not None or any(predicate(line) for line in self.snapshot())

        wait_for(seen, timeout, interval=0.05, fail=False)
        if self.process.poll() is not None:
            self._reader.join(timeout=2)
        return self.snapshot()

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        stderr = self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        return self.process.returncode, stderr
