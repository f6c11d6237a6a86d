# SPDX-License-Identifier: GPL-3.0-or-later
"""/etc/protocols on macOS: what pf.conf's `proto` accepts and what pfctl prints (getprotobynumber)."""

from __future__ import annotations

# primary name -> number
PROTOCOLS = {
    "ip": 0, "icmp": 1, "igmp": 2, "ggp": 3, "ipencap": 4, "st2": 5, "tcp": 6, "egp": 8, "igp": 9,
    "pup": 12, "udp": 17, "hmp": 20, "xns-idp": 22, "rdp": 27, "ipv6": 41, "ipv6-route": 43,
    "ipv6-frag": 44, "idrp": 45, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "ipv6-icmp": 58,
    "ipv6-nonxt": 59, "ipv6-opts": 60, "ospf": 89, "ipip": 94, "etherip": 97, "encap": 98, "pim": 103,
    "ipcomp": 108, "vrrp": 112, "sctp": 132, "pfsync": 240,
}
# aliases accepted on input
PROTO_ALIASES = {"IP": 0, "ICMP": 1, "IGMP": 2, "TCP": 6, "UDP": 17, "GRE": 47, "ESP": 50, "AH": 51,
                 "IPv6-ICMP": 58, "icmp6": 58}  # icmp6: common pf.conf spelling (UNVERIFIED on macOS)
PROTO_NAMES = {number: name for name, number in PROTOCOLS.items()}
