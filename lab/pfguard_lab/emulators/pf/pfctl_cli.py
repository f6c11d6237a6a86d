# SPDX-License-Identifier: GPL-3.0-or-later
"""pfctl's command line (macOS): getopt, the table of options, usage, and how messages are printed.

Follows docs/reference/pfctl.md#command-line. OPTIONS has one entry per letter of pfctl's getopt
string: whether it takes an argument and what it sets or refuses; parse_args() then makes the checks
pfctl.c main() makes of the combination.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from . import kernel

PROG = "pfctl"
USAGE = (  # docs/reference/pfctl.md#command-line, exact
    "usage: pfctl [-AdeghmNnOqRrvz] [-a anchor] [-D macro=value] [-F modifier]\n"
    "\t[-f file] [-i interface] [-K host | network] [-k host | network]\n"
    "\t[-o level] [-p device] [-s modifier] [-w interval]\n"
    "\t[-t table -T command [address ...]] [-x level]\n"
)
F_WARNING = (  # pfctl.md#streams: warnx() at option-parse time, always (even with -q, -n, -a)
    "Use of -f option, could result in flushing of rules\n"
    "present in the main ruleset added by the system at startup.\n"
    "See /etc/pf.conf for further details.\n"
)
ALTQ_NOISE = "No ALTQ support in kernel\nALTQ related functions disabled\n"  # pfctl.md#streams
CLEAR_OPTS = ("nat", "queue", "rules", "Sources", "states", "info", "Tables", "osfp", "all")
SHOW_OPTS = ("nat", "queue", "rules", "Anchors", "Sources", "states", "info", "Interfaces", "labels",
             "timeouts", "memory", "Tables", "osfp", "References", "all")
# pfctl.md#command-line: the -T commands in lookup order (TABLE_COMMANDS has what each does)
TABLE_CMDS = ("kill", "flush", "add", "delete", "load", "replace", "show", "test", "zero", "expire")
DEBUG_OPTS = ("none", "urgent", "misc", "loud")
OPTIMIZE_OPTS = ("o", "none", "basic", "profile")
UINT_MAX = 2**32 - 1
EAI_NONAME = "nodename nor servname provided, or not known"  # macOS gai_strerror(EAI_NONAME)


class Exit(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class Unsupported(Exception):
    """Something real pfctl does that the lab does not emulate."""


def out(text: str) -> None:
    if text:
        sys.stdout.write(text)


def err(text: str) -> None:
    if text:
        sys.stderr.write(text)


def warnx(message: str) -> None:
    err(f"{PROG}: {message}\n")


def errx(message: str, code: int = 1):
    warnx(message)
    raise Exit(code)


def usage():
    err(USAGE)
    raise Exit(1)


def lookup(arg: str, options: tuple[str, ...]) -> str | None:
    """pfctl_lookup_option: first entry that `arg` is a prefix of (strncmp over strlen(arg)), pfctl.md#command-line."""
    if arg:
        for option in options:
            if option.startswith(arg):
                return option
    return None


class Options:
    def __init__(self):
        self.anchor: str | None = None
        self.quiet = self.noaction = self.dummy = False
        self.disable = self.enable = self.enable_ref = self.clear_counters = self.debug_flag = False
        self.verbose = 0
        self.macros: dict[str, str] = {}
        self.rules_file: str | None = None
        self.clear: str | None = None
        self.show: str | None = None
        self.kill: list[str] = []
        self.kill_src_nodes: list[str] = []
        self.iface: str | None = None
        self.table: str | None = None
        self.table_cmd: str | None = None
        self.token: int | None = None
        self.debug_level: str | None = None
        self.unsupported: list[str] = []
        self.loadopt = {"filter", "nat", "table", "option"}
        self.partial: set[str] = set()  # -O, -T load: what pfctl.c's loadopt holds when it is not 0
        self.recurse = False
        self.anchor_name = ""
        self.rest: list[str] = []


