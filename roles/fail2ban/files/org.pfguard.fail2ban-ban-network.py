# SPDX-License-Identifier: GPL-3.0-or-later
# Managed by Ansible (pfguard.macos.fail2ban); local changes are overwritten.
"""org.pfguard.fail2ban-ban-network: the PF table entry fail2ban's pfguard-pf action bans for an address.

fail2ban substitutes only the banned address (<ip>) into its actions. With
pfguard_fail2ban_ipv6_ban_prefix below 128 the action runs this with /usr/bin/python3 to turn an IPv6
address into its network (2001:db8:1:2::7 -> 2001:db8:1:2::/64), so an attacker cannot come back from
the next address of its own prefix. IPv4 addresses stay single hosts. A network that would overlap a
--keep network (pfguard_trusted_networks) is not banned: the address alone is.

    ban PREFIX [--keep NETS] ADDRESS         print the entry to add for ADDRESS
    bans PREFIX [--keep NETS]                the same for each address on stdin (one a line; the boot
                                             restore), each entry printed once
    unban PREFIX [--keep NETS] --database DB --jail JAIL ADDRESS
                                             print the entry to delete for ADDRESS, or nothing while
                                             another ban of JAIL in fail2ban's database DB still falls
                                             in the same network (its own unban deletes it later)

Output is pfctl's canonical text (ipaddress's compressed form, /prefix only for networks). Anything that
is not an IPv4 or IPv6 address is refused with a message naming it (exit 2), never passed on.
Standard library only: it runs with macOS's /usr/bin/python3 (Python 3.9).
"""

import argparse
import ipaddress
import sqlite3
import sys
import time
from urllib.parse import quote

EXIT_BAD_INPUT = 2


class BadInput(ValueError):
    pass


def parse_address(text):
    """An IPv4 or IPv6 address (a scope such as %en0 dropped, IPv4-mapped IPv6 unwrapped, as PF sees those
    packets as IPv4)."""
    value = text.strip()
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0] if ":" in value else value)
    except ValueError:
        raise BadInput("%r is not an IPv4 or IPv6 address" % value) from None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_keep(text):
    networks = []
    for item in (text or "").replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise BadInput("--keep: %r is not an IPv4 or IPv6 network" % item) from None
    return networks


def ban_entry(address, prefix, keep):
    """The table entry for `address`: its /prefix network for IPv6, the address itself otherwise."""
    if address.version == 4 or prefix >= 128:
        return str(address)
    network = ipaddress.ip_network("%s/%d" % (address, prefix), strict=False)
    if any(other.version == 6 and network.overlaps(other) for other in keep):
        return str(address)  # never a network that holds trusted addresses
    return str(network)


def still_needed(entry, address, prefix, keep, database, jail, now):
    """Whether another active ban of `jail` in fail2ban's database maps to the same `entry`."""
    connection = sqlite3.connect("file:%s?mode=ro" % quote(database, safe="/"), uri=True, timeout=5)
    try:
        rows = connection.execute(
            "SELECT ip FROM bips WHERE jail = ? AND (bantime = -1 OR timeofban + bantime > ?)", (jail, int(now))
        ).fetchall()
    finally:
        connection.close()
    for (other,) in rows:
        try:
            other_address = parse_address(str(other))
        except BadInput:
            continue
        if other_address != address and ban_entry(other_address, prefix, keep) == entry:
            return True
    return False


def prefix_value(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a prefix length" % text) from None
    if not 1 <= value <= 128:
        raise argparse.ArgumentTypeError("prefix length %d is outside 1..128" % value)
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="org.pfguard.fail2ban-ban-network")
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    for name in ("ban", "bans", "unban"):
        command = sub.add_parser(name)
        command.add_argument("prefix", type=prefix_value)
        command.add_argument("--keep", default="", help="networks never banned as a whole (comma separated)")
        if name == "unban":
            command.add_argument("--database", required=True)
            command.add_argument("--jail", required=True)
        if name != "bans":
            command.add_argument("address")
    return parser


def main(argv=None, stdin=None, stdout=None, stderr=None):
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        keep = parse_keep(args.keep)
        if args.command == "bans":
            bad, seen = [], set()
            for line in stdin:
                if not line.strip():
                    continue
                try:
                    entry = ban_entry(parse_address(line), args.prefix, keep)
                except BadInput as exc:
                    bad.append(str(exc))
                    continue
                if entry not in seen:
                    seen.add(entry)
                    stdout.write(entry + "\n")
            for message in bad:
                stderr.write("org.pfguard.fail2ban-ban-network: skipped: %s\n" % message)
            return 1 if bad else 0
        address = parse_address(args.address)
        entry = ban_entry(address, args.prefix, keep)
        if args.command == "unban" and entry != str(address):
            try:
                if still_needed(entry, address, args.prefix, keep, args.database, args.jail, time.time()):
                    return 0
            except sqlite3.Error as exc:
                # fail2ban's own behaviour then: the unban lifts the entry.
                stderr.write("org.pfguard.fail2ban-ban-network: cannot read %s (%s); unbanning %s\n"
                             % (args.database, exc, entry))
        stdout.write(entry + "\n")
        return 0
    except BadInput as exc:
        stderr.write("org.pfguard.fail2ban-ban-network: %s\n" % exc)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
