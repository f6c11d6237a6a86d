# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for the emulated pfctl (tests/lab/test_pfctl_*.py).

Test modules load this as a plugin: `pytest_plugins = ["pf_fixtures"]`; constants are imported
directly (hence PYTEST_DONT_REWRITE: the module is imported before pytest could rewrite it).
Texts below are verbatim from docs/reference/pfctl.md (sections cited inline).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pfguard_lab.commands import write_wrapper
from pfguard_lab.emulators.pf import states

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "lab" / "pfguard_lab" / "data"

ALTQ = "No ALTQ support in kernel\nALTQ related functions disabled\n"  # pfctl.md#streams
F_WARNING = (  # pfctl.md#streams, note the blank line
    "pfctl: Use of -f option, could result in flushing of rules\n"
    "present in the main ruleset added by the system at startup.\n"
    "See /etc/pf.conf for further details.\n\n"
)
USAGE = (  # pfctl.md#command-line
    "usage: pfctl [-AdeghmNnOqRrvz] [-a anchor] [-D macro=value] [-F modifier]\n"
    "\t[-f file] [-i interface] [-K host | network] [-k host | network]\n"
    "\t[-o level] [-p device] [-s modifier] [-w interval]\n"
    "\t[-t table -T command [address ...]] [-x level]\n"
)


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __iter__(self):
        return iter((self.rc, self.out, self.err))


class Pfctl:
    """Runs the emulated pfctl wrapper against a private kernel state directory."""

    def __init__(self, path: Path, state: Path):
        self.path = path
        self.state = state

    def __call__(self, *args: str, data: str | bytes | None = None, env: dict | None = None,
                 prefix: tuple[str, ...] = ()) -> Result:
        text = not isinstance(data, bytes)
        proc = subprocess.run(
            [*prefix, str(self.path), *args], input=data, capture_output=True, text=text, check=False,
            env={**os.environ, **(env or {})}, timeout=60,
        )
        out, err = proc.stdout, proc.stderr
        if not text:
            out, err = out.decode(), err.decode()
        return Result(proc.returncode, out, err)

    def q(self, *args: str, **kwargs) -> Result:
        """Quiet run that must succeed (setup steps)."""
        result = self("-q", *args, **kwargs)
        assert result.rc == 0, result
        return result

    def seed(self, state_list: list[dict]) -> None:
        states.seed(self.state, state_list)

    def load(self, text: str, *args: str) -> Result:
        return self(*args, "-f", "-", data=text)


@pytest.fixture
def pf_ctl():
    """The emulated pfctl with its own kernel state, in a directory other users can reach (tests run
    it as nobody too)."""
    root = Path(tempfile.mkdtemp(prefix="pfgtest-ctl-"))
    try:
        root.chmod(0o755)
        state = root / "pf"
        path = write_wrapper(root / "pfctl", "pfguard_lab.emulators.pf.pfctl", {"PFGUARD_LAB_PF_STATE": str(state)})
        yield Pfctl(path, state)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pf_stock(pf_ctl, tmp_path) -> Pfctl:
    """pf_ctl with Apple's stock /etc/pf.conf loaded (the anchors file path pointed at the lab's copy)."""
    conf = (DATA / "pf.conf").read_text().replace("/etc/pf.anchors/com.apple", str(DATA / "pf.anchors" / "com.apple"))
    (tmp_path / "pf.conf").write_text(conf)
    result = pf_ctl("-q", "-f", str(tmp_path / "pf.conf"))
    assert result.rc == 0, result
    return pf_ctl


NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


# ---------------------------------------------------------------------------- network namespaces (phase 2)


def ns_run(ns: str, *argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check,
                          timeout=30, **kwargs)


@dataclass
class NetPair:
    """Two namespaces joined by a veth pair: `mac` (198.51.100.2, runs pfctl) and `client` (.3)."""

    mac: str
    client: str
    mac_addr: str = "198.51.100.2"
    client_addr: str = "198.51.100.3"


@pytest.fixture
def pf_netns(tmp_path):
    """Namespaces pfgtest-<pid>-m and -c with a veth pair; always removed, even on failure."""
    tag = f"pfgtest-{os.getpid() % 100000}-{int(time.monotonic() * 1000) % 100000}"
    pair = NetPair(f"{tag}-m", f"{tag}-c")
    created = []
    try:
        for ns in (pair.mac, pair.client):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
            created.append(ns)
        veth_m, veth_c = f"vm{os.getpid() % 100000}", f"vc{os.getpid() % 100000}"
        subprocess.run(["ip", "link", "add", veth_m, "netns", pair.mac, "type", "veth", "peer", "name", veth_c,
                        "netns", pair.client], check=True, capture_output=True)
        for ns, dev, address in ((pair.mac, veth_m, pair.mac_addr), (pair.client, veth_c, pair.client_addr)):
            ns_run(ns, "ip", "addr", "add", f"{address}/24", "dev", dev)
            ns_run(ns, "ip", "link", "set", dev, "up")
            ns_run(ns, "ip", "link", "set", "lo", "up")
        yield pair
    finally:
        for ns in created:
            with contextlib.suppress(Exception):
                subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False).stdout
            for pid in pids.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
