# SPDX-License-Identifier: GPL-3.0-or-later
"""`brew` for the admin user, with two formulae: `fail2ban`, backed by a real fail2ban of the Mac's version,
and `ansible`, backed by this machine's Ansible (the lab's virtualenv: ansible-core and the `ansible`
community package, what Homebrew's `ansible` formula installs).

docs/reference/fail2ban.md#homebrew-packaging and docs/reference/ansible.md#homebrew-modules
(community.general.homebrew, homebrew_services).
What `community.general.homebrew` runs is implemented: `info --json=v2 [--installed]`, `install`,
`uninstall --force`, `upgrade`, `update`, `link`, `unlink`, `list`, `outdated`, plus `--prefix`,
`--cellar`, `--repository`, `--version`, `shellenv`, `doctor`, and `services list|info|stop|cleanup`.

The formula's version is the Mac's `fail2ban_version` (fleet spec -> host.json; default
`fail2ban_dist.DEFAULT_VERSION`, what Homebrew pours today). `install fail2ban` lays out what the
formula's install step produces: a keg whose executables run that release's real
fail2ban-{client,server,regex} (`fail2ban_dist`: 1.0.2 is this machine's Debian package, 1.1.0 the
cached Debian build with PYTHONPATH at its dist-packages) with the Homebrew config dir, `opt/` and
`bin/` links, and `etc/fail2ban` copied from that release's configuration with the formula's edits
(only paths-common/paths-osx kept, `before = paths-osx.conf`, /etc and /var rewritten to the prefix
in action.d, filter.d, fail2ban.conf and paths-common.conf). The machine's /etc/fail2ban and the
cache are only read.

Paths written into generated files are on-disk paths (`$PFGUARD_LAB_ROOT` + prefix) because the
real fail2ban reads them and knows nothing of the lab root; inside a lab host the root is `/`, so
they are exactly the macOS paths. What `brew` prints uses the macOS path.

`install ansible` lays out a keg whose executables (`ansible`, `ansible-playbook`, `ansible-pull`, ...,
linked into `<prefix>/bin` like the formula's) exec this machine's own Ansible tools from the directory
`PFGUARD_LAB_ANSIBLE_BIN` names (set by `provision` to the lab's virtualenv). The formula's version is
the `ansible` package's version there.
"""

from __future__ import annotations

import json
import os
import plistlib
import re
import shutil
import sys
import time
from pathlib import Path

from pfguard_lab import commands, fail2ban_dist

FORMULA = "fail2ban"
ANSIBLE = "ansible"
FORMULAE = (ANSIBLE, FORMULA)  # what `brew` knows, in its sorted order
HOMEBREW_VERSION = "4.4.11"  # the lab's pick; nothing depends on it
DESCRIPTION = "Scan log files and ban IPs showing malicious signs"
HOMEPAGE = "https://www.fail2ban.org/"
SERVICE_LABEL = "homebrew.mxcl.fail2ban"
EXECUTABLES = ("fail2ban-client", "fail2ban-server", "fail2ban-regex")

SOURCE_PYTHON = "/usr/bin/python3"  # runs every release's code (1.0.2 from its own dist-packages)
DATA_DIR = fail2ban_dist.DATA_DIR
HOST_FACTS = "var/db/.pfguard-lab/host.json"  # host.py: what the emulators know about their Mac
# Per formula version: the revision and Python dependency of Homebrew's fail2ban.rb at that version
# (docs/reference/fail2ban.md#homebrew-packaging: 1.1.0 revision 2 on python@3.13).
FORMULA_META = {
    "1.0.2": {"revision": 0, "python": "python@3.11"},
    "1.1.0": {"revision": 2, "python": "python@3.13"},
}

# Homebrew's ansible formula (Formula/a/ansible.rb): a virtualenv in libexec with the `ansible` package,
# its console scripts linked into bin. Dependencies: the formula's runtime ones (UNVERIFIED list: the
# lab only reports them).
ANSIBLE_DESCRIPTION = "Automate deployment, configuration, and upgrading"
ANSIBLE_HOMEPAGE = "https://www.ansible.com/"
ANSIBLE_DEPENDENCIES = ["certifi", "cryptography", "libsodium", "libssh", "libyaml", "python@3.13"]
ANSIBLE_EXECUTABLES = ("ansible", "ansible-community", "ansible-config", "ansible-console", "ansible-doc",
                       "ansible-galaxy", "ansible-inventory", "ansible-playbook", "ansible-pull", "ansible-test",
                       "ansible-vault")  # fmt: skip
ANSIBLE_BIN_ENV = "PFGUARD_LAB_ANSIBLE_BIN"
ANSIBLE_SCRIPT = """#!/bin/sh
# Homebrew ansible {version} keg executable (pfguard lab): this machine's {tool}.
exec {real} "$@"
"""

SKELETON_DIRS = ("bin", "etc", "include", "lib", "opt", "sbin", "share", "var", "var/homebrew", "var/homebrew/linked",
                 "var/log", "Cellar", "Caskroom", "Library", "Library/Homebrew", "Library/Taps")  # fmt: skip

ROOT_ERROR = """Error: Running Homebrew as root is extremely dangerous and no longer supported.
As Homebrew does not drop privileges on installation you would be giving all
build scripts full access to your system.
"""
# brew.sh check-run-command-as-root lets these through (services may need sudo; the rest only print).
ROOT_ALLOWED = {"services", "--prefix", "--cellar", "--repository", "--repo", "--caskroom", "--cache", "shellenv"}

