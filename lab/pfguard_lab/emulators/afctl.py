# SPDX-License-Identifier: GPL-3.0-or-later
"""Server.app's Adaptive Firewall tool `afctl` (docs/reference/macos.md#adaptive-firewall).

afctl [-v level] [-a ip [-t minutes]] [-w ip] [-x ip] [-r ip] [-d] [-e] [-f] [-X] [-T n] [-H minutes]
  -w / -x   add to / remove from the whitelist
  -a / -r   add to / remove from the blacklist, and the PF table <blockedHosts> in anchor
            com.apple/400.AdaptiveFirewall (via /sbin/pfctl, argv lists only)
  -d / -e   disable / enable the afctl-managed rules (flush / reload the anchor)
  -f        force-enable: runs `pfctl -E` (its output is afctl's) and enables the rules
  -X        disable afctl: flush the rules and release the PF reference taken by -f
  -T n      bad-auth threshold (hostBlockThreshold in emond's AdaptiveFirewall.plist)
  -H min    default block time (default_timeout in /etc/af.plist)
  (none)    age the blacklist: drop expired entries from the file and the table
-c/-i (self-configure from routers, interfaces and nameservers) is not implemented: it fails loudly.

Lab choices, all UNVERIFIED (no afctl source or captures exist): messages and exit codes below;
whitelist file = one address or CIDR per line; blacklist file = `ADDRESS<TAB>EXPIRY_EPOCH` per line,
expiry 0 = never; -t 0 or negative = never expires; the anchor file's contents.
"""

from __future__ import annotations

import fcntl
import getopt
import ipaddress
import os
import plistlib
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from pfguard_lab import commands

SERVER_ROOT = "/Applications/Server.app/Contents/ServerRoot"
AFCTL = f"{SERVER_ROOT}/usr/libexec/afctl"
ANCHOR_FILE = f"{SERVER_ROOT}/private/etc/pf.anchors/400.AdaptiveFirewall"
EMOND_RULES = f"{SERVER_ROOT}/private/etc/emond.d/rules/AdaptiveFirewall.plist"
LAUNCHD_PLIST = f"{SERVER_ROOT}/System/Library/LaunchDaemons/com.apple.afctl.plist"
AF_PLIST = "/etc/af.plist"
AF_DB = "/var/db/af"
AF_STATE = "/var/run/af_state"
COM_APPLE_ANCHORS = "/etc/pf.anchors/com.apple"
PFCTL = "/sbin/pfctl"
ANCHOR = "com.apple/400.AdaptiveFirewall"
TABLE = "blockedHosts"

# Contents UNVERIFIED: no public source shows the anchor file (docs/reference/macos.md#adaptive-firewall).
ANCHOR_TEXT = """#
# Adaptive Firewall anchor (pfguard lab reconstruction; the real file's contents are unverified).
#
table <blockedHosts> persist
block drop in quick from <blockedHosts> to any
"""

# Appended to /etc/pf.anchors/com.apple by AdaptiveFirewallSetup.sh, exactly
# (docs/reference/macos.md#adaptive-firewall).
COM_APPLE_LINES = f"""
#
# Adaptive Firewall anchor point.
#
anchor "400.AdaptiveFirewall/*"
load anchor "400.AdaptiveFirewall" from "{ANCHOR_FILE}"
"""

# af.plist(5): every value is a string. Defaults are the lab's choice (15-minute block and sweep
# match the documented launchd interval; "17" is the documented rule set).
AF_PLIST_DEFAULTS = {
    "whitlist_file": f"{AF_DB}/whitelist",  # sic, af.plist(5)
    "blacklist_file": f"{AF_DB}/blacklist",
    "stats_file": f"{AF_DB}/stats",
    "default_timeout": "15",
    "sweep_interval": "15",
    "start_behavior": "disable",
    "firewall_address": "local",
    "default_set": "17",
    "log_level": "1",
    "log_facility": "local",
}
DEFAULT_THRESHOLD = 10

