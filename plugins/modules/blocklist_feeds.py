#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: blocklist_feeds
short_description: Fetch, parse and merge blocklist feeds on the controller
version_added: 0.3.0
description:
  - Downloads (or reads) every feed on the controller, once per run, parses it in its format, merges all
    feeds into one list and collapses it (networks inside others go, adjacent halves become one network),
    ready for M(pfguard.macos.pfctl_table) with O(pfguard.macos.pfctl_table#module:state=exact).
  - Entries that overlap O(protect) (the trusted networks, the controller's address) are dropped and
    reported in RV(dropped), never returned. So are networks as wide as IPv4 C(/8) or IPv6 C(/32), unless
    O(allow_wide_networks=true); merging never makes such a network either.
  - Keeps the last good list of each feed in O(cache_dir). A feed that cannot be downloaded, read or
    parsed keeps its last good list and the task warns; a feed with no last good list adds nothing.
  - Asks a server at most once per O(min_interval), and then with C(If-None-Match) and
    C(If-Modified-Since) from its last answer, so an unchanged feed is not downloaded again.
  - This is an action plugin; it runs on the controller and nothing runs on the managed host.
author:
  - pfguard developers (@pfguard)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: In check mode feeds are fetched and merged but the cache is not written.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  feeds:
    description: The feeds, merged in one list.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The feed's name in reports and the cache (1 to 64 letters, digits, C(_), C(.), C(-)). Unique.
        type: str
        required: true
      url:
        description: An C(http://) or C(https://) URL. Exactly one of O(feeds[].url) and O(feeds[].path).
        type: str
      path:
        description: An absolute path of a file on the controller (a regular file, not a symlink).
        type: path
      format:
        description:
          - C(plain) and C(netset), one address or network per line, C(#) starts a comment.
          - C(spamhaus_drop), Spamhaus DROP text, C(CIDR ; SBLnnn) per line, C(;) starts a comment.
          - C(spamhaus_json), Spamhaus C(drop_v4.json)/C(drop_v6.json), one JSON object per line.
          - One line that is not an address makes the whole new copy unusable.
        type: str
        default: plain
        choices: [plain, netset, spamhaus_drop, spamhaus_json]
  cache_dir:
    description: Where the last good list of each feed is kept, on the controller (created with mode 0700).
    type: path
    default: ~/.cache/pfguard/feeds
  min_interval:
    description:
      - Seconds during which a feed that was asked is not asked again (its last good list is used).
      - Spamhaus asks for at least an hour between downloads.
    type: int
    default: 3600
  timeout:
    description: Seconds one download may take.
    type: int
    default: 30
  max_bytes:
    description: A feed larger than this many bytes fails (and keeps its last good list).
    type: int
    default: 33554432
  max_entries:
    description:
      - Fail when the merged list holds more entries than this, before anything uses it. Give the Macs'
        table-entries limit less what their other tables hold.
    type: int
  protect:
    description: Addresses and networks no entry may overlap (entries that do are dropped and reported).
    type: list
    elements: str
    default: []
  allow_wide_networks:
    description: Keep entries as wide as IPv4 C(/8) or IPv6 C(/32), and merge into such networks.
    type: bool
    default: false
  validate_certs:
    description: Validate the servers' TLS certificates.
    type: bool
    default: true
notes:
  - Formats, samples and sources are in C(docs/blocklist-feeds.md) of the collection.
seealso:
  - module: pfguard.macos.pfctl_table
"""

EXAMPLES = r"""
- name: Merge FireHOL level1 and Spamhaus DROP, never touching the trusted networks
  pfguard.macos.blocklist_feeds:
    feeds:
      - name: firehol_level1
        url: https://iplists.firehol.org/files/firehol_level1.netset
        format: netset
      - name: spamhaus_drop
        url: https://www.spamhaus.org/drop/drop_v4.json
        format: spamhaus_json
    protect: "{{ pfguard_trusted_networks }}"
  run_once: true
  register: feeds
"""

RETURN = r"""
entries:
  description: The merged, collapsed entries in pfctl's text and show order.
  returned: success
  type: list
  elements: str
  sample: ["192.0.2.0/24", "2001:db8::/48"]
count:
  description: How many entries RV(entries) holds.
  returned: success
  type: int
feeds:
  description:
    - One report per feed, in the order given.
    - C(status) is C(downloaded), C(not_modified) (the server said so), C(cached) (asked less than
      O(min_interval) ago), C(read) (a local file) or C(failed) (with C(error)).
    - C(entries) counts what the feed contributes; C(last_good) is when its list was last fetched.
  returned: success
  type: list
  elements: dict
  sample: [{"name": "firehol_level1", "source": "https://example.org/level1.netset", "format": "netset",
            "status": "downloaded", "entries": 4512, "last_good": "2026-12-05T22:00:00Z"}]
dropped:
  description: Entries left out, with the feeds that listed them and why (the first 1000).
  returned: success
  type: list
  elements: dict
  sample:
    - entry: 192.168.0.0/16
      feeds: [firehol_level1]
      reason: overlaps the protected network 192.168.1.0/24
dropped_count:
  description: How many entries were left out in all.
  returned: success
  type: int
"""