CAVEATS = """You must enable any jails by editing:
  {etc}/fail2ban/jail.conf

Other configuration files are in {etc}/fail2ban. See more instructions at
https://github.com/fail2ban/fail2ban/wiki/Proper-fail2ban-configuration.
"""

# Options of the real fail2ban-client/-server (fail2ban/client/fail2bancmdline.py) and -regex, so the
# keg's executables add the Homebrew config dir only when the caller did not choose one.
CELLAR_SCRIPT = """#!{python}
# Homebrew fail2ban {version} keg executable (pfguard lab): runs fail2ban {version}'s real {real}
# with the config dir the formula compiles in, like Homebrew's rewritten defaults.
import getopt
import os
import sys

REAL = {real!r}
PYTHON_PATH = {python_path!r}  # the release's dist-packages (None: the system Python's own)
CONFIG_ARGS = {config_args!r}
IS_REGEX = {is_regex!r}


def config_chosen(args):
    if IS_REGEX:  # optparse: -c DIR, -cDIR, --config DIR, --config=DIR
        return any(a == "-c" or a == "--config" or a.startswith(("--config=", "-c")) for a in args)
    try:  # fail2ban/client/fail2bancmdline.py
        opts, _ = getopt.getopt(args, "hc:s:p:xfbdtviqV", [
            "loglevel=", "logtarget=", "syslogsocket=", "test", "async", "conf=", "pidfile=", "pname=",
            "socket=", "timeout=", "str2sec=", "help", "version", "dp", "dump-pretty"])
    except getopt.GetoptError:
        return True  # let the real tool print its usage
    return any(name in ("-c", "--conf") for name, _ in opts)


args = sys.argv[1:]
if not config_chosen(args):
    args = CONFIG_ARGS + args
if PYTHON_PATH:  # also reaches the fail2ban-server the client starts
    os.environ["PYTHONPATH"] = os.pathsep.join([PYTHON_PATH] + [p for p in [os.environ.get("PYTHONPATH")] if p])
os.execv(REAL, [REAL] + args)
"""


class BrewError(Exception):
    """Ends the command: message on stderr, exit 1 (Homebrew's odie)."""


class Unsupported(Exception):
    pass


def lab_root() -> Path:
    return Path(os.environ.get("PFGUARD_LAB_ROOT") or "/")


def on_disk(path: str) -> Path:
    return lab_root() / path.lstrip("/")


def host_fail2ban_version(root: Path | None = None) -> str:
    """The Mac's fail2ban_version from host.json; the default when there is none (standalone use)."""
    try:
        facts = json.loads(((root or lab_root()) / HOST_FACTS).read_text())
    except FileNotFoundError:
        facts = {}
    except (OSError, ValueError) as exc:  # unreadable: never guess another version
        raise BrewError(f"{HOST_FACTS}: {exc}") from None
    version = facts.get("fail2ban_version") if isinstance(facts, dict) else None
    try:
        return fail2ban_dist.check_version(version or fail2ban_dist.DEFAULT_VERSION)
    except fail2ban_dist.DistError as exc:
        raise BrewError(f"{HOST_FACTS}: {exc}") from None


