# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulated PF "kernel": state.json under an exclusive flock, tables, anchors, enable references.

State lives in `$PFGUARD_LAB_PF_STATE` (default /var/run/pfguard-lab/pf): `state.json`, rewritten
atomically (temp file + rename) while `lock` is held with fcntl.flock(LOCK_EX). The schema is the one in
docs/lab-design.md ("PF kernel state") plus these fields:

- top level: `since` (epoch of the last enable/disable/`-F info`, what `-s info` counts from; None until
  the first one), `hostid` (32-bit, shown by `-s info -v`), `skip` (interfaces from `set skip on`),
  `tokens[].token` is a decimal string (64-bit values do not survive every JSON reader as numbers).
- ruleset: `binat` (binat-anchor rules) next to `nat`/`rdr`; `options` holds the `set ...` lines as
  pfctl -v would print them.
- table: `entries` is kept in radix order (pfctl -T show order) and `tzero` is a list parallel to
  `entries` with the epoch each entry's counters were last cleared (its "Cleared:" time).
- rule: besides the fields in the design doc, `ruleset` (the list it lives in: "filter", "scrub",
  "nat", "rdr", "binat", "dummynet"), `ifnot`, `flags` ("S/SA"-style, "any" or None), `state`
  ("keep", "modulate", "synproxy" or None), `label`, `scrub_opts` (scrub rules), `cpid` (loader pid,
  for -sr -v); `from`/`to` carry their `port`; anchor calls have `kind` (their keyword, e.g.
  "nat-anchor"), `anchor_path` (resolved absolute path without `/*`) and `wildcard`.

Behaviour follows xnu pf_table.c / pf_ruleset.c as summarised in docs/reference/pfctl.md#anchors and
#table-commands: tables get the PERSIST flag when created by -T add/replace, a table stays active only
while persistent or referenced, inactive tables lose their addresses, anchors exist while they have
rules, tables, children or anchor rules pointing at them, and anchor tables keep a shadow root table
alive (the `h` flag).
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import os
import random
import time
from collections import Counter
from pathlib import Path

from . import addr

DEFAULT_STATE_DIR = "/var/run/pfguard-lab/pf"
RULE_KINDS = ("scrub", "nat", "rdr", "binat", "dummynet", "filter")
ANCHOR_NAME_SIZE = 64  # PF_ANCHOR_NAME_SIZE
TABLE_NAME_SIZE = 32  # PF_TABLE_NAME_SIZE
MAXPATHLEN = 1024
RESERVED_ANCHOR = "_pf"
# pf_pool_limits defaults (docs/reference/pfctl.md#limits), in pfctl's pf_limits order; `set limit` in the
# main ruleset changes them, `pfctl -s memory` prints them. Only table-entries is enforced by the lab.
DEFAULT_LIMITS = {"states": 10000, "app-states": 10000, "src-nodes": 10000, "frags": 5000, "tables": 1000,
                  "table-entries": 200000}

# pfr_strerror() and strerror() texts on macOS (docs/reference/pfctl.md#table-errors)
ERRNO_TEXT = {
    "ESRCH": "Table does not exist",
    "ENOENT": "Anchor or Ruleset does not exist",
    "EPERM": "Operation not permitted",
    "EINVAL": "Invalid argument",
    "ENOMEM": "Cannot allocate memory",
    "EACCES": "Permission denied",
    "EBADF": "Bad file descriptor",
}


class KernelError(Exception):
    """An ioctl failure; `text` is the strerror/pfr_strerror text."""

    def __init__(self, errno_name: str):
        super().__init__(errno_name)
        self.errno_name = errno_name
        self.text = ERRNO_TEXT[errno_name]


def state_dir() -> Path:
    return Path(os.environ.get("PFGUARD_LAB_PF_STATE") or DEFAULT_STATE_DIR)


def empty_ruleset() -> dict:
    return {"options": [], **{kind: [] for kind in RULE_KINDS}, "tables": {}}


def default_state() -> dict:
    return {
        "enabled": False,
        "enabled_since": None,
        "since": None,
        "refcount": 0,
        "tokens": [],
        "debug": "Urgent",
        "hostid": random.getrandbits(32),
        "skip": [],
        "rulesets": {"": empty_ruleset()},
        "states": [],
        "limits": dict(DEFAULT_LIMITS),
    }


