# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""module_utils.blocklist: the feed formats, and merging feeds into the fewest table entries."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import random

import pytest
from ansible_collections.pfguard.macos.plugins.module_utils import blocklist
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import parse_entry

# The shapes of the public feeds (docs/blocklist-feeds.md), shortened.
NETSET = """#
# firehol_level1
#
# ipv4 hash:net ipset
#
1.10.16.0/20
1.19.0.0/16
223.254.0.0/16
"""
DROP = """; Spamhaus DROP List 2026/12/05 - (c) 2026 The Spamhaus Project SLU
; Last-Modified: Sat, 05 Dec 2026 10:00:00 GMT
1.10.16.0/20 ; SBL256894
2.56.192.0/22 ; SBL459831
"""
DROP_JSON = """{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}
{"cidr":"2001:db8:100::/40","sblid":"SBL1","rir":"ripencc"}
{"type":"metadata","timestamp":1764928800,"size":2,"records":2,"copyright":"(c) 2026 The Spamhaus Project SLU"}
"""


def keys(texts):
    return {text: parse_entry(text)[1:] for text in texts}


@pytest.mark.parametrize(
    "text, feed_format, expected",
    [
        (NETSET, "netset", ["1.10.16.0/20", "1.19.0.0/16", "223.254.0.0/16"]),
        (DROP, "spamhaus_drop", ["1.10.16.0/20", "2.56.192.0/22"]),
        (DROP_JSON, "spamhaus_json", ["1.10.16.0/20", "2001:db8:100::/40"]),
        ("203.0.113.7  # seen 3 times\n\n  2001:DB8::1/128\n198.51.100.9/24\n", "plain",
         ["203.0.113.7", "2001:db8::1", "198.51.100.0/24"]),
        ("", "plain", []),
    ],
)
def test_formats(text, feed_format, expected):
    assert list(blocklist.parse_feed(text, feed_format, "f")) == expected


@pytest.mark.parametrize(
    "text, feed_format, named",
    [
        ("203.0.113.7\nexample.org\n", "plain", "f line 2: 'example.org'"),
        ("203.0.113.7 203.0.113.8\n", "plain", "more than one word"),
        ("1.2.3.4/33\n", "netset", "f line 1: '1.2.3.4/33'"),
        ("1.2.3.4 ; SBL1\n!5.6.7.8\n", "spamhaus_drop", "negation"),
        ('{"cidr": 7}\n', "spamhaus_json", "cidr is not a string"),
        ("[1]\n", "spamhaus_json", "not a JSON object"),
        ('{"cidr": "1.2.3.0/24"\n', "spamhaus_json", "f line 1"),
        ('{"sblid": "SBL1"}\n', "spamhaus_json", "without a cidr"),
        ("1.2.3.4 # a feed line in the other format\n", "spamhaus_drop", "more than one word"),
        ("203.0.113.7\x00\n", "plain", "f line 1"),
        ("x" * 500 + "\n", "plain", "..."),
    ],
)
def test_one_bad_line_refuses_the_feed_and_names_the_line(text, feed_format, named):
    with pytest.raises(blocklist.FeedError) as caught:
        blocklist.parse_feed(text, feed_format, "f")
    assert named in str(caught.value)
    assert len(str(caught.value)) < 300


def test_unknown_format_is_named():
    with pytest.raises(blocklist.FeedError, match="unknown format 'csv'"):
        blocklist.parse_feed("", "csv", "f")


def test_collapse_matches_ipaddress_on_random_networks():
    rng = random.Random(7)
    texts = set()
    for _round in range(3000):
        prefix = rng.choice([16, 20, 23, 24, 24, 25, 32, 32, 32])
        texts.add(str(ipaddress.ip_network((rng.randrange(0x0B000000, 0x0B100000), prefix), strict=False)))
        prefix6 = rng.choice([48, 56, 64, 64, 128])
        base = 0x20010DB8 << 96 | rng.randrange(0, 1 << 20) << 76
        texts.add(str(ipaddress.ip_network((base, prefix6), strict=False)))
    expected = [str(n) for v in (4, 6) for n in ipaddress.collapse_addresses(
        ipaddress.ip_network(t) for t in texts if ipaddress.ip_network(t).version == v)]
    got = blocklist.merge({"r": keys(texts)})[0]
    # pfctl prints hosts without /32 or /128.
    assert got == [t.replace("/32", "") if "." in t else t.replace("/128", "") for t in expected]


def test_merge_names_what_it_drops_and_collapses_the_rest():
    feeds = {
        "a": keys(["192.0.2.0/25", "192.0.2.128/25", "198.51.100.7", "10.0.0.0/8"]),
        "b": keys(["198.51.100.7", "2001:db8::/33", "2001:db8:8000::/33", "203.0.113.0/24"]),
    }
    entries, dropped = blocklist.merge(feeds, keys(["198.51.100.0/25", "203.0.113.9"]))
    # Two /33 halves stay two: merged they would be a /32, which the wide-network guard refuses.
    assert entries == ["192.0.2.0/24", "2001:db8::/33", "2001:db8:8000::/33"]
    assert dropped == [
        {"entry": "10.0.0.0/8", "feeds": ["a"], "reason": "as wide as IPv4 /8 or wider"},
        {"entry": "198.51.100.7", "feeds": ["a", "b"], "reason": "overlaps the protected network 198.51.100.0/25"},
        {"entry": "203.0.113.0/24", "feeds": ["b"], "reason": "overlaps the protected network 203.0.113.9"},
    ]
    wide, none_dropped = blocklist.merge(feeds, allow_wide_networks=True)
    assert wide[-1] == "2001:db8::/32" and "10.0.0.0/8" in wide and none_dropped == []


def test_halves_of_everything_stay_apart_without_allow_wide_networks():
    entries, dropped = blocklist.merge({"a": keys(["0.0.0.0/1", "128.0.0.0/1", "203.0.113.0/25", "203.0.113.128/25"])})
    assert entries == ["203.0.113.0/24"]
    assert [d["entry"] for d in dropped] == ["0.0.0.0/1", "128.0.0.0/1"]
    assert blocklist.merge({"a": keys(["0.0.0.0/1", "128.0.0.0/1"])}, allow_wide_networks=True)[0] == ["0.0.0.0/0"]
