# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos.pfctl_table run by real `ansible` against the lab's pfctl emulation, standalone."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from pfguard_lab.adhoc import ANSIBLE, QUIET, REPO, run_module
from pfguard_lab.commands import write_wrapper
from pfguard_lab.emulators.pf import states

LOCK_PATH = "/var/run/pfguard.pfctl_table.lock"  # plugins/module_utils/pfctl.py LOCK_PATH


@pytest.fixture
def pfctl(tmp_path):
    """An emulated pfctl with its own kernel state, and a helper to run it."""
    state = tmp_path / "pf"
    path = write_wrapper(tmp_path / "pfctl", "pfguard_lab.emulators.pf.pfctl", {"PFGUARD_LAB_PF_STATE": str(state)})

    def run(*args, data=None):
        return subprocess.run([str(path), *args], input=data, capture_output=True, text=True, check=False)

    run.path = str(path)
    run.state = state
    return run


def module(args: dict, *extra: str, env: dict | None = None) -> tuple[int, dict]:
    return run_module("pfguard.macos.pfctl_table", args, *extra, env=env)


def show(pfctl, table="t", anchor=None):
    proc = pfctl(*(["-a", anchor] if anchor else []), "-t", table, "-T", "show")
    assert proc.returncode in (0, 255), proc.stderr
    return proc.stdout


def test_adds_then_second_identical_run_is_unchanged(pfctl):
    args = dict(table="t", addresses=["203.0.113.7"], pfctl_path=pfctl.path)
    rc, first = module(args)
    assert rc == 0, first
    assert first["changed"] is True and first["added"] == ["203.0.113.7"] and first["entries"] == 1
    assert show(pfctl) == "   203.0.113.7\n"
    rc, second = module(args)
    assert rc == 0 and second["changed"] is False and second["added"] == []


def test_normalised_ipv6_and_cidr_are_idempotent_against_pfctl(pfctl):
    args = dict(
        table="t",
        anchor="f2b/sshd",
        pfctl_path=pfctl.path,
        addresses=["2001:DB8:0:0::1/128", "10.1.2.3/9", "192.0.2.9/32", "2001:db8:1::77/48"],
    )
    rc, first = module(args)
    assert rc == 0 and first["changed"] is True, first
    assert show(pfctl, anchor="f2b/sshd") == "   10.0.0.0/9\n   192.0.2.9\n   2001:db8::1\n   2001:db8:1::/48\n"
    rc, second = module(args)
    assert rc == 0 and second["changed"] is False, second


def test_check_mode_reports_and_changes_nothing(pfctl):
    pfctl("-t", "t", "-T", "add", "192.0.2.1")
    rc, result = module(dict(table="t", addresses=["198.51.100.99"], state="exact", pfctl_path=pfctl.path), "--check")
    assert rc == 0 and result["changed"] is True
    assert result["added"] == ["198.51.100.99"] and result["removed"] == ["192.0.2.1"]
    assert show(pfctl) == "   192.0.2.1\n"


def test_exact_swaps_entries(pfctl):
    pfctl("-t", "t", "-T", "add", "192.0.2.1", "192.0.2.2", "192.0.2.3")
    rc, result = module(
        dict(table="t", addresses=["192.0.2.2", "192.0.2.3", "192.0.2.4"], state="exact", pfctl_path=pfctl.path)
    )
    assert rc == 0 and result["removed"] == ["192.0.2.1"] and result["added"] == ["192.0.2.4"]
    assert show(pfctl) == "   192.0.2.2\n   192.0.2.3\n   192.0.2.4\n"


@pytest.mark.parametrize("address", ["198.51.100.0/23", "0.0.0.0/0", "198.51.100.7"])
def test_protected_network_is_refused_and_nothing_changes(pfctl, address):
    pfctl("-t", "t", "-T", "add", "192.0.2.1")
    rc, result = module(
        dict(table="t", addresses=["203.0.113.7", address], protect=["198.51.100.0/24"], pfctl_path=pfctl.path)
    )
    assert rc != 0 and result["conflicts"]
    assert address in result["msg"]
    assert show(pfctl) == "   192.0.2.1\n"


def test_network_covering_the_controller_is_refused(pfctl):
    rc, result = module(
        dict(table="t", addresses=["192.0.2.0/24"], pfctl_path=pfctl.path),
        env={"SSH_CONNECTION": "192.0.2.10 50222 192.0.2.1 22"},
    )
    assert rc != 0 and "controller" in result["msg"]
    assert show(pfctl) == ""


def test_bad_values_are_named_and_nothing_changes(pfctl):
    rc, result = module(dict(table="t", addresses=["203.0.113.7", "evil.example", "!192.0.2.1"], pfctl_path=pfctl.path))
    assert rc != 0 and result["invalid"] == ["evil.example", "!192.0.2.1"]
    assert show(pfctl) == ""


