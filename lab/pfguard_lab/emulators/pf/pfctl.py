# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulated /sbin/pfctl (macOS): option parsing, order of operations, messages and exit codes.

Follows docs/reference/pfctl.md (sections cited inline). Kernel state: pfguard_lab.emulators.pf.kernel.

Address tokens the lab cannot resolve (docs/reference/pfctl.md#address-input, steps 2 and 5): real pfctl expands
interface names (`lo0`, `self`, `en0:network`) and DNS names; the lab has neither, so a token that
looks like a host or interface name, a scoped IPv6 address or an inet_aton shorthand (`10.1`, which
getaddrinfo would accept) fails loudly as "not supported by the lab". A token that cannot be a name
either (bad characters, all-numeric last label such as `300.1.1.1`) gets the real
`no IP address found for TOKEN` (exit 255), and so does a name under `.invalid`, which never resolves
(RFC 6761); `-k` with such a name fails in getaddrinfo.

The command line is parsed by pfctl_cli.py (OPTIONS, one entry per getopt letter), the table
commands run in pfctl_table.py (TABLE_COMMANDS); the order of operations is STEPS below.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys

from . import addr, kernel, parser, show, states
from .pfctl_cli import (
    ALTQ_NOISE,
    EAI_NONAME,
    PROG,
    Exit,
    Options,
    Unsupported,
    err,
    errx,
    lab_unsupported,
    out,
    parse_args,
    radix_perror,
    warnx,
    xprintf,
)
from .pfctl_table import table_command
from .printer import rule_text

# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return run(argv)
    except Exit as exc:
        return exc.code
    except (Unsupported, parser.LabUnsupported, addr.LabUnsupported) as exc:
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


def step_disable(o: Options, k: kernel.Kernel) -> None:
    if not k.stop():
        errx("pf not enabled")
    if not o.quiet:
        err("pf disabled\n")


def step_release(o: Options, k: kernel.Kernel) -> None:
    """-X TOKEN (pfctl.md#enable-and-disable)."""
    try:
        remaining = k.stop_ref(o.token)
    except kernel.KernelError:
        errx("pf not enabled")
    if remaining is None:
        errx("pf: token invalid")
    if o.quiet:
        return
    if remaining == 0:
        err("pf disabled\n")
    else:
        err(f"disable request successful. {remaining} more pf enable reference(s) remaining, pf still enabled.\n")


def step_zero(o: Options, k: kernel.Kernel | None) -> None:
    """-z clears rule counters, which are always 0 in the lab; only the anchor lookup can fail."""
    if k is not None and k.ruleset(kernel.fix_anchor(o.anchor_name)) is None:
        warnx("DIOCGETRULES: Invalid argument")


def step_enable(o: Options, k: kernel.Kernel) -> None:
    if not k.start():
        errx("pf already enabled")
    if not o.quiet:
        err("pf enabled\n")


def step_enable_ref(o: Options, k: kernel.Kernel) -> None:
    """-E (pfctl.md#enable-and-disable)."""
    token = k.start_ref(os.getpid(), PROG)
    # UNVERIFIED: -q silences "pf enabled" only; the token is the caller's handle for -X
    err(("" if o.quiet else "pf enabled\n") + f"Token : {token}\n")


def step_debug(o: Options, k: kernel.Kernel) -> None:
    k.data["debug"] = {"none": "None", "urgent": "Urgent", "misc": "Misc", "loud": "Loud"}[o.debug_level]
    k.dirty = True
    if not o.quiet:
        err(f"debug level set to '{o.debug_level}'\n")


# pfctl.md#order-of-operations, steps 3 to 14, whatever the order on the command line: (runs when, step).
# Only -T gives the exit status; the other steps exit through errx() when they fail.
STEPS = (
    (lambda o: o.disable, step_disable),  # -d
    (lambda o: o.token is not None, step_release),  # -X
    (lambda o: o.show is not None, lambda o, k: show_command(o, k)),  # -s
    (lambda o: o.clear_counters and o.show is None, step_zero),  # -z
    (lambda o: o.clear is not None, lambda o, k: clear_command(o, k)),  # -F
    (lambda o: bool(o.kill), lambda o, k: kill_command(o, k, o.kill, "states")),  # -k
    # -K: the lab keeps no source-tracking nodes
    (lambda o: bool(o.kill_src_nodes), lambda o, k: kill_command(o, k, o.kill_src_nodes, "src nodes")),
    (lambda o: o.table_cmd is not None, lambda o, k: table_command(o, k)),  # -T
    # -f loads rules, unless -T made it the address file
    (lambda o: o.table_cmd is None and o.rules_file is not None, lambda o, k: load_command(o, k, o.rules_file)),
    (lambda o: o.enable, step_enable),  # -e
    (lambda o: o.enable_ref, step_enable_ref),  # -E
    (lambda o: o.debug_level is not None, step_debug),  # -x
)


def execute(o: Options, k: kernel.Kernel | None) -> int:
    status = 0
    for runs, step in STEPS:
        if runs(o):
            result = step(o, k)
            if result is not None:
                status = result
    return status


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
    elif which == "memory":
        out(show.memory(k.data["limits"]))
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
        if not slash and addr.never_resolves(base):
            errx(f"getaddrinfo: {EAI_NONAME}")  # pfctl.md#killing-states: a name under `.invalid`
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


# ---------------------------------------------------------------------------- -f (pfctl_rules, pfctl.md#loading-rules)


def read_rules(path: str) -> tuple[str, str]:
    if path == "-":
        return "stdin", sys.stdin.buffer.read().decode("latin-1")
    try:
        with open(path, "rb") as handle:
            return path, handle.read().decode("latin-1")
    except OSError as exc:
        errx(f"{path}: {os.strerror(exc.errno)}")


def parse_rules(o: Options, label: str, text: str, anchor: str, macros: dict | None) -> parser.Ruleset | None:
    """One file's rules; None after a syntax error (printed, and the load abandoned unless -n)."""
    rules_parser = parser.Parser(label, text, anchor, macros=macros, loadopt=o.loadopt, verbose=o.verbose)
    parsed = rules_parser.parse()
    if rules_parser.errors:
        if not o.noaction:
            warnx("Syntax error in config file: pf rules not loaded")
        return None
    print_loaded(o, parsed)
    return parsed


def load_command(o: Options, k: kernel.Kernel | None, path: str) -> None:
    label, text = read_rules(path)
    anchor = o.anchor_name
    if anchor.startswith("_") or "/_" in anchor:
        errx("anchor names beginning with '_' cannot be modified from the command line")
    anchor = anchor.lstrip("/")
    if not o.noaction and anchor and not kernel.valid_components(anchor):
        errx("pfctl_rules")  # DIOCXBEGIN cannot create the anchor; the transaction opens before parsing
    parsed = parse_rules(o, label, text, anchor, o.macros)
    if parsed is None:
        raise Exit(1)
    transaction = {anchor: parsed}
    skip = list(parsed.skip or [])
    if not anchor:  # pfctl_load_anchors: only when loading the main ruleset
        load_anchors(o, parsed.loads, transaction, skip)
    if o.noaction:
        return
    define_tables(o, k, transaction)
    main_options = None
    if not anchor and "option" in o.loadopt:
        main_options = {"skip": skip, "debug": parsed.debug, "hostid": parsed.hostid, "limits": parsed.limits}
    commit(o, k, transaction, main_options)


def define_tables(o: Options, k: kernel.Kernel, transaction: dict) -> None:
    """process_tabledef's DIOCRINADEFINE for each table with addresses, in file order: the new entries are
    made in a shadow table while every entry loaded now is still allocated, so a table redefined with N
    entries needs N more below the table-entries hard limit (docs/reference/pfctl.md#limits). Past it the
    ioctl fails with ENOMEM and the load is abandoned with parse.y's yyerror line."""
    if "table" not in o.loadopt:
        return
    pending = 0
    for parsed_set in transaction.values():
        for name, tdef in parsed_set.tables.items():
            if not tdef.init_addr:
                continue
            try:
                k.allocate_entries(pending + len(tdef.entries))
            except kernel.KernelError as exc:
                err(f"{tdef.filename}:{tdef.line}: cannot define table {name}: {exc.text}\n")
                warnx("Syntax error in config file: pf rules not loaded")
                raise Exit(1) from None
            pending += len(tdef.entries)


def load_anchors(o: Options, loads: list, transaction: dict, skip: list) -> None:
    """`load anchor NAME from FILE`, the files' own `load anchor` lines after them, into `transaction`."""
    queue = list(loads)
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
        sub_parsed = parse_rules(o, sub_file, sub_text, sub_anchor, None)
        if sub_parsed is None:
            errx("load anchors")
        transaction[sub_anchor] = sub_parsed
        skip += [name for name in sub_parsed.skip or [] if name not in skip]
        queue.extend(sub_parsed.loads)


def commit(o: Options, k: kernel.Kernel, transaction: dict, main_options: dict | None) -> None:
    """DIOCXCOMMIT of every ruleset read, then the namespace collision warnings."""
    for parsed_set in transaction.values():
        for rules in parsed_set.rules.values():
            for rule in rules:
                rule["cpid"] = os.getpid()
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


def print_loaded(o: Options, parsed: parser.Ruleset) -> None:
    """-v: each loaded rule as pfctl -sr prints it (UNVERIFIED: option and table lines are not echoed)."""
    if not o.verbose:
        return
    for kind in ("scrub", "nat", "rdr", "binat", "filter"):
        for nr, rule in enumerate(parsed.rules[kind]):
            out(rule_text(rule, number=nr if o.verbose > 1 else None) + "\n")


if __name__ == "__main__":
    sys.exit(main())
