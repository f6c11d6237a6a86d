# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulated sw_vers against a temp root's SystemVersion.plist."""

from __future__ import annotations

import plistlib
import subprocess

import pytest
from pfguard_lab.commands import write_wrapper
from pfguard_lab.emulators.sw_vers import SYSTEM_VERSION_PLIST, system_version_plist


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


@pytest.fixture
def sw_vers(tmp_path, root):
    wrapper = write_wrapper(tmp_path / "bin/sw_vers", "pfguard_lab.emulators.sw_vers", {"PFGUARD_LAB_ROOT": str(root)})

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(wrapper), *args], capture_output=True, text=True, timeout=30)

    return run


def install(root, data: bytes) -> None:
    target = root / SYSTEM_VERSION_PLIST.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def test_system_version_plist_has_the_keys_sw_vers_reads():
    data = plistlib.loads(system_version_plist("15.1", "24B83"))
    assert data["ProductName"] == "macOS"
    assert data["ProductVersion"] == "15.1"
    assert data["ProductUserVisibleVersion"] == "15.1"
    assert data["ProductBuildVersion"] == "24B83"
    assert plistlib.loads(system_version_plist("10.15.7", "19H2"))["ProductName"] == "Mac OS X"


def test_default_output_matches_macos(sw_vers, root):
    install(root, system_version_plist("14.5", "23F79"))
    result = sw_vers()
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "ProductName:\t\tmacOS\nProductVersion:\t\t14.5\nBuildVersion:\t\t23F79\n"


def test_single_values(sw_vers, root):
    install(root, system_version_plist("15.1", "24B83"))
    assert sw_vers("-productName").stdout == "macOS\n"
    assert sw_vers("-productVersion").stdout == "15.1\n"
    assert sw_vers("-buildVersion").stdout == "24B83\n"
    assert sw_vers("--productVersion").stdout == "15.1\n"
    assert sw_vers("-productVersionExtra").stdout == ""


def test_rapid_security_response_extra_line(sw_vers, root):
    data = plistlib.loads(system_version_plist("13.4.1", "22F770820d"))
    data["ProductVersionExtra"] = "(c)"
    install(root, plistlib.dumps(data))
    assert sw_vers().stdout == ("ProductName:\t\tmacOS\nProductVersion:\t\t13.4.1\nProductVersionExtra:\t(c)\n"
                                "BuildVersion:\t\t22F770820d\n")
    assert sw_vers("-productVersionExtra").stdout == "(c)\n"


def test_pre_big_sur_format(sw_vers, root):
    install(root, system_version_plist("10.15.7", "19H2"))
    assert sw_vers().stdout == "ProductName:\tMac OS X\nProductVersion:\t10.15.7\nBuildVersion:\t19H2\n"


def test_bad_option_and_missing_plist(sw_vers, root):
    install(root, system_version_plist("14.5", "23F79"))
    result = sw_vers("-bogus")
    assert result.returncode == 1 and result.stdout == "" and result.stderr.startswith("usage: sw_vers")
    assert sw_vers("productName").returncode == 1
    (root / SYSTEM_VERSION_PLIST.lstrip("/")).unlink()
    result = sw_vers()
    assert result.returncode == 1
    assert result.stderr.startswith(
        "pfguard-lab: sw_vers: cannot read /System/Library/CoreServices/SystemVersion.plist")
