# SPDX-License-Identifier: GPL-3.0-or-later
"""Emulated /bin/launchctl: the system domain's verbs and the legacy ones community.general.launchd uses.

Messages, streams and exit codes follow docs/reference/macos.md#launchctl-exit-codes. It talks to the
emulated launchd over <root>/var/run/pfguard-lab/launchd.sock; launchd decides from the peer's credentials whether the
caller is root.
"""

from __future__ import annotations

import os
import sys

from pfguard_lab.emulators.launchd import plist as lp
from pfguard_lab.emulators.launchd.protocol import LaunchdUnavailable, request

EX_USAGE = 64  # UNVERIFIED: the exit status of launchctl's usage errors
USAGE = {
    "bootstrap": "Usage: launchctl bootstrap <domain-target> [service-path, service-path2, ...]",
    "bootout": "Usage: launchctl bootout <domain-target> [service-path1, service-path2, ...] | <service-target>",
    "enable": "Usage: launchctl enable <service-target>",
    "disable": "Usage: launchctl disable <service-target>",
    "print": "Usage: launchctl print <domain-target> | <service-target>",
    "print-disabled": "Usage: launchctl print-disabled <domain-target>",
    "kickstart": "Usage: launchctl kickstart [-k] [-p] <service-target>",
    "list": "Usage: launchctl list [-x] [label]",
    "load": "Usage: launchctl load <service-path, service-path2, ...>",
    "unload": "Usage: launchctl unload <service-path, service-path2, ...>",
    "start": "Usage: launchctl start <service-name>",
    "stop": "Usage: launchctl stop <service-name>",
}
# Subcommands real launchctl has that the lab does not emulate (they fail loudly).
OTHER_REAL_VERBS = {
    "uncache", "attach", "debug", "kill", "blame", "print-cache", "plist", "procinfo", "hostinfo",
    "resolveport", "limit", "runstats", "examine", "config", "dumpstate", "dumpjpcategory", "reboot",
    "bootshell", "remove", "setenv", "unsetenv", "getenv", "bsexec", "asuser", "submit", "managerpid",
    "manageruid", "managername", "error", "variant", "version", "help", "load-system", "userswitch",
}
OTHER_DOMAINS = ("gui/", "user/", "login/", "pid/", "session/")
NOT_ROOT_HINT = "Try re-running the command as root for richer errors."
LEGACY_HINT = "Try running `launchctl {verb}` as root for richer errors."