USAGE = (
    "usage: afctl [-v debug_level] [-a ip_address [-t ttl]] [-w ip_address] [-r ip_address] [-x ip_address]\n"
    "             [-c [-i interval]] [-e] [-d] [-f] [-X] [-T threshold] [-H minutes]\n"
)


class AfctlError(Exception):
    """Ends afctl: `afctl: <message>` on stderr, exit 1."""


class Unsupported(Exception):
    pass


def lab_root() -> Path:
    return Path(os.environ.get("PFGUARD_LAB_ROOT") or "/")


def on_disk(path: str, root: Path | None = None) -> Path:
    return (root or lab_root()) / path.lstrip("/")


def parse_address(text: str) -> str:
    """IPv4/IPv6 address or CIDR block in canonical form; no DNS (docs/reference/macos.md#adaptive-firewall)."""
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise AfctlError(f"invalid address '{text}': expected an IPv4 or IPv6 address or CIDR block") from None


def covers(entry: str, address: str) -> bool:
    """Does whitelist `entry` (address or network) include `address`?"""
    try:
        network = ipaddress.ip_network(entry, strict=False)
        candidate = ipaddress.ip_network(address, strict=False)
    except ValueError:
        return False
    return candidate.version == network.version and candidate.subnet_of(network)


# ---------------------------------------------------------------------------------------------
# State files


def read_plist(root: Path, path: str):
    try:
        with open(on_disk(path, root), "rb") as handle:
            return plistlib.load(handle)
    except (OSError, plistlib.InvalidFileException, ValueError):
        return {}


def write_plist(root: Path, path: str, data) -> None:
    target = on_disk(path, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as handle:
        plistlib.dump(data, handle)
    tmp.replace(target)


class Store:
    def __init__(self, root: Path):
        self.root = root
        settings = read_plist(root, AF_PLIST)
        self.settings = {**AF_PLIST_DEFAULTS, **settings}
        self.whitelist_path = on_disk(self.settings["whitlist_file"], root)
        self.blacklist_path = on_disk(self.settings["blacklist_file"], root)

    def whitelist(self) -> list[str]:
        try:
            lines = self.whitelist_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    def blacklist(self) -> dict[str, int]:
        try:
            lines = self.blacklist_path.read_text().splitlines()
        except FileNotFoundError:
            return {}
        entries = {}
        for line in lines:
            address, _, expiry = line.strip().partition("\t")
            if address and not address.startswith("#"):
                entries[address] = int(expiry) if expiry.strip().lstrip("-").isdigit() else 0
        return entries

    def _write_lines(self, path: Path, lines: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines))
        tmp.chmod(0o600)
        tmp.replace(path)

    def save_whitelist(self, entries: list[str]) -> None:
        self._write_lines(self.whitelist_path, entries)

    def save_blacklist(self, entries: dict[str, int]) -> None:
        self._write_lines(self.blacklist_path, [f"{address}\t{expiry}" for address, expiry in entries.items()])

    def state(self) -> dict:
        state = read_plist(self.root, AF_STATE)
        return state if isinstance(state, dict) else {}

    def save_state(self, state: dict) -> None:
        write_plist(self.root, AF_STATE, state)


@contextmanager
def locked(root: Path):
    """fail2ban may run several afctl at once (one per ban); serialise them."""
    directory = on_disk(AF_DB, root)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------------------------------------
# PF


def pfctl(root: Path, args: list[str], capture: bool = True) -> subprocess.CompletedProcess:
    command = [str(on_disk(PFCTL, root)), *args]
    try:
        return subprocess.run(command, capture_output=capture, text=True, check=False)
    except OSError as exc:
        raise AfctlError(f"cannot run {PFCTL}: {exc.strerror}") from None


def pfctl_checked(root: Path, args: list[str]) -> None:
    result = pfctl(root, args)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise AfctlError(f"pfctl {' '.join(args)} failed (exit {result.returncode})")


def table_args(command: str, *addresses: str) -> list[str]:
    return ["-a", ANCHOR, "-t", TABLE, "-T", command, *addresses]