def human_size(size: float) -> str:
    """Homebrew's disk_usage_readable."""
    for limit, unit in ((1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB")):
        if abs(size) >= limit:
            size, chosen = size / limit, unit
            break
    else:
        chosen = "B"
    return f"{int(size)}{chosen}" if int(size * 10) % 10 == 0 else f"{size:.1f}{chosen}"


def print_info(keg: "Homebrew", title: str, description: str, homepage: str, formula_file: str, licence: str) -> None:
    """`brew info FORMULA` for one formula, as Homebrew prints it for a bottled formula."""
    out(f"==> {title}")
    out(description)
    out(homepage)
    if keg.installed():
        files, size = keg.keg_usage()
        out("Installed")
        out(f"{keg.keg} ({files} files, {human_size(size)}) *")
        out("  Poured from bottle using the formulae.brew.sh API")
    else:
        out("Not installed")
    out(f"From: https://github.com/Homebrew/homebrew-core/blob/HEAD/Formula/{formula_file}")
    out(f"License: {licence}")


def ansible_bin() -> Path:
    """Where this machine's Ansible tools are (the lab's virtualenv)."""
    return Path(os.environ.get(ANSIBLE_BIN_ENV) or Path(sys.executable).parent)


def ansible_version(bin_dir: Path) -> str:
    """The `ansible` package's version in the virtualenv of `bin_dir` (what the formula is named after)."""
    found = sorted(bin_dir.parent.glob("lib/python3*/site-packages/ansible-[0-9]*.dist-info"))
    if not found or not (bin_dir / "ansible-pull").is_file():
        raise BrewError(f"the lab's ansible formula needs Ansible in {bin_dir.parent} (no ansible package or "
                        "ansible-pull there): run `make venv`")  # fmt: skip
    return found[-1].name[len("ansible-"):-len(".dist-info")]


class Homebrew:
    def __init__(self, prefix: str, version: str | None = None, name: str = FORMULA):
        self.prefix = prefix.rstrip("/") or "/"
        self.disk_prefix = on_disk(self.prefix)
        self.name = name
        self._version = version
        if name == FORMULA:
            self._version = fail2ban_dist.check_version(version) if version else host_fail2ban_version()

    @property
    def version(self) -> str:
        if self._version is None:  # ansible: asked only when needed (a fail2ban-only command never asks)
            self._version = ansible_version(ansible_bin())
        return self._version

    @property
    def executables(self) -> tuple[str, ...]:
        if self.name == FORMULA:
            return EXECUTABLES
        return tuple(tool for tool in ANSIBLE_EXECUTABLES if (ansible_bin() / tool).is_file())

    def keg_of(self, name: str) -> "Homebrew":
        """The same prefix's Homebrew for formula `name` (this one for fail2ban)."""
        if name == self.name:
            return self
        kegs = self.__dict__.setdefault("_kegs", {})
        if name not in kegs:
            kegs[name] = Homebrew(self.prefix, name=name)
        return kegs[name]

    # -- paths (macOS text) ---------------------------------------------------------------
    @property
    def cellar(self) -> str:
        return f"{self.prefix}/Cellar"

    @property
    def keg(self) -> str:
        return f"{self.cellar}/{self.name}/{self.version}"

    @property
    def repository(self) -> str:
        # Apple silicon: the repository is the prefix; Intel: /usr/local/Homebrew.
        return self.prefix if self.prefix != "/usr/local" else "/usr/local/Homebrew"

    def disk(self, relative: str) -> Path:
        return self.disk_prefix / relative

    @property
    def disk_keg(self) -> Path:
        if self.name != FORMULA and self._version is None:
            kegs = sorted(self.disk(f"Cellar/{self.name}").glob("*/INSTALL_RECEIPT.json"))
            if kegs:  # the installed keg stays at its version, whatever the virtualenv holds now
                self._version = kegs[-1].parent.name
        return self.disk(f"Cellar/{self.name}/{self.version}")

    def installed(self) -> bool:
        return (self.disk_keg / "INSTALL_RECEIPT.json").is_file()

    def receipt(self) -> dict:
        try:
            return json.loads((self.disk_keg / "INSTALL_RECEIPT.json").read_text())
        except (OSError, ValueError):
            return {}

    def link_paths(self) -> list[tuple[Path, str]]:
        """(link, relative target) for everything `brew link` creates besides opt/."""
        if self.name == FORMULA:
            names = EXECUTABLES
        else:
            names = sorted(path.name for path in (self.disk_keg / "bin").glob("ansible*"))
        links = [(self.disk(f"bin/{name}"), f"../Cellar/{self.name}/{self.version}/bin/{name}") for name in names]
        links.append((self.disk(f"var/homebrew/linked/{self.name}"), f"../../../Cellar/{self.name}/{self.version}"))
        return links

    def linked(self) -> bool:
        return self.disk(f"var/homebrew/linked/{self.name}").is_symlink()

    def keg_usage(self) -> tuple[int, int]:
        files = size = 0
        for path in self.disk_keg.rglob("*"):
            if path.is_file() and not path.is_symlink():
                files += 1
                size += path.stat().st_size
        return files, size

    # -- formula data ------------------------------------------------------------------------
    def formula_json(self) -> dict:
        if self.name == ANSIBLE:
            return self.ansible_formula_json()
        version, meta = self.version, FORMULA_META[self.version]
        installed = []
        if self.installed():
            receipt = self.receipt()
            installed.append({
                "version": self.version, "used_options": [], "built_as_bottle": True, "poured_from_bottle": True,
                "time": receipt.get("time"), "runtime_dependencies": [], "installed_as_dependency": False,
                "installed_on_request": True,
            })  # fmt: skip
        return {
            "name": FORMULA, "full_name": FORMULA, "tap": "homebrew/core", "oldnames": [], "aliases": [],
            "versioned_formulae": [], "desc": DESCRIPTION, "license": "GPL-2.0-or-later", "homepage": HOMEPAGE,
            "versions": {"stable": version, "head": "HEAD", "bottle": True},
            "urls": {"stable": {"url": f"https://github.com/fail2ban/fail2ban/archive/refs/tags/{version}.tar.gz",
                                "tag": None, "revision": None, "using": None, "checksum": None}},
            "revision": meta["revision"], "version_scheme": 0, "bottle": {}, "keg_only": False,
            "keg_only_reason": None, "options": [], "build_dependencies": ["sphinx-doc"],
            "dependencies": [meta["python"]],
            "test_dependencies": [], "recommended_dependencies": [], "optional_dependencies": [],
            "uses_from_macos": [], "requirements": [], "conflicts_with": [], "caveats": self.caveats(),
            "installed": installed, "linked_keg": version if self.linked() else None, "pinned": False,
            "outdated": False, "deprecated": False, "deprecation_date": None, "deprecation_reason": None,
            "disabled": False, "disable_date": None, "disable_reason": None, "post_install_defined": True,
            "service": {"run": [f"{self.prefix}/opt/{FORMULA}/bin/fail2ban-client", "-x", "start"],
                        "run_type": "immediate", "require_root": True},
            "ruby_source_path": "Formula/f/fail2ban.rb",
        }  # fmt: skip

    def ansible_formula_json(self) -> dict:
        version = self.version
        installed = []
        if self.installed():
            installed.append({
                "version": version, "used_options": [], "built_as_bottle": True, "poured_from_bottle": True,
                "time": self.receipt().get("time"), "runtime_dependencies": [], "installed_as_dependency": False,
                "installed_on_request": True,
            })  # fmt: skip
        return {
            "name": ANSIBLE, "full_name": ANSIBLE, "tap": "homebrew/core", "oldnames": [], "aliases": [],
            "versioned_formulae": [], "desc": ANSIBLE_DESCRIPTION, "license": "GPL-3.0-or-later",
            "homepage": ANSIBLE_HOMEPAGE, "versions": {"stable": version, "head": None, "bottle": True},
            "urls": {"stable": {"url": f"https://files.pythonhosted.org/packages/source/a/ansible/ansible-{version}.tar.gz",
                                "tag": None, "revision": None, "using": None, "checksum": None}},
            "revision": 0, "version_scheme": 0, "bottle": {}, "keg_only": False, "keg_only_reason": None,
            "options": [], "build_dependencies": ["pkgconf", "rust"], "dependencies": list(ANSIBLE_DEPENDENCIES),
            "test_dependencies": [], "recommended_dependencies": [], "optional_dependencies": [],
            "uses_from_macos": ["libffi", "libxml2", "libxslt"], "requirements": [], "conflicts_with": [],
            "caveats": None, "installed": installed, "linked_keg": version if self.linked() else None,
            "pinned": False, "outdated": False, "deprecated": False, "deprecation_date": None,
            "deprecation_reason": None, "disabled": False, "disable_date": None, "disable_reason": None,
            "post_install_defined": False, "service": None, "ruby_source_path": "Formula/a/ansible.rb",
        }  # fmt: skip

    def caveats(self) -> str | None:
        if self.name == ANSIBLE:
            return None
        return CAVEATS.format(etc=f"{self.prefix}/etc")

    def service_plist(self) -> dict:
        # service.rb to_plist for `run [opt_bin/"fail2ban-client", "-x", "start"]`
        # (docs/reference/fail2ban.md#homebrew-packaging).
        return {
            "Label": SERVICE_LABEL,
            "LimitLoadToSessionType": ["Aqua", "Background", "LoginWindow", "StandardIO", "System"],
            "ProgramArguments": [f"{self.prefix}/opt/{FORMULA}/bin/fail2ban-client", "-x", "start"],
            "RunAtLoad": True,
        }

    # -- install / uninstall -------------------------------------------------------------------
    def release(self) -> fail2ban_dist.Release:
        """The real fail2ban this version pours from; refused while it is missing (`make deps` fetches it)."""
        found = fail2ban_dist.release(self.version)
        missing = found.missing()
        if missing:
            raise BrewError(
                f"fail2ban {self.version} is not in the lab's cache (missing {missing[0]}): run "
                "`make deps` or `python3 lab/pfguard_lab/fail2ban_dist.py fetch` as root"
            )
        return found

    def write_receipt(self) -> None:
        (self.disk_keg / "INSTALL_RECEIPT.json").write_text(json.dumps({
            "homebrew_version": HOMEBREW_VERSION, "used_options": [], "unused_options": [],
            "built_as_bottle": True, "poured_from_bottle": True, "loaded_from_api": True,
            "installed_as_dependency": False, "installed_on_request": True, "time": int(time.time()),
            "runtime_dependencies": [], "source": {"tap": "homebrew/core", "spec": "stable",
                                                   "versions": {"stable": self.version, "head": None}},
        }, indent=2) + "\n")  # fmt: skip

    def link_opt(self) -> None:
        opt = self.disk(f"opt/{self.name}")
        opt.parent.mkdir(parents=True, exist_ok=True)
        if opt.is_symlink() or opt.exists():
            opt.unlink()
        opt.symlink_to(f"../Cellar/{self.name}/{self.version}")

    def install_ansible(self) -> None:
        bin_dir = ansible_bin()
        tools = self.executables
        keg = self.disk_keg
        (keg / "bin").mkdir(parents=True, exist_ok=True)
        for tool in tools:
            script = keg / "bin" / tool
            script.write_text(ANSIBLE_SCRIPT.format(version=self.version, tool=tool, real=bin_dir / tool))
            script.chmod(0o755)
        self.write_receipt()
        self.link_opt()
        self.link()

    def install(self) -> None:
        if self.name == ANSIBLE:
            self.install_ansible()
            return
        source = self.release()
        keg = self.disk_keg
        disk_etc, disk_var = str(self.disk("etc")), str(self.disk("var"))
        (keg / "bin").mkdir(parents=True, exist_ok=True)
        for name in EXECUTABLES:
            script = keg / "bin" / name
            is_regex = name == "fail2ban-regex"
            config = f"{disk_etc}/fail2ban"
            script.write_text(CELLAR_SCRIPT.format(
                python=SOURCE_PYTHON, version=self.version, real=str(source.executable(name)), is_regex=is_regex,
                config_args=[f"--config={config}"] if is_regex else ["-c", config], python_path=source.python_path,
            ))  # fmt: skip
            script.chmod(0o755)
        with open(keg / f"{SERVICE_LABEL}.plist", "wb") as handle:
            plistlib.dump(self.service_plist(), handle)
        self.install_config(source, disk_etc, disk_var)
        for directory in ("var/run/fail2ban", "var/lib/fail2ban", "var/log"):  # post_install + fail2ban.conf paths
            self.disk(directory).mkdir(parents=True, exist_ok=True)
        self.write_receipt()
        self.link_opt()
        self.link()

    def install_config(self, source: fail2ban_dist.Release, disk_etc: str, disk_var: str) -> None:
        """etc/fail2ban from the release's config with the formula's edits; existing files are kept."""
        target = Path(disk_etc) / "fail2ban"
        source_config = source.config_dir

        def rewrite(text: str) -> str:
            return re.sub(r"/(etc|var)", lambda m: disk_etc if m.group(1) == "etc" else disk_var, text)

        for path in sorted(source_config.rglob("*")):
            relative = path.relative_to(source_config)
            top = relative.parts[0]
            if top.startswith("paths-") and top != "paths-common.conf":
                continue  # formula: only paths-common.conf and paths-osx.conf are kept
            if top in ("jail.d", "fail2ban.d") and len(relative.parts) > 1:
                continue  # Debian's additions (defaults-debian.conf); upstream ships these empty
            destination = target / relative
            if path.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            if top in ("action.d", "filter.d", "fail2ban.conf", "paths-common.conf"):
                text = rewrite(text)
            elif top == "jail.conf":
                text = text.replace("before = paths-debian.conf", "before = paths-osx.conf")
            self._write_config(destination, text)
        # paths-osx.conf (1.0.x and 1.1.0: no banaction lines) is not rewritten: /var/log/secure.log stays absolute.
        self._write_config(target / "paths-osx.conf", source.paths_osx.read_text())
        for directory in ("fail2ban.d", "jail.d"):
            (target / directory).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _write_config(destination: Path, text: str) -> None:
        # Homebrew keeps a user's edited etc files across reinstalls (UNVERIFIED detail: no .default copy).
        if destination.exists():
            return
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text, encoding="utf-8", errors="surrogateescape")

    def link(self) -> int:
        """Create the links; returns how many Homebrew reports (var/homebrew/linked is bookkeeping)."""
        for link, target in self.link_paths():
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target)
        return sum(1 for link, _target in self.link_paths() if link.parent.name == "bin")

    def unlink(self) -> int:
        removed = 0
        for link, _target in self.link_paths():
            if link.is_symlink():
                link.unlink()
                removed += link.parent.name == "bin"
        return removed

    def uninstall(self) -> None:
        self.unlink()
        opt = self.disk(f"opt/{self.name}")
        if opt.is_symlink():
            opt.unlink()
        shutil.rmtree(self.disk(f"Cellar/{self.name}"))


