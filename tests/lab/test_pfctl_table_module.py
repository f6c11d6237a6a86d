"""pfguard.macos.pfctl_table run by real `ansible` against the lab's pfctl emulation, standalone."""

from __future__ import annotations

import subprocess

import pytest
from pfguard_lab.adhoc import run_module
from pfguard_lab.commands import write_wrapper


@pytest.fixture
def pfctl(tmp_path):
    """An emulated pfctl with its own kernel state, and a helper to run it."""
    state = tmp_path / "pf"
    path = write_wrapper(tmp_path / "pfctl", "pfguard_lab.pf.pfctl", {"PFGUARD_LAB_PF_STATE": str(state)})

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
        addresses=["2001:DB8:0:0::1/128", "10.1.2.3/8", "192.0.2.9/32", "2001:db8:1::77/48"],
    )
    rc, first = module(args)
    assert rc == 0 and first["changed"] is True, first
    assert show(pfctl, anchor="f2b/sshd") == "   10.0.0.0/8\n   192.0.2.9\n   2001:db8::1\n   2001:db8:1::/48\n"
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