def getopt(argv: list[str]):
    """BSD getopt(3): yields (letter, optarg); stops at the first non-option or `--`."""
    takes_arg = {OPTSTRING[i] for i in range(len(OPTSTRING) - 1) if OPTSTRING[i + 1] == ":"}
    letters = set(OPTSTRING) - {":"}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            index += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        index += 1
        pos = 1
        while pos < len(arg):
            letter = arg[pos]
            pos += 1
            if letter not in letters:
                err(f"{PROG}: illegal option -- {letter}\n")
                yield "?", None
                continue
            if letter in takes_arg:
                if pos < len(arg):
                    yield letter, arg[pos:]
                elif index < len(argv):
                    index += 1
                    yield letter, argv[index - 1]
                else:
                    err(f"{PROG}: option requires an argument -- {letter}\n")
                    yield "?", None
                break
            yield letter, None
    yield "", argv[index:]


# ---------------------------------------------------------------------------- options (pfctl.md#command-line)


@dataclass(frozen=True)
class Option:
    """One letter of pfctl's getopt string: whether it takes an argument and what it does with it."""

    takes_arg: bool
    apply: Callable[[Options, str | None], None]


def _store(attr: str):
    """-a ANCHOR, -i INTERFACE, -t TABLE: remembered as given."""
    return lambda o, value: setattr(o, attr, value)


def _switch(attr: str):
    """-d, -e, -E, -g, -n, -q, -z: turned on."""
    return lambda o, _value: setattr(o, attr, True)


def _modifier(attr: str, choices: tuple[str, ...], refusal: str):
    """-F, -s, -T, -x: the first of `choices` the argument is a prefix of, else `refusal` and usage()."""

    def apply(o: Options, value: str) -> None:
        chosen = lookup(value, choices)
        if chosen is None:
            warnx(refusal.format(value))
            usage()
        setattr(o, attr, chosen)

    return apply


def _partial(part: str):
    """-O: load only this part of -f's file (pfctl.c `loadopt |= PFCTL_FLAG_OPTION`)."""
    return lambda o, _value: o.partial.add(part)


def _not_modelled(what: str):
    """Options the lab refuses (after parsing) as not supported."""
    return lambda o, _value: o.unsupported.append(what)


def _macro(o: Options, value: str) -> None:
    """-D NAME=VALUE; without `=` only a warning (pfctl.c)."""
    if "=" not in value:
        warnx(f"could not parse macro definition {value}")
        return
    name, _, macro = value.rpartition("=")
    o.macros[name] = macro


def _rules_file(o: Options, value: str) -> None:
    o.rules_file = value
    warnx(F_WARNING)  # pfctl.md#streams: at option-parse time, always


def _kill(attr: str, letter: str):
    """-k / -K HOST: at most twice each (pfctl.md#killing-states)."""

    def apply(o: Options, value: str) -> None:
        targets = getattr(o, attr)
        if len(targets) >= 2:
            warnx(f"can only specify -{letter} twice")
            usage()
        targets.append(value)

    return apply


def _optimization(o: Options, value: str) -> None:
    level = lookup(value, OPTIMIZE_OPTS)
    if level is None:
        warnx(f"Unknown optimization '{value}'")
        usage()
    if level != "none":
        o.unsupported.append(f"-o {level} (the rule optimizer)")


def _device(o: Options, value: str) -> None:
    if value != "/dev/pf":
        o.unsupported.append(f"-p {value} (devices other than /dev/pf)")


def _verbose(o: Options, _value) -> None:
    o.verbose = min(o.verbose + 1, 2)


def _release_token(o: Options, value: str) -> None:
    # pfctl.md#enable-and-disable: a token is a decimal u_int64; anything else is rejected before any ioctl
    if not value.isdigit() or not value.isascii() or int(value) >= 2**64:
        warnx(f"Invalid token value '{value}'")
        usage()
    o.token = int(value)


def _usage(_o: Options, _value) -> None:
    usage()


