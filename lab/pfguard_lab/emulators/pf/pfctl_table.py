# SPDX-License-Identifier: GPL-3.0-or-later
"""pfctl -t TABLE -T COMMAND (pfctl_table.c): address input, the table commands and their messages.

Follows docs/reference/pfctl.md#table-commands. TABLE_COMMANDS says what each command takes after the
options and which function runs it; table_command() dispatches.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from . import addr, kernel, show
from .pfctl_cli import UINT_MAX, Options, Unsupported, err, out, radix_perror, strtonum, usage, warnx, xprintf

# ---------------------------------------------------------------------------- address input (pfctl.md#address-input)


def load_addrs(o: Options, words: list[str], file: str | None, test: bool) -> list[tuple[bool, str]] | None:
    """load_addr(): argv then -f FILE (`-` = stdin). None after printing the error (exit 255)."""
    items: list[tuple[bool, str]] = []
    for word in words:
        try:
            neg, key = addr.table_entry(word)
        except addr.HostError as exc:
            err(exc.message + "\n")
            return None
        except addr.CannotDecode:
            warnx(f"cannot decode {word}: Invalid argument")
            return None
        if test and (neg or addr.is_network(key)):
            warnx(f"cannot decode {word}: Invalid argument")  # pfctl.md#address-input: test takes host addresses only
            return None
        items.append((neg, key))
    if file is None:
        return items
    if file == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(file, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            warnx(f"cannot load {file}: {os.strerror(exc.errno)}")
            return None
    tokens, too_long = addr.file_tokens(data)
    pton, inet = socket.inet_pton, socket.AF_INET
    append = items.append
    try:
        for word in tokens:
            try:
                pton(inet, word)  # hot path: plain dotted quads are already canonical
                append((False, word))
                continue
            except OSError:
                pass
            neg, key = addr.table_entry(word)
            if test and (neg or addr.is_network(key)):
                raise addr.CannotDecode(word)
            append((neg, key))
    except addr.CannotDecode:
        warnx(f"cannot load {file}: Invalid argument")
        return None
    except addr.HostError as exc:
        err(exc.message + "\n")
        # append_addr() zeroes errno before pfr_buf_load returns, so warn() prints error 0 (UNVERIFIED)
        warnx(f"cannot load {file}: Undefined error: 0")
        return None
    if too_long:
        warnx(f"cannot load {file}: Invalid argument")  # pfr_next_token: EINVAL
        return None
    return items


def feedback_line(fb: str, neg: bool, key: str) -> str:
    return show.addrx(fb, ("!" + key) if neg else key) + "\n"


def feedback(fbs: list[str] | None, items: list[tuple[bool, str]]) -> list[tuple[str, bool, str]]:
    """The kernel's feedback characters paired with the addresses they are about."""
    return [] if fbs is None else [(fb, neg, key) for fb, (neg, key) in zip(fbs, items)]


def print_feedback(o: Options, entries: list[tuple[str, bool, str]]) -> None:
    """-v lists the entries with feedback (`A  1.2.3.4`), -vv every entry (pfctl.md#table-show-formats)."""
    if o.verbose:
        out("".join(feedback_line(fb, neg, key) for fb, neg, key in entries if o.verbose > 1 or fb != " "))


# ---------------------------------------------------------------------------- the commands


def create_table(o: Options, k: kernel.Kernel, name: str, anchor: str) -> bool:
    """add/replace: CREATE_TABLE makes a missing table, PERSIST (pfctl.md#table-commands); True if made."""
    nadd = k.add_tables(anchor, name, o.dummy)
    if not nadd:
        return False
    xprintf(o, f"{nadd} table created")
    collisions = k.collisions(name)
    if collisions:
        # pfctl.md#table-commands puts the warning after "table created" (the OpenBSD source prints it first)
        warnx(f"warning: namespace collision with <{collisions[0]}> global table.")
    return True


def t_kill(o: Options, k: kernel.Kernel | None, name: str, anchor: str) -> int:
    xprintf(o, f"{k.del_tables(anchor, name, o.dummy) if k is not None else 0} table deleted")
    return 0


def t_flush(o: Options, k: kernel.Kernel | None, name: str, anchor: str) -> int:
    count = k.clr_addrs(anchor, name, o.dummy) if k is not None else 0
    mark_table(k, anchor, name)
    xprintf(o, f"{count} addresses deleted")
    return 0


def t_add(o: Options, k: kernel.Kernel | None, name: str, anchor: str) -> int:
    items = load_addrs(o, o.rest, o.rules_file, False)
    if items is None:
        return 255
    if k is not None and create_table(o, k, name, anchor) and o.noaction:
        return 0  # with -n pfctl stops after creating the table
    mark_table(k, anchor, name)
    nadd, fbs = k.add_addrs(anchor, name, items, o.dummy, o.verbose > 0) if k is not None else (0, None)
    xprintf(o, f"{nadd}/{len(items)} addresses added")
    print_feedback(o, feedback(fbs, items))
    return 0


def t_replace(o: Options, k: kernel.Kernel | None, name: str, anchor: str) -> int:
    items = load_addrs(o, o.rest, o.rules_file, False)
    if items is None:
        return 255
    if k is not None and create_table(o, k, name, anchor) and o.noaction:
        return 0
    mark_table(k, anchor, name)
    nadd, ndel, nchange, fbs = k.set_addrs(anchor, name, items, o.dummy) if k is not None else (0, 0, 0, [])
    for count, what in ((nadd, "added"), (ndel, "deleted"), (nchange, "changed")):
        if count:
            xprintf(o, f"{count} addresses {what}")
    if not (nadd or ndel or nchange):
        xprintf(o, "no changes")
    print_feedback(o, fbs)
    return 0


