# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Address filters for the fleet plays: pf_address_list, pf_invalid, pf_normalize, pf_overlapping, pf_inside and
pf_wide, each
documented in its own sidecar file (pf_invalid.yml, ...). They parse addresses exactly as
pfguard.macos.pfctl_table does (the same module_utils), so the controller refuses, matches and records what
the module would, without netaddr."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import is_wide, normalize_addresses, overlaps
from ansible_collections.pfguard.macos.plugins.plugin_utils.filter_checks import (
    checked_arguments,
    printable,
    show,
)

# A refusal names at most this many bad values, then says how many more there are.
BAD_VALUES_NAMED = 10
REASON_MAX = 200


def _is_list(values):
    return isinstance(values, (list, tuple))


def _line(value, reason):
    """"'value' (reason)": a string shown printable and cut short, anything else shown as Python would."""
    text = printable(value) if isinstance(value, str) else show(value)
    return "'%s' (%s)" % (text, printable(reason, REASON_MAX))


def _parsed(values, what):
    """{canonical text: (version, network int, prefix)} in input order, or AnsibleFilterError naming the bad values."""
    if not _is_list(values):
        raise AnsibleFilterError("%s must be a list of addresses, got %s" % (what, show(values)))
    entries, bad = normalize_addresses(list(values))
    if bad:
        named = [_line(*item) for item in bad[:BAD_VALUES_NAMED]]
        if len(bad) > BAD_VALUES_NAMED:
            named.append("and %d more" % (len(bad) - BAD_VALUES_NAMED))
        raise AnsibleFilterError("%s: not valid addresses: %s" % (what, "; ".join(named)))
    return entries


# What a survey field or a CI variable holds: addresses separated by commas, spaces or newlines.
ADDRESS_SEPARATORS = re.compile(r"[,\s]+")


@checked_arguments("pf_address_list")
def pf_address_list(value):
    """A list of addresses from a list (returned as a list, unchecked) or from one string of addresses
    separated by commas, spaces or newlines. Anything else is refused."""
    if _is_list(value):
        return list(value)
    if isinstance(value, str):
        return [item for item in ADDRESS_SEPARATORS.split(value) if item]
    raise AnsibleFilterError(
        "pf_address_list: expected a list of addresses or a string of addresses separated by commas, spaces "
        "or newlines, got %s" % show(value)
    )


@checked_arguments("pf_invalid")
def pf_invalid(values):
    """A "'value' (reason)" line for every value pfctl_table would refuse as an address; [] when all are valid."""
    if not _is_list(values):
        return ["%s (not a list)" % show(values)]
    return [_line(*item) for item in normalize_addresses(list(values))[1]]


@checked_arguments("pf_normalize")
def pf_normalize(values):
    """The addresses as pfctl stores them (host bits masked, /32 and /128 dropped, IPv6 compressed),
    duplicates removed, in input order."""
    return list(_parsed(values, "pf_normalize"))


@checked_arguments("pf_overlapping")
def pf_overlapping(values, networks):
    """The addresses (normalised) that share any address with one of `networks`."""
    guards = list(_parsed(networks, "pf_overlapping networks").values())
    return [entry for entry, key in _parsed(values, "pf_overlapping").items() if any(overlaps(key, g) for g in guards)]


@checked_arguments("pf_inside")
def pf_inside(values, networks):
    """The addresses (normalised) that lie entirely inside one of `networks` (equal counts as inside)."""
    containers = list(_parsed(networks, "pf_inside networks").values())
    return [
        entry
        for entry, key in _parsed(values, "pf_inside").items()
        if any(key[2] >= net[2] and overlaps(key, net) for net in containers)
    ]


@checked_arguments("pf_wide")
def pf_wide(values):
    """The addresses (normalised) that are networks as wide as an IPv4 /8 or an IPv6 /32, or wider: the
    bans pfguard.macos.pfctl_table refuses without allow_wide_networks."""
    return [entry for entry, key in _parsed(values, "pf_wide").items() if is_wide(key)]


class FilterModule(object):
    """pfguard's address filters."""

    def filters(self):
        return {
            "pf_address_list": pf_address_list,
            "pf_invalid": pf_invalid,
            "pf_normalize": pf_normalize,
            "pf_overlapping": pf_overlapping,
            "pf_inside": pf_inside,
            "pf_wide": pf_wide,
        }