def new_table(flags: list[str], active: bool, now: int) -> dict:
    return {
        "flags": flags,
        "active": active,
        "entries": [],
        "tzero": [],
        "cleared": now,
        "refs_rules": 0,
        "refs_anchors": 0,
    }


def parent_path(path: str) -> str:
    return path.rpartition("/")[0]


def valid_components(path: str) -> bool:
    """pf_find_or_create_ruleset refuses empty components and components of 64+ characters."""
    return all(0 < len(part) < ANCHOR_NAME_SIZE for part in path.split("/"))


def fix_anchor(path: str) -> str:
    """pfr_fix_anchor: leading slashes are dropped; an over-long path is EINVAL."""
    path = path.lstrip("/")
    if len(path) >= MAXPATHLEN:
        raise KernelError("EINVAL")
    return path


class Table:
    """A table's entries as a dict key -> [negated, tzero], materialised only when an op needs it.

    `raw["entries"]` stays in radix order; flush() re-sorts only when keys were added, and then only
    the new ones when they are few (bisect into the existing order)."""

    def __init__(self, raw: dict):
        self.raw = raw
        self._entries: dict | None = None
        self.added: set[str] = set()
        self.rebuilt = False  # entries replaced wholesale: sort everything

    @property
    def entries(self) -> dict:
        if self._entries is None:
            entries = {}
            for text, tzero in zip(self.raw["entries"], self.raw["tzero"]):
                if text[0] == "!":
                    entries[text[1:]] = [True, tzero]
                else:
                    entries[text] = [False, tzero]
            self._entries = entries
        return self._entries

    def replace(self, entries: dict) -> None:
        self._entries = entries
        self.rebuilt = True

    def flush(self) -> None:
        entries = self._entries
        if entries is None:
            return
        if self.rebuilt or len(self.added) * 8 > len(entries):
            keys = sorted(entries, key=addr.radix_key)
        else:
            keys = [text[1:] if text[0] == "!" else text for text in self.raw["entries"]]
            keys = [key for key in keys if key in entries]
            for key in sorted(self.added, key=addr.radix_key):
                if key in entries:
                    bisect.insort(keys, key, key=addr.radix_key)
        self.raw["entries"] = [("!" + k) if entries[k][0] else k for k in keys]
        self.raw["tzero"] = [entries[k][1] for k in keys]
        self.added = set()
        self.rebuilt = False

    def clear(self) -> None:
        self.replace({})