def t_delete(o: Options, k: kernel.Kernel | None, name: str, anchor: str) -> int:
    items = load_addrs(o, o.rest, o.rules_file, False)
    if items is None:
        return 255
    ndel, fbs = k.del_addrs(anchor, name, items, o.dummy, o.verbose > 0) if k is not None else (0, None)
    mark_table(k, anchor, name)
    xprintf(o, f"{ndel}/{len(items)} addresses deleted")
    print_feedback(o, feedback(fbs, items))
    return 0


def t_expire(o: Options, k: kernel.Kernel | None, name: str, anchor: str) -> int:
    lifetime = strtonum(o.rest[0], 0, UINT_MAX, "expiry time")
    if k is None:
        raise Unsupported("-n -T expire without root")
    entries, tzero = k.get_addrs(anchor, name)
    expired = [(True, entry[1:]) if entry[0] == "!" else (False, entry)
               for entry, cleared in zip(entries, tzero) if k.now - cleared > lifetime]
    ndel, fbs = k.del_addrs(anchor, name, expired, o.dummy, o.verbose > 0)
    mark_table(k, anchor, name)
    xprintf(o, f"{ndel}/{len(expired)} addresses expired")
    print_feedback(o, feedback(fbs, expired))
    return 0


def t_show(o: Options, k: kernel.Kernel | None, name: str, anchor: str) -> int:
    if k is None:
        raise Unsupported("-n -T show without root")
    entries, tzero = k.get_addrs(anchor, name)
    out(show.table_entries(entries, tzero, o.verbose > 0))
    return 0


def t_test(o: Options, k: kernel.Kernel | None, name: str, anchor: str) -> int:
    items = load_addrs(o, o.rest, o.rules_file, True)
    if items is None:
        return 255
    keys = [key for _, key in items]
    nmatch, results = k.tst_addrs(anchor, name, keys) if k is not None else (0, [(" ", None)] * len(keys))
    xprintf(o, f"{nmatch}/{len(keys)} addresses match")
    if o.verbose == 1:
        out("".join(feedback_line("M", False, key) for key, (fb, _) in zip(keys, results) if fb == "M"))
    elif o.verbose > 1:
        lines = []
        for key, (fb, matched) in zip(keys, results):
            tail = "\t nomatch" if matched is None else (
                f"\t!{matched[1:]}" if matched.startswith("!") else f"\t {matched}")
            lines.append(show.addrx(fb, key) + tail + "\n")
        out("".join(lines))
    return 2 if nmatch < len(keys) else 0  # pfctl.md#exit-codes: not every address matched


def t_zero(o: Options, k: kernel.Kernel | None, name: str, anchor: str) -> int:
    xprintf(o, f"{k.clr_tstats(anchor, name, o.dummy) if k is not None else 0} table/stats cleared")
    return 0


# what a -T command takes after the options; anything else makes pfctl call usage() (pfctl.md#table-commands)
NO_OPERANDS = "no addresses and no -f"
ADDRESSES = "addresses and/or -f FILE"
ONE_NUMBER = "exactly one argument, no -f"
OPERANDS_OK = {
    NO_OPERANDS: lambda words, file: not words and file is None,
    ADDRESSES: lambda words, file: True,
    ONE_NUMBER: lambda words, file: len(words) == 1 and file is None,
}


@dataclass(frozen=True)
class TableCommand:
    operands: str
    run: Callable[[Options, kernel.Kernel | None, str, str], int]


# the -T commands in the order pfctl_lookup_option tries them (pfctl.md#command-line); `load` never runs
# here: parse_args turns it into a load of the table definitions of -f
TABLE_COMMANDS = {
    "kill": TableCommand(NO_OPERANDS, t_kill),
    "flush": TableCommand(NO_OPERANDS, t_flush),
    "add": TableCommand(ADDRESSES, t_add),
    "delete": TableCommand(ADDRESSES, t_delete),
    "load": None,
    "replace": TableCommand(ADDRESSES, t_replace),
    "show": TableCommand(NO_OPERANDS, t_show),
    "test": TableCommand(ADDRESSES, t_test),
    "zero": TableCommand(NO_OPERANDS, t_zero),
    "expire": TableCommand(ONE_NUMBER, t_expire),
}


def table_command(o: Options, k: kernel.Kernel | None) -> int:
    """pfctl_command_tables: k is None when no ioctl can be made (-n without /dev/pf, RVTEST)."""
    name = o.table
    if name is None:
        usage()  # pfctl.md#table-commands: -T without -t
    if len(name) >= kernel.TABLE_NAME_SIZE:
        usage()  # pfctl.md#command-line: 32+ characters
    command = TABLE_COMMANDS[o.table_cmd]
    try:
        if not OPERANDS_OK[command.operands](o.rest, o.rules_file):
            usage()
        return command.run(o, k, name, o.anchor_name)
    except kernel.KernelError as exc:
        return radix_perror(exc)


def mark_table(k: kernel.Kernel | None, anchor: str, name: str) -> None:
    if k is not None:
        k.changed.add(("table", kernel.fix_anchor(anchor), name))
