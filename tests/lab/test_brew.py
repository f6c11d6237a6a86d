# SPDX-License-Identifier: GPL-3.0-or-later
"""brew for the admin user, backed by a real fail2ban of the Mac's fail2ban_version (1.1.0 by default: the
lab's cache; 1.0.2: the machine's package) (docs/reference/fail2ban.md#homebrew-packaging,
docs/reference/ansible.md#homebrew-modules)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lab_fixtures import wait_for
from pfguard_lab import fail2ban_dist
from pfguard_lab.emulators import brew
from ulog_fixtures import ADMIN_GID, ADMIN_UID, lab_env, make_root, remove_root, run_as_admin, system_python_launcher

PREFIX = "/opt/homebrew"
DEFAULT = fail2ban_dist.DEFAULT_VERSION  # a Mac whose host.json names no fail2ban_version
ROOT_ERROR = (
    "Error: Running Homebrew as root is extremely dangerous and no longer supported.\n"
    "As Homebrew does not drop privileges on installation you would be giving all\n"
    "build scripts full access to your system.\n"
)


def tree_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        digest.update(str(path).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


class Mac:
    """A temp root with admin (uid 501) and a provisioned Homebrew prefix; `version` goes into host.json."""

    def __init__(self, version: str | None = None):
        self.root = make_root(None)
        if version is not None:
            facts = self.root / "var/db/.pfguard-lab/host.json"
            facts.parent.mkdir(parents=True)
            facts.write_text(json.dumps({"name": "mac1", "os_version": "26.2", "fail2ban_version": version}))
        self.version = version or DEFAULT
        (self.root / "etc").mkdir()
        (self.root / "etc/passwd").write_text(f"admin:x:{ADMIN_UID}:{ADMIN_GID}:Administrator:/Users/admin:/bin/zsh\n")
        self.wrapper = brew.provision(self.root, PREFIX, "admin")
        self.prefix = self.root / PREFIX.lstrip("/")
        self.as_admin = system_python_launcher(self.root, "pfguard_lab.emulators.brew")
        # The ansible formula's executables run this machine's Ansible (the virtualenv running the tests).
        self.env = lab_env(self.root, PFGUARD_LAB_BREW_PREFIX=PREFIX,
                           PFGUARD_LAB_ANSIBLE_BIN=str(Path(sys.executable).parent))  # fmt: skip

    def brew(self, *args: str) -> subprocess.CompletedProcess:
        """`brew ARGS` as admin, the way the kit runs it (become_user)."""
        return run_as_admin([str(self.as_admin), *args], self.env, timeout=120)

    def brew_as_root(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.wrapper), *args], env=self.env, capture_output=True, text=True, timeout=60)

    def fail2ban(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.prefix / "bin" / tool), *args], capture_output=True, text=True, timeout=120,
                              cwd="/tmp", env=dict(os.environ, LC_ALL="C.UTF-8"))  # fmt: skip


@pytest.fixture
def mac(request):
    """Parametrize indirectly with a fail2ban_version; none: host.json names none (the default)."""
    machine = None
    try:
        machine = Mac(getattr(request, "param", None))
        yield machine
    finally:
        if machine is not None:
            remove_root(machine.root)


@pytest.fixture
def installed(mac):
    result = mac.brew("install", "fail2ban")
    assert result.returncode == 0, result.stderr
    return mac


def test_provision_lays_down_a_skeleton_owned_by_the_user(mac):
    for name in ("bin", "etc", "var", "opt", "Cellar", "Library", "var/homebrew/linked"):
        directory = mac.prefix / name
        assert directory.is_dir(), name
        assert (directory.stat().st_uid, directory.stat().st_gid) == (ADMIN_UID, ADMIN_GID), name
    assert mac.prefix.stat().st_uid == ADMIN_UID
    assert mac.wrapper == mac.prefix / "bin/brew"
    assert os.access(mac.wrapper, os.X_OK) and mac.wrapper.stat().st_uid == ADMIN_UID
    assert "from pfguard_lab.emulators.brew import main" in mac.wrapper.read_text()
    with pytest.raises(KeyError):
        brew.provision(mac.root, PREFIX, "nobody-here")


def test_root_is_refused_except_services_and_prefix(mac):
    for args in (["install", "fail2ban"], ["info", "--json=v2", "fail2ban"], ["update"], ["list"]):
        result = mac.brew_as_root(*args)
        assert (result.returncode, result.stdout, result.stderr) == (1, "", ROOT_ERROR), args
    assert not (mac.prefix / "Cellar/fail2ban").exists()
    prefix = mac.brew_as_root("--prefix")
    assert (prefix.returncode, prefix.stdout) == (0, f"{PREFIX}\n")
    assert mac.brew_as_root("--prefix", "fail2ban").stdout == f"{PREFIX}/opt/fail2ban\n"
    services = mac.brew_as_root("services", "list")
    assert services.returncode == 0 and ROOT_ERROR not in services.stderr


# Homebrew's fail2ban.rb at each version (docs/reference/fail2ban.md#homebrew-packaging).
FORMULA = {"1.0.2": (0, ["python@3.11"]), "1.1.0": (2, ["python@3.13"])}


@pytest.mark.parametrize("mac", ["1.0.2", "1.1.0"], indirect=True)
def test_install_produces_homebrews_layout(mac):
    version = mac.version
    release = fail2ban_dist.release(version)
    system_config, cache = tree_digest(Path("/etc/fail2ban")), tree_digest(release.config_dir)
    before = json.loads(mac.brew("info", "--json=v2", "fail2ban").stdout)["formulae"][0]
    assert (before["name"], before["installed"], before["linked_keg"]) == ("fail2ban", [], None)
    assert before["versions"]["stable"] == version
    assert (before["revision"], before["dependencies"]) == FORMULA[version]

    result = mac.brew("install", "fail2ban")
    assert result.returncode == 0, result.stderr
    assert f"==> Pouring fail2ban--{version}.all.bottle.tar.gz" in result.stdout
    assert f"You must enable any jails by editing:\n  {PREFIX}/etc/fail2ban/jail.conf" in result.stdout
    assert f"{PREFIX}/Cellar/fail2ban/{version}: " in result.stdout

    keg = mac.prefix / f"Cellar/fail2ban/{version}"
    for tool in ("fail2ban-client", "fail2ban-server", "fail2ban-regex"):
        assert os.access(keg / "bin" / tool, os.X_OK)
        assert os.readlink(mac.prefix / "bin" / tool) == f"../Cellar/fail2ban/{version}/bin/{tool}"
        assert (keg / "bin" / tool).stat().st_uid == ADMIN_UID
    assert os.readlink(mac.prefix / "opt/fail2ban") == f"../Cellar/fail2ban/{version}"
    # The keg runs that release's real code: the client's own version, and the release's executable.
    client = mac.fail2ban("fail2ban-client", "-V")
    assert (client.returncode, client.stdout.strip()) == (0, version), client.stderr
    assert str(release.executable("fail2ban-client")) in (keg / "bin/fail2ban-client").read_text()
    for directory in ("var/run/fail2ban", "var/lib/fail2ban", "var/log"):
        assert (mac.prefix / directory).is_dir()

    etc = mac.prefix / "etc/fail2ban"
    assert sorted(p.name for p in etc.glob("paths-*.conf")) == ["paths-common.conf", "paths-osx.conf"]
    assert not list((etc / "jail.d").iterdir()), "Debian's defaults-debian.conf is not part of the formula"
    assert "\nbefore = paths-osx.conf\n" in (etc / "jail.conf").read_text()
    disk_prefix = str(mac.prefix)  # = /opt/homebrew on a lab Mac, whose root is /
    fail2ban_conf = (etc / "fail2ban.conf").read_text()
    assert f"socket = {disk_prefix}/var/run/fail2ban/fail2ban.sock" in fail2ban_conf
    assert f"dbfile = {disk_prefix}/var/lib/fail2ban/fail2ban.sqlite3" in fail2ban_conf
    assert f"logtarget = {disk_prefix}/var/log/fail2ban.log" in fail2ban_conf
    assert f"{disk_prefix}/etc/hosts.deny" in (etc / "action.d/hostsdeny.conf").read_text()
    assert f"apache_error_log = {disk_prefix}/var/log/apache2/" in (etc / "paths-common.conf").read_text()
    osx = (etc / "paths-osx.conf").read_text()
    assert osx == release.paths_osx.read_text()
    assert "syslog_authpriv = /var/log/secure.log" in osx and "banaction" not in osx  # 1.0.x/1.1.0, not rewritten
    # Upstream's sshd filter of that version, as Homebrew builds from the upstream source: 1.1.0's still
    # has `_daemon = sshd` (Debian's 1.1.0-8 package patches in sshd-session; the Mac gets no such patch).
    assert "\n_daemon = sshd\n" in (etc / "filter.d/sshd.conf").read_text()

    after = json.loads(mac.brew("info", "--json=v2", "fail2ban").stdout)["formulae"][0]
    assert after["installed"][0]["version"] == version and after["linked_keg"] == version
    assert after["service"]["require_root"] is True
    listing = json.loads(mac.brew("info", "--json=v2", "--installed").stdout)
    assert [f["full_name"] for f in listing["formulae"]] == ["fail2ban"] and listing["casks"] == []
    assert mac.brew("list", "--formula").stdout == "fail2ban\n"
    assert mac.brew("list", "--versions").stdout == f"fail2ban {version}\n"
    assert tree_digest(Path("/etc/fail2ban")) == system_config, "the machine's /etc/fail2ban is only read"
    assert tree_digest(release.config_dir) == cache, "the release's configuration is only read"


def test_the_version_comes_from_host_json_and_a_bad_one_is_refused(mac):
    assert mac.version == DEFAULT == "1.1.0"  # host.json without fail2ban_version: what Homebrew pours today
    assert json.loads(mac.brew("info", "--json=v2", "fail2ban").stdout)["formulae"][0]["versions"]["stable"] == DEFAULT
    facts = mac.root / "var/db/.pfguard-lab/host.json"
    facts.parent.mkdir(parents=True)
    facts.write_text(json.dumps({"name": "mac1", "fail2ban_version": "0.9.7"}))
    bad = mac.brew("info", "--json=v2", "fail2ban")
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr == ("Error: var/db/.pfguard-lab/host.json: fail2ban_version '0.9.7': the lab has "
                          "1.0.2, 1.1.0\n")  # fmt: skip
    assert not (mac.prefix / "Cellar/fail2ban").exists()


def test_commands_community_general_homebrew_runs(installed):
    mac = installed
    again = mac.brew("install", "fail2ban")
    assert again.returncode == 0
    assert again.stderr.startswith(f"Warning: fail2ban {DEFAULT} is already installed and up-to-date.")
    assert mac.brew("update").stdout == "Already up-to-date.\n"
    assert mac.brew("outdated").stdout == ""
    assert json.loads(mac.brew("outdated", "--json=v2").stdout) == {"formulae": [], "casks": []}
    assert mac.brew("--version").stdout.startswith("Homebrew ")
    assert mac.brew("upgrade", "fail2ban").returncode == 0
    unknown = mac.brew("info", "--json=v2", "nginx")
    assert (unknown.returncode, unknown.stderr) == (1, 'Error: No available formula with the name "nginx".\n')
    assert mac.brew("install", "nginx").stderr == 'Error: No available formula with the name "nginx".\n'
    bad = mac.brew("install", "--frobnicate", "fail2ban")
    assert bad.returncode == 1 and "invalid option: --frobnicate" in bad.stderr
    unlinked = mac.brew("unlink", "fail2ban")
    assert unlinked.stdout == f"Unlinking {PREFIX}/Cellar/fail2ban/{DEFAULT}... 3 symlinks removed.\n"
    assert not (mac.prefix / "bin/fail2ban-client").exists()
    assert json.loads(mac.brew("info", "--json=v2", "fail2ban").stdout)["formulae"][0]["linked_keg"] is None
    assert mac.brew("link", "fail2ban").stdout == f"Linking {PREFIX}/Cellar/fail2ban/{DEFAULT}... 3 symlinks created.\n"
    assert (mac.prefix / "bin/fail2ban-client").exists()


def test_uninstall_keeps_configuration(installed):
    mac = installed
    result = mac.brew("uninstall", "--force", "fail2ban")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Uninstalling {PREFIX}/Cellar/fail2ban/{DEFAULT}... (")
    assert "may be fail2ban configuration files and have not been removed" in result.stderr
    assert not (mac.prefix / "Cellar/fail2ban").exists()
    assert not (mac.prefix / "opt/fail2ban").is_symlink() and not (mac.prefix / "bin/fail2ban-client").is_symlink()
    assert (mac.prefix / "etc/fail2ban/jail.conf").is_file()
    missing = mac.brew("uninstall", "fail2ban")
    assert (missing.returncode, missing.stderr) == (1, f"Error: No such keg: {PREFIX}/Cellar/fail2ban\n")
    assert json.loads(mac.brew("info", "--json=v2", "fail2ban").stdout)["formulae"][0]["installed"] == []


def test_services_report_and_refuse(installed):
    mac = installed
    listing = mac.brew("services", "list")
    assert listing.stdout.splitlines() == ["Name     Status User File", "fail2ban none"]
    info = json.loads(mac.brew("services", "info", "fail2ban", "--json").stdout)[0]
    assert (info["name"], info["service_name"], info["status"], info["running"], info["pid"]) == (
        "fail2ban", "homebrew.mxcl.fail2ban", "none", False, None)  # fmt: skip
    start = mac.brew("services", "start", "fail2ban")
    assert start.returncode == 1
    assert "Warning: `fail2ban` must be run as root to start at system startup!" in start.stderr
    assert "pfguard-lab: brew: services start is not supported by the lab" in start.stderr
    as_root = mac.brew_as_root("services", "start", "fail2ban")
    assert as_root.returncode == 1
    assert as_root.stderr == "pfguard-lab: brew: services start is not supported by the lab\n"
    assert mac.brew("services", "stop", "fail2ban").stderr == "Warning: Service `fail2ban` is not started.\n"
    plist = mac.prefix / "opt/fail2ban/homebrew.mxcl.fail2ban.plist"
    assert b"<string>-x</string>" in plist.read_bytes()


@pytest.mark.parametrize("mac", ["1.0.2", "1.1.0"], indirect=True)
def test_installed_fail2ban_runs_with_the_prefix_config(installed):
    mac = installed
    config_test = mac.fail2ban("fail2ban-client", "-t")
    assert config_test.returncode == 0, config_test.stderr
    assert "OK: configuration test is successful" in config_test.stdout + config_test.stderr
    dump = mac.fail2ban("fail2ban-client", "-d").stdout
    assert f"['set', 'dbfile', '{mac.prefix}/var/lib/fail2ban/fail2ban.sqlite3']" in dump

    # fail2ban-regex reads filters from the prefix: a filter only the prefix has is found by name.
    (mac.prefix / "etc/fail2ban/filter.d/pfglab-only.conf").write_text(
        "[Definition]\nfailregex = ^pfglab failure from <HOST>$\n"
    )
    regex = mac.fail2ban("fail2ban-regex", "-o", "ip", "pfglab failure from 198.51.100.200", "pfglab-only")
    assert (regex.returncode, regex.stdout.split()) == (0, ["198.51.100.200"]), regex.stderr

    sock = mac.prefix / "var/run/fail2ban/fail2ban.sock"
    pidfile = mac.prefix / "var/run/fail2ban/fail2ban.pid"
    try:
        started = mac.fail2ban("fail2ban-client", "start")
        assert started.returncode == 0, started.stderr
        wait_for(lambda: sock.is_socket() and pidfile.exists(), 30, interval=0.1, fail=False)
        assert sock.is_socket(), "fail2ban-server's socket lands under the prefix"
        assert mac.fail2ban("fail2ban-client", "ping").stdout.strip() == "Server replied: pong"
        # The server the client started runs the same release (its PYTHONPATH reached it).
        assert mac.fail2ban("fail2ban-client", "version").stdout.strip() == mac.version
        assert (mac.prefix / "var/lib/fail2ban/fail2ban.sqlite3").exists()
        assert (mac.prefix / "var/log/fail2ban.log").exists()
    finally:
        stopped = mac.fail2ban("fail2ban-client", "stop") if sock.exists() else None
        if pidfile.exists() and (stopped is None or stopped.returncode != 0):
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    assert stopped is not None and stopped.returncode == 0, "the server answers stop on the prefix socket"


def run_module(mac: Mac, module: str, args: dict) -> dict:
    """Run a community.general module on this machine, as `ansible -m` would on the Mac."""
    args_file = mac.root / f"{module}-args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    result = subprocess.run(
        [sys.executable, "-m", f"ansible_collections.community.general.plugins.modules.{module}", str(args_file)],
        capture_output=True, text=True, timeout=120, cwd="/tmp",
    )  # fmt: skip
    return json.loads(result.stdout)


def test_community_general_modules_drive_the_lab_brew(mac):
    # The module finds `brew` on `path`; this one becomes admin first, as become_user does.
    shim_dir = mac.root / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "brew"
    shim.write_text(
        f"#!/usr/bin/python3 -I\nimport os\nos.setgroups([])\nos.setgid({ADMIN_GID})\nos.setuid({ADMIN_UID})\n"
        f"os.environ.update({{'PFGUARD_LAB_ROOT': {str(mac.root)!r}, 'PFGUARD_LAB_BREW_PREFIX': {PREFIX!r}, "
        f"'HOME': '/tmp'}})\nos.execv({str(mac.as_admin)!r}, [{str(mac.as_admin)!r}, *os.sys.argv[1:]])\n"
    )
    shim.chmod(0o755)
    shim_dir.chmod(0o755)
    package = {"name": ["fail2ban"], "path": str(shim_dir)}
    first = run_module(mac, "homebrew", {**package, "state": "present"})
    assert (first.get("failed"), first["changed"], first["changed_pkgs"]) == (None, True, ["fail2ban"]), first
    second = run_module(mac, "homebrew", {**package, "state": "present"})
    assert (second["changed"], second["msg"]) == (False, "Package already installed: fail2ban")
    service = run_module(mac, "homebrew_services", {"name": "fail2ban", "state": "absent", "path": str(shim_dir)})
    assert (service["changed"], service["running"], service["pid"]) == (False, False, None), service
    start = run_module(mac, "homebrew_services", {"name": "fail2ban", "state": "present", "path": str(shim_dir)})
    assert start["failed"] is True and "not supported by the lab" in start["msg"]
    removed = run_module(mac, "homebrew", {**package, "state": "absent"})
    assert (removed["changed"], removed["msg"]) == (True, "Package uninstalled: fail2ban")
    assert not (mac.prefix / "Cellar/fail2ban").exists()


def test_ansible_formula_runs_this_machines_ansible(installed):
    mac = installed
    before = json.loads(mac.brew("info", "--json=v2", "ansible").stdout)["formulae"][0]
    version = before["versions"]["stable"]
    assert (before["name"], before["installed"], before["linked_keg"], before["caveats"]) == ("ansible", [], None, None)
    assert version == brew.ansible_version(Path(sys.executable).parent)
    result = mac.brew("install", "ansible")
    assert result.returncode == 0, result.stderr
    assert f"==> Pouring ansible--{version}.all.bottle.tar.gz" in result.stdout
    assert "==> Caveats" not in result.stdout
    assert f"{PREFIX}/Cellar/ansible/{version}: " in result.stdout
    for tool in ("ansible", "ansible-playbook", "ansible-pull", "ansible-galaxy"):
        assert os.readlink(mac.prefix / "bin" / tool) == f"../Cellar/ansible/{version}/bin/{tool}"
        assert (mac.prefix / f"Cellar/ansible/{version}/bin" / tool).stat().st_uid == ADMIN_UID
    assert os.readlink(mac.prefix / "opt/ansible") == f"../Cellar/ansible/{version}"
    pulled = subprocess.run([str(mac.prefix / "bin/ansible-pull"), "--version"], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert pulled.returncode == 0 and pulled.stdout.startswith("ansible-pull [core "), pulled.stderr
    # Both formulae side by side; fail2ban's commands still answer for fail2ban alone.
    assert mac.brew("list").stdout == "ansible\nfail2ban\n"
    assert mac.brew("list", "--versions", "ansible").stdout == f"ansible {version}\n"
    installed_json = json.loads(mac.brew("info", "--json=v2", "--installed").stdout)["formulae"]
    assert [formula["name"] for formula in installed_json] == ["ansible", "fail2ban"]
    again = mac.brew("install", "ansible")
    assert again.returncode == 0
    assert again.stderr.startswith(f"Warning: ansible {version} is already installed and up-to-date.")
    assert mac.brew("--prefix", "ansible").stdout == f"{PREFIX}/opt/ansible\n"
    service = mac.brew("services", "info", "ansible")
    assert service.returncode == 1 and service.stderr.startswith("Error: Formula `ansible` has not implemented")
    removed = mac.brew("uninstall", "ansible")
    assert removed.returncode == 0 and removed.stdout.startswith(f"Uninstalling {PREFIX}/Cellar/ansible/{version}...")
    assert "configuration files" not in removed.stderr
    assert not (mac.prefix / "bin/ansible-pull").exists() and not (mac.prefix / "Cellar/ansible").exists()
    assert (mac.prefix / "bin/fail2ban-client").exists()
    gone = mac.brew("uninstall", "ansible")
    assert (gone.returncode, gone.stderr) == (1, f"Error: No such keg: {PREFIX}/Cellar/ansible\n")
