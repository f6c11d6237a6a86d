# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Address filters for the fleet plays: pf_invalid, pf_normalize, pf_overlapping and pf_inside, each
documented in its own sidecar file (pf_invalid.yml, ...). They parse addresses exactly as
pfguard.macos.pfctl_table does (the same module_utils), so the controller refuses, matches and records what
the module would, without netaddr."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import normalize_addresses, overlaps


def _is_list(values):
    return isinstance(values, (list, tuple))


def _parsed(values, what):
    """{canonical text: (version, network int, prefix)} in input order, or AnsibleFilterError naming the bad values."""
    if not _is_list(values):
        raise AnsibleFilterError("%s must be a list of addresses, got %r" % (what, values))
    entries, bad = normalize_addresses(list(values))
    if bad:
        raise AnsibleFilterError("%s: not valid addresses: %s" % (what, "; ".join("'%s' (%s)" % item for item in bad)))
    return entries


def pf_invalid(values):
    """A "'value' (reason)" line for every value pfctl_table would refuse as an address; [] when all are valid."""
    if not _is_list(values):
        return ["%r (not a list)" % (values,)]
    return ["'%s' (%s)" % item for item in normalize_addresses(list(values))[1]]


def pf_normalize(values):
    """The addresses as pfctl stores them (host bits masked, /32 and /128 dropped, IPv6 compressed),
    duplicates removed, in input order."""
    return list(_parsed(values, "pf_normalize"))


def pf_overlapping(values, networks):
    """The addresses (normalised) that share any address with one of `networks`."""
    guards = list(_parsed(networks, "pf_overlapping networks").values())
    return [entry for entry, key in _parsed(values, "pf_overlapping").items() if any(overlaps(key, g) for g in guards)]


def pf_inside(values, networks):
    """The addresses (normalised) that lie entirely inside one of `networks` (equal counts as inside)."""
    containers = list(_parsed(networks, "pf_inside networks").values())
    return [
        entry
        for entry, key in _parsed(values, "pf_inside").items()
        if any(key[2] >= net[2] and overlaps(key, net) for net in containers)
    ]


class FilterModule(object):
    """pfguard's address filters."""

    def filters(self):
        return {
            "pf_invalid": pf_invalid,
            "pf_normalize": pf_normalize,
            "pf_overlapping": pf_overlapping,
            "pf_inside": pf_inside,
        }
