# SPDX-License-Identifier: GPL-3.0-or-later
"""The addresses of `pfguard ban`/`unban`: split, checked, handed to the plays as one plain string."""

from __future__ import annotations

import pytest
from pfguard_cli import addresses


def test_arguments_become_the_plain_string_the_plays_take():
    assert addresses.check(["203.0.113.7", "2001:db8::/64,198.51.100.0/24", " 192.0.2.1 ,\n192.0.2.2"]) == (
        "203.0.113.7, 2001:db8::/64, 198.51.100.0/24, 192.0.2.1, 192.0.2.2")  # fmt: skip


@pytest.mark.parametrize("value", ["203.0.113.7", "203.0.113.0/24", "203.0.113.7/32", "0.0.0.0/0", "2001:db8::/64",
                                   "::1", "::ffff:192.0.2.1", "203.0.113.7/0"])  # fmt: skip
def test_addresses_and_networks_pass(value):
    assert addresses.problem(value) is None


@pytest.mark.parametrize("value,reason", [
    ("mac1.example", "not an IPv4 or IPv6 address"),
    ("en0", "not an IPv4 or IPv6 address"),
    ("203.0.113", "not an IPv4 or IPv6 address"),
    ("203.0.113.256", "not an IPv4 or IPv6 address"),
    ("２０３.0.113.7", "not an IPv4 or IPv6 address"),  # fullwidth digits: pfctl's inet_pton reads ASCII only
    ("!203.0.113.7", "negation"),
    ("fe80::1%en0", "scoped IPv6"),
    ("10.0.0.0/08", "plain decimal number without leading zeros"),  # pfctl would read /08 as octal
    ("10.0.0.0/0x8", "plain decimal"),
    ("10.0.0.0/+8", "plain decimal"),
    ("10.0.0.0/", "plain decimal"),
    ("10.0.0.0/33", "longer than an IPv4 address"),
    ("2001:db8::/129", "longer than an IPv6 address"),
    ("203.0.113.7\x00", "not an IPv4 or IPv6 address"),
    ("\udcff", "not an IPv4 or IPv6 address"),
])  # fmt: skip
def test_what_is_not_an_address_is_named_with_the_reason(value, reason):
    assert reason in addresses.problem(value)
    with pytest.raises(addresses.AddressError) as refused:
        addresses.check(["203.0.113.9", value])
    assert repr(value) in str(refused.value) and "'203.0.113.9'" not in str(refused.value)


def test_nothing_but_separators_is_no_address():
    with pytest.raises(addresses.AddressError, match="no address given"):
        addresses.check([" , ", "\n"])
