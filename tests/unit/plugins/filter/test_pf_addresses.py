# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The fleet plays' address filters: what they accept, how they normalise and match, the errors they raise,
and that each filter's sidecar documentation matches its signature."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pfguard.macos.plugins.filter import pf_addresses
from ansible_collections.pfguard.macos.plugins.filter.pf_addresses import (
    FilterModule,
    pf_inside,
    pf_invalid,
    pf_normalize,
    pf_overlapping,
    pf_wide,
)
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import parse_entry
from ansible_collections.pfguard.macos.tests.unit.plugins.filter.sidecar import sidecar_documentation

# The lab: the controller on the bridge, inside the trusted network; the attacker outside it.
TRUSTED = ["198.51.100.0/25"]
CONTROLLER = "198.51.100.1"
ATTACKER = "198.51.100.200"
HOSTNAME_REASON = "not an IPv4 or IPv6 address (hostnames and interface names are not accepted)"


def module_reason(value):
    """The reason module_utils/pfctl.py (and so pfguard.macos.pfctl_table) gives for refusing `value`; the filters
    repeat it word for word. Used where the wording of a netmask problem is pfctl.py's to choose."""
    try:
        parse_entry(value)
    except ValueError as exc:
        return str(exc)
    raise AssertionError("%r is a valid address" % (value,))


# (value, the reason pf_invalid gives for it)
INVALID = [
    ("mac1.example.com", HOSTNAME_REASON),
    ("en0", HOSTNAME_REASON),
    ("198.51.100.256", HOSTNAME_REASON),
    ("2001:db8::g", HOSTNAME_REASON),
    ("10.0.0.0/33", "netmask /33 is wider than an IPv4 address"),
    ("2001:db8::/129", "netmask /129 is wider than an IPv6 address"),
    ("10.0.0.0/abc", module_reason("10.0.0.0/abc")),
    ("10.0.0.0/-1", module_reason("10.0.0.0/-1")),
    ("!203.0.113.7", "negation ('!') is not supported"),
    ("fe80::1%en0", "scoped IPv6 addresses are not supported"),
    ("", "empty address"),
    ("  ", "empty address"),
    (7, "not a string"),
    (None, "not a string"),
]


def test_is_exposed_as_filters():
    assert FilterModule().filters() == {
        "pf_address_list": pf_addresses.pf_address_list,
        "pf_invalid": pf_invalid,
        "pf_normalize": pf_normalize,
        "pf_overlapping": pf_overlapping,
        "pf_inside": pf_inside,
        "pf_wide": pf_wide,
    }


@pytest.mark.parametrize("name", sorted(FilterModule().filters()))
def test_each_filter_has_documentation_matching_its_signature(name):
    doc = sidecar_documentation(pf_addresses, FilterModule().filters(), name)
    assert doc["RETURN"]["_value"]["type"] == "list"
    assert all(option["required"] for option in doc["DOCUMENTATION"]["options"].values())


# pf_invalid


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["203.0.113.7", "203.0.113.0/24", "0.0.0.0/0", "203.0.113.7/32"],
        ["2001:db8::1", "2001:DB8::/64", "::/0", "::ffff:198.51.100.1", "2001:db8::1/128"],
        (" 203.0.113.7 ", "2001:db8::/64"),
    ],
)
def test_invalid_is_empty_for_addresses_and_networks(values):
    assert pf_invalid(values) == []


@pytest.mark.parametrize("value, reason", INVALID)
def test_invalid_names_the_bad_value_and_why(value, reason):
    assert pf_invalid(["203.0.113.7", value, "2001:db8::/64"]) == ["'%s' (%s)" % (value, reason)]


def test_invalid_lists_every_bad_value_in_input_order():
    assert pf_invalid(["10.0.0.0/33", "203.0.113.7", "mac1.example.com"]) == [
        "'10.0.0.0/33' (netmask /33 is wider than an IPv4 address)",
        "'mac1.example.com' (%s)" % HOSTNAME_REASON,
    ]


@pytest.mark.parametrize(
    "values, line",
    [
        ("203.0.113.7", "'203.0.113.7' (not a list)"),
        (None, "None (not a list)"),
        ({"address": "203.0.113.7"}, "{'address': '203.0.113.7'} (not a list)"),
        (7, "7 (not a list)"),
    ],
)
def test_invalid_reports_a_value_that_is_not_a_list(values, line):
    assert pf_invalid(values) == [line]


# pf_normalize