# ---------------------------------------------------------------------------------------------
# Command line


def split_args(args: list[str], allowed: set[str]) -> tuple[set[str], list[str]]:
    flags, names = set(), []
    for arg in args:
        if arg.startswith("-"):
            name = arg.split("=", 1)[0] if arg.startswith("--json") else arg
            if name not in allowed:
                raise BrewError(f"invalid option: {arg}")
            flags.add(arg)
        else:
            names.append(arg.lower())
    return flags, names


def check_formulae(names: list[str]) -> list[str]:
    """The formulae's short names; refuses a name the lab's Homebrew has no formula for."""
    found = []
    for name in names:
        short = name[len("homebrew/core/"):] if name.startswith("homebrew/core/") else name
        if short not in FORMULAE:
            raise BrewError(f'No available formula with the name "{name}".')
        found.append(short)
    return found


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def warn(text: str) -> None:
    sys.stderr.write(f"Warning: {text}\n")


def cmd_install(brew: Homebrew, args: list[str], reinstall: bool = False) -> int:
    flags, names = split_args(args, {"--formula", "--formulae", "--force", "-f", "--quiet", "-q", "--verbose", "-v",
                                     "--HEAD", "--cask", "--casks"})  # fmt: skip
    if not names:
        raise BrewError("Invalid usage: This command requires at least 1 formula or cask argument.")
    if "--HEAD" in flags:
        raise Unsupported("install --HEAD")
    if flags & {"--cask", "--casks"}:
        raise BrewError(f"Cask '{names[0]}' is unavailable: No Cask with this name exists.")
    for name in check_formulae(names):
        keg = brew.keg_of(name)
        if keg.installed() and not reinstall:
            warn(f"{name} {keg.version} is already installed and up-to-date.\n"
                 f"To reinstall {keg.version}, run:\n  brew reinstall {name}")  # fmt: skip
            continue
        if reinstall and keg.installed():
            keg.uninstall()
        out(f"==> Fetching {name}")
        out(f"==> Pouring {name}--{keg.version}.all.bottle.tar.gz")
        keg.install()
        if keg.caveats():
            out("==> Caveats")
            out(keg.caveats().rstrip("\n"))
        files, size = keg.keg_usage()
        out("==> Summary")
        out(f"🍺  {keg.keg}: {files} files, {human_size(size)}")
    return 0


