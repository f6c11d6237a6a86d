# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos.pf_facts run by real `ansible` over SSH against the fleet's emulated PF: what site.yml
hooked is reachable and blocks on every Mac; Apple's stock ruleset loaded into mac1 leaves pfguard's
anchor and fail2ban's jails loaded but unreachable, and mac1's /etc/pf.conf brings them back.

Run under the lab lock: `flock /tmp/pfguard-lab.lock .venv/bin/pytest -q -p no:cacheprovider
tests/fleet/test_pf_facts.py`.
"""

from __future__ import annotations

import pytest
from fleet_fixtures import MACS, PF_JOB, bootout, bootstrap, breaking, run_module_on
from lab_fixtures import REPO

pytest_plugins = ["lab_fixtures", "fleet_fixtures"]

MODULE = "pfguard.macos.pf_facts"
HOOKED_ANCHORS = ("pfguard", "f2b/sshd")
BLOCKING = ("pfguard:pfguard_blocklist", "f2b/sshd:f2b-sshd")
# Apple's /etc/pf.conf (docs/reference/macos.md#stock-pf-configuration), as a macOS update puts it back.
STOCK_PF_CONF = (REPO / "lab" / "pfguard_lab" / "data" / "pf.conf").read_text()
# org.pfguard.pf re-hooks a dropped hook every pfguard_pf_check_interval seconds; while mac1 runs the
# stock ruleset the job is booted out, so the broken state is the one the facts see.


def pf_facts(fleet, host: str, *extra: str) -> dict:
    rc, result = run_module_on(fleet.lab, host, MODULE, {}, *extra)
    assert rc == 0 and not result.get("failed"), f"{host}: {result.get('msg')}\n{result.get('stderr')}\n{result}"
    assert result["changed"] is False
    return result["ansible_facts"]["pf"]


def assert_protected(fleet, host: str, pf: dict) -> None:
    assert pf["enabled"] is True, pf["status"]
    assert pf["status"].startswith("Enabled for ")
    assert pf["tokens"], "PF is enabled without a reference token"
    for anchor in HOOKED_ANCHORS:
        assert anchor in pf["reachable_anchors"], pf["rulesets"][""]
    for key in BLOCKING:
        assert key in pf["blocking_tables"], pf["tables"]
    counts = {(t["anchor"], t["name"]): t["count"] for t in pf["tables"]}
    assert counts[("pfguard", "pfguard_blocklist")] == len(fleet.blocklist(host))
    assert counts[("pfguard", "pfguard_trusted")] == len(fleet.table(host, "pfguard", "pfguard_trusted"))
    assert counts[("f2b/sshd", "f2b-sshd")] == len(fleet.f2b_banned(host))


@pytest.mark.parametrize("host", MACS)
def test_converged_mac_is_hooked_and_blocks(fleet, host):
    pf = pf_facts(fleet, host)
    assert_protected(fleet, host, pf)
    # Apple's anchor calls evaluate com.apple's children, not com.apple itself (docs/reference/pfctl.md#rule-listing).
    assert "com.apple" in pf["anchors"] and "com.apple" not in pf["reachable_anchors"]
    assert "f2b" not in pf["reachable_anchors"]
    trusted = next(t for t in pf["tables"] if t["name"] == "pfguard_trusted")
    assert trusted["blocking"] is False  # only a pass rule references it


def test_check_mode_reports_the_same(fleet):
    normal = pf_facts(fleet, "mac2")
    checked = pf_facts(fleet, "mac2", "--check")
    for key in ("enabled", "anchors", "reachable_anchors", "rulesets", "tables", "blocking_tables"):
        assert checked[key] == normal[key], key
    assert [t["token"] for t in checked["tokens"]] == [t["token"] for t in normal["tokens"]]


@pytest.fixture
def mac1_on_stock_ruleset(fleet):
    """mac1 running Apple's stock main ruleset; its own /etc/pf.conf (with pfguard's hook, as the role
    wrote it) reloaded and org.pfguard.pf loaded again afterwards, even when the test fails."""
    with breaking(fleet) as break_:
        break_("mac1", bootout(PF_JOB), bootstrap(PF_JOB))
        break_("mac1", "/sbin/pfctl -q -f -", "/sbin/pfctl -q -f /etc/pf.conf", input_text=STOCK_PF_CONF)
        yield
    assert fleet.launchd_job("mac1", PF_JOB) is not None, f"{PF_JOB} is not loaded again on mac1"
    assert_protected(fleet, "mac1", pf_facts(fleet, "mac1"))


def test_stock_ruleset_leaves_pfguard_unreachable(fleet, mac1_on_stock_ruleset):
    pf = pf_facts(fleet, "mac1")
    assert pf["enabled"] is True  # loading rules does not disable PF
    assert pf["rulesets"][""] == ['anchor "com.apple/*" all']
    for anchor in HOOKED_ANCHORS:
        assert anchor in pf["anchors"]  # still loaded ...
        assert anchor not in pf["reachable_anchors"]  # ... but nothing calls it
    assert pf["blocking_tables"] == []
    assert all(t["blocking"] is False for t in pf["tables"])
    # The other Macs are untouched.
    assert_protected(fleet, "mac2", pf_facts(fleet, "mac2"))