class Failure(Exception):
    """Ends the command: `message` to stderr (if any), exit `code`."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def unsupported(construct: str) -> Failure:
    return Failure(1, f"pfguard-lab: launchctl: {construct} is not supported by the lab")


def usage(verb: str) -> Failure:
    return Failure(EX_USAGE, USAGE[verb])


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


def out(text: str) -> None:
    sys.stdout.write(text + "\n")


def call(message: dict) -> dict:
    answer = request(message)
    if answer.get("error") == "unsupported":
        raise unsupported(answer.get("construct", "this request"))
    return answer


def mac_path(given: str) -> str:
    """The macOS path launchd should read: relative paths are taken from the cwd."""
    if given.startswith("/"):
        return os.path.normpath(given)
    absolute = os.path.abspath(given)
    root = lp.lab_root().rstrip("/")
    if root and (absolute == root or absolute.startswith(root + "/")):
        absolute = absolute[len(root):] or "/"
    return absolute


def domain_only(text: str, verb: str) -> None:
    if text == "system":
        return
    if text.startswith(OTHER_DOMAINS):
        raise unsupported(f"the {text.split('/')[0]} domain")
    raise Failure(EX_USAGE, f"Unrecognized target specifier.\n{USAGE[verb]}")


def service_label(text: str, verb: str) -> str:
    if text.startswith("system/") and len(text) > len("system/"):
        return text[len("system/"):]
    if text == "system":
        raise usage(verb)
    if text.startswith(OTHER_DOMAINS):
        raise unsupported(f"the {text.split('/')[0]} domain")
    raise Failure(EX_USAGE, f"Unrecognized target specifier.\n{USAGE[verb]}")


def error_line(prefix: str, code: int, text: str | None = None) -> str:
    return f"{prefix}: {code}: {text or lp.error_text(code)}"


# ---- modern verbs


def cmd_bootstrap(args: list[str]) -> int:
    if len(args) < 2:
        raise usage("bootstrap")
    domain_only(args[0], "bootstrap")
    status = 0
    for path in args[1:]:
        answer = call({"op": "bootstrap", "path": mac_path(path)})
        code = answer["error"]
        if code == 0:
            continue
        if answer.get("not_root"):
            # docs/reference/macos.md#launchctl-exit-codes: a non-root bootstrap fails with the generic 5
            # plus a hint line.
            err(error_line("Bootstrap failed", lp.EIO))
            err(NOT_ROOT_HINT)
            status = lp.EIO
            continue
        # Already loaded and malformed plists share the generic 5 (docs/reference/macos.md#launchctl-exit-codes;
        # 37 UNVERIFIED).
        err(error_line("Bootstrap failed", code, lp.error_text(code)))
        status = code
    return status


def cmd_bootout(args: list[str]) -> int:
    wait = False
    if args and args[0] == "--wait":  # undocumented but available (docs/reference/macos.md#launchctl-verbs)
        wait = True
        args = args[1:]
    if not args:
        raise usage("bootout")
    if len(args) == 1:
        if args[0] == "system":
            raise unsupported("booting out the whole system domain")
        requests = [{"label": service_label(args[0], "bootout")}]
    else:
        domain_only(args[0], "bootout")
        requests = [{"path": mac_path(path)} for path in args[1:]]
    status = 0
    for target in requests:
        answer = call({"op": "bootout", "wait": wait, **target})
        code = answer["error"]
        if code == 0:
            continue
        if answer.get("not_root"):
            code = lp.EPERM  # UNVERIFIED text for a non-root bootout
        # docs/reference/macos.md#launchctl-exit-codes: not loaded -> "Boot-out failed: 3: No such process", exit 3.
        err(error_line("Boot-out failed", code))
        status = code
    return status


def set_enabled(args: list[str], verb: str) -> int:
    if len(args) != 1:
        raise usage(verb)
    label = service_label(args[0], verb)
    answer = call({"op": verb, "label": label})
    if answer.get("not_root"):
        raise Failure(1, "Not privileged to set domain overrides.")  # UNVERIFIED text
    return 0


def cmd_enable(args: list[str]) -> int:
    return set_enabled(args, "enable")


def cmd_disable(args: list[str]) -> int:
    return set_enabled(args, "disable")


def last_exit_lines(status: int | None) -> str:
    if status is None:
        return "last exit code = (never exited)"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"last terminating signal = {signal_description(number)}: {number}"
    code = os.WEXITSTATUS(status)
    return f"last exit code = {code}: EX_CONFIG" if code == lp.EX_CONFIG else f"last exit code = {code}"


def signal_description(number: int) -> str:
    # macOS strsignal() wording for the signals a lab job usually dies of.
    names = {1: "Hangup", 2: "Interrupt", 3: "Quit", 6: "Abort trap", 9: "Killed", 11: "Segmentation fault",
             13: "Broken pipe", 14: "Alarm clock", 15: "Terminated"}
    return names.get(number, f"Signal {number}")


def print_job(info: dict) -> str:
    running = info["pid"] is not None
    lines = [
        f"system/{info['label']} = {{",
        f"\tactive count = {1 if running else 0}",
        f"\tpath = {info['path']}",
        "\ttype = LaunchDaemon",
        f"\tstate = {info['state']}",
        "",
        f"\tprogram = {info['program']}",
        "\targuments = {",
        *[f"\t\t{argument}" for argument in info["arguments"]],
        "\t}",
        "",
    ]
    if info.get("working_directory"):
        lines += [f"\tworking directory = {info['working_directory']}", ""]
    if info.get("stdout_path"):
        lines.append(f"\tstdout path = {info['stdout_path']}")
    if info.get("stderr_path"):
        lines.append(f"\tstderr path = {info['stderr_path']}")
    if info.get("stdout_path") or info.get("stderr_path"):
        lines.append("")
    lines += ["\tdefault environment = {", f"\t\tPATH => {lp.DEFAULT_PATH}", "\t}", ""]
    lines += ["\tenvironment = {", *[f"\t\t{k} => {v}" for k, v in sorted(info["environment"].items())], "\t}", ""]
    lines.append("\tdomain = system")
    if info.get("username"):
        lines.append(f"\tusername = {info['username']}")
    if info.get("group"):
        lines.append(f"\tgroup = {info['group']}")
    lines += [
        f"\tminimum runtime = {info['throttle']}",
        f"\texit timeout = {info['exit_timeout']}",
        f"\truns = {info['runs']}",
    ]
    if running:
        lines.append(f"\tpid = {info['pid']}")
    lines += [f"\t{last_exit_lines(info['last_status'])}", "", "\tspawn type = daemon (3)"]
    if info["properties"]:
        lines.append(f"\tproperties = {' | '.join(info['properties'])}")
    lines.append("}")
    return "\n".join(lines)


def not_found(label: str, domain: str = "system") -> Failure:
    return Failure(lp.E_NOT_FOUND, f'Could not find service "{label}" in domain for {domain}')


def cmd_print(args: list[str]) -> int:
    if len(args) != 1:
        raise usage("print")
    if args[0] == "system":
        raise unsupported("print of the whole system domain")
    label = service_label(args[0], "print")
    answer = call({"op": "print", "label": label})
    if answer["error"]:
        raise not_found(label)
    out(print_job(answer["job"]))
    return 0


def cmd_print_disabled(args: list[str]) -> int:
    if len(args) != 1:
        raise usage("print-disabled")
    domain_only(args[0], "print-disabled")
    overrides = call({"op": "print_disabled"})["overrides"]
    out("disabled services = {")
    for label, disabled in sorted(overrides.items()):
        out(f'\t"{label}" => {"disabled" if disabled else "enabled"}')
    out("}")
    return 0


def cmd_kickstart(args: list[str]) -> int:
    kill = print_pid = False
    while args and args[0].startswith("-") and len(args[0]) > 1:
        for flag in args[0][1:]:
            if flag == "k":
                kill = True
            elif flag == "p":
                print_pid = True
            elif flag == "s":
                raise unsupported("kickstart -s (start suspended)")
            else:
                raise usage("kickstart")
        args = args[1:]
    if len(args) != 1:
        raise usage("kickstart")
    label = service_label(args[0], "kickstart")
    answer = call({"op": "kickstart", "label": label, "kill": kill})
    code = answer["error"]
    if answer.get("not_root"):
        raise Failure(lp.EPERM, f'Could not kickstart service "{label}": {lp.EPERM}: {lp.error_text(lp.EPERM)}')
    if code == lp.E_NOT_FOUND:
        raise not_found(label)
    if code:
        raise Failure(code, f'Could not kickstart service "{label}": {code}: {lp.error_text(code)}')
    if print_pid and answer.get("pid"):
        out(str(answer["pid"]))
    return 0


# ---- legacy verbs (community.general.launchd uses list, load, unload, start, stop)


def status_column(status: int | None) -> str:
    """launchctl list's Status: last exit code, or minus the signal that killed the job."""
    if status is None:
        return "0"
    if os.WIFSIGNALED(status):
        return str(-os.WTERMSIG(status))
    return str(os.WEXITSTATUS(status))


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def list_job(info: dict) -> str:
    lines = [
        "{",
        '\t"LimitLoadToSessionType" = "System";',
        f'\t"Label" = {quote(info["label"])};',
        f'\t"OnDemand" = {"true" if info["on_demand"] else "false"};',
        f'\t"LastExitStatus" = {info["last_status"] or 0};',
    ]
    if info["pid"] is not None:
        lines.append(f'\t"PID" = {info["pid"]};')
    lines.append(f'\t"Program" = {quote(info["program"])};')
    lines.append('\t"ProgramArguments" = (')
    lines += [f"\t\t{quote(argument)};" for argument in info["arguments"]]
    lines += ["\t);", "};"]
    return "\n".join(lines)