def cmd_uninstall(brew: Homebrew, args: list[str]) -> int:
    _flags, names = split_args(args, {"--force", "-f", "--formula", "--formulae", "--ignore-dependencies",
                                      "--zap", "--cask", "--casks"})  # fmt: skip
    if not names:
        raise BrewError("Invalid usage: This command requires at least 1 formula or cask argument.")
    for name in names:
        if name not in FORMULAE or not brew.keg_of(name).installed():
            raise BrewError(f"No such keg: {brew.cellar}/{name}")
    for name in names:
        keg = brew.keg_of(name)
        files, size = keg.keg_usage()
        keg.uninstall()
        out(f"Uninstalling {keg.keg}... ({files} files, {human_size(size)})")
    if FORMULA in names and on_disk(f"{brew.prefix}/etc/fail2ban").exists():
        warn(f"The following may be {FORMULA} configuration files and have not been removed!\n"
             f"If desired, remove them manually with `rm -rf`:\n  {brew.prefix}/etc/fail2ban")  # fmt: skip
    return 0


def cmd_info(brew: Homebrew, args: list[str]) -> int:
    flags, names = split_args(args, {"--json", "--installed", "--formula", "--formulae", "--cask", "--casks",
                                     "--quiet", "-q", "--verbose", "-v", "--github"})  # fmt: skip
    json_flags = [flag for flag in flags if flag.startswith("--json")]
    json_version = None
    if json_flags:
        json_version = json_flags[0].partition("=")[2] or "v1"
        if json_version not in ("v1", "v2"):
            raise BrewError(f"Invalid usage: invalid JSON version: {json_version}")
    if "--github" in flags:
        raise Unsupported("info --github")
    if "--installed" in flags:
        if json_version is None:
            raise BrewError("Invalid usage: `--installed` requires `--json`.")
        formulae = [brew.keg_of(name).formula_json() for name in FORMULAE if brew.keg_of(name).installed()]
    elif names:
        formulae = [brew.keg_of(name).formula_json() for name in check_formulae(names)]
    elif json_version is not None:
        raise BrewError("Invalid usage: This command's option requires a formula argument")
    else:
        kegs = [brew.keg_of(name) for name in FORMULAE if brew.keg_of(name).installed()]
        usage = [keg.keg_usage() for keg in kegs]
        files, size = sum(u[0] for u in usage), sum(u[1] for u in usage)
        out(f"{len(kegs)} keg{'s' * (len(kegs) != 1)}, {files} files, {human_size(size)}")
        return 0
    if json_version == "v2":
        out(json.dumps({"formulae": formulae, "casks": []}, indent=2))
    elif json_version == "v1":
        out(json.dumps(formulae, indent=2))
    elif names and check_formulae(names) != [FORMULA]:
        for name in check_formulae(names):
            keg = brew.keg_of(name)
            if name == FORMULA:
                raise Unsupported("info of several formulae")
            print_info(keg, f"{ANSIBLE}: stable {keg.version} (bottled)", ANSIBLE_DESCRIPTION, ANSIBLE_HOMEPAGE,
                       "a/ansible.rb", "GPL-3.0-or-later")
            out("==> Dependencies")
            out(f"Required: {', '.join(ANSIBLE_DEPENDENCIES)}")
    else:
        print_info(brew, f"{FORMULA}: stable {brew.version} (bottled), HEAD", DESCRIPTION, HOMEPAGE,
                   "f/fail2ban.rb", "GPL-2.0-or-later")
        out("==> Dependencies")
        out("Build: sphinx-doc")
        out(f"Required: {FORMULA_META[brew.version]['python']}")
        out("==> Caveats")
        out(brew.caveats().rstrip("\n"))
    return 0


