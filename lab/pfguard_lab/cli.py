# SPDX-License-Identifier: GPL-3.0-or-later
"""`pfguard-lab`: bring the lab of emulated Macs up and down, look inside hosts, attack them.

Exit codes: 0 success; 1 failure (or the probe/hold outcome documented per command); 2 usage
errors and "this machine cannot host a lab"; `exec` passes the command's own code through
(125 when the host is not running).
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime

from pfguard_lab import fleet, netns, reachability
from pfguard_lab import host as hostmod
from pfguard_lab.fleet import HostNotRunning, Lab, LabError

PROG = "pfguard-lab"
EXIT_CANNOT_HOST = 2
EXIT_EXEC_FAILED = 125
REQUIRED_TOOLS = ("ip", "nft", "conntrack", "unshare", "nsenter", "ssh", "ssh-keygen", "openssl")
SSH_QUIET = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
HOLD_COMMAND = "while :; do echo tick; sleep 0.2; done"
HOLD_SILENCE = 1.0  # seconds without a tick that count as a cut


def _err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def cannot_host_reasons() -> list[str]:
    """Why this machine cannot host a lab (empty when it can)."""
    if os.geteuid() != 0:
        return ["must run as root (namespaces, mounts and nftables need it)"]
    reasons = [f"{tool} not found on PATH" for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if shutil.which("ip") and subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        reasons.append("`ip netns` does not work (iproute2 without netns support?)")
    if not os.access("/usr/sbin/sshd", os.X_OK):
        reasons.append("no sshd at /usr/sbin/sshd (install openssh-server)")
    if not os.access("/usr/bin/sudo", os.X_OK):
        reasons.append("no sudo at /usr/bin/sudo (install sudo): the Macs' admin becomes root with it")
    try:
        with open("/proc/filesystems") as handle:
            filesystems = handle.read().split()
    except OSError:
        filesystems = []
    if "overlay" not in filesystems and shutil.which("modprobe"):
        subprocess.run(["modprobe", "-q", "overlay"], capture_output=True)
        with open("/proc/filesystems") as handle:
            filesystems = handle.read().split()
    if "overlay" not in filesystems:
        reasons.append("the kernel has no overlayfs")
    # A host's disk is an overlay whose lower layer is the root filesystem alone.
    for path in ("/usr", "/etc"):
        if netns.mount_point_of(path) != "/":
            reasons.append(f"{path} is not on the root filesystem (the hosts' overlay would not show it)")
    return reasons


def _require_root() -> int | None:
    if os.geteuid() != 0:
        _err("this machine cannot host a lab: must run as root")
        return EXIT_CANNOT_HOST
    return None


# --- commands ----------------------------------------------------------------------------------


def cmd_up(args) -> int:
    reasons = cannot_host_reasons()
    if reasons:
        _err("this machine cannot host a lab: " + "; ".join(reasons))
        return EXIT_CANNOT_HOST
    lab = Lab()
    hosts, controller, controller6 = fleet.read_spec(args.spec, args.hosts)
    lab.check_can_start()  # before the try: a refused `up` must not tear down the running lab
    try:
        inventory = lab.up(
            hosts, controller, timeout=args.timeout, sudo_nopasswd=args.sudo_nopasswd, controller6_cidr=controller6
        )
    except (LabError, hostmod.HostError, netns.CommandError, OSError) as exc:
        _err(f"up failed: {exc}")
        _err("removing the half-built lab")
        lab.down()
        return 1
    print(inventory, flush=True)
    return 0


def cmd_status(args) -> int:
    lab = Lab()
    if lab.state() is None:
        leftovers = lab.leftovers()
        print("no lab is up" + (f" (leftovers: {', '.join(leftovers)}; run `{PROG} down`)" if leftovers else ""))
        return 1
    rows = lab.status()
    print(f"{'HOST':<10} {'ROLE':<9} {'ADDRESS':<16} {'STATE':<9} SSHD")
    for row in rows:
        print(f"{row['host']:<10} {row['role']:<9} {row['address']:<16} {row['state']:<9} {row['sshd']}")
    return 0


def cmd_exec(args) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        _err("exec: no command given (usage: exec HOST -- CMD...)")
        return 2
    try:
        argv, env = Lab().exec_argv(args.host, command)
    except HostNotRunning as exc:
        _err(str(exc))
        return EXIT_EXEC_FAILED
    if env is None:
        os.execvp(argv[0], argv)
    os.execvpe(argv[0], argv, env)
    return EXIT_EXEC_FAILED  # not reached


def _client(lab: Lab, name: str):
    client = lab.host(name)
    if client.is_mac:
        raise LabError(f"--from must be a client (attacker/trusted), not the Mac {name}")
    return client


def _addresses(target, source, ipv6: bool) -> tuple[str, str | None]:
    """(the target's address, the source address to bind or None): IPv4 by default, with `ipv6` the
    hosts' IPv6 addresses (the source bound to its lab address, whatever else its interface holds)."""
    if not ipv6:
        return target.address, None
    for host in (target, source):
        if not host.address6:
            raise LabError(f"{host.name} has no IPv6 address (the lab's fleet spec has no network6)")
    return target.address6, source.address6


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S.%f")[:-3]


def _classify_ssh_failure(returncode: int, stderr: str) -> str:
    if returncode == 0:
        return "logged in"
    text = stderr.lower()
    if "permission denied" in text:
        return "denied"
    if "timed out" in text:
        return "blocked"
    if "connection refused" in text:
        return "refused"
    if "reset" in text or "closed" in text:
        return "reset"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"ssh exit {returncode}"
    return f"error: {last}"


def cmd_attack(args) -> int:
    lab = Lab()
    target = lab.mac(args.host)
    source = _client(lab, args.source)
    address, bind = _addresses(target, source, args.ipv6)
    netns.enter_netns(source.netns)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "SSH_AUTH_SOCK")}
    env.update({"SSH_ASKPASS": str(lab.paths.askpass), "SSH_ASKPASS_REQUIRE": "force"})
    argv = [
        "ssh", *SSH_QUIET,
        "-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1",
        "-o", f"ConnectTimeout={args.connect_timeout:g}", "-o", "BatchMode=no",
        *(["-6", "-b", bind] if bind else []),
        f"{args.user}@{address}", "true",
    ]  # fmt: skip
    outcomes: dict[str, int] = {}
    for attempt in range(1, args.failures + 1):
        started_wall, started = _now(), time.monotonic()
        try:
            proc = subprocess.run(
                argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=args.connect_timeout + 20,
            )  # fmt: skip
            outcome = _classify_ssh_failure(proc.returncode, proc.stderr)
        except subprocess.TimeoutExpired:
            outcome = "blocked"
        elapsed = time.monotonic() - started
        detail = f"blocked: no answer within {elapsed:.1f}s" if outcome == "blocked" else outcome
        print(f"attempt {attempt}/{args.failures} {started_wall} {detail} ({elapsed:.2f}s)", flush=True)
        key = outcome if not outcome.startswith("error") else "error"
        outcomes[key] = outcomes.get(key, 0) + 1
    summary = ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items()))
    over = " over IPv6" if args.ipv6 else ""
    print(f"attack on {target.name}{over} from {source.name} as {args.user}: {args.failures} attempts: {summary}")
    return 1 if outcomes.get("logged in") or outcomes.get("error") else 0


