# SPDX-License-Identifier: GPL-3.0-or-later
"""One lab host: its description, its disk (overlay), provisioning, boot, shutdown and reboot.

See docs/lab-design.md "Host model". The controller keeps each Mac's overlay mounted at
`<lab>/hosts/<name>/root` (lower `/`, upper/work on the tmpfs `<lab>/hosts/<name>/disk`), writes
the host's files through that mount, and boots the host with hostinit, which copies the mount
into the host's own mount namespace and pivots into it.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import importlib
import importlib.util
import inspect
import json
import os
import plistlib
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pfguard_lab import commands, netns

DATA_DIR = Path(__file__).resolve().parent / "data"
MAC_ROLE = "mac"

# Stock files a macOS (update) installs; paths on the Mac -> files in data/.
STOCK_PF_FILES = {"/etc/pf.conf": "pf.conf", "/etc/pf.anchors/com.apple": "pf.anchors/com.apple"}
PFCTL_PLIST = ("/System/Library/LaunchDaemons/com.apple.pfctl.plist", "LaunchDaemons/com.apple.pfctl.plist")
SYSTEM_VERSION_PLIST = "/System/Library/CoreServices/SystemVersion.plist"
HOST_FACTS = "/var/db/.pfguard-lab/host.json"

# Environment baked into every emulator wrapper on a lab Mac (docs/lab-design.md, env vars).
WRAPPER_ENV = {"PFGUARD_LAB_PF_ENFORCE": "nftables", "PFGUARD_LAB_PF_STATES": "conntrack", "PFGUARD_LAB_ROOT": "/"}

# The emulators a Mac cannot boot without (module -> what it is).
REQUIRED_MODULES = {
    **{module: path for path, module in commands.SYSTEM_COMMANDS.items()},
    "pfguard_lab.emulators.sw_vers": "sw_vers.system_version_plist",
    commands.BREW_COMMAND[1]: "brew.provision",
    commands.AFCTL_COMMAND[1]: "afctl.provision",
}

ADMIN_USER, ADMIN_UID, ADMIN_GROUP, ADMIN_GID = "admin", 501, "admin", 80  # macOS: uid 501, admin gid 80
ADMIN_HOME = "/Users/admin"
ROOT_HOME = "/var/root"  # macOS's; also keeps the controller's /root dotfiles out of the hosts
HOLDER_COMMENT = "pfguard-lab-holder"
ANSIBLE_KEY_COMMENT = "pfguard-lab-ansible"
# The PATH sshd gives a macOS session (no /usr/local/bin, no Homebrew): set for every login.
SSH_SESSION_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"

# macOS's stock /etc/sudoers (sudoers(5); the file a macOS install writes): env_reset with Apple's
# env_keep list (HOME is kept, SSH_CONNECTION is not), root and group admin may run anything as
# anyone after typing their own password. macOS reads drop-ins from /private/etc/sudoers.d; the lab
# has no /private (its /etc is a directory), so it names /etc/sudoers.d, the same directory there.
SUDOERS = """\
#
# Sample /etc/sudoers file (macOS's stock, written by pfguard-lab).
#
# This file MUST be edited with the 'visudo' command as root.
#
# See the sudoers man page for the details on how to write a sudoers file.

##
# Override built-in defaults
##
Defaults\tenv_reset
Defaults\tenv_keep += "BLOCKSIZE"
Defaults\tenv_keep += "COLORFGBG COLORTERM"
Defaults\tenv_keep += "__CF_USER_TEXT_ENCODING"
Defaults\tenv_keep += "CHARSET LANG LANGUAGE LC_ALL LC_COLLATE LC_CTYPE"
Defaults\tenv_keep += "LC_MESSAGES LC_MONETARY LC_NUMERIC LC_TIME"
Defaults\tenv_keep += "LINES COLUMNS"
Defaults\tenv_keep += "LSCOLORS"
Defaults\tenv_keep += "SSH_AUTH_SOCK"
Defaults\tenv_keep += "TZ"
Defaults\tenv_keep += "DISPLAY XAUTHORIZATION XAUTHORITY"
Defaults\tenv_keep += "EDITOR VISUAL"
Defaults\tenv_keep += "HOME MAIL"