def load_rules(root: Path, blacklist: dict[str, int]) -> None:
    pfctl_checked(root, ["-a", ANCHOR, "-f", str(on_disk(ANCHOR_FILE, root))])
    if blacklist:
        pfctl_checked(root, table_args("add", *blacklist))


def flush_rules(root: Path) -> None:
    # Either may already be gone (PF state is lost at reboot): disabling twice is not an error.
    pfctl(root, ["-a", ANCHOR, "-F", "rules"])
    pfctl(root, table_args("flush"))


# ---------------------------------------------------------------------------------------------
# Operations


def expire(store: Store, root: Path, now: float) -> list[str]:
    blacklist = store.blacklist()
    expired = [address for address, expiry in blacklist.items() if 0 < expiry <= now]
    if expired:
        for address in expired:
            del blacklist[address]
        store.save_blacklist(blacklist)
        pfctl(root, table_args("delete", *expired))  # a table lost at reboot holds nothing to expire
    return expired


def add_blacklist(store: Store, root: Path, address: str, minutes: float | None, now: float) -> None:
    whitelisted = next((entry for entry in store.whitelist() if covers(entry, address)), None)
    if whitelisted is not None:
        raise AfctlError(f"{address} is whitelisted ({whitelisted}); not adding it to the blacklist")
    if minutes is None:
        minutes = float(store.settings.get("default_timeout") or 0)
    blacklist = store.blacklist()
    blacklist[address] = int(now + minutes * 60) if minutes > 0 else 0
    store.save_blacklist(blacklist)
    pfctl_checked(root, table_args("add", address))


def remove_blacklist(store: Store, root: Path, address: str) -> None:
    blacklist = store.blacklist()
    if blacklist.pop(address, None) is not None:
        store.save_blacklist(blacklist)
    pfctl(root, table_args("delete", address))  # not in PF (e.g. after a reboot) is not an error


def set_threshold(store: Store, threshold: int) -> None:
    rules = read_plist(store.root, EMOND_RULES)
    if not isinstance(rules, list) or not rules:
        rules = [{"name": "AdaptiveFirewall", "enabled": True}]
    rules[0]["hostBlockThreshold"] = threshold
    write_plist(store.root, EMOND_RULES, rules)


def set_block_time(store: Store, minutes: int) -> None:
    settings = read_plist(store.root, AF_PLIST) or dict(AF_PLIST_DEFAULTS)
    settings["default_timeout"] = str(minutes)
    write_plist(store.root, AF_PLIST, settings)
    store.settings["default_timeout"] = str(minutes)