def cmd_probe(args) -> int:
    lab = Lab()
    target = lab.mac(args.host)
    source = _client(lab, args.source)
    address, bind = _addresses(target, source, args.ipv6)
    netns.enter_netns(source.netns)
    started = time.monotonic()
    label = f"{target.name} {f'[{address}]' if args.ipv6 else address}:22 from {source.name}"
    try:
        with socket.create_connection((address, 22), timeout=args.timeout,
                                      source_address=(bind, 0) if bind else None):  # fmt: skip
            pass
    except socket.timeout:
        print(f"{label}: blocked (no answer within {args.timeout:g}s)")
        return 1
    except OSError as exc:
        print(f"{label}: {exc.strerror or exc} after {time.monotonic() - started:.3f}s")
        return 1
    print(f"{label}: open ({time.monotonic() - started:.3f}s)")
    return 0


def cmd_watch(args) -> int:
    lab = Lab()
    target = lab.mac(args.host)
    source = _client(lab, args.source)
    netns.enter_netns(source.netns)
    reachability.watch(target.address, 22, args.seconds, args.interval, args.timeout, reachability.print_line)
    return 0


def cmd_hold(args) -> int:
    lab = Lab()
    target = lab.mac(args.host)
    source = _client(lab, args.source)
    netns.enter_netns(source.netns)
    argv = [
        "ssh", "-T", *SSH_QUIET, "-i", str(lab.paths.holder_key), "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        # Keepalives make ssh itself notice a path that silently drops packets.
        "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=3",
        f"{hostmod.ADMIN_USER}@{target.address}", HOLD_COMMAND,
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        return _watch_ticks(proc, args.timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _watch_ticks(proc: subprocess.Popen, timeout: float | None) -> int:
    fd = proc.stdout.fileno()
    started = time.monotonic()
    established = last_tick = None
    while True:
        now = time.monotonic()
        if established is None:
            wait = started + 10 - now
            if wait <= 0:
                print("not established: no tick within 10s", flush=True)
                return 2
        else:
            if timeout is not None and now - established >= timeout:
                print("still open", flush=True)
                return 1
            silence = now - last_tick
            if silence > HOLD_SILENCE:
                print(f"cut after {last_tick - established:.1f}s", flush=True)
                return 0
            wait = HOLD_SILENCE - silence + 0.02
            if timeout is not None:
                wait = min(wait, established + timeout - now)
        ready, _, _ = select.select([fd], [], [], max(wait, 0.01))
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:  # ssh exited (or the server closed the session)
            if established is None:
                proc.wait()
                reason = proc.stderr.read().decode(errors="replace").strip().splitlines()
                print(f"not established: {reason[-1] if reason else f'ssh exit {proc.returncode}'}", flush=True)
                return 2
            print(f"cut after {last_tick - established:.1f}s", flush=True)
            return 0
        if b"\n" in chunk:
            last_tick = time.monotonic()
            if established is None:
                established = last_tick
                print("established", flush=True)


def _mac_command(action):
    def run(args) -> int:
        lab = Lab()
        target = lab.mac(args.host)
        started = time.monotonic()
        action(lab.paths, target)
        print(f"{target.name}: {args.command} done in {time.monotonic() - started:.1f}s; sshd answering")
        return 0

    return run


def cmd_serve_git(args) -> int:
    lab = Lab()
    print(lab.serve_git())
    print(lab.git_dir)
    return 0


def cmd_down(args) -> int:
    lab = Lab()
    started = time.monotonic()
    removed = lab.down()
    if removed:
        print(f"removed {len(removed)} lab objects in {time.monotonic() - started:.1f}s")
    else:
        print("no lab to remove")
    return 0


# --- argument parsing ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The pfguard lab: emulated Macs in Linux namespaces.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="bring a lab up and print its inventory path")
    up.add_argument("--spec", help="fleet spec YAML (default: the package's data/fleet.yml)")
    up.add_argument("--hosts", type=int, metavar="N", help="N Macs (mac1..macN) cycling the spec's profiles")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for every sshd (default 60)")
    up.add_argument(
        "--sudo-nopasswd", action="store_true",
        help="let the Macs' admin sudo without a password (default: sudo asks for the admin's password, "
        "as on macOS; the inventory passes it)",
    )  # fmt: skip
    up.set_defaults(func=cmd_up)

    sub.add_parser("status", help="hosts and their state").set_defaults(func=cmd_status)

    exe = sub.add_parser("exec", help="run a command inside a host: exec HOST -- CMD...")
    exe.add_argument("host")
    exe.add_argument("command", nargs=argparse.REMAINDER)
    exe.set_defaults(func=cmd_exec)

    attack = sub.add_parser("attack", help="failed password logins over ssh, one ssh process each")
    attack.add_argument("host")
    attack.add_argument("--failures", type=int, required=True, metavar="N")
    attack.add_argument("--from", dest="source", default="attacker", metavar="CLIENT")
    attack.add_argument("--user", default=hostmod.ADMIN_USER, help="login name to try (default admin)")
    attack.add_argument("--connect-timeout", type=float, default=3.0, metavar="S",
                        help="seconds without an answer that count as blocked (default 3)")
    attack.add_argument("--ipv6", action="store_true",
                        help="attack the Mac's IPv6 address from the client's IPv6 address")
    attack.set_defaults(func=cmd_attack)

    probe = sub.add_parser("probe", help="exit 0 if a new TCP connection to port 22 succeeds within 2s")
    probe.add_argument("host")
    probe.add_argument("--from", dest="source", default="attacker", metavar="CLIENT")
    probe.add_argument("--timeout", type=float, default=2.0, help=argparse.SUPPRESS)
    probe.add_argument("--ipv6", action="store_true", help="probe the Mac's IPv6 address from the client's")
    probe.set_defaults(func=cmd_probe)

    hold = sub.add_parser(
        "hold",
        help="hold an ssh session as admin that ticks every 0.2s; print `established`, then "
        "`cut after X.Xs` (X: seconds from established to the last tick) when ticks stop for 1s",
    )
    hold.add_argument("host")
    hold.add_argument("--from", dest="source", default="attacker", metavar="CLIENT")
    hold.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds: `still open`, exit 1")
    hold.set_defaults(func=cmd_hold)

    watch = sub.add_parser(
        "watch",
        help="try a new TCP connection to port 22 every INTERVAL s for SECONDS s; print one JSON line per "
        'try: {"t": unix time it began, "open": whether it was accepted}',
    )
    watch.add_argument("host")
    watch.add_argument("--from", dest="source", default="attacker", metavar="CLIENT")
    watch.add_argument("--seconds", type=float, default=30.0)
    watch.add_argument("--interval", type=float, default=0.05)
    watch.add_argument("--timeout", type=float, default=0.2, help="seconds a try waits for the answer")
    watch.set_defaults(func=cmd_watch)

    reboot = sub.add_parser("reboot", help="reboot a Mac (its disk survives, per-boot state does not)")
    reboot.add_argument("host")
    reboot.set_defaults(func=_mac_command(hostmod.reboot))

    update = sub.add_parser("os-update", help="restore stock PF files (as a macOS update does), then reboot")
    update.add_argument("host")
    update.set_defaults(func=_mac_command(hostmod.os_update))

    sub.add_parser(
        "serve-git", help="serve the lab dir's git/ repositories read-only to the Macs (git daemon on the "
        "controller's lab address; `down` ends it); prints the base URL and the directory"
    ).set_defaults(func=cmd_serve_git)
    sub.add_parser("down", help="remove everything the lab made (also after a crash)").set_defaults(func=cmd_down)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "up":
        failure = _require_root()
        if failure is not None:
            return failure
    if getattr(args, "failures", 1) < 1:
        parser.error("--failures must be at least 1")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except (LabError, hostmod.HostError, netns.CommandError) as exc:
        _err(str(exc))
        return 1
    except OSError as exc:
        _err(f"{exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
