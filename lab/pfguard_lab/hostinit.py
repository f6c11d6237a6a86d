# SPDX-License-Identifier: GPL-3.0-or-later
"""A lab Mac's first process: build the host's filesystem view, then exec launchd as PID 1.

Started by the controller as
`ip netns exec pfglab-X unshare --pid --fork --mount --uts --ipc --propagation private --
<python> -I -m pfguard_lab.hostinit --name X --root <overlay> --pid-file <file> [--bind PATH]...`,
so it is PID 1 of a fresh PID namespace with a private copy of the controller's mounts, in which
`--root` is the host's overlay (lower `/`, upper on the host's tmpfs "disk"). Everything mounted
here is per-boot: it lives in this mount namespace and disappears when PID 1 dies.
"""

from __future__ import annotations

import argparse
import grp
import os
import stat
from pathlib import Path

from pfguard_lab import netns

INIT = "/sbin/launchd"
INIT_ENV = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}  # launchd's default PATH for daemons
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def _tty_gid() -> int:
    try:
        return grp.getgrnam("tty").gr_gid
    except KeyError:
        return 5


def _mkdir(path: Path, mode: int) -> None:
    path.mkdir(exist_ok=True)
    path.chmod(mode)


def setup_dev(dev: Path) -> None:
    """A small /dev: tmpfs with the machine's basic devices bind-mounted, own devpts and /dev/shm.

    /dev/log is not made here: the host's logd binds it at boot.
    """
    netns.mount("tmpfs", dev, "tmpfs", netns.MS_NOSUID, "mode=755,size=1m")
    for name in DEVICES:
        (dev / name).touch(mode=0o666)
        netns.bind_mount(f"/dev/{name}", dev / name)
    _mkdir(dev / "pts", 0o755)
    netns.mount(
        "devpts", dev / "pts", "devpts", netns.MS_NOSUID | netns.MS_NOEXEC,
        f"newinstance,ptmxmode=0666,mode=0620,gid={_tty_gid()}",
    )
    os.symlink("pts/ptmx", dev / "ptmx")
    _mkdir(dev / "shm", 0o1777)
    netns.mount("tmpfs", dev / "shm", "tmpfs", netns.MS_NOSUID | netns.MS_NODEV, "mode=1777,size=64m")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, dev / name)
    # macOS has /dev/pf (crw------- root:wheel); tools test for it. The lab's PF is emulated, so
    # the node is a null device that only root may open.
    os.mknod(dev / "pf", stat.S_IFCHR | 0o600, os.makedev(1, 3))


def setup_root(root: Path, binds: list[str]) -> None:
    netns.mount("proc", root / "proc", "proc", netns.MS_NOSUID | netns.MS_NODEV | netns.MS_NOEXEC)
    netns.mount(
        "sysfs", root / "sys", "sysfs", netns.MS_RDONLY | netns.MS_NOSUID | netns.MS_NODEV | netns.MS_NOEXEC
    )
    setup_dev(root / "dev")
    # Per-boot tmpfs: Debian's /var/run is a symlink to /run, so this is also /var/run (PF kernel
    # state, pid files, launchd's socket).
    netns.mount("tmpfs", root / "run", "tmpfs", netns.MS_NOSUID | netns.MS_NODEV, "mode=755,size=64m")
    _mkdir(root / "run" / "sshd", 0o755)  # sshd's privilege-separation directory
    _mkdir(root / "run" / "lock", 0o1777)
    netns.mount("tmpfs", root / "tmp", "tmpfs", netns.MS_NOSUID | netns.MS_NODEV, "mode=1777,size=256m")
    # The lab's interpreter and package must stay visible where the per-boot mounts (or another
    # filesystem, which the overlay's lower `/` does not include) would hide them.
    for path in binds:
        target = root / path.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        netns.bind_mount(path, target, recursive=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pfguard-lab-hostinit")
    parser.add_argument("--name", required=True)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--pid-file", required=True, type=Path)
    parser.add_argument("--bind", action="append", default=[])
    args = parser.parse_args(argv)

    if os.getpid() != 1:
        parser.error("must run as PID 1 of a new PID namespace")
    # Until our own /proc is mounted, /proc is the parent namespace's, so /proc/self is our pid as
    # the controller sees it: the lab's handle on this host (reboot kills it).
    global_pid = os.readlink("/proc/self")
    tmp = args.pid_file.with_name(args.pid_file.name + ".tmp")
    tmp.write_text(global_pid + "\n")
    tmp.replace(args.pid_file)

    setup_root(args.root, args.bind)
    netns.sethostname(args.name)
    os.chdir(args.root)
    netns.pivot_root(".", ".")
    netns.umount(".")  # the old root, stacked on top by pivot_root(".", ".")
    os.chdir("/")
    os.execve(INIT, [INIT], INIT_ENV)
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
