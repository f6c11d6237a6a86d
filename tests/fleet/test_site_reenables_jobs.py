# SPDX-License-Identifier: GPL-3.0-or-later
"""site.yml puts disabled launchd jobs back: someone ran `launchctl disable` (and bootout) on pfguard's
jobs of both roles; one site.yml run enables and loads each again, so it also starts after a reboot, and
the doctor says protected."""

from __future__ import annotations

import pytest
from fleet_fixtures import MACS
from lab_fixtures import wait_for

pytest_plugins = ["lab_fixtures", "fleet_fixtures"]
pytestmark = pytest.mark.extended

HOST = "mac2"
JOBS = ("org.pfguard.pf", "org.pfguard.fail2ban", "org.pfguard.logstream")


def disabled(fleet, label: str) -> bool:
    listing = fleet.lab.exec(HOST, "/bin/launchctl", "print-disabled", "system")
    assert listing.returncode == 0, listing.stderr
    return f'"{label}" => disabled' in listing.stdout


def test_site_enables_and_loads_jobs_that_were_disabled_in_both_roles(fleet):
    converged = False
    try:
        for label in JOBS:
            for verb in ("disable", "bootout"):
                done = fleet.lab.exec(HOST, "/bin/launchctl", verb, f"system/{label}")
                assert done.returncode == 0, f"launchctl {verb} {label}: {done.stderr}"
        for label in JOBS:
            # bootout returns before launchd has removed the job.
            wait_for(lambda label=label: fleet.launchd_job(HOST, label) is None, 40, what=f"{label} to be booted out")
            assert disabled(fleet, label), label

        run = fleet.converge()
        assert run.changed()[HOST] > 0, str(run)
        for label in JOBS:
            assert not disabled(fleet, label), label
            assert fleet.launchd_job(HOST, label) is not None, f"{label} is not loaded after site.yml"
        again = fleet.converge()
        assert again.changed() == dict.fromkeys(MACS, 0), str(again)
        converged = True
    finally:
        if not converged:  # leave the fleet as the other modules expect it
            for label in JOBS:
                fleet.lab.exec(HOST, "/bin/launchctl", "enable", f"system/{label}")
            fleet.converge()