def cmd_list(args: list[str]) -> int:
    if args and args[0] == "-x":
        raise unsupported("list -x")
    if len(args) > 1:
        raise usage("list")
    is_root = os.geteuid() == 0
    if args:
        label = args[0]
        # A non-root caller's legacy verbs act on its own (user) domain, which the lab leaves empty.
        answer = call({"op": "list", "label": label}) if is_root else {"error": lp.E_NOT_FOUND}
        if answer["error"]:
            raise not_found(label, "port")
        out(list_job(answer["job"]))
        return 0
    jobs = call({"op": "list"})["jobs"] if is_root else []
    out("PID\tStatus\tLabel")
    for info in sorted(jobs, key=lambda item: item["label"]):
        pid = str(info["pid"]) if info["pid"] is not None else "-"
        out(f"{pid}\t{status_column(info['last_status'])}\t{info['label']}")
    return 0


def legacy_options(args: list[str], verb: str, allowed: str) -> tuple[set[str], list[str]]:
    flags: set[str] = set()
    while args and args[0].startswith("-") and len(args[0]) > 1:
        option = args[0]
        if option in ("-S", "-D"):
            raise unsupported(f"launchctl {verb} {option}")
        for flag in option[1:]:
            if flag not in allowed:
                raise usage(verb)
            flags.add(flag)
        args = args[1:]
    if not args:
        raise usage(verb)
    return flags, args


