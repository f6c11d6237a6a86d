# SPDX-License-Identifier: GPL-3.0-or-later
"""`/usr/bin/log`: `log stream` and `log show` over the records logd stores (docs/reference/macos.md#unified-log).

stream follows the store from its current end (new messages only), show prints stored ones.
Level filtering as on macOS: default, error and fault always; info only with --info or
--level info; debug with --debug or --level debug. Output is flushed line by line because the
published workarounds pipe `log stream` into a file from a LaunchDaemon.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from datetime import datetime, timedelta, timezone

from pfguard_lab.emulators.unifiedlog import store_path
from pfguard_lab.emulators.unifiedlog.predicate import (
    PredicateError,
    PredicateUnsupported,
    evaluate,
    format_predicate,
    parse,
)

EX_USAGE = 64
STYLES = ("default", "compact", "json", "ndjson", "syslog")
TYPE_NAMES = {"default": "Default", "info": "Info", "debug": "Debug", "error": "Error", "fault": "Fault"}
COMPACT_CODES = {"default": "Df", "info": "I", "debug": "Db", "error": "E", "fault": "F"}

# Headers and footer as captured from real output (public captures quoted in the lab's search notes):
# `Timestamp                       (process)[PID]` for syslog style, the column header for the
# default style, `Timestamp               Ty Process[PID:TID]` for compact.
HEADERS = {
    "default": "Timestamp                       Thread     Type        Activity             PID    TTL  ",
    "syslog": "Timestamp                       (process)[PID]",
    "compact": "Timestamp               Ty Process[PID:TID]",
}
FOOTER_RULE = "-" * 116

# Options each verb takes: name -> takes a value. Real options the lab does not implement are
# accepted by the parser and then rejected loudly.
STREAM_OPTIONS = {
    "--style": True, "--predicate": True, "--info": False, "--debug": False, "--level": True, "--type": True,
    "--timeout": True, "--process": True, "--color": True, "--source": False, "--signpost": False,
    "--mach-continuous-time": False, "--backtrace": False, "--loss": False,
}  # fmt: skip
SHOW_OPTIONS = {
    "--style": True, "--predicate": True, "--info": False, "--debug": False, "--level": True, "--type": True,
    "--process": True, "--last": True, "--color": True, "--no-pager": False, "--start": True, "--end": True,
    "--archive": True, "--source": False, "--signpost": False, "--mach-continuous-time": False,
    "--backtrace": False, "--loss": False,
}  # fmt: skip
UNSUPPORTED_OPTIONS = {"--source", "--signpost", "--mach-continuous-time", "--backtrace", "--loss", "--start",
                       "--end", "--archive"}  # fmt: skip

USAGE = """usage:
    log <command>

global options:
    -?, --help
    -q, --quiet
    -v, --verbose

for further help:
    log help

commands:
    collect         gather system logs into a log archive
    config          view/change logging system settings
    erase           delete system logging data
    show            view/search system logs
    stream          watch live system logs
    stats           show system logging statistics