def test_persist_file_matches_table(pfctl, tmp_path):
    persist = tmp_path / "blocklist.txt"
    args = dict(table="t", addresses=["2001:db8::/64", "203.0.113.7"], pfctl_path=pfctl.path, persist_file=str(persist))
    rc, _ = module(args)
    assert rc == 0
    assert persist.read_text() == "203.0.113.7\n2001:db8::/64\n"
    assert oct(persist.stat().st_mode & 0o777) == "0o644"
    rc, again = module(args)
    assert again["changed"] is False


def test_a_killed_runs_temporary_file_is_removed_and_others_are_left_alone(pfctl, tmp_path):
    persist = tmp_path / "blocklist.txt"
    stale = tmp_path / ".blocklist.txt.k1ll3d"
    stale.write_text("203.0.113.7\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep\n")
    linked = tmp_path / ".blocklist.txt.link"
    linked.symlink_to(elsewhere)
    unrelated = tmp_path / ".other.txt.k1ll3d"
    unrelated.write_text("keep\n")
    rc, result = module(dict(table="t", addresses=["203.0.113.7"], pfctl_path=pfctl.path, persist_file=str(persist)))
    assert rc == 0, result
    assert not stale.exists() and linked.is_symlink() and unrelated.exists() and elsewhere.read_text() == "keep\n"
    assert persist.read_text() == "203.0.113.7\n"


# ---------------------------------------------------------------------------- faults, concurrency, the guard
# The faulty pfctl is a small Python script given as pfctl_path: it delegates to the emulated pfctl
# (argv only) except for the one call it breaks.

FAULTY = """#!{python} -I
import os, sys, time
args = sys.argv[1:]
verb = args[args.index("-T") + 1] if "-T" in args else None
{fault}
os.execv({real!r}, [{real!r}] + args)
"""


def faulty(pfctl, fault: str) -> str:
    path = pfctl.state.parent / "pfctl-faulty"
    path.write_text(FAULTY.format(python=sys.executable, real=pfctl.path, fault=fault))
    path.chmod(0o755)
    return str(path)


def kernel(pfctl) -> dict:
    """The emulated kernel's state files, to compare before and after."""
    return {p.name: p.read_bytes() for p in pfctl.state.iterdir() if p.is_file() and p.name != "lock"}


@pytest.fixture
def seeded(pfctl, tmp_path, monkeypatch):
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        monkeypatch.delenv(name, raising=False)
    pfctl("-t", "t", "-T", "add", "198.51.100.1")
    persist = tmp_path / "blocklist.txt"
    persist.write_text("198.51.100.1\n")
    return persist


@pytest.mark.timeout(120)
def test_hung_show_fails_within_command_timeout_naming_the_command(pfctl, seeded):
    path = faulty(pfctl, 'if verb == "show":\n    time.sleep(600)')
    before = kernel(pfctl), seeded.read_bytes()
    start = time.monotonic()
    rc, result = module(
        dict(table="t", addresses=["203.0.113.7"], persist_file=str(seeded), command_timeout=2, pfctl_path=path)
    )
    assert time.monotonic() - start < 30
    assert rc == 2 and "%s -t t -T show did not finish within 2 seconds" % path in result["msg"], result
    assert (kernel(pfctl), seeded.read_bytes()) == before
    assert subprocess.run(["pgrep", "-f", path], capture_output=True).stdout == b""  # killed, not left behind


def test_garbage_from_show_is_refused_naming_the_line(pfctl, seeded):
    path = faulty(pfctl, 'if verb == "show":\n    print("   203.0.113.9\\n  ?!rm -rf /")\n    sys.exit(0)')
    before = kernel(pfctl), seeded.read_bytes()
    rc, result = module(
        dict(table="t", addresses=["203.0.113.7"], state="exact", persist_file=str(seeded), pfctl_path=path)
    )
    assert rc == 2 and "not a table entry: '  ?!rm -rf /'" in result["msg"], result
    assert (kernel(pfctl), seeded.read_bytes()) == before