# pfctl's options in the order of its getopt string; an unknown letter (getopt's `?`) calls usage()
OPTIONS = {
    "a": Option(True, _store("anchor")),
    "A": Option(False, _not_modelled("-A (partial rule loads)")),
    "d": Option(False, _switch("disable")),
    "D": Option(True, _macro),
    "e": Option(False, _switch("enable")),
    "E": Option(False, _switch("enable_ref")),
    "q": Option(False, _switch("quiet")),
    "f": Option(True, _rules_file),
    "F": Option(True, _modifier("clear", CLEAR_OPTS, "Unknown flush modifier '{}'")),
    "g": Option(False, _switch("debug_flag")),
    "G": Option(False, _not_modelled("-G")),
    "h": Option(False, _usage),
    "i": Option(True, _store("iface")),
    "k": Option(True, _kill("kill", "k")),
    "K": Option(True, _kill("kill_src_nodes", "K")),
    "m": Option(False, _not_modelled("-m (option merging)")),
    "M": Option(False, _not_modelled("-M")),
    "n": Option(False, _switch("noaction")),
    "N": Option(False, _not_modelled("-N (partial rule loads)")),
    "O": Option(False, _partial("option")),
    "o": Option(True, _optimization),
    "p": Option(True, _device),
    "r": Option(False, _not_modelled("-r (reverse DNS lookups)")),
    "R": Option(False, _not_modelled("-R (partial rule loads)")),
    "s": Option(True, _modifier("show", SHOW_OPTS, "Unknown show modifier '{}'")),
    "t": Option(True, _store("table")),
    "T": Option(True, _modifier("table_cmd", TABLE_CMDS, "Unknown table command '{}'")),
    "v": Option(False, _verbose),
    "x": Option(True, _modifier("debug_level", DEBUG_OPTS, "Unknown debug level '{}'")),
    "X": Option(True, _release_token),
    "w": Option(True, _not_modelled("-w")),
    "z": Option(False, _switch("clear_counters")),
}
OPTSTRING = "".join(letter + (":" if option.takes_arg else "") for letter, option in OPTIONS.items())


def parse_args(argv: list[str]) -> Options:
    """getopt over OPTIONS, then the checks pfctl.c main() makes of the combination."""
    o = Options()
    if not argv:
        usage()
    for letter, value in getopt(argv):
        if letter == "":
            o.rest = value
            continue
        option = OPTIONS.get(letter)
        if option is None:
            usage()
        option.apply(o, value)
    _operands(o)
    if o.partial:  # pfctl.c: `if (loadopt == 0) loadopt = ~0;`
        o.loadopt = set(o.partial)
    _anchor(o)
    if o.debug_flag and o.show != "Tables":
        o.unsupported.append("-g (debug output) other than with -s Tables")
    return o


def _operands(o: Options) -> None:
    """Words after the options are addresses for -T; without -T pfctl refuses them."""
    if o.table_cmd == "load":  # -T load: load only the table definitions of -f (pfctl.c)
        o.partial.add("table")
        o.table_cmd = None
    elif o.table_cmd is None and o.rest:
        warnx(f"unknown command line argument: {o.rest[0]} ...")
        usage()


def _anchor(o: Options) -> None:
    """-a: a trailing `*` or `/*` is stripped and turns on recursion; a path too long is refused."""
    if o.anchor is None:
        return
    name = o.anchor
    if name.endswith("*"):
        name = name[:-2] if name.endswith("/*") else name[:-1]
        o.recurse = True
    if len(name) >= kernel.MAXPATHLEN:
        errx(f"anchor name '{name}' too long")
    o.anchor_name = name
    o.loadopt &= {"filter", "nat", "table"}


def xprintf(o: Options, message: str) -> None:
    """pfctl_table.c xprintf: counters on stderr with the (dummy)/(syntax only) suffix, pfctl.md#table-commands."""
    if o.quiet:
        return
    if o.dummy:
        err(f"{message} (dummy).\n")
    elif o.noaction:
        err(f"{message} (syntax only).\n")
    else:
        err(f"{message}.\n")


def radix_perror(exc: kernel.KernelError) -> int:
    err(f"{PROG}: {exc.text}.\n")  # pfctl.md#table-errors
    return 255


def lab_unsupported(what: str) -> int:
    err(f"pfguard-lab: {PROG}: {what} is not supported by the lab\n")
    return 1


def strtonum(text: str, low: int, high: int, what: str) -> int:
    """OpenBSD strtonum(3) with errx(1, "%s: %s") on failure."""
    try:
        value = int(text.strip(), 10) if text.strip() and text.strip().lstrip("+-").isdigit() else None
    except ValueError:
        value = None
    if value is None:
        errx(f"{what}: invalid")
    if value < low:
        errx(f"{what}: too small")
    if value > high:
        errx(f"{what}: too large")
    return value
