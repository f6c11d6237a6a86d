# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin pfguard.macos.blocklist_feeds: fetch, parse and merge blocklist feeds on the controller.

Runs entirely on the controller (nothing is sent to the managed host): feeds are downloaded once per
run, not once per Mac, and a feed server sees the controller, not the fleet. The documentation is in
plugins/modules/blocklist_feeds.py; the formats and the merge in module_utils/blocklist.py."""

from __future__ import annotations

import json
import os
import re
import time

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import SSLValidationError, open_url
from ansible.plugins.action import ActionBase
from ansible_collections.pfguard.macos.plugins.module_utils.blocklist import FORMATS, FeedError, merge, parse_feed
from ansible_collections.pfguard.macos.plugins.module_utils.pfctl import parse_entry, shown
from ansible_collections.pfguard.macos.plugins.module_utils.safe_files import UnsafePath, read_bounded, write_file

FEED_SPEC = dict(
    name=dict(type="str", required=True),
    url=dict(type="str"),
    path=dict(type="str"),
    format=dict(type="str", default="plain", choices=list(FORMATS)),
)
ARGUMENT_SPEC = dict(
    feeds=dict(type="list", elements="dict", required=True, options=FEED_SPEC,
               mutually_exclusive=[("url", "path")], required_one_of=[("url", "path")]),
    cache_dir=dict(type="path", default="~/.cache/pfguard/feeds"),
    min_interval=dict(type="int", default=3600),
    timeout=dict(type="int", default=30),
    max_bytes=dict(type="int", default=32 * 1024 * 1024),
    max_entries=dict(type="int"),
    protect=dict(type="list", elements="str", default=[]),
    allow_wide_networks=dict(type="bool", default=False),
    validate_certs=dict(type="bool", default=True),
)
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Dropped entries listed in full up to this many; the count is always exact.
DROPPED_LISTED = 1000


class Refused(Exception):
    """Bad task arguments: the message names the value; nothing was fetched or written."""


def check_arguments(args):
    """Refuse values the argument spec lets through; returns {protected text: key}."""
    names = [feed["name"] for feed in args["feeds"]]
    for feed in args["feeds"]:
        if not NAME_RE.match(feed["name"]):
            raise Refused("feed name %s: use 1 to 64 letters, digits, '_', '.', '-', starting with a letter or digit"
                          % shown(feed["name"]))
        if feed["url"] is not None and not re.match(r"\Ahttps?://[^\s]+\Z", feed["url"]):
            raise Refused("feed %s: url %s is not an http:// or https:// URL" % (feed["name"], shown(feed["url"])))
        if feed["path"] is not None and not os.path.isabs(feed["path"]):
            raise Refused("feed %s: path %s is not absolute" % (feed["name"], shown(feed["path"])))
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise Refused("feed names must be unique: %s given more than once" % ", ".join(duplicates))
    if not args["feeds"]:
        raise Refused("feeds is empty: name at least one feed")
    for option, low in (("min_interval", 0), ("timeout", 1), ("max_bytes", 1), ("max_entries", 0)):
        if args[option] is not None and args[option] < low:
            raise Refused("%s must be at least %d, got %d" % (option, low, args[option]))
    protected = {}
    for value in args["protect"]:
        try:
            text, version, network, prefix = parse_entry(value)
        except ValueError as exc:
            raise Refused("protect: %s is not an address or network: %s" % (shown(value), exc)) from None
        protected[text] = (version, network, prefix)
    return protected


class FeedCache:
    """The last good list of each feed and how it was fetched, in `directory` (created 0700)."""

    def __init__(self, directory, writable):
        self.directory = directory
        self.writable = writable

    def _path(self, name, suffix):
        return os.path.join(self.directory, name + suffix)

    def load(self, name, source):
        """(entries text or None, metadata dict) of the last good copy of this feed from this source."""
        try:
            raw_meta = read_bounded(self._path(name, ".meta.json"), 65536, "feed cache file")
            meta = json.loads(raw_meta) if raw_meta else {}
            if not isinstance(meta, dict) or meta.get("source") != source:
                return None, {}
            listed = read_bounded(self._path(name, ".list"), 1 << 30, "feed cache file")
        except (UnsafePath, ValueError, OSError):
            return None, {}
        if listed is None:
            return None, {}
        return listed.decode("utf-8", "replace"), meta

    def store(self, name, entries, meta):
        if not self.writable:
            return
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        write_file(self._path(name, ".list"), "".join(entry + "\n" for entry in entries), 0o600)
        write_file(self._path(name, ".meta.json"), json.dumps(meta, sort_keys=True) + "\n", 0o600)

    def touch(self, name, meta):
        """Record that the source was asked (a 304, or a failure) without changing the list."""
        if self.writable:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            write_file(self._path(name, ".meta.json"), json.dumps(meta, sort_keys=True) + "\n", 0o600)


def stamp(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False
    TRANSFERS_FILES = False

    def _download(self, feed, meta, args):
        """(status, text or None): 'downloaded' with the body, or 'not_modified'. Raises on failure."""
        headers = {}
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
        try:
            response = open_url(feed["url"], headers=headers, timeout=args["timeout"],
                                validate_certs=args["validate_certs"], http_agent="pfguard.macos.blocklist_feeds")
        except HTTPError as exc:
            if exc.code == 304:
                return "not_modified", None, {}
            raise FeedError("HTTP %d %s" % (exc.code, exc.reason)) from None
        with response:
            body = response.read(args["max_bytes"] + 1)
            if len(body) > args["max_bytes"]:
                raise FeedError("larger than max_bytes (%d bytes)" % args["max_bytes"])
            validators = {"etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified")}
        return "downloaded", body.decode("utf-8", "replace"), validators

    def _one_feed(self, feed, cache, args, now):
        """(entries {text: key} or None, report dict) for one feed."""
        source = feed["url"] or feed["path"]
        report = {"name": feed["name"], "source": source, "format": feed["format"]}
        cached_text, meta = cache.load(feed["name"], source)
        try:
            last_good = parse_feed(cached_text, "plain", feed["name"]) if cached_text is not None else None
        except FeedError:  # a damaged cache is no last good list: fetch as if there were none
            last_good, meta = None, {}
        try:
            if feed["path"]:
                raw = read_bounded(feed["path"], args["max_bytes"], "feed file")
                if raw is None:
                    raise FeedError("no such file")
                status, text, validators = "read", raw.decode("utf-8", "replace"), {}
            elif last_good is not None and now - meta.get("checked_at", 0) < args["min_interval"]:
                status, text, validators = "cached", None, {}
            else:
                status, text, validators = self._download(feed, meta, args)
            if text is not None:
                entries = parse_feed(text, feed["format"], feed["name"])
                meta = {"source": source, "fetched_at": now, "checked_at": now, "entries": len(entries), **validators}
                cache.store(feed["name"], list(entries), meta)
            else:
                entries = last_good
                if status == "not_modified":
                    meta = dict(meta, checked_at=now)
                    cache.touch(feed["name"], meta)
        except (FeedError, UnsafePath, HTTPError, URLError, UrlConnectionError, SSLValidationError, OSError) as exc:
            reason = str(exc) if isinstance(exc, (FeedError, UnsafePath)) else "%s: %s" % (type(exc).__name__, exc)
            report.update(status="failed", error=reason, entries=len(last_good or {}),
                          last_good=stamp(meta.get("fetched_at")) if last_good is not None else None)
            return last_good, report
        report.update(status=status, entries=len(entries), last_good=stamp(meta.get("fetched_at")))
        return entries, report

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        validation, new_args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            protected = check_arguments(new_args)
        except Refused as exc:
            return dict(result, failed=True, msg="%s. Nothing was fetched." % exc)
        cache = FeedCache(os.path.expanduser(new_args["cache_dir"]), writable=not self._task.check_mode)
        now = int(time.time())
        merged, reports, warnings = {}, [], []
        for feed in new_args["feeds"]:
            entries, report = self._one_feed(feed, cache, new_args, now)
            reports.append(report)
            if report["status"] == "failed":
                kept = "keeping the last good list from %s" % report["last_good"] if entries is not None else (
                    "no earlier list to keep: it adds nothing")
                warnings.append("feed %s failed (%s); %s" % (feed["name"], report["error"], kept))
            if entries:
                merged[feed["name"]] = entries
        entries, dropped = merge(merged, protected, new_args["allow_wide_networks"])
        result.update(changed=False, entries=entries, count=len(entries), feeds=reports,
                      dropped=dropped[:DROPPED_LISTED], dropped_count=len(dropped))
        if warnings:
            result["warnings"] = warnings
        if new_args["max_entries"] is not None and len(entries) > new_args["max_entries"]:
            result.update(failed=True, msg="the merged feeds hold %d entries, more than max_entries %d; nothing was "
                          "changed" % (len(entries), new_args["max_entries"]))
        return result
