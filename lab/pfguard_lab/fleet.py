# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab as a whole: fleet spec, keys, bring-up in parallel, inventory, status and teardown."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from pfguard_lab import fail2ban_dist, netns
from pfguard_lab import host as hostmod
from pfguard_lab.host import Host, LabPaths

DEFAULT_LAB_DIR = "/run/pfguard-lab"
DEFAULT_SPEC = hostmod.DATA_DIR / "fleet.yml"
FIRST_MAC_OFFSET = 11  # Macs are 198.51.100.11, .12, ... (and 2001:db8:100::11, ::12, ...)
# Controller, Macs and trusted; not attacker (IPv4: the /24's lower half; IPv6: the link's first /64,
# the attacker is in another /64 of the link's /56). See docs/lab-design.md "Host model".
TRUSTED_NETWORKS = ["198.51.100.0/25", "2001:db8:100::/64"]
HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
ARCHES = ("arm64", "x86_64")
WRONG_PASSWORD = "pfguard-lab-wrong-password"
# The controller's read-only git server for the Macs (pull mode, docs/pull-mode.md): git's own port.
GIT_PORT = 9418


class LabError(RuntimeError):
    pass


class HostNotRunning(LabError):
    """The host is in the lab but its init process is gone (stopped, or in the middle of a reboot)."""


# What a root shell on a Mac starts with: macOS's /etc/paths, root's home.
MAC_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def lab_dir() -> Path:
    return Path(os.environ.get("PFGUARD_LAB_DIR") or DEFAULT_LAB_DIR)


# --- fleet spec ------------------------------------------------------------------------------


def _mac_profile(entry: dict, where: str) -> dict:
    missing = [key for key in ("name", "os_version", "build", "arch", "brew_prefix") if key not in entry]
    if missing:
        raise LabError(f"{where}: missing {', '.join(missing)}")
    if entry["arch"] not in ARCHES:
        raise LabError(f"{where}: arch must be one of {', '.join(ARCHES)}")
    if not str(entry["brew_prefix"]).startswith("/"):
        raise LabError(f"{where}: brew_prefix must be an absolute path")
    return {
        "os_version": str(entry["os_version"]),
        "build": str(entry["build"]),
        "arch": entry["arch"],
        "brew_prefix": str(entry["brew_prefix"]),
        "server_app": bool(entry.get("server_app", False)),
        # The Homebrew formula's version on this Mac (emulators/brew.py; fail2ban_dist.VERSIONS).
        "fail2ban_version": _fail2ban_version(entry.get("fail2ban_version", fail2ban_dist.DEFAULT_VERSION), where),
    }


def _fail2ban_version(value: object, where: str) -> str:
    try:
        return fail2ban_dist.check_version(str(value) if isinstance(value, (str, float)) else value)
    except fail2ban_dist.DistError as exc:
        raise LabError(f"{where}: {exc}") from None


def _mirror6(network6: ipaddress.IPv6Network, address: str) -> str:
    """The IPv6 address whose last group reads like the IPv4 address's last octet (.11 -> ::11)."""
    octet = str(ipaddress.ip_address(address)).rsplit(".", 1)[-1]
    return str(network6.network_address + int(octet, 16))


def load_spec(path: str | os.PathLike | None = None, mac_count: int | None = None) -> tuple[list[Host], str]:
    """Hosts of a fleet spec (see data/fleet.yml) and the controller's IPv4 address with prefix."""
    hosts, controller, _controller6 = read_spec(path, mac_count)
    return hosts, controller


