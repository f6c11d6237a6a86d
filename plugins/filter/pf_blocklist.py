# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters for the fleet blocklist file of pull mode (docs/pull-mode.md): pf_blocklist_text and
pf_blocklist_lines, each documented in its own sidecar file. The file is a blocklist feed in the plain
format of pfguard.macos.blocklist_feeds (one address or network a line, `#` starts a comment); its lines
are read by the same parser (module_utils/blocklist.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.pfguard.macos.plugins.module_utils.blocklist import _entry_of_line
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import normalize_addresses
from ansible_collections.pfguard.macos.plugins.plugin_utils.filter_checks import checked_arguments, show

PLAIN = "plain"


def _text(value, name):
    if not isinstance(value, str):
        raise AnsibleFilterError("%s: expected the file's text (a string), got %s" % (name, show(value)))
    return value


def _entries(line):
    entry = _entry_of_line(line, PLAIN)
    return [] if entry is None else [entry]


@checked_arguments("pf_blocklist_text")
def pf_blocklist_text(text):
    """The entry of every line that is not blank or a comment, unchecked (pf_invalid names the bad ones;
    a line of two words is one bad entry)."""
    entries = []
    for line in _text(text, "pf_blocklist_text").splitlines():
        entries.extend(_entries(line))
    return entries


@checked_arguments("pf_blocklist_lines")
def pf_blocklist_lines(lines, addresses):
    """The lines whose entry is one of `addresses` (compared as pfctl stores them); comments, blank lines
    and lines that are not an address are never returned."""
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise AnsibleFilterError("pf_blocklist_lines: expected a list of lines, got %s" % show(lines))
    wanted, bad = normalize_addresses(list(addresses) if isinstance(addresses, list) else [])
    if not isinstance(addresses, list) or bad:
        raise AnsibleFilterError("pf_blocklist_lines: expected a list of addresses, got %s" % show(addresses))
    wanted = set(wanted)
    found = []
    for line in lines:
        entries = _entries(line)
        if not entries:
            continue
        normalized, invalid = normalize_addresses(entries)
        if not invalid and normalized and set(normalized) <= wanted:
            found.append(line)
    return found


class FilterModule(object):
    """pfguard's pull-mode blocklist file filters."""

    def filters(self):
        return {"pf_blocklist_text": pf_blocklist_text, "pf_blocklist_lines": pf_blocklist_lines}
