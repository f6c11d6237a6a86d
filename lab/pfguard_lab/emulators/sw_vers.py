# SPDX-License-Identifier: GPL-3.0-or-later
"""Emulated /usr/bin/sw_vers: reads <root>/System/Library/CoreServices/SystemVersion.plist like the real one."""

from __future__ import annotations

import plistlib
import sys
from pathlib import Path

from pfguard_lab.emulators.launchd.plist import host_path

SYSTEM_VERSION_PLIST = "/System/Library/CoreServices/SystemVersion.plist"
USAGE = "usage: sw_vers [-productName|-productVersion|-productVersionExtra|-buildVersion]"  # UNVERIFIED text
SINGLE_VALUE_OPTIONS = {
    "productName": "ProductName",
    "productVersion": "ProductVersion",
    "productVersionExtra": "ProductVersionExtra",
    "buildVersion": "ProductBuildVersion",
}


def product_name(version: str) -> str:
    return "macOS" if major_version(version) >= 11 else "Mac OS X"


def major_version(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def release_year(version: str) -> int:
    """The year macOS `version`'s major release came out: 11 (Big Sur) in 2020 ... 15 (Sequoia) in 2024,
    then the year-named releases, 26 (Tahoe) in 2025 (docs/reference/macos.md#macos-versions-in-the-lab)."""
    major = major_version(version)
    return major + 1999 if major >= 26 else major + 2009 if major >= 11 else 2019


def system_version_plist(version: str, build: str) -> bytes:
    """The SystemVersion.plist a Mac running `version` (e.g. "26.2") build `build` (e.g. "25C56") has.
    sw_vers prints the same three lines from macOS 11 to 26; the copyright's end year is the major
    release's (whether a point release moves it is UNVERIFIED, and nothing reads it)."""
    return plistlib.dumps(
        {
            "ProductBuildVersion": build,
            "ProductCopyright": f"1983-{release_year(version)} Apple Inc.",
            "ProductName": product_name(version),
            "ProductUserVisibleVersion": version,
            "ProductVersion": version,
        },
        fmt=plistlib.FMT_XML,
    )


def read_system_version() -> dict:
    path = host_path(SYSTEM_VERSION_PLIST)
    try:
        data = plistlib.loads(Path(path).read_bytes())
    except (OSError, ValueError, plistlib.InvalidFileException) as exc:
        raise RuntimeError(f"pfguard-lab: sw_vers: cannot read {SYSTEM_VERSION_PLIST}: {exc}") from None
    if not isinstance(data, dict):
        raise RuntimeError(f"pfguard-lab: sw_vers: {SYSTEM_VERSION_PLIST} is not a dictionary")
    return data


def option_key(arg: str) -> str | None:
    """-productName or --productName -> "productName"; anything else -> None."""
    for prefix in ("--", "-"):
        if arg.startswith(prefix) and arg[len(prefix):] in SINGLE_VALUE_OPTIONS:
            return arg[len(prefix):]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) > 1 or (argv and option_key(argv[0]) is None):
        sys.stderr.write(USAGE + "\n")
        return 1
    try:
        info = read_system_version()
    except RuntimeError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    if argv:
        # -productName etc. print only the value (macOS 11+ also takes --productName).
        value = info.get(SINGLE_VALUE_OPTIONS[option_key(argv[0])])
        if value is not None:
            sys.stdout.write(f"{value}\n")
        return 0
    version = str(info.get("ProductVersion", ""))
    # macOS 11+ aligns the values with two tabs; 10.x used one.
    tabs = "\t\t" if major_version(version) >= 11 else "\t"
    lines = [f"ProductName:{tabs}{info.get('ProductName', '')}", f"ProductVersion:{tabs}{version}"]
    if info.get("ProductVersionExtra"):
        lines.append(f"ProductVersionExtra:\t{info['ProductVersionExtra']}")
    lines.append(f"BuildVersion:{tabs}{info.get('ProductBuildVersion', '')}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