def _int_arg(flag: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise AfctlError(f"option {flag} requires a number, got '{value}'") from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        options, extra = getopt.getopt(args, "v:a:t:w:r:x:ci:edfXT:H:")
    except getopt.GetoptError as exc:
        sys.stderr.write(f"afctl: {exc.msg}\n{USAGE}")
        return 1
    if extra:
        sys.stderr.write(USAGE)
        return 1
    if os.geteuid() != 0:
        sys.stderr.write("afctl: must be run as root\n")  # UNVERIFIED wording
        return 1
    root = lab_root()
    verbosity = 0
    try:
        flags = [flag for flag, _ in options]
        if "-c" in flags or "-i" in flags:
            raise Unsupported("-c/-i (self-configure)")
        if "-t" in flags and "-a" not in flags:
            raise AfctlError("-t requires -a")
        minutes = None
        for flag, value in options:
            if flag == "-v":
                verbosity = _int_arg(flag, value)
            elif flag == "-t":
                minutes = float(_int_arg(flag, value))
        with locked(root):
            store = Store(root)
            now = time.time()
            if not options or flags == ["-v"]:
                for address in expire(store, root, now):
                    if verbosity:
                        print(f"afctl: {address} expired, removed from the blacklist")
                return 0
            for flag, value in options:
                if flag == "-w":
                    address = parse_address(value)
                    entries = store.whitelist()
                    if address not in entries:
                        store.save_whitelist([*entries, address])
                elif flag == "-x":
                    address = parse_address(value)
                    store.save_whitelist([entry for entry in store.whitelist() if entry != address])
                elif flag == "-a":
                    add_blacklist(store, root, parse_address(value), minutes, now)
                elif flag == "-r":
                    remove_blacklist(store, root, parse_address(value))
                elif flag == "-d":
                    flush_rules(root)
                    store.save_state({**store.state(), "enabled": False})
                elif flag in ("-e", "-f"):
                    state = store.state()
                    if flag == "-f":
                        # docs/reference/macos.md#adaptive-firewall: `afctl -f` enables pf itself; pfctl's
                        # own stderr (ALTQ lines, then "pf enabled\nToken : N") is what afctl shows.
                        result = pfctl(root, ["-E"])
                        sys.stdout.write(result.stdout)
                        sys.stderr.write(result.stderr)
                        if result.returncode != 0:
                            raise AfctlError(f"pfctl -E failed (exit {result.returncode})")
                        token = next((line.split(":", 1)[1].strip() for line in result.stderr.splitlines()
                                      if line.startswith("Token")), None)  # fmt: skip
                        if token:
                            state["tokens"] = [*state.get("tokens", []), token]
                    load_rules(root, store.blacklist())
                    store.save_state({**state, "enabled": True})
                elif flag == "-X":
                    flush_rules(root)
                    state = store.state()
                    for token in state.get("tokens", []):
                        pfctl(root, ["-X", token])  # a token pf no longer knows is not afctl's error
                    store.save_state({"enabled": False, "tokens": []})
                elif flag == "-T":
                    set_threshold(store, _int_arg(flag, value))
                elif flag == "-H":
                    set_block_time(store, _int_arg(flag, value))
                if verbosity and flag not in ("-v", "-t"):
                    print(f"afctl: {flag} {value}".rstrip())
        return 0
    except AfctlError as exc:
        sys.stderr.write(f"afctl: {exc}\n")
        return 1
    except Unsupported as exc:
        sys.stderr.write(f"pfguard-lab: afctl: {exc} is not supported by the lab\n")
        return 1


# ---------------------------------------------------------------------------------------------
# Provisioning (Server.app installed; called by the host builder)


def provision(root: Path, env: dict[str, str] | None = None) -> Path:
    """Server.app's AF files under `root`, the afctl wrapper (extra environment in `env`), and the
    com.apple anchor lines. Returns the wrapper's path."""
    root = Path(root)
    com_apple = on_disk(COM_APPLE_ANCHORS, root)
    if not com_apple.is_file():
        raise FileNotFoundError(f"{com_apple}: Apple's stock anchor file must be installed before Server.app")
    wrapper = commands.write_wrapper(on_disk(AFCTL, root), "pfguard_lab.emulators.afctl", env)
    anchor = on_disk(ANCHOR_FILE, root)
    anchor.parent.mkdir(parents=True, exist_ok=True)
    anchor.write_text(ANCHOR_TEXT)
    if not on_disk(AF_PLIST, root).exists():
        write_plist(root, AF_PLIST, dict(AF_PLIST_DEFAULTS))
    if not on_disk(EMOND_RULES, root).exists():
        write_plist(root, EMOND_RULES, [{"name": "AdaptiveFirewall", "enabled": True,
                                         "hostBlockThreshold": DEFAULT_THRESHOLD}])  # fmt: skip
    write_plist(root, LAUNCHD_PLIST, {
        "Label": "com.apple.afctl", "ProgramArguments": [AFCTL], "StartInterval": 900, "RunAtLoad": True,
    })  # fmt: skip
    database = on_disk(AF_DB, root)
    database.mkdir(parents=True, exist_ok=True)
    database.chmod(0o700)
    for name in ("whitelist", "blacklist"):
        path = database / name
        if not path.exists():
            path.touch(mode=0o600)
    text = com_apple.read_text()
    if 'anchor "400.AdaptiveFirewall/*"' not in text:
        com_apple.write_text(text + ("" if text.endswith("\n") or not text else "\n") + COM_APPLE_LINES)
    return wrapper


if __name__ == "__main__":
    sys.exit(main())