def expand_paths(paths: list[str]) -> list[str]:
    """Legacy load/unload accept directories of plists too."""
    expanded = []
    for path in paths:
        directory = lp.host_path(mac_path(path))
        if os.path.isdir(directory):
            expanded += [os.path.join(path, name) for name in sorted(os.listdir(directory)) if name.endswith(".plist")]
        else:
            expanded.append(path)
    return expanded


def agents_warning(path: str, verb: str) -> None:
    if os.geteuid() == 0 and "/LaunchAgents/" in mac_path(path):
        err("Warning: Expecting a LaunchDaemons path since the command was ran as root. Got LaunchAgents instead.")
        err(f"`launchctl {verb}` is a recommended alternative.")


def report_path_problem(path: str, answer: dict) -> bool:
    """Problems legacy load/unload report as 'PATH: text' (docs/reference/macos.md#launchdaemon-permissions).
    True if reported."""
    code = answer["error"]
    if code == lp.ENOENT:
        err(f"{path}: No such file or directory")  # captured on 10.12; UNVERIFIED on 14/15
        return True
    if code == lp.E_BAD_PERMISSIONS:
        err(f"{path}: {lp.error_text(code)}")
        return True
    if code == lp.EIO and answer.get("text") == "Invalid property list":
        err(f"{path}: Invalid property list")
        return True
    return False


def cmd_load(args: list[str]) -> int:
    flags, paths = legacy_options(args, "load", "wF")
    for path in expand_paths(paths):
        agents_warning(path, "bootstrap")
        answer = call({"op": "bootstrap", "path": mac_path(path), "enable": "w" in flags, "force": "F" in flags})
        code = answer["error"]
        if code == 0 or report_path_problem(path, answer):
            continue
        if code == lp.E_DISABLED:
            err(f"{path}: {lp.error_text(code)}")
            err(error_line("Load failed", code))
        elif code in (lp.EIO, lp.EPERM):
            err(error_line("Load failed", lp.EIO))
            err(LEGACY_HINT.format(verb="bootstrap"))
        else:
            err(error_line("Load failed", code))
    # Legacy load reports failures on stderr but exits 0 (widely observed; see the report).
    return 0


def cmd_unload(args: list[str]) -> int:
    flags, paths = legacy_options(args, "unload", "w")
    for path in expand_paths(paths):
        agents_warning(path, "bootout")
        answer = call({"op": "bootout", "path": mac_path(path), "wait": True, "disable": "w" in flags})
        code = answer["error"]
        if code == 0 or report_path_problem(path, answer):
            continue
        # Not loaded (or not root): modern macOS prints the generic 5 and exits 0 (UNVERIFIED exit code).
        err(error_line("Unload failed", lp.EIO))
        err(LEGACY_HINT.format(verb="bootout"))
    return 0


def start_or_stop(args: list[str], verb: str) -> int:
    if len(args) != 1:
        raise usage(verb)
    if os.geteuid() != 0:
        return lp.ESRCH  # the caller's user domain has no such job
    answer = call({"op": verb, "label": args[0]})
    # Unknown label: exit 3 without a message (UNVERIFIED wording; 10.9 printed "launchctl start error").
    return lp.ESRCH if answer["error"] else 0


def cmd_start(args: list[str]) -> int:
    return start_or_stop(args, "start")


def cmd_stop(args: list[str]) -> int:
    return start_or_stop(args, "stop")


VERBS = {
    "bootstrap": cmd_bootstrap,
    "bootout": cmd_bootout,
    "enable": cmd_enable,
    "disable": cmd_disable,
    "print": cmd_print,
    "print-disabled": cmd_print_disabled,
    "kickstart": cmd_kickstart,
    "list": cmd_list,
    "load": cmd_load,
    "unload": cmd_unload,
    "start": cmd_start,
    "stop": cmd_stop,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        if not args:
            raise Failure(EX_USAGE, "Usage: launchctl <subcommand> ... | help [subcommand]")
        verb, rest = args[0], args[1:]
        handler = VERBS.get(verb)
        if handler is None:
            if verb in OTHER_REAL_VERBS:
                raise unsupported(f"launchctl {verb}")
            raise Failure(EX_USAGE, f"Unrecognized subcommand: {verb}\nUsage: launchctl <subcommand> ... | help")
        return handler(rest)
    except Failure as failure:
        if failure.message:
            err(failure.message)
        return failure.code
    except LaunchdUnavailable as exc:
        err(f"pfguard-lab: launchctl: {exc}")
        return 1
    finally:
        sys.stdout.flush()