def read_spec(
    path: str | os.PathLike | None = None, mac_count: int | None = None
) -> tuple[list[Host], str, str | None]:
    """Hosts of a fleet spec (see data/fleet.yml) and the controller's IPv4 and IPv6 addresses with
    prefix (the IPv6 one None when the spec has no `network6`: an IPv4-only lab)."""
    spec_path = Path(path) if path else DEFAULT_SPEC
    try:
        data = yaml.safe_load(spec_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"cannot read fleet spec {spec_path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("macs"), list) or not data["macs"]:
        raise LabError(f"{spec_path}: needs a non-empty 'macs' list")
    network = ipaddress.ip_network(str(data.get("network", "198.51.100.0/24")))
    controller = ipaddress.ip_address(str(data.get("controller", network.network_address + 1)))
    try:
        network6 = ipaddress.IPv6Network(str(data["network6"])) if data.get("network6") else None
        controller6 = (
            ipaddress.IPv6Address(str(data.get("controller6", network6.network_address + 1))) if network6 else None
        )
    except ValueError as exc:
        raise LabError(f"{spec_path}: network6/controller6: {exc}") from exc
    profiles = [(entry, _mac_profile(entry, f"{spec_path}: macs[{i}]")) for i, entry in enumerate(data["macs"])]

    macs: list[tuple[str, str | None, dict]] = []
    if mac_count is not None:
        if mac_count < 1:
            raise LabError("--hosts must be at least 1")
        for number in range(1, mac_count + 1):
            macs.append((f"mac{number}", None, profiles[(number - 1) % len(profiles)][1]))
    else:
        macs = [(str(entry["name"]), entry.get("address"), profile) for entry, profile in profiles]

    # Macs without an address of their own get the next free one from FIRST_MAC_OFFSET on, passing over the
    # clients' (a fleet of 40 would otherwise reach the trusted host's .50).
    taken = {str(entry.get("address")) for entry in data.get("clients") or []} | {str(controller)}
    taken |= {str(address) for _, address, _ in macs if address}
    free = (str(network.network_address + offset) for offset in range(FIRST_MAC_OFFSET, network.num_addresses - 1))
    free = (candidate for candidate in free if candidate not in taken)
    hosts: list[Host] = []
    for name, address, profile in macs:
        address = str(address or next(free, None) or "")
        if not address:
            raise LabError(f"{name}: no free address left in {network}")
        address6 = _mirror6(network6, address) if network6 else None
        hosts.append(Host(name=name, role=hostmod.MAC_ROLE, address=address, index=len(hosts) + 1,
                          address6=address6, **profile))  # fmt: skip
    for entry in data.get("clients") or []:
        if "name" not in entry or "address" not in entry:
            raise LabError(f"{spec_path}: each client needs name and address")
        name = str(entry["name"])
        address6 = None
        if network6:
            address6 = str(entry.get("address6") or _mirror6(network6, str(entry["address"])))
        hosts.append(Host(name=name, role=str(entry.get("role", name)), address=str(entry["address"]),
                          index=len(hosts) + 1, address6=address6))  # fmt: skip

    seen_names, seen_addresses = set(), {str(controller)}
    seen_addresses6 = {controller6} if controller6 else set()
    for host in hosts:
        if not HOST_NAME.match(host.name):
            raise LabError(f"host name {host.name!r}: use 1-16 of a-z, 0-9, '-', starting with a letter")
        if host.name in seen_names:
            raise LabError(f"host name {host.name} used twice")
        if ipaddress.ip_address(host.address) not in network:
            raise LabError(f"{host.name}: {host.address} is outside {network}")
        if host.address in seen_addresses:
            raise LabError(f"{host.name}: address {host.address} already taken (too many hosts for {network}?)")
        seen_names.add(host.name)
        seen_addresses.add(host.address)
        if host.address6 is not None:
            try:
                address6 = ipaddress.IPv6Address(host.address6)
            except ValueError as exc:
                raise LabError(f"{host.name}: address6 {host.address6!r}: {exc}") from exc
            if address6 not in network6:
                raise LabError(f"{host.name}: {host.address6} is outside {network6}")
            if address6 in seen_addresses6:
                raise LabError(f"{host.name}: address {host.address6} already taken")
            seen_addresses6.add(address6)
    controller6_cidr = f"{controller6}/{network6.prefixlen}" if network6 else None
    return hosts, f"{controller}/{network.prefixlen}", controller6_cidr


# --- the lab -----------------------------------------------------------------------------------


class Lab:
    def __init__(self, base: str | os.PathLike | None = None):
        self.paths = LabPaths(base or lab_dir())

    # state

    def state(self) -> dict | None:
        try:
            return json.loads(self.paths.state.read_text())
        except (OSError, ValueError):
            return None

    def hosts(self) -> list[Host]:
        state = self.state()
        if state is None:
            raise LabError(f"no lab is up (no {self.paths.state}); run `pfguard-lab up`")
        return [Host.from_json(item) for item in state["hosts"]]

    def host(self, name: str) -> Host:
        hosts = self.hosts()
        for host in hosts:
            if host.name == name:
                return host
        raise LabError(f"no host {name!r} in the lab (hosts: {', '.join(h.name for h in hosts)})")

    def mac(self, name: str) -> Host:
        host = self.host(name)
        if not host.is_mac:
            raise LabError(f"{name} is a {host.role} client, not a Mac")
        return host

    def exec_argv(self, name: str, command: list[str]) -> tuple[list[str], dict[str, str] | None]:
        """The command line that runs `command` as root inside host `name`, and its environment (None:
        the caller's). A Mac: all of its namespaces (nsenter), macOS's PATH; a client: its network namespace."""
        host = self.host(name)
        if not host.is_mac:
            return ["ip", "netns", "exec", host.netns, *command], None
        pid = hostmod.read_pid(self.paths, host)
        if pid is None:
            raise HostNotRunning(f"{host.name} is not running")
        env = {
            "PATH": MAC_PATH,
            "HOME": hostmod.ROOT_HOME,
            "USER": "root",
            "LOGNAME": "root",
            "SHELL": "/bin/sh",
            "LANG": "C.UTF-8",
            "TERM": os.environ.get("TERM", "dumb"),
        }
        namespaces = ["--mount", "--uts", "--ipc", "--net", "--pid", "--root", "--wd"]
        return ["nsenter", f"--target={pid}", *namespaces, "--", *command], env

    def leftovers(self) -> list[str]:
        found = [f"netns {name}" for name in netns.netns_names()]
        found += [f"link {name}" for name in netns.link_names()]
        found += [f"mount {point}" for point in netns.mounts_under(self.paths.base)]
        if self.paths.base.is_dir() and any(self.paths.base.iterdir()):
            found.append(f"dir {self.paths.base}")
        return found

    # up

    def _generate_keys(self) -> None:
        self.paths.keys.mkdir(mode=0o700, parents=True)
        keys = {
            self.paths.ansible_key: hostmod.ANSIBLE_KEY_COMMENT,
            self.paths.holder_key: hostmod.HOLDER_COMMENT,
            self.paths.host_key: "pfguard-lab-host",
        }
        procs = [
            subprocess.Popen(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            for path, comment in keys.items()
        ]  # fmt: skip
        for proc in procs:
            _, err = proc.communicate(timeout=30)
            if proc.returncode != 0:
                raise LabError(f"ssh-keygen failed: {err.decode().strip()}")

    def _generate_admin_password(self) -> str:
        """admin's password on every Mac (sudo asks for it); kept in the keys dir, root only."""
        password = secrets.token_urlsafe(18)
        fd = os.open(self.paths.admin_password, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        return hostmod.hash_password(password)

    def _bring_up_host(
        self, host: Host, fleet: list[Host], password_hash: str, sudo_nopasswd: bool, prefix6: int | None
    ) -> None:
        host_dir = self.paths.host_dir(host.name)
        host_dir.mkdir(parents=True)
        address6 = f"{host.address6}/{prefix6}" if host.address6 and prefix6 else None
        netns.create_host_netns(host.netns, host.veth, host.ifname, f"{host.address}/24", address6)
        if host.is_mac:
            root = hostmod.mount_disk(self.paths, host.name)
            hostmod.provision_mac(root, host, self.paths, fleet, password_hash, sudo_nopasswd)
            try:
                hostmod.start(self.paths, host)
            except hostmod.HostError as exc:
                raise LabError(f"{exc}\n{self.console_tail(host)}") from exc

    def check_can_start(self) -> None:
        """Refuse to start a lab over another one (or over a crashed one's leftovers)."""
        if self.state() is not None:
            raise LabError(f"a lab is already up ({self.paths.state} exists); run `pfguard-lab down` first")
        leftovers = self.leftovers()
        if leftovers:
            raise LabError(f"leftovers of an earlier lab: {', '.join(leftovers)}; run `pfguard-lab down` first")
        missing = hostmod.check_emulators()
        if missing:
            raise LabError("the lab cannot boot a Mac without: " + ", ".join(missing))

    def up(
        self, hosts: list[Host], controller_cidr: str, timeout: float = 60.0, log=print, sudo_nopasswd: bool = False,
        controller6_cidr: str | None = None,
    ) -> Path:
        """Bring the fleet up. `sudo_nopasswd`: group admin may sudo without a password (default: the
        admin's password, as on macOS; the inventory hands it to Ansible). `controller6_cidr`: the
        controller's IPv6 address with the link's prefix length (None: an IPv4-only lab)."""
        self.check_can_start()
        started = time.monotonic()
        old_umask = os.umask(0o022)
        try:
            self.paths.base.mkdir(mode=0o755, parents=True, exist_ok=True)
            self.paths.hosts.mkdir(mode=0o755)
            self.paths.control_dir.mkdir(mode=0o700)
            # State first, so that `down` and `status` know about a half-built lab.
            self.paths.state.write_text(
                json.dumps(
                    {"created": time.time(), "sudo_nopasswd": sudo_nopasswd, "hosts": [h.to_json() for h in hosts]},
                    indent=2,
                ) + "\n"
            )  # fmt: skip
            self._generate_keys()
            password_hash = self._generate_admin_password()
            self.paths.askpass.write_text(f"#!/bin/sh\necho '{WRONG_PASSWORD}'\n")
            self.paths.askpass.chmod(0o755)
            netns.create_bridge(controller_cidr, controller6_cidr)
            prefix6 = int(controller6_cidr.rsplit("/", 1)[1]) if controller6_cidr else None
            with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
                args = (hosts, password_hash, sudo_nopasswd, prefix6)
                for future in [pool.submit(self._bring_up_host, host, *args) for host in hosts]:
                    future.result()
            self.wait_ready([h for h in hosts if h.is_mac], timeout)
        finally:
            os.umask(old_umask)
        self.write_inventory(hosts, sudo_nopasswd)
        macs = sum(1 for h in hosts if h.is_mac)
        clients = len(hosts) - macs
        log(f"pfguard-lab: {macs} Mac{'s' * (macs != 1)} and {clients} client{'s' * (clients != 1)} up "
            f"in {time.monotonic() - started:.1f}s")
        return self.paths.inventory

    def wait_ready(self, macs: list[Host], timeout: float) -> None:
        """Until every Mac's sshd accepts a connection (and sends its banner)."""
        deadline = time.monotonic() + timeout
        pending = list(macs)
        while pending:
            with ThreadPoolExecutor(max_workers=min(16, len(pending))) as pool:
                answers = list(pool.map(lambda h: hostmod.sshd_answers(h.address, 0.5), pending))
            pending = [h for h, ok in zip(pending, answers) if not ok]
            for host in pending:
                if hostmod.read_pid(self.paths, host) is None:
                    raise LabError(f"{host.name}: PID 1 died during boot\n{self.console_tail(host)}")
            if pending and time.monotonic() > deadline:
                names = ", ".join(h.name for h in pending)
                raise LabError(f"sshd not answering after {timeout:.0f}s on {names}\n{self.console_tail(pending[0])}")
            if pending:
                time.sleep(0.05)

    def console_tail(self, host: Host, lines: int = 15) -> str:
        try:
            text = self.paths.console(host.name).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"({host.name}: no console log)"
        return f"--- {host.name} console (last {len(text)} lines):\n" + "\n".join(text)

    def inventory(self, hosts: list[Host], sudo_nopasswd: bool = False) -> dict:
        """The lab's Ansible inventory: group `macs`, reached as admin with the lab's key, root by sudo.

        The sudo password is not in the inventory: a lookup reads it from the root-only file at run
        time. With `sudo_nopasswd` there is none to give."""
        macs = {
            h.name: {
                "ansible_host": h.address,
                "lab_os_version": h.os_version,
                "lab_arch": h.arch,
                "lab_brew_prefix": h.brew_prefix,
                "lab_server_app": h.server_app,
            }
            for h in hosts
            if h.is_mac
        }
        become = {"ansible_become": True, "ansible_become_method": "sudo"}
        if not sudo_nopasswd:
            become["ansible_become_password"] = (
                f"{{{{ lookup('ansible.builtin.file', {str(self.paths.admin_password)!r}) }}}}"
            )
        group_vars = {
            # As on a real Mac: log in as the admin user, become root with sudo.
            "ansible_user": hostmod.ADMIN_USER,
            "ansible_ssh_private_key_file": str(self.paths.ansible_key),
            **become,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            "ansible_python_interpreter": "/usr/bin/python3",
            # ControlMaster sockets live in the lab dir, so `down` can end them with the lab.
            "ansible_control_path_dir": str(self.paths.control_dir),
            # Modules over the ssh session's stdin: fewer round trips, a 20-Mac fleet answers faster.
            "ansible_pipelining": True,
            "pfguard_trusted_networks": TRUSTED_NETWORKS,
            # Ansible's facts say Linux in the lab; the roles' documented override.
            "pfguard_assume_darwin": True,
        }
        return {"all": {"children": {"macs": {"hosts": macs, "vars": group_vars}}}}

    def write_inventory(self, hosts: list[Host], sudo_nopasswd: bool = False) -> Path:
        text = "# pfguard lab inventory, written by `pfguard-lab up`\n"
        text += yaml.safe_dump(self.inventory(hosts, sudo_nopasswd), sort_keys=False, default_flow_style=False)
        self.paths.inventory.write_text(text)
        return self.paths.inventory

    # the controller's git server

    @property
    def git_dir(self) -> Path:
        """Repositories the controller serves to the Macs (git://<controller>/<name>)."""
        return self.paths.base / "git"

    @property
    def git_pid_file(self) -> Path:
        return self.paths.base / "git-daemon.pid"

    def controller_address(self) -> str:
        """The controller's IPv4 address on the lab bridge."""
        shown = json.loads(netns.run(["ip", "-j", "-4", "addr", "show", "dev", netns.BRIDGE]))
        for link in shown:
            for info in link.get("addr_info", []):
                if info.get("family") == "inet":
                    return info["local"]
        raise LabError(f"the lab bridge {netns.BRIDGE} has no IPv4 address; is the lab up?")

    def serve_git(self, timeout: float = 10.0) -> str:
        """Serve the repositories under `git_dir` read-only (git daemon --export-all, no push) on the
        controller's lab address only, so the traffic stays on the bridge; `down` ends the server.
        Returns the base URL (git://<controller>/); starting it twice keeps the first."""
        if self.state() is None:
            raise LabError(f"no lab is up (no {self.paths.state}); run `pfguard-lab up`")
        address = self.controller_address()
        url = f"git://{address}/"
        pid = self._git_daemon_pid()
        if pid is not None:
            return url
        self.git_dir.mkdir(mode=0o755, exist_ok=True)
        with open(self.paths.base / "git-daemon.log", "ab") as log:
            proc = subprocess.Popen(
                ["git", "daemon", "--export-all", "--reuseaddr", "--informative-errors",
                 f"--base-path={self.git_dir}", f"--listen={address}", f"--port={GIT_PORT}", str(self.git_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        self.git_pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((address, GIT_PORT), timeout=0.5):
                    return url
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    self._end_git_daemon()
                    raise LabError(f"git daemon did not start on {address}:{GIT_PORT} "
                                   f"(see {self.paths.base / 'git-daemon.log'})") from None  # fmt: skip
                time.sleep(0.05)

    def _git_daemon_pid(self) -> int | None:
        try:
            pid = int(self.git_pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                alive = b"daemon" in handle.read()
        except OSError:
            alive = False
        return pid if alive else None

    def _end_git_daemon(self) -> bool:
        """End the git server and the upload-packs it forked (its session); True when one ran."""
        pid = self._git_daemon_pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while netns.process_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        return True

    # status

    def status(self) -> list[dict]:
        rows = []
        for host in self.hosts():
            row = {"host": host.name, "role": host.role, "address": host.address, "address6": host.address6}
            if host.is_mac:
                pid = hostmod.read_pid(self.paths, host)
                row["state"] = "running" if pid else "stopped"
                row["sshd"] = "answering" if pid and hostmod.sshd_answers(host.address, 0.5) else "-"
            else:
                row["state"] = "running" if netns.netns_inode(host.netns) else "missing"
                row["sshd"] = "-"
            rows.append(row)
        return rows

    # down

    def _end_control_masters(self) -> None:
        if not self.paths.control_dir.is_dir():
            return
        for sock in self.paths.control_dir.iterdir():
            netns.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "pfguard-lab"], check=False, timeout=5)

    def down(self) -> list[str]:
        """Remove everything a lab made, also after a crash; returns what was removed."""
        removed: list[str] = []
        names = netns.netns_names()
        pids = sorted({pid for name in names for pid in netns.pids_in_netns(name)})
        if pids:
            alive = netns.kill_and_wait(pids, timeout=5.0)
            if alive:
                raise LabError(f"processes {alive} survived SIGKILL")
            removed.append(f"{len(pids)} processes")
        self._end_control_masters()
        if self._end_git_daemon():
            removed.append("git daemon")
        for name in names:
            netns.delete_netns(name)
            removed.append(f"netns {name}")
        for link in netns.link_names():
            netns.delete_link(link)
            removed.append(f"link {link}")
        mounts = netns.mounts_under(self.paths.base)
        failed = netns.unmount_all_under(self.paths.base)
        if failed:
            raise LabError(f"could not unmount {', '.join(failed)}")
        removed += [f"mount {point}" for point in mounts]
        if self.paths.base.exists():
            _remove_tree(self.paths.base)
            removed.append(f"dir {self.paths.base}")
        # The kernel tears namespaces (and their veth peers) down asynchronously.
        deadline = time.monotonic() + 3
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.leftovers():
            raise LabError(f"down left behind: {', '.join(self.leftovers())}")
        return removed


def _remove_tree(base: Path) -> None:
    """rm -r that refuses to cross into another filesystem (a leftover mount would mean deleting
    through an overlay or a bind mount of the real root)."""
    device = base.lstat().st_dev
    for directory, subdirs, _files in os.walk(base):
        for name in subdirs:
            path = Path(directory, name)
            if not path.is_symlink() and path.lstat().st_dev != device:
                raise LabError(f"{path} is on another filesystem; not removing {base}")
    shutil.rmtree(base)
