# SPDX-License-Identifier: GPL-3.0-or-later
"""The `pfguard` command: argument handling and one run of a play through ansible_runner.run()."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from secrets import token_hex
from typing import TextIO

from pfguard_cli import __version__, addresses, config, render
from pfguard_cli.outcome import EXIT_ERROR, EXIT_REFUSED, Outcome, Tracker

PLAYS = {
    "site": "make every Mac block hostile traffic: PF anchor, fail2ban, launchd jobs (playbooks/site.yml)",
    "ban": "ban addresses in pfguard_blocklist on every Mac, kill their states, persist the ban",
    "unban": "lift bans from pfguard_blocklist and from fail2ban's jails on every Mac",
    "sync": "put what fail2ban bans on any Mac into every Mac's pfguard_blocklist",
    "doctor": "tell, for every Mac, whether it is protected or which link is broken (read-only)",
    "report": "the fleet's bans: per Mac the blocklist and fail2ban's bans, and an HTML report",
}
ADDRESS_VARIABLE = {"ban": "pfguard_ban", "unban": "pfguard_unban"}
DEFAULT_TIMEOUT = 3600

EXIT_CODES = """\
exit codes (when several apply, the first listed here wins):
  2  refused: bad input (not an address, no inventory, a missing -e @file, no host
     selected) or a play's refusal ("Nothing was changed"); nothing was changed
  3  the play could not run or did not finish (pfguard.macos not found, ansible error,
     --timeout reached)
  4  a host was unreachable
  1  a host failed, or (doctor) a host is not protected
  0  done on every host (doctor: every host protected)
  130 interrupted