@pytest.mark.parametrize(
    "value, normalized",
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7\n", "203.0.113.7"),
        ("203.0.113.7/32", "203.0.113.7"),
        ("203.0.113.7/24", "203.0.113.0/24"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("198.51.100.200/0", "0.0.0.0/0"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8::1/128", "2001:db8::1"),
        ("2001:db8:0:0:1::1/64", "2001:db8::/64"),
        ("2001:db8::1/0", "::/0"),
        ("::ffff:198.51.100.1", "::ffff:198.51.100.1"),
    ],
)
def test_normalize_writes_addresses_as_pfctl_stores_them(value, normalized):
    assert pf_normalize([value]) == [normalized]


def test_normalize_drops_duplicates_and_keeps_the_first_place():
    values = ["2001:db8::/64", "203.0.113.7", "2001:DB8::1/64", "203.0.113.7/32", "198.51.100.0/24"]
    assert pf_normalize(values) == ["2001:db8::/64", "203.0.113.7", "198.51.100.0/24"]


def test_normalize_accepts_a_tuple_and_an_empty_list():
    assert pf_normalize(("203.0.113.7",)) == ["203.0.113.7"]
    assert pf_normalize([]) == []


@pytest.mark.parametrize("value, reason", INVALID)
def test_normalize_refuses_a_bad_value_naming_it(value, reason):
    with pytest.raises(AnsibleFilterError) as caught:
        pf_normalize(["203.0.113.7", value])
    assert str(caught.value) == "pf_normalize: not valid addresses: '%s' (%s)" % (value, reason)


def test_normalize_names_every_bad_value():
    with pytest.raises(AnsibleFilterError) as caught:
        pf_normalize(["mac1.example.com", "203.0.113.7", "2001:db8::/129"])
    assert str(caught.value) == (
        "pf_normalize: not valid addresses: 'mac1.example.com' (%s); "
        "'2001:db8::/129' (netmask /129 is wider than an IPv6 address)" % HOSTNAME_REASON
    )


@pytest.mark.parametrize("values", ["203.0.113.7", None, {"203.0.113.7": 1}])
def test_normalize_refuses_a_value_that_is_not_a_list(values):
    with pytest.raises(AnsibleFilterError) as caught:
        pf_normalize(values)
    assert str(caught.value) == "pf_normalize must be a list of addresses, got %r" % (values,)


# pf_overlapping


@pytest.mark.parametrize(
    "values, networks, overlapping",
    [
        # inside, equal and containing all overlap; outside does not
        ([CONTROLLER, ATTACKER], TRUSTED, [CONTROLLER]),
        (["198.51.100.0/25"], TRUSTED, ["198.51.100.0/25"]),
        (["198.51.100.0/24", "0.0.0.0/0"], TRUSTED, ["198.51.100.0/24", "0.0.0.0/0"]),
        (["198.51.100.128/25", "203.0.113.0/24"], TRUSTED, []),
        # the controller as a single address
        (["198.51.100.0/30", "198.51.100.4/30"], [CONTROLLER], ["198.51.100.0/30"]),
        # IPv6
        (["2001:db8::7", "2001:db8:1::7"], ["2001:db8::/64"], ["2001:db8::7"]),
        (["2001:db8::/32", "2001:db9::/32"], ["2001:db8:0:1::/64"], ["2001:db8::/32"]),
        # the families never overlap, not even through ::/0, 0.0.0.0/0 or an IPv4-mapped address
        (["::/0", "::ffff:198.51.100.1"], ["0.0.0.0/0"], []),
        (["0.0.0.0/0", CONTROLLER], ["::/0"], []),
        # normalised, once
        (["198.51.100.1/32", "198.51.100.1", "198.51.100.9/24"], TRUSTED, [CONTROLLER, "198.51.100.0/24"]),
        ([CONTROLLER], [], []),
        ([], TRUSTED, []),
    ],
)
def test_overlapping(values, networks, overlapping):
    assert pf_overlapping(values, networks) == overlapping


def test_overlapping_checks_against_every_network():
    networks = TRUSTED + [CONTROLLER, "2001:db8::/64"]
    assert pf_overlapping(["2001:db8::1", ATTACKER, "198.51.100.50"], networks) == ["2001:db8::1", "198.51.100.50"]


OVERLAPPING_REFUSALS = [
    (["mac1.example.com"], TRUSTED,
     "pf_overlapping: not valid addresses: 'mac1.example.com' (%s)" % HOSTNAME_REASON),
    ([ATTACKER], ["198.51.100.0/33"],
     "pf_overlapping networks: not valid addresses: '198.51.100.0/33' (netmask /33 is wider than an IPv4 address)"),
    ("203.0.113.7", TRUSTED, "pf_overlapping must be a list of addresses, got '203.0.113.7'"),
    ([ATTACKER], "198.51.100.0/25", "pf_overlapping networks must be a list of addresses, got '198.51.100.0/25'"),
    ([ATTACKER], None, "pf_overlapping networks must be a list of addresses, got None"),
]  # fmt: skip


# pf_inside


@pytest.mark.parametrize(
    "values, networks, inside",
    [
        # inside and equal count; containing and outside do not
        ([ATTACKER, "198.51.100.224/27", "198.51.100.0/24", "203.0.113.7"], ["198.51.100.192/26"],
         [ATTACKER, "198.51.100.224/27"]),
        (["198.51.100.192/26"], ["198.51.100.192/26"], ["198.51.100.192/26"]),
        ([ATTACKER], [ATTACKER], [ATTACKER]),
        (["198.51.100.0/24"], [ATTACKER], []),
        (["198.51.100.199", "198.51.100.128/25"], ["198.51.100.200/29"], []),
        # IPv6
        (["2001:db8::7", "2001:db8::/80", "2001:db8::/48", "2001:db8:1::7"], ["2001:db8::/64"],
         ["2001:db8::7", "2001:db8::/80"]),
        (["2001:db8::7"], ["::/0"], ["2001:db8::7"]),
        # the families never contain each other
        ([ATTACKER, "::ffff:198.51.100.200"], ["::/0"], ["::ffff:198.51.100.200"]),
        (["2001:db8::7", ATTACKER], ["0.0.0.0/0"], [ATTACKER]),
        # normalised, once; several networks
        (["203.0.113.7/32", "203.0.113.7", "2001:DB8::7"], ["203.0.113.0/24", "2001:db8::/64"],
         ["203.0.113.7", "2001:db8::7"]),
        ([ATTACKER], [], []),
        ([], ["0.0.0.0/0"], []),
    ],
)  # fmt: skip
def test_inside(values, networks, inside):
    assert pf_inside(values, networks) == inside


@pytest.mark.parametrize(
    "values, networks, message",
    [
        (["203.0.113.7", "fe80::1%en0"], ["0.0.0.0/0"],
         "pf_inside: not valid addresses: 'fe80::1%en0' (scoped IPv6 addresses are not supported)"),
        ([ATTACKER], ["!198.51.100.0/24"],
         "pf_inside networks: not valid addresses: '!198.51.100.0/24' (negation ('!') is not supported)"),
        ({"ip": ATTACKER}, ["0.0.0.0/0"], "pf_inside must be a list of addresses, got {'ip': '198.51.100.200'}"),
        ([ATTACKER], ATTACKER, "pf_inside networks must be a list of addresses, got '198.51.100.200'"),
    ],
)  # fmt: skip
def test_inside_refuses_bad_input_naming_it(values, networks, message):
    with pytest.raises(AnsibleFilterError) as caught:
        pf_inside(values, networks)
    assert str(caught.value) == message


# pf_wide


@pytest.mark.parametrize(
    "values, wide",
    [
        (["203.0.113.7", "10.0.0.0/8", "10.1.2.3/7", "11.0.0.0/9"], ["10.0.0.0/8", "10.0.0.0/7"]),
        (["0.0.0.0/0", "::/0"], ["0.0.0.0/0", "::/0"]),
        (["2001:db8::/32", "2001:db8::/33", "2001:db8::/31", "2001:db8::1"], ["2001:db8::/32", "2001:db8::/31"]),
        (["::ffff:10.0.0.0/104"], []),  # an IPv6 /104, however it is written
        ([], []),
    ],
)  # fmt: skip
def test_wide(values, wide):
    assert pf_wide(values) == wide


@pytest.mark.parametrize(
    "values, message",
    [
        ("10.0.0.0/8", "pf_wide must be a list of addresses, got '10.0.0.0/8'"),
        (None, "pf_wide must be a list of addresses, got None"),
        (["10.0.0.0/\u0668"], "10.0.0.0/"),
    ],
)  # fmt: skip
def test_wide_refuses_what_is_not_a_list_of_addresses(values, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        pf_wide(values)


# pf_address_list: what an AWX survey field or a CI variable gives, besides a YAML list.
@pytest.mark.parametrize(
    "value, expected",
    [
        ("203.0.113.7", ["203.0.113.7"]),
        ("203.0.113.7, 2001:db8::/64", ["203.0.113.7", "2001:db8::/64"]),
        ("203.0.113.7\n198.51.100.0/26\r\n", ["203.0.113.7", "198.51.100.0/26"]),
        ("  203.0.113.7 ,, 203.0.113.8\t", ["203.0.113.7", "203.0.113.8"]),
        ("", []),
        (" \n ", []),
        (["203.0.113.7", "not an address"], ["203.0.113.7", "not an address"]),
        (("203.0.113.7",), ["203.0.113.7"]),
    ],
)
def test_pf_address_list_takes_lists_and_separated_strings(value, expected):
    assert pf_addresses.pf_address_list(value) == expected


@pytest.mark.parametrize("value", [None, 7, 7.5, True, {"203.0.113.7": 1}])
def test_pf_address_list_refuses_what_is_neither_a_list_nor_a_string(value):
    with pytest.raises(AnsibleFilterError, match="pf_address_list: expected a list of addresses or a string"):
        pf_addresses.pf_address_list(value)