def test_failure_after_the_add_is_told_and_a_rerun_converges(pfctl, seeded):
    path = faulty(pfctl, 'if args == ["-s", "states"]:\n    sys.stderr.write("pfctl: DIOCGETSTATES: Bad address\\n")\n'
                  "    sys.exit(0)")  # fmt: skip
    states.seed(pfctl.state, [dict(proto="tcp", direction="in", lan=dict(addr="198.51.100.11", port=22),
                                   ext=dict(addr="203.0.113.7", port=50122), src_state="ESTABLISHED",
                                   dst_state="ESTABLISHED")])  # fmt: skip
    args = dict(table="t", addresses=["203.0.113.7"], persist_file=str(seeded))
    rc, result = module(dict(args, pfctl_path=path))
    assert rc == 2, result
    assert "table t was changed (1 added, 0 removed) and persist_file written" in result["msg"]
    assert "DIOCGETSTATES: Bad address" in result["msg"] and "a re-run kills them" in result["msg"]
    # the table and the persist file agree
    assert show(pfctl) == "   198.51.100.1\n   203.0.113.7\n"
    assert seeded.read_text() == "198.51.100.1\n203.0.113.7\n"
    rc, again = module(dict(args, pfctl_path=pfctl.path))
    assert rc == 0 and again["changed"] is True and again["added"] == [] and again["states_killed"] == 1, again
    assert pfctl("-s", "states").stdout == ""
    rc, third = module(dict(args, pfctl_path=pfctl.path))
    assert rc == 0 and third["changed"] is False, third


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs under tmp_path, filled up; unmounted afterwards."""
    mount = tmp_path / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
        with contextlib.suppress(OSError):  # ENOSPC ends it
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_for_the_persist_file_changes_nothing_in_the_kernel(pfctl, seeded, full_disk):
    persist = full_disk / "blocklist.txt"
    before = kernel(pfctl), sorted(p.name for p in full_disk.iterdir())
    rc, result = module(dict(table="t", addresses=["203.0.113.7"], persist_file=str(persist), pfctl_path=pfctl.path))
    assert rc == 2 and "No space left on device" in result["msg"] and "nothing was changed" in result["msg"], result
    assert (kernel(pfctl), sorted(p.name for p in full_disk.iterdir())) == before
    assert show(pfctl) == "   198.51.100.1\n"


@pytest.mark.timeout(120)
def test_a_held_lock_fails_naming_it_and_changes_nothing(pfctl, seeded):
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        before = kernel(pfctl)
        rc, result = module(dict(table="t", addresses=["203.0.113.7"], command_timeout=2, pfctl_path=pfctl.path))
    finally:
        os.close(fd)
    assert rc == 2 and LOCK_PATH in result["msg"] and "more than 2 seconds" in result["msg"], result
    assert kernel(pfctl) == before


@pytest.mark.timeout(300)
def test_concurrent_runs_serialise_and_lose_nothing(pfctl, seeded):
    addresses = ["203.0.113.%d" % n for n in range(10, 20)]

    def one(address):
        return module(dict(table="t", addresses=[address], persist_file=str(seeded), pfctl_path=pfctl.path))

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(one, addresses))
    assert all(rc == 0 for rc, _ in results), results
    expected = ["198.51.100.1"] + addresses
    assert show(pfctl) == "".join("   %s\n" % a for a in expected)
    assert seeded.read_text() == "".join("%s\n" % a for a in expected)


def adhoc(args: dict, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`ansible localhost` with its whole output, warnings included."""
    return subprocess.run(
        [ANSIBLE, "localhost", "-m", "pfguard.macos.pfctl_table", "-a", json.dumps(args), *extra],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, **QUIET, **(env or {})},
    )  # fmt: skip


def test_local_connection_without_a_controller_address_refuses_wide_networks_and_warns(pfctl, seeded):
    proc = adhoc(dict(table="t", addresses=["10.0.0.0/8"], pfctl_path=pfctl.path), "-c", "local")
    assert proc.returncode == 2 and "allow_wide_networks" in proc.stdout, proc.stdout + proc.stderr
    assert "as this host sees it: unknown" in proc.stdout
    proc = adhoc(dict(table="t", addresses=["203.0.113.7"], kill_states=False, pfctl_path=pfctl.path), "-c", "local")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "The controller's address is not known" in proc.stdout + proc.stderr


def test_guard_survives_become_dropping_ssh_connection(pfctl, seeded, tmp_path):
    # sudo drops SSH_CONNECTION: an interpreter that unsets it stands in for become. The action
    # plugin read the address before the module started, so the module still knows it.
    interpreter = tmp_path / "python-under-sudo"
    interpreter.write_text('#!/bin/sh\nunset SSH_CONNECTION SSH_CLIENT\nexec %s "$@"\n' % sys.executable)
    interpreter.chmod(0o755)
    rc, result = module(
        dict(table="t", addresses=["192.0.2.0/24"], pfctl_path=pfctl.path),
        "-e", "ansible_python_interpreter=%s" % interpreter,
        env={"SSH_CONNECTION": "192.0.2.10 50222 192.0.2.1 22"},
    )  # fmt: skip
    assert rc == 2 and "192.0.2.0/24 overlaps the controller's address 192.0.2.10" in result["msg"], result
    assert show(pfctl) == "   198.51.100.1\n"