##
# User specification
##

# root and users in group admin can run anything on any machine as any user
root\t\tALL = (ALL) ALL
%admin\t\tALL = (ALL) ALL

## Read drop-in files from /etc/sudoers.d (macOS: /private/etc/sudoers.d)
## (the '#' here does not indicate a comment)
#includedir /etc/sudoers.d
"""
SUDOERS_D = "/etc/sudoers.d"
# The lab's passwordless-sudo option (`pfguard-lab up --sudo-nopasswd`): what admins add on Macs
# they manage without typing a password.
NOPASSWD_DROPIN = (f"{SUDOERS_D}/pfguard-lab-nopasswd", "%admin\t\tALL = (ALL) NOPASSWD: ALL\n")

SSHD_CONFIG = f"""\
# pfguard lab: sshd of an emulated Mac (written by pfguard-lab; macOS keeps its defaults in
# /etc/ssh/sshd_config and drop-ins in /etc/ssh/sshd_config.d).
Include /etc/ssh/sshd_config.d/*
Port 22
# Both families, as macOS's sshd listens (IPv4 and IPv6 on port 22): attacks come over either.
AddressFamily any
ListenAddress 0.0.0.0
ListenAddress ::
HostKey /etc/ssh/ssh_host_ed25519_key
# macOS's root account is disabled: nobody logs in as root; admins log in as themselves and sudo.
PermitRootLogin no
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
SyslogFacility AUTH
LogLevel INFO
MaxStartups 100
UseDNS no
PrintMotd no
AcceptEnv LANG LC_*
SetEnv PATH={SSH_SESSION_PATH}
PidFile /var/run/sshd.pid
Subsystem sftp /usr/lib/openssh/sftp-server
"""


@dataclass(frozen=True)
class Host:
    """A lab host. Macs have the os/arch/brew fields; `attacker`/`trusted` are plain netns."""

    name: str
    role: str
    address: str
    index: int
    os_version: str | None = None
    build: str | None = None
    arch: str | None = None
    brew_prefix: str | None = None
    server_app: bool = False
    fail2ban_version: str | None = None  # Macs: the Homebrew fail2ban formula's version (emulators/brew.py)
    address6: str | None = None  # IPv6 address on the lab link; None in an IPv4-only lab

    @property
    def is_mac(self) -> bool:
        return self.role == MAC_ROLE

    @property
    def netns(self) -> str:
        return f"{netns.PREFIX}-{self.name}"

    @property
    def veth(self) -> str:
        return f"{netns.PREFIX}v{self.index}"  # host side of the veth, a bridge port (<= 15 chars)

    @property
    def ifname(self) -> str:
        return "en0" if self.is_mac else "eth0"  # a Mac's first Ethernet interface is en0

    def facts(self) -> dict:
        """host.json: what the emulators know about the Mac they run on."""
        return {
            "name": self.name,
            "role": self.role,
            "os_version": self.os_version,
            "build": self.build,
            "arch": self.arch,
            "brew_prefix": self.brew_prefix,
            "server_app": self.server_app,
            "fail2ban_version": self.fail2ban_version,
            "address": self.address,
            "address6": self.address6,
        }

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Host:
        return cls(**data)


class LabPaths:
    """Where the lab keeps things under its run dir."""

    def __init__(self, base: str | os.PathLike):
        self.base = Path(base)
        self.state = self.base / "lab.json"
        self.inventory = self.base / "inventory.yml"
        self.keys = self.base / "keys"
        self.ansible_key = self.keys / "id_ed25519"  # Ansible's login key for admin on every Mac
        self.holder_key = self.keys / "holder_ed25519"
        self.admin_password = self.keys / "admin_password"  # admin's sudo password (0600, root only)
        self.host_key = self.keys / "ssh_host_ed25519_key"
        self.askpass = self.base / "askpass"
        self.control_dir = self.base / "cp"  # Ansible's ssh ControlMaster sockets for lab hosts
        self.hosts = self.base / "hosts"

    def host_dir(self, name: str) -> Path:
        return self.hosts / name

    def disk(self, name: str) -> Path:
        return self.hosts / name / "disk"

    def root(self, name: str) -> Path:
        return self.hosts / name / "root"

    def pid_file(self, name: str) -> Path:
        return self.hosts / name / "pid"

    def console(self, name: str) -> Path:
        return self.hosts / name / "console.log"


class HostError(RuntimeError):
    pass


# --- files inside a host's root, seen from the controller --------------------------------------


def in_root(root: Path, mac_path: str) -> Path:
    """The controller path of `mac_path` on a host whose root is `root`.

    Symlinks are resolved as the host would resolve them (an absolute target restarts at the
    host's root), so writing through the result can never land outside the host's disk.
    """
    pending = [part for part in mac_path.split("/") if part]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise OSError(errno.ELOOP, f"too many symlinks in {mac_path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p] + pending
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def make_dirs(root: Path, mac_path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Path:
    """mkdir -p inside the host; directories it creates get mode/uid/gid (never the umask's)."""
    target = in_root(root, mac_path)
    missing = []
    probe = target
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        directory.mkdir()
        os.chown(directory, uid, gid)
        directory.chmod(mode)
    return target


def write_file(root: Path, mac_path: str, data: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> Path:
    """Atomically write a file inside the host (parent directories root-owned 0755)."""
    parent = mac_path.rsplit("/", 1)[0] or "/"
    make_dirs(root, parent)
    target = in_root(root, mac_path)
    tmp = target.with_name(f".{target.name}.pfguard-lab-tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chown(tmp, uid, gid)
    tmp.chmod(mode)
    tmp.replace(target)
    return target


def _append_line(root: Path, mac_path: str, key: str, line: str, mode: int) -> None:
    """Add `line` to a colon-separated database (passwd, group, ...) unless `key:` is present."""
    path = in_root(root, mac_path)
    text = path.read_text() if path.exists() else ""
    if any(existing.split(":", 1)[0] == key for existing in text.splitlines()):
        return
    if text and not text.endswith("\n"):
        text += "\n"
    stat_result = path.stat() if path.exists() else None
    write_file(
        root, mac_path, text + line + "\n",
        mode=stat_result.st_mode & 0o7777 if stat_result else mode,
        uid=stat_result.st_uid if stat_result else 0,
        gid=stat_result.st_gid if stat_result else 0,
    )


# --- the lab's interpreter inside hosts -----------------------------------------------------------


def interpreter_paths() -> list[str]:
    """Directories a host needs to run the lab's wrappers: the venv, its base Python, the package."""
    package_parent = Path(__file__).resolve().parent.parent  # the dir on sys.path holding pfguard_lab
    paths = {
        os.path.realpath(sys.prefix),
        os.path.realpath(sys.base_prefix),
        os.path.dirname(os.path.realpath(sys.executable)),
        str(package_parent),
    }
    return sorted(paths)


def paths_hidden_in_host(paths: list[str]) -> list[str]:
    """Which of `paths` a host would not see: the overlay's lower is only the root filesystem, and
    /tmp, /run, /dev, /proc and /sys are replaced by the host's own mounts."""
    masked = ("/tmp", "/run", "/var/run", "/dev", "/proc", "/sys")
    hidden = []
    for path in paths:
        under_mask = any(path == m or path.startswith(m + "/") for m in masked)
        if under_mask or netns.mount_point_of(path) != "/":
            hidden.append(path)
    # Bind the outermost directories only.
    return [p for p in hidden if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in hidden)]


def _open_path_to_everyone(root: Path, path: str) -> None:
    """Give o+x to each ancestor of `path` on the host (e.g. /root is 0700 on Debian and the venv's
    Python may live under it) so non-root users there (admin running brew, sshd) can run it."""
    parts = [p for p in path.split("/") if p]
    for depth in range(1, len(parts) + 1):
        target = root.joinpath(*parts[:depth])
        try:
            mode = target.lstat().st_mode
        except FileNotFoundError:
            return
        if target.is_dir() and not target.is_symlink() and not mode & 0o001:
            target.chmod((mode & 0o7777) | 0o001)


def _relative_system_symlinks(root: Path) -> None:
    """Debian's /var/run and /var/lock are absolute symlinks (-> /run...). Make them relative on
    the host: same meaning there, and provisioning code that writes `root/var/run/...` from the
    controller then stays inside the host's disk instead of reaching the controller's /run."""
    for mac_dir in ("/", "/var"):
        directory = in_root(root, mac_dir)
        for entry in directory.iterdir():
            if not entry.is_symlink():
                continue
            target = os.readlink(entry)
            if target.startswith("/"):
                relative = os.path.relpath(target, mac_dir)
                entry.unlink()
                os.symlink(relative, entry)


# --- provisioning ------------------------------------------------------------------------------


def _data_file(relative: str) -> bytes:
    path = DATA_DIR / relative
    if not path.is_file():
        raise HostError(f"stock data file {path} is missing")
    return path.read_bytes()


def _plist(data: dict) -> bytes:
    return plistlib.dumps(data, fmt=plistlib.FMT_XML)


def system_daemons() -> dict[str, bytes]:
    """/System/Library/LaunchDaemons files the lab installs on every Mac."""
    return {
        PFCTL_PLIST[0]: _data_file(PFCTL_PLIST[1]),  # Apple's stock (docs/reference/macos.md#boot-time-pf-loading)
        "/System/Library/LaunchDaemons/com.openssh.sshd.plist": _plist(
            {
                "Label": "com.openssh.sshd",
                "ProgramArguments": ["/usr/sbin/sshd", "-D", "-f", "/etc/ssh/sshd_config"],
                "RunAtLoad": True,
                "KeepAlive": True,
            }
        ),
        "/System/Library/LaunchDaemons/com.apple.logd.plist": _plist(
            {
                "Label": "com.apple.logd",
                "ProgramArguments": ["/usr/libexec/pfguard-lab-logd"],
                "RunAtLoad": True,
                "KeepAlive": True,
            }
        ),
    }


def check_emulators() -> list[str]:
    """Emulator modules that are missing (the lab cannot boot a Mac without them)."""
    missing = []
    for module, what in sorted(REQUIRED_MODULES.items()):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(f"{module} ({what})")
    return missing


def _provision_with(module: str, *args) -> None:
    """Call `module.provision(*args)`, handing it the lab's wrapper environment if it takes one."""
    provision = importlib.import_module(module).provision
    if "env" in inspect.signature(provision).parameters:
        provision(*args, env=WRAPPER_ENV)
    else:
        provision(*args)


def install_stock_pf_files(root: Path, host: Host) -> None:
    """What a macOS install or update leaves in /etc for PF, plus Server.app's AF anchor lines."""
    for mac_path, relative in STOCK_PF_FILES.items():
        write_file(root, mac_path, _data_file(relative))
    if host.server_app:
        _provision_with(commands.AFCTL_COMMAND[1], root)


def install_system_files(root: Path, host: Host) -> None:
    """The sealed system volume's part: stock daemons and SystemVersion.plist."""
    for mac_path, content in system_daemons().items():
        write_file(root, mac_path, content)
    sw_vers = importlib.import_module("pfguard_lab.emulators.sw_vers")
    write_file(root, SYSTEM_VERSION_PLIST, sw_vers.system_version_plist(host.os_version, host.build))


def _set_root_home(root: Path) -> None:
    passwd = in_root(root, "/etc/passwd")
    lines = passwd.read_text().splitlines()
    for number, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == "root" and len(fields) == 7:
            fields[5] = ROOT_HOME
            lines[number] = ":".join(fields)
    write_file(root, "/etc/passwd", "\n".join(lines) + "\n", passwd.stat().st_mode & 0o7777)
    make_dirs(root, ROOT_HOME, 0o750)


def hash_password(password: str, timeout: float = 30) -> str:
    """A SHA-512 crypt(3) hash (`$6$salt$...`, what pam_unix checks in /etc/shadow) of `password`,
    made by `openssl passwd -6` with a random salt; the password goes through stdin, never argv."""
    try:
        proc = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"], input=password + "\n", capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HostError(f"openssl passwd -6 failed: {exc}") from exc
    hashed = proc.stdout.strip()
    if proc.returncode != 0 or not re.fullmatch(r"\$6\$[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}", hashed):
        raise HostError(f"openssl passwd -6 failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return hashed


def _add_admin_user(root: Path, authorized_keys: str, password_hash: str) -> None:
    """The Mac's first user: an administrator (group admin) who logs in with the lab's keys."""
    days = (datetime.date.today() - datetime.date(1970, 1, 1)).days
    _append_line(root, "/etc/group", ADMIN_GROUP, f"{ADMIN_GROUP}:x:{ADMIN_GID}:{ADMIN_USER}", 0o644)
    _append_line(root, "/etc/gshadow", ADMIN_GROUP, f"{ADMIN_GROUP}:!::{ADMIN_USER}", 0o640)
    _append_line(
        root, "/etc/passwd", ADMIN_USER,
        f"{ADMIN_USER}:x:{ADMIN_UID}:{ADMIN_GID}:Administrator:{ADMIN_HOME}:/bin/bash", 0o644,
    )
    # A real password: sudo asks for it (PAM checks /etc/shadow), password logins over ssh get it
    # wrong (the attack), keys log in.
    _append_line(root, "/etc/shadow", ADMIN_USER, f"{ADMIN_USER}:{password_hash}:{days}:0:99999:7:::", 0o640)
    make_dirs(root, "/Users", 0o755)
    make_dirs(root, ADMIN_HOME, 0o755, ADMIN_UID, ADMIN_GID)
    make_dirs(root, f"{ADMIN_HOME}/.ssh", 0o700, ADMIN_UID, ADMIN_GID)
    write_file(root, f"{ADMIN_HOME}/.ssh/authorized_keys", authorized_keys, 0o600, ADMIN_UID, ADMIN_GID)


def sudoers_files(nopasswd: bool) -> dict[str, str]:
    """The Mac's sudo policy: macOS's stock /etc/sudoers, plus the passwordless drop-in if asked."""
    files = {"/etc/sudoers": SUDOERS}
    if nopasswd:
        files[NOPASSWD_DROPIN[0]] = NOPASSWD_DROPIN[1]
    return files


def _setup_sudo(root: Path, nopasswd: bool) -> None:
    """Install the Mac's sudoers; the machine's own drop-ins (the overlay's lower) must not leak in."""
    drop_ins = make_dirs(root, SUDOERS_D, 0o755)
    for entry in drop_ins.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            raise HostError(f"unexpected directory {entry} in {SUDOERS_D}")
        entry.unlink()  # a whiteout on the host's disk
    for mac_path, content in sudoers_files(nopasswd).items():
        write_file(root, mac_path, content, 0o440)


def _setup_sshd(root: Path, paths: LabPaths) -> None:
    for old in ("ssh_host_rsa_key", "ssh_host_ecdsa_key", "ssh_host_dsa_key"):
        for suffix in ("", ".pub"):
            stale = in_root(root, f"/etc/ssh/{old}{suffix}")
            if stale.exists():
                stale.unlink()  # a whiteout on the host's disk: ed25519 only
    write_file(root, "/etc/ssh/ssh_host_ed25519_key", paths.host_key.read_bytes(), 0o600)
    write_file(root, "/etc/ssh/ssh_host_ed25519_key.pub", paths.host_key.with_suffix(".pub").read_bytes())
    write_file(root, "/etc/ssh/sshd_config", SSHD_CONFIG)
    make_dirs(root, "/etc/ssh/sshd_config.d", 0o755)
    make_dirs(root, f"{ROOT_HOME}/.ssh", 0o700)  # root has no authorized key: it cannot log in at all


def _fast_pam_failures(root: Path) -> None:
    """Drop Linux-PAM's 2 s delay after a wrong password (sshd's minimum-time logic doubles it to
    4 s), so `attack --failures N` takes seconds, not minutes. macOS's own timing is not in the
    references (UNVERIFIED); sshd's messages are unchanged."""
    path = in_root(root, "/etc/pam.d/common-auth")
    if not path.exists():
        return
    text = path.read_text()
    patched = re.sub(r"^(auth\s.*pam_unix\.so)(?!.*nodelay)(.*)$", r"\1\2 nodelay", text, flags=re.MULTILINE)
    if patched != text:
        write_file(root, "/etc/pam.d/common-auth", patched)


def _etc_hosts(root: Path, host: Host, fleet: list[Host]) -> None:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"127.0.1.1\t{host.name}"]
    lines += [f"{other.address}\t{other.name}" for other in fleet if other.name != host.name]
    write_file(root, "/etc/hosts", "\n".join(lines) + "\n")
    write_file(root, "/etc/hostname", host.name + "\n")


def provision_mac(
    root: Path, host: Host, paths: LabPaths, fleet: list[Host], admin_password_hash: str, sudo_nopasswd: bool = False
) -> None:
    """Write a fresh Mac's disk (the overlay's upper) through its mounted overlay at `root`.

    `admin_password_hash`: admin's crypt(3) hash for /etc/shadow (`hash_password`); `sudo_nopasswd`:
    let group admin sudo without a password (a sudoers.d drop-in)."""
    _relative_system_symlinks(root)
    for path in interpreter_paths():
        _open_path_to_everyone(root, path)
    for mac_path, module in commands.SYSTEM_COMMANDS.items():
        commands.write_wrapper(in_root(root, mac_path), module, WRAPPER_ENV)
    make_dirs(root, "/Library", 0o755)
    make_dirs(root, "/Library/LaunchDaemons", 0o755)
    make_dirs(root, "/etc/newsyslog.d", 0o755)
    install_system_files(root, host)
    write_file(root, HOST_FACTS, json.dumps(host.facts(), indent=2) + "\n")
    _set_root_home(root)
    authorized = [paths.ansible_key.with_suffix(".pub").read_text(), paths.holder_key.with_suffix(".pub").read_text()]
    _add_admin_user(root, "".join(key if key.endswith("\n") else key + "\n" for key in authorized), admin_password_hash)
    _setup_sudo(root, sudo_nopasswd)
    _setup_sshd(root, paths)
    _fast_pam_failures(root)
    _etc_hosts(root, host, fleet)
    _provision_with(commands.BREW_COMMAND[1], root, host.brew_prefix, ADMIN_USER)  # writes `brew`
    # Stock PF files, then Server.app's installer (afctl.provision) appends its anchor to com.apple.
    install_stock_pf_files(root, host)


# --- disk (tmpfs + overlay) ----------------------------------------------------------------------


def mount_disk(paths: LabPaths, name: str, size: str = "512m") -> Path:
    """The host's disk: a tmpfs holding the overlay's upper/work (overlayfs refuses an upperdir
    inside its lowerdir on the same filesystem), and the overlay itself at `root`."""
    disk, root = paths.disk(name), paths.root(name)
    disk.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    netns.mount("tmpfs", disk, "tmpfs", netns.MS_NOSUID | netns.MS_NODEV, f"mode=700,size={size}")
    (disk / "upper").mkdir()
    (disk / "work").mkdir()
    netns.mount("overlay", root, "overlay", 0, f"lowerdir=/,upperdir={disk}/upper,workdir={disk}/work")
    return root


# --- processes -----------------------------------------------------------------------------------


def read_pid(paths: LabPaths, host: Host) -> int | None:
    """PID 1 of the host as the controller sees it, if that process is alive in the host's netns."""
    try:
        pid = int(paths.pid_file(host.name).read_text())
    except (OSError, ValueError):
        return None
    inode = netns.netns_inode(host.netns)
    try:
        if inode is None or os.readlink(f"/proc/{pid}/ns/net") != f"net:[{inode}]":
            return None
    except OSError:
        return None
    return pid if netns.process_alive(pid) else None


def start(paths: LabPaths, host: Host, timeout: float = 10.0) -> int:
    """Boot a Mac: a new PID/mount/UTS/IPC namespace in its netns whose PID 1 ends up as launchd."""
    pid_file = paths.pid_file(host.name)
    pid_file.unlink(missing_ok=True)
    binds = paths_hidden_in_host(interpreter_paths())
    argv = [
        "ip", "netns", "exec", host.netns,
        "unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--propagation", "private", "--",
        sys.executable, "-I", "-m", "pfguard_lab.hostinit",
        "--name", host.name, "--root", str(paths.root(host.name)), "--pid-file", str(pid_file),
        *[f"--bind={path}" for path in binds],
    ]  # fmt: skip
    with open(paths.console(host.name), "ab") as console:
        console.write(f"--- boot {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        console.flush()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=console, stderr=console, start_new_session=True, close_fds=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = read_pid(paths, host)
        if pid is not None:
            return pid
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise HostError(f"{host.name}: did not boot; see {paths.console(host.name)}")


def stop(paths: LabPaths, host: Host, grace: float = 4.0, timeout: float = 5.0) -> None:
    """Power off. SIGTERM to PID 1 lets launchd stop its jobs as a macOS shutdown does (it caps
    that at ~2 s); SIGKILL after `grace`. When PID 1 dies the kernel kills the rest of the PID
    namespace, and the host's mount namespace, with its per-boot mounts (/proc, /dev, /run, /tmp),
    goes away with its last process. Anything else left in the host's netns is killed too."""
    pid = read_pid(paths, host)
    if pid is not None:
        if grace > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while netns.process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        netns.kill_and_wait([pid], timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leftovers = netns.pids_in_netns(host.netns)
        if not leftovers:
            break
        if time.monotonic() > deadline - timeout / 2:
            netns.kill_and_wait(leftovers, 1.0)
        time.sleep(0.02)
    paths.pid_file(host.name).unlink(missing_ok=True)


def reset_network_state(host: Host) -> None:
    """What the kernel forgets at reboot besides PF: packet filter rules and tracked connections."""
    netns.run_in_netns(host.netns, ["nft", "flush", "ruleset"])
    netns.run_in_netns(host.netns, ["conntrack", "-F"], check=False)  # exits 1 when already empty


def sshd_answers(address: str, timeout: float = 1.0) -> bool:
    """True if a TCP connection to port 22 succeeds and the server sends its SSH banner."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_sshd(paths: LabPaths, host: Host, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sshd_answers(host.address, timeout=1.0):
            return
        if read_pid(paths, host) is None:
            raise HostError(f"{host.name}: PID 1 died during boot; see {paths.console(host.name)}")
        time.sleep(0.05)
    raise HostError(f"{host.name}: sshd not answering after {timeout:.0f}s; see {paths.console(host.name)}")


def reboot(paths: LabPaths, host: Host, timeout: float = 30.0) -> None:
    stop(paths, host)
    reset_network_state(host)
    start(paths, host)
    wait_for_sshd(paths, host, timeout)


def os_update(paths: LabPaths, host: Host, timeout: float = 30.0) -> None:
    """A macOS update: stock /etc/pf.conf and /etc/pf.anchors/com.apple (and the sealed system
    volume's daemons) come back, Server.app re-adds its anchor, then the Mac reboots."""
    stop(paths, host)
    root = paths.root(host.name)
    install_stock_pf_files(root, host)
    install_system_files(root, host)
    reset_network_state(host)
    start(paths, host)
    wait_for_sshd(paths, host, timeout)