"""


class UsageError(Exception):
    pass


class Unsupported(Exception):
    pass


def _duration_seconds(text: str, option: str) -> float:
    # log(1): num[m|h|d]; plain numbers are seconds.
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text)
    if not match:
        if option == "--last" and text == "boot":
            raise Unsupported("--last boot")
        raise UsageError(f"log: Invalid value for {option}: {text}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def parse_options(args: list[str], allowed: dict[str, bool]) -> dict:
    options: dict = {"style": "default", "predicate": None, "info": False, "debug": False, "level": None,
                     "types": [], "timeout": None, "process": None, "last": None}  # fmt: skip
    index = 0
    while index < len(args):
        arg = args[index]
        name, has_inline, inline = arg.partition("=")
        if name not in allowed:
            # UNVERIFIED wording; the real tool rejects unknown options with a usage error.
            raise UsageError(f"log: unrecognized option '{arg}'")
        value = None
        if allowed[name]:
            if has_inline:
                value = inline
            elif index + 1 < len(args):
                index += 1
                value = args[index]
            else:
                raise UsageError(f"log: option '{name}' requires an argument")
        elif has_inline:
            raise UsageError(f"log: option '{name}' doesn't allow an argument")
        index += 1
        if name in UNSUPPORTED_OPTIONS:
            raise Unsupported(f"option {name}")
        if name == "--style":
            if value not in STYLES:
                raise UsageError(f"log: Invalid style '{value}' (default, compact, json, ndjson, syslog)")
            options["style"] = value
        elif name == "--predicate":
            if options["predicate"] is not None:
                raise Unsupported("more than one --predicate")
            options["predicate"] = value
        elif name in ("--info", "--debug"):
            options[name[2:]] = True
        elif name == "--level":
            if value not in ("default", "info", "debug"):
                raise UsageError(f"log: Invalid level '{value}' (default, info, debug)")
            options["level"] = value
        elif name == "--type":
            if value not in ("log", "activity", "trace"):
                raise UsageError(f"log: Invalid type '{value}' (log, activity, trace)")
            options["types"].append(value)
        elif name in ("--timeout", "--last"):
            options[name[2:]] = _duration_seconds(value, name)
        elif name == "--process":
            options["process"] = value
        elif name == "--color" and value not in ("none", "auto"):
            raise Unsupported(f"--color {value}")
    return options


def shown_levels(options: dict) -> set[str]:
    levels = {"default", "error", "fault"}
    # docs/reference/macos.md#unified-log (levels): the published workarounds pass --info because sshd's
    # failures are INFO; that info is hidden by default is UNVERIFIED on a real Mac.
    if options["info"] or options["level"] in ("info", "debug"):
        levels.add("info")
    if options["debug"] or options["level"] == "debug":
        levels.add("debug")  # --debug alone adds debug only (UNVERIFIED for stream)
    return levels


class Filter:
    def __init__(self, options: dict):
        self.levels = shown_levels(options)
        self.types = options["types"]
        self.process = options["process"]
        self.predicate = parse(options["predicate"]) if options["predicate"] is not None else None

    def matches(self, record: dict) -> bool:
        if self.types and "log" not in self.types:
            return False  # the lab records log events only, no activities or traces
        if record.get("level", "default") not in self.levels:
            return False
        if self.process is not None:
            wanted = self.process
            if wanted.isdigit() and int(wanted) != int(record.get("pid") or 0):
                return False
            if not wanted.isdigit() and wanted != record.get("process"):
                return False
        return self.predicate is None or evaluate(self.predicate, record)


# ---------------------------------------------------------------------------------------------
# Formatting


def _record_time(record: dict) -> datetime:
    tz_text = record.get("tz") or "+0000"
    sign = -1 if tz_text.startswith("-") else 1
    offset = timedelta(hours=int(tz_text[1:3]), minutes=int(tz_text[3:5])) * sign
    return datetime.fromtimestamp(float(record["ts"]), timezone(offset))


def timestamp_text(record: dict) -> str:
    return _record_time(record).strftime("%Y-%m-%d %H:%M:%S.%f%z")


def _message_prefix(record: dict) -> str:
    # "(sender) " only when another image logged on the process's behalf; sshd captures show none.
    prefix = ""
    if record.get("sender") and record.get("sender") != record.get("process"):
        prefix += f"({record['sender']}) "
    if record.get("subsystem"):
        prefix += f"[{record['subsystem']}:{record.get('category', '')}] "
    return prefix


def _thread_id(record: dict) -> int:
    return int(record.get("pid") or 0)  # the lab has no thread ids; the pid stands in


def json_object(record: dict) -> dict:
    level = record.get("level", "default")
    return {
        "traceID": 0,
        "eventMessage": record.get("message", ""),
        "eventType": "logEvent",
        "source": None,
        "formatString": record.get("message", ""),
        "activityIdentifier": 0,
        "subsystem": record.get("subsystem", ""),
        "category": record.get("category", ""),
        "threadID": _thread_id(record),
        "senderImageUUID": "",
        "bootUUID": "",
        "processImagePath": record.get("image", ""),
        "senderImagePath": record.get("sender_image") or record.get("image", ""),
        "timestamp": timestamp_text(record),
        "machTimestamp": int(float(record["ts"]) * 1e9),
        "messageType": TYPE_NAMES.get(level, "Default"),
        "processImageUUID": "",
        "processID": int(record.get("pid") or 0),
        "senderProgramCounter": 0,
        "parentActivityIdentifier": 0,
        "timezoneName": "",
    }


def format_line(record: dict, style: str) -> str:
    level = record.get("level", "default")
    body = _message_prefix(record) + record.get("message", "")
    pid = int(record.get("pid") or 0)
    if style == "syslog":
        # docs/reference/macos.md#unified-log: two spaces, host literally "localhost".
        return f"{timestamp_text(record)}  localhost {record['process']}[{pid}]: {body}"
    if style == "compact":
        stamp = _record_time(record).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return f"{stamp} {COMPACT_CODES.get(level, 'Df'):<2} {record['process']}[{pid}:{_thread_id(record):x}] {body}"
    if style == "ndjson":
        return json.dumps(json_object(record))
    thread = f"{_thread_id(record):#x}"
    return (
        f"{timestamp_text(record):<31} {thread:<10} {TYPE_NAMES.get(level, 'Default'):<11} {'0x0':<20} "
        f"{pid:<6} {0:<4} {record['process']}: {body}"
    )


class Output:
    """Writes the preamble, one line per record (flushed), and the closing text."""

    def __init__(self, options: dict, verb: str, filter_: Filter):
        self.style = options["style"]
        self.verb = verb
        self.filter = filter_
        self.count = 0
        self.counts = dict.fromkeys(TYPE_NAMES, 0)
        self.options = options

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def begin(self) -> None:
        if self.filter.predicate is not None:
            self.write(f'Filtering the log data using "{format_predicate(self.filter.predicate)}"\n')
        if self.verb == "show" and self.style not in ("json", "ndjson"):
            skipped = [name for name in ("info", "debug") if name not in self.filter.levels]
            if skipped:  # wording for a single skipped level is UNVERIFIED
                names = " and ".join(skipped)
                flags = " and/or ".join(f"--{name}" for name in skipped)
                self.write(f"Skipping {names} messages, pass {flags} to include.\n")
        if self.style in HEADERS:
            self.write(HEADERS[self.style] + "\n")

    def record(self, record: dict) -> None:
        self.counts[record.get("level", "default")] = self.counts.get(record.get("level", "default"), 0) + 1
        if self.style == "json":
            # UNVERIFIED: an array of pretty-printed objects, "[{" ... "},{" ... "}]".
            text = json.dumps(json_object(record), indent=2, separators=(",", " : "))
            self.write(("[" if self.count == 0 else ",") + text)
        else:
            self.write(format_line(record, self.style) + "\n")
        self.count += 1

    def end(self) -> None:
        if self.style == "json":
            self.write("]\n" if self.count else "[]\n")
        elif self.verb == "show" and self.style != "ndjson":
            # Statistics footer of `log show` (captured for the default style; UNVERIFIED for others).
            c = self.counts
            self.write(
                f"{FOOTER_RULE}\n"
                f"Log      - Default: {c['default']:>10}, Info: {c['info']:>16}, Debug: {c['debug']:>13}, "
                f"Error: {c['error']:>10}, Fault: {c['fault']:>10}\n"
                f"Activity - Create: {0:>11}, Transition: {0:>10}, Actions: {0:>11}\n"
            )


# ---------------------------------------------------------------------------------------------
# Verbs


def _records_from(lines: list[str]):
    for line in lines:
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            continue  # a torn line from a crashed logd; macOS would not show it either


def show(options: dict, filter_: Filter) -> int:
    output = Output(options, "show", filter_)
    output.begin()
    since = time.time() - options["last"] if options["last"] is not None else None
    try:
        with open(store_path(), encoding="utf-8", errors="replace") as store:
            lines = store.readlines()
    except FileNotFoundError:
        lines = []
    for record in _records_from(lines):
        if since is not None and float(record.get("ts", 0)) < since:
            continue
        if filter_.matches(record):
            output.record(record)
    output.end()
    return 0


class _Stop(Exception):
    pass


def _stop(signum, frame):
    raise _Stop()


def stream(options: dict, filter_: Filter) -> int:
    output = Output(options, "stream", filter_)
    path = store_path()
    deadline = time.monotonic() + options["timeout"] if options["timeout"] is not None else None
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    handle = None
    identity = None
    pending = ""
    try:
        # Start at the current end: only messages logged from now on are shown.
        try:
            start = path.stat()
            identity, position = (start.st_dev, start.st_ino), start.st_size
        except FileNotFoundError:
            position = 0
        output.begin()
        while deadline is None or time.monotonic() < deadline:
            try:
                current = path.stat()
            except FileNotFoundError:
                current = None
            if current is not None:
                current_identity = (current.st_dev, current.st_ino)
                if identity is None:
                    identity = current_identity  # created after we started: all of it is new
                elif current_identity != identity or current.st_size < position:
                    # Replaced or truncated: read the new file from its start.
                    if handle is not None:
                        handle.close()
                        handle = None
                    identity, position, pending = current_identity, 0, ""
                if handle is None:
                    handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
                    handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
                if chunk:
                    pending += chunk
                    *complete, pending = pending.split("\n")
                    for record in _records_from(complete):
                        if filter_.matches(record):
                            output.record(record)
                    continue
            time.sleep(0.1)
    except _Stop:
        pass
    finally:
        if handle is not None:
            handle.close()
    output.end()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if not args or args[0] in ("-?", "--help", "help"):
            if args and args[0] == "help" and len(args) > 1:
                raise Unsupported(f"help {args[1]}")
            sys.stderr.write(USAGE)
            return EX_USAGE if not args else 0
        verb, rest = args[0], args[1:]
        if verb in ("collect", "config", "erase", "stats"):
            raise Unsupported(f"log {verb}")
        if verb not in ("show", "stream"):
            raise UsageError(f"log: unknown command '{verb}'\n{USAGE}")
        options = parse_options(rest, SHOW_OPTIONS if verb == "show" else STREAM_OPTIONS)
        try:
            filter_ = Filter(options)
        except PredicateError as exc:
            # Wording from a real capture: "log: invalid predicate:\nno such field: substructure".
            print(f"log: invalid predicate:\n{exc}", file=sys.stderr)
            return EX_USAGE
        except PredicateUnsupported as exc:
            raise Unsupported(str(exc)) from exc
        return show(options, filter_) if verb == "show" else stream(options, filter_)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EX_USAGE
    except Unsupported as exc:
        print(f"pfguard-lab: log: {exc} is not supported by the lab", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Reader went away (e.g. `| head`): exit quietly like a C tool killed by SIGPIPE would not print.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