class Kernel:
    """Operations on the loaded state. Mutators set `dirty`; the caller saves."""

    def __init__(self, data: dict, now: float | None = None):
        self.data = data
        self.dirty = False
        self.now = int(now if now is not None else time.time())
        self._tables: dict[int, Table] = {}
        # what enforcement must look at: "status", "rules" or ("table", anchor, name)
        self.changed: set = set()

    # ------------------------------------------------------------------ structure

    @property
    def rulesets(self) -> dict:
        return self.data["rulesets"]

    def ruleset(self, path: str) -> dict | None:
        return self.rulesets.get(path)

    def children(self, path: str) -> list[str]:
        """Direct child anchors of `path` ("" = main), sorted like the kernel's RB tree."""
        out = []
        for key in self.rulesets:
            if key and parent_path(key) == path:
                out.append(key)
        return sorted(out, key=lambda p: p.rpartition("/")[2].encode())

    def ensure_ruleset(self, path: str) -> bool:
        """pf_find_or_create_ruleset: create `path` and its ancestors; False if a component is invalid."""
        if path in self.rulesets:
            return True
        if not valid_components(path) or len(path) >= MAXPATHLEN:
            return False
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in self.rulesets:
                self.rulesets[sub] = empty_ruleset()
        self.dirty = True
        return True

    def table_obj(self, raw: dict) -> Table:
        obj = self._tables.get(id(raw))
        if obj is None:
            obj = self._tables[id(raw)] = Table(raw)
        return obj

    def lookup_table(self, anchor: str, name: str) -> dict | None:
        ruleset = self.rulesets.get(anchor)
        if ruleset is None:
            return None
        return ruleset["tables"].get(name)

    @staticmethod
    def validate_table(anchor: str, name: str) -> str:
        """pfr_validate_table + pfr_fix_anchor: returns the fixed anchor path."""
        if not name or len(name) >= TABLE_NAME_SIZE:
            raise KernelError("EINVAL")
        anchor = fix_anchor(anchor)
        if anchor == RESERVED_ANCHOR:
            raise KernelError("EINVAL")
        return anchor

    def active_table(self, anchor: str, name: str) -> tuple[str, dict]:
        anchor = self.validate_table(anchor, name)
        raw = self.lookup_table(anchor, name)
        if raw is None or not raw["active"]:
            raise KernelError("ESRCH")
        return anchor, raw

    # ------------------------------------------------------------------ the table-entries pool

    def table_entries(self) -> int:
        """Entries of every table (pfr_kentry_pl's allocations), inactive tables hold none."""
        total = 0
        for ruleset in self.rulesets.values():
            for raw in ruleset["tables"].values():
                obj = self._tables.get(id(raw))
                total += len(obj.entries) if obj is not None and obj._entries is not None else len(raw["entries"])
        return total

    def allocate_entries(self, count: int) -> None:
        """pfr_create_kentry for `count` new entries while every current entry is still allocated: past
        the table-entries hard limit the pool refuses and the whole ioctl fails with ENOMEM."""
        if count and self.table_entries() + count > self.data["limits"]["table-entries"]:
            raise KernelError("ENOMEM")

    # ------------------------------------------------------------------ reference counting / GC

    def normalize(self) -> None:
        """Recompute table references and flags and drop empty anchors, like the kernel does incrementally."""
        rulesets = self.rulesets
        anchor_refs: set[str] = set()
        rule_refs: Counter = Counter()
        for path, ruleset in rulesets.items():
            for kind in RULE_KINDS:
                for rule in ruleset[kind]:
                    if rule.get("anchor_path") is not None:
                        anchor_refs.add(rule["anchor_path"])
                    for side in ("from", "to"):
                        spec = rule.get(side) or {}
                        if spec.get("table"):
                            rule_refs[(path, spec["table"])] += 1
        for path in anchor_refs:
            self.ensure_ruleset(path)
        for path, name in rule_refs:
            tables = rulesets[path]["tables"]
            if name not in tables:  # pfr_attach_table creates an inactive table
                tables[name] = new_table([], False, self.now)
        # anchor tables first: the root tables' `h` references depend on which of them survive
        for path in [p for p in rulesets if p]:
            tables = rulesets[path]["tables"]
            for name in list(tables):
                raw = tables[name]
                raw["refs_rules"] = rule_refs.get((path, name), 0)
                raw["refs_anchors"] = 0
                if not self._setflags(raw):
                    del tables[name]
        shadow = Counter(name for p, r in rulesets.items() if p for name in r["tables"])
        root = rulesets[""]["tables"]
        for name in shadow:
            if name not in root:
                root[name] = new_table([], False, self.now)
        for name in list(root):
            raw = root[name]
            raw["refs_rules"] = rule_refs.get(("", name), 0)
            raw["refs_anchors"] = shadow.get(name, 0)
            if not self._setflags(raw):
                del root[name]
        # anchors: removed when no rules, no tables, no children and no anchor rule points at them
        for path in sorted((p for p in rulesets if p), key=lambda p: -p.count("/")):
            ruleset = rulesets[path]
            if path in anchor_refs or ruleset["tables"] or any(ruleset[k] for k in RULE_KINDS):
                continue
            prefix = path + "/"
            if any(other.startswith(prefix) for other in rulesets):
                continue
            del rulesets[path]
        self.dirty = True

    def _setflags(self, raw: dict) -> bool:
        """pfr_setflags_ktable: returns False when the table should be destroyed."""
        referenced = raw["refs_rules"] > 0
        refd_anchor = raw["refs_anchors"] > 0
        if not (referenced or refd_anchor or "persist" in raw["flags"]):
            raw["active"] = False
        if not raw["active"]:
            raw["flags"] = []
            obj = self._tables.get(id(raw))
            if obj is not None:
                obj.clear()
            raw["entries"], raw["tzero"] = [], []
        return raw["active"] or referenced or refd_anchor

    # ------------------------------------------------------------------ table ioctls (pfr_*)

    def add_tables(self, anchor: str, name: str, dummy: bool) -> int:
        """pfr_add_tables for one table with PERSIST (pfctl's CREATE_TABLE); returns nadd."""
        anchor = self.validate_table(anchor, name)
        raw = self.lookup_table(anchor, name)
        if raw is None:
            if not valid_components(anchor) and anchor:
                raise KernelError("ENOMEM")  # docs/reference/pfctl.md#anchors, UNVERIFIED text
            if dummy:
                return 1
            self.ensure_ruleset(anchor)
            self.rulesets[anchor]["tables"][name] = new_table(["persist"], True, self.now)
            self.normalize()
            self.changed.add("rules")
            return 1
        if not raw["active"]:
            if not dummy:
                raw["flags"] = ["persist"]
                raw["active"] = True
                self.normalize()
                self.changed.add("rules")
            return 1
        return 0

    def del_tables(self, anchor: str, name: str, dummy: bool) -> int:
        anchor = self.validate_table(anchor, name)
        raw = self.lookup_table(anchor, name)
        if raw is None or not raw["active"]:
            return 0
        if not dummy:
            raw["active"] = False
            self.normalize()
            self.changed.add("rules")
        return 1

    def clr_tables(self, anchor: str, dummy: bool) -> int:
        """-F Tables: deactivate every active table of the anchor (ENOENT when the anchor is missing)."""
        anchor = fix_anchor(anchor)
        ruleset = self.rulesets.get(anchor)
        if ruleset is None:
            raise KernelError("ENOENT")
        active = [raw for raw in ruleset["tables"].values() if raw["active"]]
        if not dummy and active:
            for raw in active:
                raw["active"] = False
            self.normalize()
            self.changed.add("rules")
        return len(active)

    def get_tables(self, anchor: str) -> list[tuple[str, dict]]:
        anchor = fix_anchor(anchor)
        ruleset = self.rulesets.get(anchor)
        if ruleset is None:
            raise KernelError("ENOENT")
        return sorted(ruleset["tables"].items(), key=lambda item: item[0].encode())

    def _writable(self, anchor: str, name: str) -> tuple[dict, Table]:
        anchor, raw = self.active_table(anchor, name)
        if "const" in raw["flags"]:
            raise KernelError("EPERM")
        return raw, self.table_obj(raw)

    def add_addrs(self, anchor, name, items, dummy: bool, feedback: bool):
        """pfr_add_addrs: returns (nadd, feedback chars or None)."""
        raw, table = self._writable(anchor, name)
        entries = table.entries
        pending: dict[str, bool] = {}
        fbs = [] if feedback else None
        for neg, key in items:
            current = entries.get(key)
            if feedback:
                if key in pending:
                    fbs.append("X")
                elif current is None:
                    fbs.append("A")
                elif current[0] != neg:
                    fbs.append("Y")
                else:
                    fbs.append(" ")
            if current is None and key not in pending:
                pending[key] = neg
        self.allocate_entries(len(pending))
        if pending and not dummy:
            now = self.now
            for key, neg in pending.items():
                entries[key] = [neg, now]
            table.added.update(pending)
            self.dirty = True
        return len(pending), fbs

    def del_addrs(self, anchor, name, items, dummy: bool, feedback: bool):
        raw, table = self._writable(anchor, name)
        entries = table.entries
        marked: set[str] = set()
        fbs = [] if feedback else None
        for neg, key in items:
            current = entries.get(key)
            if feedback:
                if current is None:
                    fbs.append(" ")
                elif current[0] != neg:
                    fbs.append("Y")
                elif key in marked:
                    fbs.append("X")
                else:
                    fbs.append("D")
            if current is not None and current[0] == neg:
                marked.add(key)
        if marked and not dummy:
            for key in marked:
                del entries[key]
            self.dirty = True
        return len(marked), fbs

    def set_addrs(self, anchor, name, items, dummy: bool):
        """pfr_set_addrs (-T replace): returns (nadd, ndel, nchange, feedback list of (fb, neg, key))."""
        raw, table = self._writable(anchor, name)
        entries = table.entries
        marked: set[str] = set()
        added: dict[str, bool] = {}
        changed: list[str] = []
        fbs = []
        for neg, key in items:
            current = entries.get(key)
            if current is not None:
                if key in marked:
                    fbs.append(("X", neg, key))
                    continue
                marked.add(key)
                if current[0] != neg:
                    changed.append(key)
                    fbs.append(("C", neg, key))
                else:
                    fbs.append((" ", neg, key))
            else:
                if key in added:
                    fbs.append(("X", neg, key))
                    continue
                added[key] = neg
                fbs.append(("A", neg, key))
        self.allocate_entries(len(added))  # new entries are made before the old ones are freed
        deleted = [key for key in entries if key not in marked]
        # the kernel collects deletions by walking the radix trees (IPv4 then IPv6) and pushing each
        # entry on the head of a list, so they come back in reverse (UNVERIFIED)
        deleted.sort(key=addr.radix_key, reverse=True)
        deleted.sort(key=lambda k: 0 if ":" in k else 1)
        for key in deleted:
            fbs.append(("D", entries[key][0], key))
        if not dummy and (added or deleted or changed):
            now = self.now
            for key in deleted:
                del entries[key]
            for key, neg in added.items():
                entries[key] = [neg, now]
            table.added.update(added)
            for key in changed:
                entries[key] = [not entries[key][0], now]
            self.dirty = True
        return len(added), len(deleted), len(changed), fbs

    def clr_addrs(self, anchor, name, dummy: bool) -> int:
        raw, table = self._writable(anchor, name)
        count = len(raw["entries"]) if table._entries is None else len(table.entries)
        if count and not dummy:
            table.clear()
            raw["entries"], raw["tzero"] = [], []
            self.dirty = True
        return count

    def get_addrs(self, anchor, name) -> tuple[list[str], list[int]]:
        """Entries in radix order (canonical text with `!`) and their tzero."""
        _, raw = self.active_table(anchor, name)
        obj = self._tables.get(id(raw))
        if obj is not None:
            obj.flush()
        return raw["entries"], raw["tzero"]

    def tst_addrs(self, anchor, name, keys: list[str]):
        """pfr_tst_addrs: returns (nmatch, [(fb, matched entry text or None)]) per tested host."""
        _, raw = self.active_table(anchor, name)
        entries = self.table_obj(raw).entries
        results = []
        nmatch = 0
        for key in keys:
            found = addr.longest_match(entries, key)
            if found is None:
                results.append((" ", None))
                continue
            neg = entries[found][0]
            if neg:
                results.append(("N", "!" + found))  # PFR_FB_NOTMATCH prints as ' '
            else:
                nmatch += 1
                results.append(("M", found))
        return nmatch, results

    def clr_tstats(self, anchor, name, dummy: bool) -> int:
        """-T zero (pfr_clr_tstats with ADDRSTOO): counts any existing table, active or not."""
        anchor = self.validate_table(anchor, name)
        raw = self.lookup_table(anchor, name)
        if raw is None:
            return 0
        if not dummy:
            raw["cleared"] = self.now
            obj = self._tables.get(id(raw))
            if obj is not None and obj._entries is not None:
                for value in obj._entries.values():
                    value[1] = self.now
            raw["tzero"] = [self.now] * len(raw["tzero"])
            self.dirty = True
        return 1

    def collisions(self, name: str | None) -> list[str]:
        """warn_namespace_collision: names with an active root table and an active anchor table."""
        root = self.rulesets[""]["tables"]
        found = []
        for table_name, raw in root.items():
            if not raw["active"] or (name is not None and table_name != name):
                continue
            for path, ruleset in self.rulesets.items():
                other = ruleset["tables"].get(table_name) if path else None
                if other is not None and other["active"]:
                    found.append(table_name)
                    break
        return sorted(found)

    # ------------------------------------------------------------------ rules (DIOCX* transaction)

    def commit(self, loaded: dict, loadopt: set, main_options: dict | None) -> None:
        """Commit parsed rulesets {path: parser.Ruleset}: replaces their rules and the tables they define."""
        for path, parsed in loaded.items():
            if not self.ensure_ruleset(path):
                raise KernelError("ENOMEM")
            ruleset = self.rulesets[path]
            if "filter" in loadopt:
                ruleset["scrub"] = parsed.rules["scrub"]
                ruleset["filter"] = parsed.rules["filter"]
                ruleset["dummynet"] = parsed.rules["dummynet"]
                ruleset["options"] = parsed.options
            if "nat" in loadopt:
                for kind in ("nat", "rdr", "binat"):
                    ruleset[kind] = parsed.rules[kind]
            if "table" in loadopt:
                for name, tdef in parsed.tables.items():
                    self._ina_commit(path, name, tdef)
        if main_options is not None:
            self.data["limits"] = dict(DEFAULT_LIMITS, **(main_options.get("limits") or {}))
            self.data["skip"] = main_options.get("skip") or []
            self.data["debug"] = main_options.get("debug") or "Urgent"
            hostid = main_options.get("hostid")
            self.data["hostid"] = hostid if hostid else random.getrandbits(32)
        self.normalize()
        self.changed.add("rules")

    def _ina_commit(self, path: str, name: str, tdef) -> None:
        tables = self.rulesets[path]["tables"]
        raw = tables.get(name)
        now = self.now
        if raw is None:
            raw = tables[name] = new_table(sorted(tdef.flags), True, now)
            if tdef.init_addr:
                self.table_obj(raw).replace({key: [neg, now] for key, neg in tdef.entries.items()})
            return
        table = self.table_obj(raw)
        if not tdef.init_addr:
            if not raw["active"]:
                raw["cleared"] = now
        elif raw["active"]:
            entries = table.entries
            merged = {}
            for key, neg in tdef.entries.items():
                current = entries.get(key)
                merged[key] = [neg, now] if current is None or current[0] != neg else current
            table.replace(merged)
        else:
            table.replace({key: [neg, now] for key, neg in tdef.entries.items()})
            raw["cleared"] = now
        raw["flags"] = sorted(tdef.flags)
        raw["active"] = True

    def clear_rules(self, anchor: str, kinds: tuple[str, ...]) -> None:
        anchor = fix_anchor(anchor)
        ruleset = self.rulesets.get(anchor)
        if ruleset is None:
            return  # DIOCXBEGIN would create it and the commit remove it again
        for kind in kinds:
            ruleset[kind] = []
        self.normalize()
        self.changed.add("rules")

    # ------------------------------------------------------------------ enable references (xnu pf_ioctl.c)

    def start(self) -> bool:
        """DIOCSTART (-e): False (EEXIST) when already running; adds a plain reference if none is held."""
        data = self.data
        self.dirty = True
        if data["enabled"]:
            if len(data["tokens"]) == data["refcount"]:
                data["refcount"] += 1
            return False
        self._set_running(True)
        data["refcount"] += 1
        return True

    def start_ref(self, pid: int, name: str) -> int:
        """DIOCSTARTREF (-E): a new token; starts PF if needed."""
        data = self.data
        token = random.getrandbits(64) or 1
        data["tokens"].insert(0, {"token": str(token), "pid": pid, "name": name, "ts": self.now})
        if not data["enabled"]:
            self._set_running(True)
        data["refcount"] += 1
        self.dirty = True
        return token

    def stop(self) -> bool:
        """DIOCSTOP (-d): False (ENOENT) when not running; zeroes the refcount and drops every token."""
        data = self.data
        if not data["enabled"]:
            return False
        self._set_running(False)
        data["refcount"] = 0
        data["tokens"] = []
        self.dirty = True
        return True

    def stop_ref(self, token: int) -> int | None:
        """DIOCSTOPREF (-X): remaining refcount, None for an unknown token; raises ENOENT when stopped."""
        data = self.data
        if not data["enabled"]:
            raise KernelError("ENOENT")
        for i, entry in enumerate(data["tokens"]):
            if int(entry["token"]) == token:
                del data["tokens"][i]
                break
        else:
            return None
        data["refcount"] = max(0, data["refcount"] - 1)
        if data["refcount"] == 0:
            self._set_running(False)
        self.dirty = True
        return data["refcount"]

    def _set_running(self, running: bool) -> None:
        self.changed.add("status")
        self.data["enabled"] = running
        self.data["since"] = self.now  # pf_start/pf_stop both reset pf_status.since
        self.data["enabled_since"] = self.now if running else None


# ---------------------------------------------------------------------- persistence


def _load(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return default_state()
    if not text.strip():
        return default_state()
    data = json.loads(text)
    base = default_state()
    base.update(data)
    base["rulesets"].setdefault("", empty_ruleset())
    base["limits"] = dict(DEFAULT_LIMITS, **(base.get("limits") or {}))
    for ruleset in base["rulesets"].values():
        for key, value in empty_ruleset().items():
            ruleset.setdefault(key, value)
    return base


def save(kernel: Kernel, directory: Path) -> None:
    for obj in kernel._tables.values():
        obj.flush()
    target = directory / "state.json"
    tmp = directory / f".state.json.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        handle.write(json.dumps(kernel.data, separators=(",", ":")))  # one-shot C encoder
    os.replace(tmp, target)


@contextlib.contextmanager
def locked(directory: Path | None = None, now: float | None = None):
    """Yield a Kernel for the state in `directory` with the lock held; saves on success if dirty."""
    directory = Path(directory) if directory is not None else state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            kernel = Kernel(_load(directory / "state.json"), now)
            if not (directory / "state.json").exists():
                kernel.dirty = True  # persist the fresh state (its random hostid) at once
            yield kernel
            if kernel.dirty:
                save(kernel, directory)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
