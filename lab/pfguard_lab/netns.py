# SPDX-License-Identifier: GPL-3.0-or-later
"""Linux plumbing for the lab: commands, mounts, network namespaces, the bridge, processes.

Everything here runs as root in the controller (the root namespaces) except the small syscall
wrappers that hostinit uses inside a host. Commands are argv lists; mounts use mount(2) directly.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import re
import signal
import subprocess
import time
from pathlib import Path

PREFIX = "pfglab"
BRIDGE = "pfglab0"
NETNS_DIR = Path("/run/netns")

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2
CLONE_NEWNET = 0x40000000

# pivot_root(2) has no glibc wrapper.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class CommandError(RuntimeError):
    """A command the lab needs failed; the message carries its argv and stderr."""


def run(argv: list[str], *, check: bool = True, input_text: str | None = None, timeout: float = 30) -> str:
    """Run argv (never through a shell) and return stdout; raise CommandError on failure."""
    try:
        proc = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise CommandError(f"{argv[0]}: command not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"{' '.join(argv)}: timed out after {timeout}s") from exc
    if check and proc.returncode != 0:
        raise CommandError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source: str, target: str | os.PathLike, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    result = _libc.mount(
        source.encode(),
        os.fsencode(target),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    _check(result, f"mount {source} on {target}")


def bind_mount(source: str | os.PathLike, target: str | os.PathLike, recursive: bool = False) -> None:
    mount(os.fsdecode(source), target, None, MS_BIND | (MS_REC if recursive else 0))


def umount(target: str | os.PathLike, detach: bool = True) -> None:
    _check(_libc.umount2(os.fsencode(target), MNT_DETACH if detach else 0), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unsupported architecture {platform.machine()}")
    _check(_libc.syscall(number, new_root.encode(), put_old.encode()), "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def enter_netns(name: str) -> None:
    """Move the calling (single-threaded) process into netns `name`; children inherit it."""
    fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {name}")
    finally:
        os.close(fd)


# --- mounts ---------------------------------------------------------------------------------


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points of the caller's mount namespace, in mount order."""
    points = []
    with open(mountinfo) as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 4:
                points.append(_unescape_mountinfo(fields[4]))
    return points


def mounts_under(directory: str | os.PathLike) -> list[str]:
    """Mount points at or below `directory`, deepest first (the order to unmount them in)."""
    base = os.path.realpath(directory)
    found = [p for p in mount_points() if p == base or p.startswith(base.rstrip("/") + "/")]
    return sorted(set(found), key=lambda p: (p.count("/"), len(p)), reverse=True)


def mount_point_of(path: str) -> str:
    """The mount point of the filesystem holding `path` (longest matching mount point)."""
    real = os.path.realpath(path)
    best = "/"
    for point in mount_points():
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best = point
    return best


def unmount_all_under(directory: str | os.PathLike) -> list[str]:
    """Lazily unmount everything at or below `directory`; returns what could not be unmounted."""
    failed = []
    for _ in range(3):  # stacked mounts on one point need one pass each
        failed = []
        for point in mounts_under(directory):
            try:
                umount(point)
            except OSError:
                failed.append(point)
        if not mounts_under(directory):
            return []
    return failed


# --- network namespaces and links -----------------------------------------------------------


def netns_names(prefix: str = PREFIX) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(entry.name for entry in NETNS_DIR.iterdir() if entry.name.startswith(prefix))


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return None


def link_names(prefix: str = PREFIX) -> list[str]:
    """Interfaces of the root netns named with the lab prefix (bridge and host-side veths)."""
    names = []
    for entry in Path("/sys/class/net").iterdir():
        if entry.name.startswith(prefix):
            names.append(entry.name)
    return sorted(names)


def addr_add_lines(ifname: str, address_cidr: str, address6_cidr: str | None = None) -> str:
    """`ip -batch` lines giving `ifname` its IPv4 address and, if any, its IPv6 address. The IPv6 one is
    `nodad`: usable at once, without duplicate address detection's delay (the lab's addresses are unique
    by construction), so nothing races address setup."""
    lines = f"addr add {address_cidr} dev {ifname}\n"
    if address6_cidr:
        lines += f"addr add {address6_cidr} dev {ifname} nodad\n"
    return lines


def create_bridge(address_cidr: str, address6_cidr: str | None = None) -> None:
    """The lab's bridge with the controller's addresses. Multicast snooping is off: the bridge floods
    IPv6 neighbour discovery to every port instead of waiting to learn MLD listeners."""
    run(["ip", "link", "add", BRIDGE, "type", "bridge", "mcast_snooping", "0"])
    run(["ip", "-batch", "-"], input_text=addr_add_lines(BRIDGE, address_cidr, address6_cidr))
    run(["ip", "link", "set", BRIDGE, "up"])


def create_host_netns(
    netns: str, veth: str, inner_ifname: str, address_cidr: str, address6_cidr: str | None = None
) -> None:
    """netns with `inner_ifname` (address_cidr, and address6_cidr if given) whose peer `veth` is a
    bridge port; no default route (every lab address is on the link)."""
    run(["ip", "netns", "add", netns])
    run(
        ["ip", "-batch", "-"],
        input_text=(
            f"link add {veth} type veth peer name {inner_ifname} netns {netns}\n"
            f"link set {veth} master {BRIDGE} up\n"
        ),
    )
    run(
        ["ip", "-n", netns, "-batch", "-"],
        input_text=(
            addr_add_lines(inner_ifname, address_cidr, address6_cidr)
            + f"link set {inner_ifname} up\nlink set lo up\n"
        ),
    )


def delete_netns(netns: str) -> None:
    run(["ip", "netns", "delete", netns], check=False)


def delete_link(name: str) -> None:
    run(["ip", "link", "delete", name], check=False)


def run_in_netns(netns: str, argv: list[str], check: bool = True) -> str:
    return run(["ip", "netns", "exec", netns, *argv], check=check)


# --- processes ------------------------------------------------------------------------------


def pids_in_netns(netns: str) -> list[int]:
    """Live processes whose network namespace is `netns` (what `ip netns pids` reports)."""
    inode = netns_inode(netns)
    if inode is None:
        return []
    wanted = f"net:[{inode}]"
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/net") == wanted:
                pids.append(int(entry))
        except OSError:
            continue  # gone, or a zombie (no namespaces left)
    return sorted(pids)


def process_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def kill_and_wait(pids: list[int], timeout: float = 5.0) -> list[int]:
    """SIGKILL pids and wait for them to die; returns the ones still alive after timeout."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if process_alive(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [pid for pid in alive if process_alive(pid)]
    return alive