def cmd_list(brew: Homebrew, args: list[str]) -> int:
    flags, names = split_args(args, {"--formula", "--formulae", "--cask", "--casks", "--versions", "-1", "-l",
                                     "--full-name", "--multiple", "--pinned"})  # fmt: skip
    if flags & {"--cask", "--casks", "--pinned"}:
        return 0  # no casks, nothing pinned
    if names:
        for name in names:
            if name not in FORMULAE or not brew.keg_of(name).installed():
                raise BrewError(f"No such keg: {brew.cellar}/{name}")
        for name in names:
            keg = brew.keg_of(name)
            if "--versions" in flags:
                out(f"{name} {keg.version}")
            else:
                for path in sorted(keg.disk_keg.rglob("*")):
                    if path.is_file() and path.name != "INSTALL_RECEIPT.json":
                        out(f"{keg.keg}/{path.relative_to(keg.disk_keg)}")
        return 0
    for name in FORMULAE:
        keg = brew.keg_of(name)
        if keg.installed():
            out(f"{name} {keg.version}" if "--versions" in flags else name)
    return 0


def cmd_outdated(brew: Homebrew, args: list[str]) -> int:
    flags, names = split_args(args, {"--json", "--formula", "--formulae", "--cask", "--casks", "--quiet", "-q",
                                     "--verbose", "-v", "--greedy"})  # fmt: skip
    check_formulae(names)
    if any(flag.startswith("--json") for flag in flags):
        out(json.dumps({"formulae": [], "casks": []}, indent=2))
    return 0  # the lab's formula is always the current one


def cmd_upgrade(brew: Homebrew, args: list[str]) -> int:
    _flags, names = split_args(args, {"--formula", "--formulae", "--force", "-f", "--quiet", "-q", "--verbose",
                                      "-v", "--greedy", "--fetch-HEAD"})  # fmt: skip
    for name in check_formulae(names):
        keg = brew.keg_of(name)
        if not keg.installed():
            raise BrewError(f"{name} not installed")
        warn(f"{name} {keg.version} already installed")
    return 0


