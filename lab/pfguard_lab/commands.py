# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulated macOS commands and the wrapper scripts that put them on a host's PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# macOS path -> emulator module (each has main(argv=None) -> int). Paths with {brew} are under the
# host's Homebrew prefix; Server.app paths exist only on hosts that have Server.app.
SYSTEM_COMMANDS = {
    "/sbin/pfctl": "pfguard_lab.emulators.pf.pfctl",
    "/sbin/launchd": "pfguard_lab.emulators.launchd.daemon",
    "/bin/launchctl": "pfguard_lab.emulators.launchd.launchctl",
    "/usr/bin/plutil": "pfguard_lab.emulators.plutil",
    "/usr/bin/sw_vers": "pfguard_lab.emulators.sw_vers",
    "/usr/bin/log": "pfguard_lab.emulators.unifiedlog.log_cmd",
    "/usr/libexec/pfguard-lab-logd": "pfguard_lab.emulators.unifiedlog.logd",
}
BREW_COMMAND = ("{brew}/bin/brew", "pfguard_lab.emulators.brew")
AFCTL_PATH = "/Applications/Server.app/Contents/ServerRoot/usr/libexec/afctl"
AFCTL_COMMAND = (AFCTL_PATH, "pfguard_lab.emulators.afctl")


# The directory that holds the pfguard_lab package: wrappers put it on sys.path themselves.
LAB_SOURCE = Path(__file__).resolve().parent.parent


def wrapper_text(module: str, env: dict[str, str] | None = None, python: str | None = None) -> str:
    """Source of an executable script that runs `module.main()` with the lab's interpreter (or `python`).

    The emulators need only the standard library, so the script skips the `site` module (-S; -I keeps
    the environment out): an emulated command then starts sooner, closer to the real C command.
    """
    lines = [f"#!{python or sys.executable} -IS", "import os", "import sys", f"sys.path.insert(0, {str(LAB_SOURCE)!r})"]
    for key, value in sorted((env or {}).items()):
        lines.append(f"os.environ.setdefault({key!r}, {value!r})")
    lines += [f"from {module} import main", "sys.exit(main())", ""]
    return "\n".join(lines)


def write_wrapper(path: str | os.PathLike, module: str, env: dict[str, str] | None = None) -> Path:
    """Write an executable wrapper for `module` at `path` (parents created, mode 0755)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(wrapper_text(module, env))
    tmp.chmod(0o755)
    tmp.replace(target)
    return target
