# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulated /sbin/pfctl (macOS): option parsing, order of operations, messages and exit codes.

Follows docs/reference/pfctl.md (sections cited inline). Kernel state: pfguard_lab.emulators.pf.kernel.

Address tokens the lab cannot resolve (docs/reference/pfctl.md#address-input, steps 2 and 5): real pfctl expands
interface names (`lo0`, `self`, `en0:network`) and DNS names; the lab has neither, so a token that
looks like a host or interface name, a scoped IPv6 address or an inet_aton shorthand (`10.1`, which
getaddrinfo would accept) fails loudly as "not supported by the lab". A token that cannot be a name
either (bad characters, all-numeric last label such as `300.1.1.1`) gets the real
`no IP address found for TOKEN` (exit 255).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys

from . import addr, conf, kernel, show, states

PROG = "pfctl"
USAGE = (  # docs/reference/pfctl.md#command-line, exact
    "usage: pfctl [-AdeghmNnOqRrvz] [-a anchor] [-D macro=value] [-F modifier]\n"
    "\t[-f file] [-i interface] [-K host | network] [-k host | network]\n"
    "\t[-o level] [-p device] [-s modifier] [-w interval]\n"
    "\t[-t table -T command [address ...]] [-x level]\n"
)
OPTSTRING = "a:AdD:eEqf:F:gGhi:k:K:mMnNOo:p:rRs:t:T:vx:X:w:z"  # pfctl.md#command-line
F_WARNING = (  # pfctl.md#streams: warnx() at option-parse time, always (even with -q, -n, -a)
    "Use of -f option, could result in flushing of rules\n"
    "present in the main ruleset added by the system at startup.\n"
    "See /etc/pf.conf for further details.\n"
)
ALTQ_NOISE = "No ALTQ support in kernel\nALTQ related functions disabled\n"  # pfctl.md#streams
CLEAR_OPTS = ("nat", "queue", "rules", "Sources", "states", "info", "Tables", "osfp", "all")
SHOW_OPTS = ("nat", "queue", "rules", "Anchors", "Sources", "states", "info", "Interfaces", "labels",
             "timeouts", "memory", "Tables", "osfp", "References", "all")
# pfctl.md#command-line
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


def parse_args(argv: list[str]) -> Options:
    o = Options()
    if not argv:
        usage()
    for letter, value in getopt(argv):
        if letter == "":
            o.rest = value
        elif letter == "a":
            o.anchor = value
        elif letter == "d":
            o.disable = True
        elif letter == "D":
            if "=" not in value:
                warnx(f"could not parse macro definition {value}")
            else:
                name, _, macro = value.rpartition("=")
                o.macros[name] = macro
        elif letter == "e":
            o.enable = True
        elif letter == "E":
            o.enable_ref = True
        elif letter == "q":
            o.quiet = True
        elif letter == "f":
            o.rules_file = value
            warnx(F_WARNING)
        elif letter == "F":
            o.clear = lookup(value, CLEAR_OPTS)
            if o.clear is None:
                warnx(f"Unknown flush modifier '{value}'")
                usage()
        elif letter == "g":
            o.debug_flag = True
        elif letter == "i":
            o.iface = value
        elif letter in ("k", "K"):
            targets = o.kill if letter == "k" else o.kill_src_nodes
            if len(targets) >= 2:
                warnx(f"can only specify -{letter} twice")
                usage()
            targets.append(value)
        elif letter == "n":
            o.noaction = True
        elif letter == "o":
            level = lookup(value, OPTIMIZE_OPTS)
            if level is None:
                warnx(f"Unknown optimization '{value}'")
                usage()
            if level != "none":
                o.unsupported.append(f"-o {level} (the rule optimizer)")
        elif letter == "p":
            if value != "/dev/pf":
                o.unsupported.append(f"-p {value} (devices other than /dev/pf)")
        elif letter == "s":
            o.show = lookup(value, SHOW_OPTS)
            if o.show is None:
                warnx(f"Unknown show modifier '{value}'")
                usage()
        elif letter == "t":
            o.table = value
        elif letter == "T":
            o.table_cmd = lookup(value, TABLE_CMDS)
            if o.table_cmd is None:
                warnx(f"Unknown table command '{value}'")
                usage()
        elif letter == "v":
            o.verbose = min(o.verbose + 1, 2)
        elif letter == "x":
            o.debug_level = lookup(value, DEBUG_OPTS)
            if o.debug_level is None:
                warnx(f"Unknown debug level '{value}'")
                usage()
        elif letter == "X":
            # pfctl.md#enable-and-disable: a token is a decimal u_int64; anything else is rejected before any ioctl
            if not value.isdigit() or not value.isascii() or int(value) >= 2**64:
                warnx(f"Invalid token value '{value}'")
                usage()
            o.token = int(value)
        elif letter == "z":
            o.clear_counters = True
        elif letter in ("A", "N", "O", "R"):
            o.unsupported.append(f"-{letter} (partial rule loads)")
        elif letter == "m":
            o.unsupported.append("-m (option merging)")
        elif letter == "r":
            o.unsupported.append("-r (reverse DNS lookups)")
        elif letter in ("G", "M", "w"):
            o.unsupported.append(f"-{letter}")
        else:  # h and ?
            usage()
    if o.table_cmd is not None:
        if o.table_cmd == "load":  # -T load: load only the table definitions of -f (pfctl.c)
            o.loadopt = {"table"}
            o.table_cmd = None
    elif o.rest:
        warnx(f"unknown command line argument: {o.rest[0]} ...")
        usage()
    if o.anchor is not None:
        name = o.anchor
        if name.endswith("*"):  # pfctl.md#command-line: trailing `*` or `/*` is stripped and sets recursive mode
            name = name[:-2] if name.endswith("/*") else name[:-1]
            o.recurse = True
        if len(name) >= kernel.MAXPATHLEN:
            errx(f"anchor name '{name}' too long")
        o.anchor_name = name
        o.loadopt &= {"filter", "nat", "table"}
    if o.debug_flag and o.show != "Tables":
        o.unsupported.append("-g (debug output) other than with -s Tables")
    return o


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


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return run(argv)
    except Exit as exc:
        return exc.code
    except (Unsupported, conf.LabUnsupported, addr.LabUnsupported) as exc:
        return lab_unsupported(str(exc))
    except RuntimeError as exc:  # enforce.EnforceError: the lab could not mirror PF into nftables
        err(f"pfguard-lab: {PROG}: {exc}\n")
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def run(argv: list[str]) -> int:
    o = parse_args(argv)
    if o.unsupported:
        raise Unsupported(", ".join(o.unsupported))
    root = os.geteuid() == 0
    if not o.noaction:
        if not root:
            errx("/dev/pf: Permission denied")  # pfctl.md#device-access: /dev/pf is 0600 root:wheel
        if not o.quiet:
            err(ALTQ_NOISE)
    else:
        o.dummy = root  # /dev/pf opens read-only as root: ioctls with the DUMMY flag (pfctl.md#dry-run)
        # pfctl.md#dry-run: -n cancels -d, -e, -E, -X, -s, -F and -x
        o.disable = o.enable = o.enable_ref = False
        o.token = o.show = o.clear = o.debug_level = None
    if o.rules_file == "-":
        # Read stdin before taking the kernel lock: in `pfctl -sr | grep ... | pfctl -f-` (fail2ban's
        # actionstop) the writer needs the lock too, so holding it while reading would deadlock.
        sys.stdin = io.TextIOWrapper(io.BytesIO(sys.stdin.buffer.read()))
    context = kernel.locked() if (not o.noaction or o.dummy) else contextlib.nullcontext(None)
    with context as k:
        try:
            return execute(o, k)
        finally:
            if k is not None and k.dirty:
                finish(k)


def finish(k: kernel.Kernel) -> None:
    """Persist now (still under the lock) and mirror the new state into nftables when enabled."""
    kernel.save(k, kernel.state_dir())
    k.dirty = False
    if os.environ.get("PFGUARD_LAB_PF_ENFORCE") == "nftables" and k.changed:
        from . import enforce

        enforce.apply(k)


def execute(o: Options, k: kernel.Kernel | None) -> int:
    error = 0
    anchor = o.anchor_name
    if o.disable:  # pfctl.md#order-of-operations, step 3
        if not k.stop():
            errx("pf not enabled")
        if not o.quiet:
            err("pf disabled\n")
    if o.token is not None:  # step 4 (-X, pfctl.md#enable-and-disable)
        try:
            remaining = k.stop_ref(o.token)
        except kernel.KernelError:
            errx("pf not enabled")
        if remaining is None:
            errx("pf: token invalid")
        if not o.quiet:
            if remaining == 0:
                err("pf disabled\n")
            else:
                err(f"disable request successful. {remaining} more pf enable reference(s) remaining, "
                    "pf still enabled.\n")
    if o.show is not None:  # step 5
        show_command(o, k)
    # step 6: -z clears rule counters, which are always 0 in the lab; only the anchor lookup can fail
    if o.clear_counters and o.show is None and k is not None and k.ruleset(kernel.fix_anchor(anchor)) is None:
        warnx("DIOCGETRULES: Invalid argument")
    if o.clear is not None:  # step 7
        clear_command(o, k)
    if o.kill:  # step 8
        kill_command(o, k, o.kill, "states")
    if o.kill_src_nodes:  # step 9: the lab keeps no source-tracking nodes
        kill_command(o, k, o.kill_src_nodes, "src nodes")
    rules_file = o.rules_file
    if o.table_cmd is not None:  # step 10
        error = table_command(o, k)
        rules_file = None  # -f was the address file
    if rules_file is not None:  # step 11
        load_command(o, k, rules_file)
    if o.enable:  # step 12
        if not k.start():
            errx("pf already enabled")
        if not o.quiet:
            err("pf enabled\n")
    if o.enable_ref:  # step 13 (-E, pfctl.md#enable-and-disable)
        token = k.start_ref(os.getpid(), PROG)
        # UNVERIFIED: -q silences "pf enabled" only; the token is the caller's handle for -X
        err(("" if o.quiet else "pf enabled\n") + f"Token : {token}\n")
    if o.debug_level is not None:  # step 14
        k.data["debug"] = {"none": "None", "urgent": "Urgent", "misc": "Misc", "loud": "Loud"}[o.debug_level]
        k.dirty = True
        if not o.quiet:
            err(f"debug level set to '{o.debug_level}'\n")
    return error


# ---------------------------------------------------------------------------- -s


def show_command(o: Options, k: kernel.Kernel) -> None:
    which = o.show
    anchor = kernel.fix_anchor(o.anchor_name)
    if which == "Anchors":
        text, error = show.anchors(k, anchor, o.verbose > 0)
        out(text)
        err(error)
    elif which == "rules":
        text, error, _ = show.rules(k, anchor, o.verbose, o.recurse)
        out(text)
        err(error)
    elif which == "nat":
        text, error = show.nat(k, anchor, o.verbose)
        out(text)
        err(error)
    elif which == "labels":
        text, error = show.labels(k, anchor)
        out(text)
        err(error)
    elif which == "states":
        if o.verbose:
            raise Unsupported("-v -s states (per-state detail lines)")
        lines = [states.format_state(s) + "\n" for s in states.backend(k).list()
                 if o.iface is None or s.get("iface", "ALL") == o.iface]
        out("".join(lines))
    elif which == "Sources":
        pass  # no source-tracking rules can be loaded in the lab, so there are never src nodes
    elif which == "info":
        out(show.info(k, states.backend(k).count(), o.verbose > 0, k.now))
    elif which == "Tables":
        try:
            out(show.tables(k, anchor, o.verbose, o.debug_flag))
        except kernel.KernelError as exc:
            radix_perror(exc)  # pfctl.md#table-errors: ENOENT for a missing anchor, exit code unaffected
    elif which == "References":
        out(show.references(k, k.now))
    else:
        raise Unsupported(f"-s {which}")


# ---------------------------------------------------------------------------- -F


def clear_command(o: Options, k: kernel.Kernel) -> None:
    anchor = o.anchor_name
    if anchor.startswith("_") or "/_" in anchor:  # pfctl.md#command-line
        errx("anchor names beginning with '_' cannot be modified from the command line")
    which = o.clear
    say = (lambda text: None) if o.quiet else (lambda text: err(text + "\n"))

    def tables_cleared():
        try:
            xprintf(o, f"{k.clr_tables(anchor, False)} tables deleted")
        except kernel.KernelError as exc:
            radix_perror(exc)

    if which == "rules":
        k.clear_rules(anchor, ("scrub", "filter"))
        k.changed.add("rules")
        say("rules cleared")
    elif which == "nat":
        k.clear_rules(anchor, ("nat", "rdr", "binat"))
        say("nat cleared")
    elif which == "queue":
        pass  # pfctl_clear_altq returns at once without ALTQ support
    elif which == "states":
        say(f"{states.backend(k).clear(o.iface)} states cleared")
    elif which == "Sources":
        say("source tracking entries cleared")
    elif which == "info":
        k.data["since"] = k.now
        k.dirty = True
        say("pf: statistics cleared")
    elif which == "Tables":
        tables_cleared()
    elif which == "osfp":
        raise Unsupported("-F osfp")
    elif which == "all":  # pfctl.md#flush-messages: with -a only the first four lines
        k.clear_rules(anchor, ("scrub", "filter"))
        say("rules cleared")
        k.clear_rules(anchor, ("nat", "rdr", "binat"))
        say("nat cleared")
        k.clear_rules(anchor, ("dummynet",))
        say("dummynet cleared")
        tables_cleared()
        if not anchor:
            say(f"{states.backend(k).clear(o.iface)} states cleared")
            say("source tracking entries cleared")
            k.data["since"] = k.now
            say("pf: statistics cleared")
            k.data["skip"] = []
            say("pf: interface flags reset")
        k.changed.add("rules")
        k.dirty = True


# ---------------------------------------------------------------------------- -k / -K (pfctl.md#killing-states)


def parse_kill_target(text: str) -> tuple[int, int, int]:
    """pfctl_addrprefix + getaddrinfo: numeric addresses only in the lab."""
    base, slash, prefix_text = text.partition("/")
    prefix = None
    if slash:
        if not prefix_text.isdigit() and not (prefix_text[:1] == "-" and prefix_text[1:].isdigit()):
            errx(f"prefix is invalid: {prefix_text}")
        prefix = int(prefix_text)
        if prefix < 0:
            errx(f"prefix is too small: {prefix_text}")
        if prefix > 128:
            errx(f"prefix is too large: {prefix_text}")
    family = None
    for fam, af in ((addr.INET, socket.AF_INET), (addr.INET6, socket.AF_INET6)):
        try:
            value = int.from_bytes(socket.inet_pton(af, base), "big")
            family = fam
            break
        except OSError:
            continue
    if family is None:
        if not slash and "%" not in base and (addr.plausible_name(base) or addr.inet_aton_accepts(base)):
            raise Unsupported(f"-k/-K with name '{text}' (resolved by getaddrinfo on macOS)")
        if slash and addr.inet_aton_accepts(base):
            raise Unsupported(f"-k/-K with inet_aton-style address '{text}'")
        if "%" in base:
            raise Unsupported(f"-k/-K with scoped address '{text}'")
        errx(f"getaddrinfo: {EAI_NONAME}")
    if prefix is None:
        prefix = addr.HOSTLEN[family]
    elif family == addr.INET and prefix > 32:
        errx("prefix too long for AF_INET")
    return family, addr.mask_value(family, value, prefix), prefix


def kill_command(o: Options, k: kernel.Kernel | None, targets: list[str], what: str) -> None:
    first = parse_kill_target(targets[0])
    second = parse_kill_target(targets[1]) if len(targets) > 1 else None
    sources, dests = 1, 0
    killed = 0
    if second is not None and second[0] != first[0]:
        pass  # families differ: no ioctl at all, 0 destinations
    else:
        if second is not None:
            dests = 1
        if k is None or o.noaction:
            # -n opens /dev/pf read-only (or not at all): the kill ioctl is refused
            errx(f"DIOCKILL{'STATES' if what == 'states' else 'SRCNODES'}: "
                 f"{'Permission denied' if k is not None else 'Bad file descriptor'}")
        if what == "states":
            killed = states.backend(k).kill(first, second, o.iface)
    if not o.quiet:
        err(f"killed {killed} {what} from {sources} sources and {dests} destinations\n")


# ---------------------------------------------------------------------------- -T (pfctl_table, pfctl.md#table-commands)


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


def table_command(o: Options, k: kernel.Kernel | None) -> int:
    name, cmd, words, file = o.table, o.table_cmd, o.rest, o.rules_file
    if name is None:
        usage()  # pfctl.md#table-commands: -T without -t
    if len(name) >= kernel.TABLE_NAME_SIZE:
        usage()  # pfctl.md#command-line: 32+ characters
    anchor = o.anchor_name
    live = k is not None  # RVTEST: ioctls run unless -n without /dev/pf
    dummy = o.dummy
    verbose = o.verbose
    try:
        if cmd in ("kill", "flush", "show", "zero") and (words or file is not None):
            usage()
        if cmd == "kill":
            xprintf(o, f"{k.del_tables(anchor, name, dummy) if live else 0} table deleted")
        elif cmd == "flush":
            count = k.clr_addrs(anchor, name, dummy) if live else 0
            mark_table(k, anchor, name)
            xprintf(o, f"{count} addresses deleted")
        elif cmd in ("add", "replace"):
            items = load_addrs(o, words, file, False)
            if items is None:
                return 255
            if live:
                nadd = k.add_tables(anchor, name, dummy)  # CREATE_TABLE (pfctl.md#table-commands): PERSIST
                if nadd:
                    xprintf(o, f"{nadd} table created")
                    collisions = k.collisions(name)
                    if collisions:
                        # pfctl.md#table-commands puts the warning after "table created" (the OpenBSD source
                        # prints it first)
                        warnx(f"warning: namespace collision with <{collisions[0]}> global table.")
                    if o.noaction:
                        return 0
            mark_table(k, anchor, name)
            if cmd == "add":
                nadd, fbs = k.add_addrs(anchor, name, items, dummy, verbose > 0) if live else (0, None)
                xprintf(o, f"{nadd}/{len(items)} addresses added")
                if verbose and fbs is not None:
                    out("".join(feedback_line(fb, neg, key) for fb, (neg, key) in zip(fbs, items)
                                if verbose > 1 or fb != " "))
            else:
                nadd, ndel, nchange, fbs = k.set_addrs(anchor, name, items, dummy) if live else (0, 0, 0, [])
                if nadd:
                    xprintf(o, f"{nadd} addresses added")
                if ndel:
                    xprintf(o, f"{ndel} addresses deleted")
                if nchange:
                    xprintf(o, f"{nchange} addresses changed")
                if not (nadd or ndel or nchange):
                    xprintf(o, "no changes")
                if verbose:
                    out("".join(feedback_line(fb, neg, key) for fb, neg, key in fbs if verbose > 1 or fb != " "))
        elif cmd == "delete":
            items = load_addrs(o, words, file, False)
            if items is None:
                return 255
            ndel, fbs = k.del_addrs(anchor, name, items, dummy, verbose > 0) if live else (0, None)
            mark_table(k, anchor, name)
            xprintf(o, f"{ndel}/{len(items)} addresses deleted")
            if verbose and fbs is not None:
                out("".join(feedback_line(fb, neg, key) for fb, (neg, key) in zip(fbs, items)
                            if verbose > 1 or fb != " "))
        elif cmd == "expire":
            if len(words) != 1 or file is not None:
                usage()
            lifetime = strtonum(words[0], 0, UINT_MAX, "expiry time")
            if not live:
                raise Unsupported("-n -T expire without root")
            entries, tzero = k.get_addrs(anchor, name)
            expired = []
            for entry, cleared in zip(entries, tzero):
                if k.now - cleared > lifetime:
                    expired.append((True, entry[1:]) if entry[0] == "!" else (False, entry))
            ndel, fbs = k.del_addrs(anchor, name, expired, dummy, verbose > 0)
            mark_table(k, anchor, name)
            xprintf(o, f"{ndel}/{len(expired)} addresses expired")
            if verbose and fbs is not None:
                out("".join(feedback_line(fb, neg, key) for fb, (neg, key) in zip(fbs, expired)
                            if verbose > 1 or fb != " "))
        elif cmd == "show":
            if not live:
                raise Unsupported("-n -T show without root")
            entries, tzero = k.get_addrs(anchor, name)
            out(show.table_entries(entries, tzero, verbose > 0))
        elif cmd == "test":
            items = load_addrs(o, words, file, True)
            if items is None:
                return 255
            keys = [key for _, key in items]
            nmatch, results = k.tst_addrs(anchor, name, keys) if live else (0, [(" ", None)] * len(keys))
            xprintf(o, f"{nmatch}/{len(keys)} addresses match")
            if verbose == 1:
                out("".join(feedback_line("M", False, key) for key, (fb, _) in zip(keys, results) if fb == "M"))
            elif verbose > 1:
                lines = []
                for key, (fb, matched) in zip(keys, results):
                    tail = "\t nomatch" if matched is None else (
                        f"\t!{matched[1:]}" if matched.startswith("!") else f"\t {matched}")
                    lines.append(show.addrx(fb, key) + tail + "\n")
                out("".join(lines))
            if nmatch < len(keys):
                return 2  # pfctl.md#exit-codes: not every address matched
        elif cmd == "zero":
            xprintf(o, f"{k.clr_tstats(anchor, name, dummy) if live else 0} table/stats cleared")
    except kernel.KernelError as exc:
        return radix_perror(exc)
    return 0


def mark_table(k: kernel.Kernel | None, anchor: str, name: str) -> None:
    if k is not None:
        k.changed.add(("table", kernel.fix_anchor(anchor), name))


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


# ---------------------------------------------------------------------------- -f (pfctl_rules, pfctl.md#loading-rules)


def read_rules(path: str) -> tuple[str, str]:
    if path == "-":
        return "stdin", sys.stdin.buffer.read().decode("latin-1")
    try:
        with open(path, "rb") as handle:
            return path, handle.read().decode("latin-1")
    except OSError as exc:
        errx(f"{path}: {os.strerror(exc.errno)}")


def load_command(o: Options, k: kernel.Kernel | None, path: str) -> None:
    label, text = read_rules(path)
    anchor = o.anchor_name
    if anchor.startswith("_") or "/_" in anchor:
        errx("anchor names beginning with '_' cannot be modified from the command line")
    anchor = anchor.lstrip("/")
    if not o.noaction and anchor and not kernel.valid_components(anchor):
        errx("pfctl_rules")  # DIOCXBEGIN cannot create the anchor; the transaction opens before parsing
    parser = conf.Parser(label, text, anchor, macros=o.macros, loadopt=o.loadopt, verbose=o.verbose)
    parsed = parser.parse()
    if parser.errors:
        if not o.noaction:
            warnx("Syntax error in config file: pf rules not loaded")
        raise Exit(1)
    print_loaded(o, parsed)
    transaction = {anchor: parsed}
    skip = list(parsed.skip or [])
    if not anchor:  # pfctl_load_anchors: only when loading the main ruleset
        queue = list(parsed.loads)
        index = 0
        while index < len(queue):
            sub_anchor, sub_file = queue[index]
            index += 1
            if o.verbose:
                err(f"\nLoading anchor {sub_anchor} from {sub_file}\n")
            try:
                with open(sub_file, "rb") as handle:
                    sub_text = handle.read().decode("latin-1")
            except OSError as exc:
                warnx(f"{sub_file}: {os.strerror(exc.errno)}")  # pfctl.md#loading-rules: not fatal
                continue
            if not o.noaction and not kernel.valid_components(sub_anchor):
                warnx("pfctl_rules")
                errx("load anchors")
            sub = conf.Parser(sub_file, sub_text, sub_anchor, loadopt=o.loadopt, verbose=o.verbose)
            sub_parsed = sub.parse()
            if sub.errors:
                if not o.noaction:
                    warnx("Syntax error in config file: pf rules not loaded")
                errx("load anchors")
            print_loaded(o, sub_parsed)
            transaction[sub_anchor] = sub_parsed
            skip += [name for name in sub_parsed.skip or [] if name not in skip]
            queue.extend(sub_parsed.loads)
    if o.noaction:
        return
    for parsed_set in transaction.values():
        for rules in parsed_set.rules.values():
            for rule in rules:
                rule["cpid"] = os.getpid()
    main_options = None
    if not anchor and "option" in o.loadopt:
        main_options = {"skip": skip, "debug": parsed.debug, "hostid": parsed.hostid}
    try:
        k.commit(transaction, o.loadopt, main_options)
    except kernel.KernelError as exc:
        errx(f"DIOCXBEGIN: {exc.text}")
    k.changed.add("rules")
    if "table" in o.loadopt:
        collisions = k.collisions(None)
        if len(collisions) == 1:
            warnx(f"warning: namespace collision with <{collisions[0]}> global table.")
        elif collisions:
            warnx(f"warning: namespace collisions with {len(collisions)} global tables.")


def print_loaded(o: Options, parsed: conf.Ruleset) -> None:
    """-v: each loaded rule as pfctl -sr prints it (UNVERIFIED: option and table lines are not echoed)."""
    if not o.verbose:
        return
    for kind in ("scrub", "nat", "rdr", "binat", "filter"):
        for nr, rule in enumerate(parsed.rules[kind]):
            out(conf.rule_text(rule, number=nr if o.verbose > 1 else None) + "\n")


if __name__ == "__main__":
    sys.exit(main())