The inventory is -i, else $ANSIBLE_INVENTORY, else `inventory` of the ansible.cfg in effect
($ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg). Each run's
ansible-runner artifacts (job_events/, stdout, command, the play's result) are kept in
--artifacts DIR/<run> (default $XDG_STATE_HOME/pfguard/runs, or ~/.local/state/pfguard/runs).
docs/awx.md of pfguard.macos describes the command."""


def _timeout(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds, at least 1: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    options = common.add_argument_group("options for every command")
    options.add_argument("-i", "--inventory", action="append", default=[], metavar="INVENTORY",
                         help="inventory file, directory or host list (repeatable); default: as ansible finds it")
    options.add_argument("-l", "--limit", metavar="PATTERN", help="only these hosts (ansible's --limit)")
    options.add_argument("-C", "--check", action="store_true", help="change nothing; say what would change")
    options.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                         help="a play variable, passed to ansible-playbook as -e (repeatable), "
                              "e.g. -e pfguard_hosts=studio_macs")
    options.add_argument("--json", action="store_true",
                         help="print one JSON document on stdout (progress lines go to stderr)")
    options.add_argument("--artifacts", metavar="DIR",
                         help="keep ansible-runner's artifacts under DIR/<run> (default: $XDG_STATE_HOME/"
                              "pfguard/runs)")
    options.add_argument("--timeout", type=_timeout, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                         help=f"stop the play after this long (default {DEFAULT_TIMEOUT})")  # fmt: skip

    parser = argparse.ArgumentParser(
        prog="pfguard",
        description="Run pfguard.macos's plays on a fleet of Macs through ansible-runner.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pfguard {__version__}")
    commands = parser.add_subparsers(dest="play", required=True, metavar="COMMAND")
    for play, summary in PLAYS.items():
        command = commands.add_parser(play, parents=[common], help=summary, description=summary, epilog=EXIT_CODES,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        if play in ADDRESS_VARIABLE:
            command.add_argument("addresses", nargs="+", metavar="ADDR",
                                 help="IPv4/IPv6 address or CIDR network; several per argument may be "
                                      "separated by commas")  # fmt: skip
            command.add_argument("--pull-repo", metavar="DIR",
                                 help="pull mode: commit to the fleet blocklist file of DIR, a clone of the "
                                      "repository the Macs pull, and push it, instead of changing the Macs "
                                      "(pfguard_ban_mode=pull; docs/pull-mode.md)")  # fmt: skip
    return parser


def artifacts_root(chosen: str | None, env: dict[str, str], cwd: str) -> Path:
    """Where runs keep their artifacts: --artifacts, else $XDG_STATE_HOME/pfguard/runs, else the XDG Base
    Directory default ~/.local/state/pfguard/runs."""
    if chosen:
        return Path(cwd, os.path.expanduser(chosen))
    state = env.get("XDG_STATE_HOME", "")
    # The XDG Base Directory specification says to ignore a relative $XDG_STATE_HOME.
    base = Path(state) if os.path.isabs(state) else Path(config.home_dir(env), ".local", "state")
    return base / "pfguard" / "runs"


def ansible_env(env: dict[str, str], cfg: str | None) -> dict[str, str]:
    """Variables the run adds to the environment it inherits."""
    extra = {}
    if cfg:
        extra["ANSIBLE_CONFIG"] = cfg  # the ansible.cfg the inventory was read from, wherever ansible runs
    # The ansible-playbook installed with this command, when it is there (a virtualenv not on PATH).
    here = Path(sys.executable).parent
    if (here / "ansible-playbook").exists():
        extra["PATH"] = os.pathsep.join([str(here), env.get("PATH", os.defpath)])
    if "ANSIBLE_NOCOLOR" not in env and "ANSIBLE_FORCE_COLOR" not in env:
        extra["ANSIBLE_NOCOLOR"] = "1"  # the artifacts' stdout without terminal colours
    return extra


class Console:
    """Where lines go: stdout, or stderr when stdout carries the JSON document."""

    def __init__(self, out: TextIO, err: TextIO, json_mode: bool):
        self.out, self.err, self.json_mode = out, err, json_mode
        self.progress = err if json_mode else out

    def say(self, text: str) -> None:
        self.progress.write(text + "\n")
        self.progress.flush()


def main(argv: list[str] | None = None, env: dict[str, str] | None = None, cwd: str | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:  # fmt: skip
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser().parse_args(argv)
    env = dict(os.environ if env is None else env)
    cwd = cwd or os.getcwd()
    console = Console(out, err, args.json)
    try:
        return run(args, env, cwd, console)
    except KeyboardInterrupt:
        err.write("pfguard: interrupted\n")
        return 130


def refuse(args, console: Console, message: str, code: int = EXIT_REFUSED, inventory=()) -> int:
    """End before running anything: the message on stderr (and the JSON document with --json)."""
    console.err.write(f"pfguard {args.play}: {message}\n")
    if args.json:
        outcome = Outcome(args.play, {}, args.check, None, message if code == EXIT_REFUSED else None,
                          None if code == EXIT_REFUSED else message, "unstarted", code)  # fmt: skip
        console.out.write(json.dumps(render.document(outcome, None, inventory, args.limit), indent=2) + "\n")
    return code


def run(args, env: dict[str, str], cwd: str, console: Console) -> int:
    extravars = {}
    if args.play in ADDRESS_VARIABLE:
        try:
            extravars[ADDRESS_VARIABLE[args.play]] = addresses.check(args.addresses)
        except addresses.AddressError as exc:
            return refuse(args, console, f"refusing {' '.join(args.addresses)!r}: {exc}. Nothing was changed.")
    pull_mode = getattr(args, "pull_repo", None) is not None  # ban and unban only
    if pull_mode:
        repo = os.path.join(cwd, os.path.expanduser(args.pull_repo))
        if not os.path.isdir(os.path.join(repo, ".git")):
            return refuse(args, console, f"--pull-repo {args.pull_repo!r} is not a git clone (no .git in it). "
                                         "Nothing was changed.")  # fmt: skip
        # Pull mode runs on the controller alone: no Mac is contacted.
        extravars.update(pfguard_ban_mode="pull", pfguard_pull_repo_dir=os.path.abspath(repo),
                         pfguard_hosts="localhost")  # fmt: skip
    missing = [value for value in args.extra_vars
               if value.startswith("@") and not os.path.isfile(os.path.join(cwd, os.path.expanduser(value[1:])))]
    if missing:
        return refuse(args, console, f"no such variables file: {', '.join(missing)}. Nothing was changed.")
    home = config.home_dir(env)
    cfg = config.find_config(env, cwd, home)
    try:
        inventory = config.find_inventory(args.inventory, env, cwd, home, cfg)
    except config.InventoryError as exc:
        return refuse(args, console, f"{exc}. Nothing was changed.")
    try:
        import ansible_runner
    except ImportError:
        return refuse(args, console, "needs ansible-runner (pip install ansible-runner)", EXIT_ERROR, inventory.sources)

    root = artifacts_root(args.artifacts, env, cwd)
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return refuse(args, console, f"cannot make the artifacts directory {root}: {exc}", EXIT_ERROR,
                      inventory.sources)  # fmt: skip
    ident = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{args.play}-{token_hex(3)}"
    artifacts = root / ident
    # The play's own JSON result lands with the artifacts (in a directory of its own: the play sets its
    # mode); a later -e pfguard_result_dir=... still wins.
    cmdline = ["-e", json.dumps({"pfguard_result_dir": str(artifacts / "result")})]
    cmdline += ["--check"] if args.check else []
    for value in args.extra_vars:
        cmdline += ["-e", value]

    mode = " (check mode)" if args.check else ""
    limit = f", limit {args.limit}" if args.limit else ""
    console.say(f"pfguard {args.play}{mode}: playbook pfguard.macos.{args.play}, "
                f"inventory {', '.join(inventory.sources)}{limit}")  # fmt: skip

    def line(host, tracker):
        if not pull_mode:  # in pull mode the one host is the controller, not a Mac
            console.say(render.progress_line(args.play, host, tracker.check_mode))

    tracker = Tracker(args.play, args.check, line=line)
    with tempfile.TemporaryDirectory(prefix="pfguard-runner-") as private:
        try:
            runner = ansible_runner.run(
                private_data_dir=private,  # empty: no env/ files; everything is passed below
                project_dir=cwd,  # ansible-playbook runs where pfguard was started, as the user would run it
                artifact_dir=str(root),
                ident=ident,
                playbook=f"pfguard.macos.{args.play}",
                inventory=list(inventory.sources),  # a list is passed as -i each, never written to a file
                limit=args.limit,
                cmdline=shlex.join(cmdline),
                extravars=extravars or None,
                envvars=ansible_env(env, cfg),
                suppress_env_files=True,  # -e values may be secrets
                quiet=True,
                event_handler=tracker,
                timeout=args.timeout,
            )
        except Exception as exc:  # ansible_runner raises its own and OS errors alike; report, never a traceback
            return refuse(args, console, f"ansible-runner could not run the play: {exc}", EXIT_ERROR,
                          inventory.sources)  # fmt: skip
    outcome = tracker.finish(runner.status, runner.rc)
    document = render.document(outcome, str(artifacts), inventory.sources, args.limit)
    try:
        (artifacts / "pfguard.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        console.err.write(f"pfguard: could not write {artifacts / 'pfguard.json'}: {exc}\n")
    if args.json:
        console.out.write(json.dumps(document, indent=2) + "\n")
    else:
        show(outcome, str(artifacts), console)
    return outcome.exit_code


def show(outcome: Outcome, artifacts: str, console: Console) -> None:
    """The text ending: hosts not shown yet, the summary table, the refusal or error, where the artifacts are."""
    lines = []
    if outcome.pull:  # the only host was the controller
        lines += ["", render.pull_summary(outcome)]
    elif outcome.hosts:
        lines += ["", render.table(outcome)]
    if outcome.refusal:
        lines += ["", f"refused: {outcome.refusal}"]
    if outcome.error:
        lines += ["", f"error: {outcome.error}"]
    if outcome.check_mode and not outcome.refusal:
        lines += ["", "check mode: nothing was changed"]
    if outcome.play == "doctor" and any(h.status == "unprotected" for h in outcome.hosts.values()):
        lines += ["docs/doctor.md of pfguard.macos gives the fix for each verdict"]
    lines += ["", f"{outcome.word} (exit {outcome.exit_code}); artifacts: {artifacts}"]
    console.out.write("\n".join(lines) + "\n")
    console.out.flush()