def cmd_link(brew: Homebrew, args: list[str], unlink: bool) -> int:
    _flags, names = split_args(args, {"--overwrite", "--force", "-f", "--dry-run", "-n", "--verbose", "-v"})
    if not names:
        raise BrewError("Invalid usage: This command requires at least 1 installed formula argument.")
    for name in names:
        if name not in FORMULAE or not brew.keg_of(name).installed():
            raise BrewError(f"No such keg: {brew.cellar}/{name}")
    for name in names:
        keg = brew.keg_of(name)
        if unlink:
            out(f"Unlinking {keg.keg}... {keg.unlink()} symlinks removed.")
        elif keg.linked():
            warn(f"Already linked: {keg.keg}\nTo relink, run:\n  brew unlink {name} && brew link {name}")
        else:
            out(f"Linking {keg.keg}... {keg.link()} symlinks created.")
    return 0


def service_info(brew: Homebrew) -> dict:
    # The kit runs fail2ban from its own LaunchDaemon, so Homebrew's label is never loaded here.
    return {
        "name": FORMULA, "service_name": SERVICE_LABEL, "running": False, "loaded": False, "schedulable": False,
        "pid": None, "exit_code": None, "user": None, "status": "none",
        "file": f"{brew.prefix}/opt/{FORMULA}/{SERVICE_LABEL}.plist",
        "command": f"{brew.prefix}/opt/{FORMULA}/bin/fail2ban-client -x start",
        "working_dir": None, "root_dir": None, "log_path": None, "error_log_path": None, "interval": None,
        "cron": None,
    }  # fmt: skip


def cmd_services(brew: Homebrew, args: list[str]) -> int:
    subcommand = args[0] if args and not args[0].startswith("-") else "list"
    rest = args[1:] if args and not args[0].startswith("-") else args
    flags, names = split_args(rest, {"--json", "--all", "--verbose", "-v", "--file", "--sudo-service-user",
                                     "--max-wait", "--no-wait", "--keep"})  # fmt: skip
    as_json = "--json" in flags
    if subcommand in ("list", "ls"):
        if not brew.installed():
            warn("No services available to control with `brew services`")
            return 0
        info = service_info(brew)
        if as_json:
            out(json.dumps([{key: info[key] for key in ("name", "status", "user", "file", "exit_code")}], indent=2))
        else:
            width = max(len(FORMULA), len("Name"))
            out(f"{'Name':<{width}} Status User File")
            out(f"{FORMULA:<{width}} {info['status']}".rstrip())
        return 0
    if subcommand == "cleanup":
        out(f"All {'root' if os.geteuid() == 0 else 'user-space'} services OK, nothing cleaned...")
        return 0
    if subcommand not in ("info", "i", "start", "stop", "restart", "run", "kill", "k"):
        raise BrewError(f"Invalid usage: unknown subcommand: {subcommand}")
    if "--all" in flags:
        names = [FORMULA] if brew.installed() else []
    elif not names:
        raise BrewError("Invalid usage: Formula(e) missing, please provide a formula name or use `--all`.")
    for name in names:
        if check_formulae([name]) == [ANSIBLE]:
            raise BrewError(
                f"Formula `{name}` has not implemented #plist, #service or provided a locatable service file."
            )
        if not brew.installed():
            raise BrewError(f"Formula `{name}` is not installed.")
    if subcommand in ("info", "i"):
        if as_json:
            out(json.dumps([service_info(brew) for _ in names], indent=2))
        else:
            for _ in names:
                out(f"{FORMULA} (homebrew.mxcl.{FORMULA})\nRunning: ✘\nLoaded: ✘\nSchedulable: ✘")
        return 0
    if subcommand in ("stop", "kill", "k"):
        for _ in names:
            warn(f"Service `{FORMULA}` is not started.")
        return 0
    # start/restart/run: the formula's service has require_root; Homebrew warns and goes on as the
    # user. The lab does not run Homebrew's service (the kit ships its own LaunchDaemon).
    if os.geteuid() != 0:
        warn(f"`{FORMULA}` must be run as root to start at system startup!")
    raise Unsupported(f"services {subcommand}")


def cmd_prefix(brew: Homebrew, args: list[str]) -> int:
    flags, names = split_args(args, {"--installed", "--unbrewed"})
    if "--unbrewed" in flags:
        raise Unsupported("--prefix --unbrewed")
    if not names:
        out(brew.prefix)
        return 0
    names = check_formulae(names)
    if "--installed" in flags and not all(brew.keg_of(name).installed() for name in names):
        return 1
    for name in names:
        out(f"{brew.prefix}/opt/{name}")
    return 0


def cmd_shellenv(brew: Homebrew) -> int:
    prefix = brew.prefix
    out(f'export HOMEBREW_PREFIX="{prefix}";')
    out(f'export HOMEBREW_CELLAR="{prefix}/Cellar";')
    out(f'export HOMEBREW_REPOSITORY="{brew.repository}";')
    out(f'export PATH="{prefix}/bin:{prefix}/sbin${{PATH+:$PATH}}";')
    out('[ -z "${MANPATH-}" ] || export MANPATH=":${MANPATH#:}";')
    out(f'export INFOPATH="{prefix}/share/info:${{INFOPATH:-}}";')
    return 0


def run(brew: Homebrew, args: list[str]) -> int:
    command, rest = args[0], args[1:]
    if command in ("--prefix",):
        return cmd_prefix(brew, rest)
    if command == "--cellar":
        if rest:
            for name in check_formulae([name.lower() for name in rest]):
                out(f"{brew.cellar}/{name}")
        else:
            out(brew.cellar)
        return 0
    if command in ("--repository", "--repo"):
        out(brew.repository)
        return 0
    if command == "--caskroom":
        out(f"{brew.prefix}/Caskroom")
        return 0
    if command == "--cache":
        out(f"{os.path.expanduser('~')}/Library/Caches/Homebrew")
        return 0
    if command in ("--version", "-v"):
        out(f"Homebrew {HOMEBREW_VERSION}")
        return 0
    if command == "shellenv":
        return cmd_shellenv(brew)
    if command in ("install", "reinstall"):
        return cmd_install(brew, rest, reinstall=command == "reinstall")
    if command in ("uninstall", "remove", "rm"):
        return cmd_uninstall(brew, rest)
    if command in ("info", "abv"):
        return cmd_info(brew, rest)
    if command in ("list", "ls"):
        return cmd_list(brew, rest)
    if command == "outdated":
        return cmd_outdated(brew, rest)
    if command == "upgrade":
        return cmd_upgrade(brew, rest)
    if command == "update":
        out("Already up-to-date.")
        return 0
    if command in ("link", "ln", "unlink"):
        return cmd_link(brew, rest, unlink=command == "unlink")
    if command == "services":
        return cmd_services(brew, rest)
    if command == "doctor":
        out("Your system is ready to brew.")
        return 0
    if command in ("tap", "untap", "search", "config", "cleanup", "autoremove", "deps", "uses", "leaves", "pin",
                   "unpin", "fetch", "bundle", "analytics", "tap-info", "postinstall", "migrate", "home",
                   "commands", "desc", "log", "missing", "options", "readall", "cat", "edit"):  # fmt: skip
        raise Unsupported(command)
    raise BrewError(f"Unknown command: {command}")


def prefix_from_environment() -> str:
    prefix = os.environ.get("PFGUARD_LAB_BREW_PREFIX")
    if prefix:
        return prefix
    # <root><prefix>/bin/brew -> <prefix>
    location = Path(sys.argv[0]).absolute().parent.parent
    try:
        relative = location.relative_to(lab_root())
    except ValueError:
        return str(location)
    return "/" if str(relative) == "." else f"/{relative}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        out("Example usage:\n  brew search TEXT|/REGEX/\n  brew info [FORMULA|CASK...]\n"
            "  brew install FORMULA|CASK...\n  brew update\n  brew upgrade [FORMULA|CASK...]\n"
            "  brew uninstall FORMULA|CASK...\n  brew list [FORMULA|CASK...]")  # fmt: skip
        return 1
    if os.geteuid() == 0 and args[0] not in ROOT_ALLOWED:
        sys.stderr.write(ROOT_ERROR)
        return 1
    try:
        return run(Homebrew(prefix_from_environment()), args)
    except BrewError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    except Unsupported as exc:
        sys.stderr.write(f"pfguard-lab: brew: {exc} is not supported by the lab\n")
        return 1


# ---------------------------------------------------------------------------------------------
# Provisioning (called by the host builder)


def lookup_user(root: Path, user: str) -> tuple[int, int]:
    """uid, gid of `user` from the host's /etc/passwd, else the machine's."""
    for passwd in (root / "etc/passwd", Path("/etc/passwd")):
        try:
            lines = passwd.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == user:
                return int(fields[2]), int(fields[3])
    raise KeyError(f"user {user!r} not found in {root / 'etc/passwd'} or /etc/passwd")


def provision(root: Path, prefix: str, user: str, env: dict[str, str] | None = None) -> Path:
    """Homebrew skeleton owned by `user` under <root><prefix>, with the `brew` wrapper (extra wrapper
    environment in `env`). Returns the wrapper's path. The fail2ban release the Mac's host.json names
    is fetched into the lab's cache first if it is not there (`brew` itself runs as the user, who
    cannot write the cache)."""
    uid, gid = lookup_user(Path(root), user)
    try:
        fail2ban_dist.ensure(host_fail2ban_version(Path(root)), log=print)
    except (BrewError, fail2ban_dist.DistError) as exc:
        raise OSError(f"brew: {exc}") from None
    base = Path(root) / prefix.lstrip("/")
    base.mkdir(parents=True, exist_ok=True)
    # /opt/homebrew itself belongs to the user; /usr/local stays root's (Homebrew owns its subdirs).
    created = [] if prefix.rstrip("/") == "/usr/local" else [base]
    for relative in SKELETON_DIRS:
        directory = base / relative
        directory.mkdir(parents=True, exist_ok=True)
        created.append(directory)
    wrapper_env = {ANSIBLE_BIN_ENV: str(Path(sys.executable).parent), **(env or {}), "PFGUARD_LAB_BREW_PREFIX": prefix}
    brew_path = commands.write_wrapper(base / "bin" / "brew", "pfguard_lab.emulators.brew", wrapper_env)
    for path in [*created, brew_path]:
        os.chown(path, uid, gid)
    return brew_path


if __name__ == "__main__":
    sys.exit(main())
