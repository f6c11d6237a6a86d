# SPDX-License-Identifier: GPL-3.0-or-later
"""What a run did, from ansible-runner's events: per host its status and result, the play's refusal, the
exit code.

Every play but site ends with a run_once `set_stats` of `pfguard_result` (per_host: false), which
ansible-runner's awx_display callback puts into the `playbook_on_stats` event as
`event_data.artifact_data` (ansible_runner/display_callback/callback/awx_display.py,
v2_playbook_on_stats). Hosts that failed or were unreachable are missing from it; they are known from
the runner_on_failed / runner_on_unreachable events and the stats' `failures` and `dark`. Every refusal
of the plays says "Nothing was changed" (docs/awx.md, "Exit codes").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

REFUSAL_MARK = "Nothing was changed"

# Exit codes (docs/awx.md "Exit codes"); when several apply, the first in this order wins:
# refused > error > unreachable > failed > done.
EXIT_DONE = 0  # every host did its part (doctor: every host protected)
EXIT_FAILED = 1  # a host failed, or (doctor) is not protected
EXIT_REFUSED = 2  # bad input: refused by pfguard or by the play, or no host selected; nothing was changed
EXIT_ERROR = 3  # the play could not run or did not finish (pfguard.macos not found, syntax error, timeout)
EXIT_UNREACHABLE = 4  # a host could not be reached
EXIT_CANCELED = 130  # interrupted (Ctrl-C)

# Statuses of a host, and the exit code each one calls for.
HOST_EXIT = {
    "ok": EXIT_DONE,
    "skipped": EXIT_DONE,  # not a Mac: the play leaves it alone (doctor: not protected, see _stats)
    "protected": EXIT_DONE,
    "unprotected": EXIT_FAILED,
    "failed": EXIT_FAILED,
    "incomplete": EXIT_FAILED,  # the play stopped before this host's result (another host failed)
    "refused": EXIT_REFUSED,
    "unreachable": EXIT_UNREACHABLE,
}
# The PLAY RECAP counters, per host, as the stats event has them.
RECAP = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
_PRECEDENCE = (EXIT_CANCELED, EXIT_REFUSED, EXIT_ERROR, EXIT_UNREACHABLE, EXIT_FAILED, EXIT_DONE)


def exit_code(codes) -> int:
    """The code that wins among several (a run with an unreachable and a failed host exits 4)."""
    present = set(codes)
    return next((code for code in _PRECEDENCE if code in present), EXIT_DONE)


@dataclass
class Host:
    name: str
    status: str = "ok"
    result: dict = field(default_factory=dict)  # this host's part of pfguard_result (or of a progress event)
    task: str | None = None  # the task that failed, or that found it unreachable
    message: str | None = None
    recap: dict = field(default_factory=dict)  # ok, changed, failures, dark, skipped, rescued, ignored
    reported: bool = False  # its progress line has been shown


@dataclass
class Outcome:
    play: str
    hosts: dict[str, Host]
    check_mode: bool
    result: dict | None  # pfguard_result as the play published it
    refusal: str | None
    error: str | None
    status: str  # ansible-runner's: successful, failed, timeout, canceled
    exit_code: int

    @property
    def totals(self) -> dict:
        return dict((self.result or {}).get("totals") or {})

    @property
    def pull(self) -> dict | None:
        """In pull mode (ban, unban): what was committed to the pull repository."""
        pull = ((self.result or {}).get("details") or {}).get("pull")
        return dict(pull) if isinstance(pull, dict) else None

    @property
    def word(self) -> str:
        """The run's outcome in one word."""
        return {
            EXIT_DONE: "protected" if self.play == "doctor" else "done",
            EXIT_FAILED: "unprotected" if any(h.status == "unprotected" for h in self.hosts.values()) else "failed",
            EXIT_REFUSED: "refused",
            EXIT_ERROR: "error",
            EXIT_UNREACHABLE: "unreachable",
            EXIT_CANCELED: "canceled",
        }[self.exit_code]


def message_of(res: dict) -> str:
    """The message of a task result: its msg, with the command's stderr when the msg is only about the rc."""
    if not isinstance(res, dict):
        return str(res)
    msg = str(res.get("msg") or res.get("reason") or "").strip()
    stderr = str(res.get("stderr") or "").strip()
    if stderr and (not msg or msg == "non-zero return code"):
        msg = f"{msg}: {stderr}" if msg else stderr
    return msg or "failed (no message)"


def host_result_of(event_data: dict) -> dict | None:
    """A host's own result, as soon as the play sets it: every fleet play notes it per host in the fact
    pfguard_host_result (set_fact), before the run_once task that publishes them all."""
    facts = (event_data.get("res") or {}).get("ansible_facts") or {}
    result = facts.get("pfguard_host_result")
    return dict(result) if isinstance(result, dict) else None


class Tracker:
    """Feed it ansible-runner's events (`event_handler`); `line(host)` is called once per host as soon as
    its line is known; `finish()` gives the Outcome."""

    def __init__(self, play: str, check_mode: bool = False, line: Callable[[Host, "Tracker"], None] | None = None):
        self.play = play
        self.check_mode = check_mode
        self.hosts: dict[str, Host] = {}
        self.refusal: str | None = None
        self.stats: dict | None = None
        self.result: dict | None = None
        self.outputs: list[str] = []  # stdout of events without a host (ansible's errors land here)
        self._line = line

    def host(self, name: str) -> Host:
        return self.hosts.setdefault(name, Host(name))

    def __call__(self, event: dict) -> bool:
        """ansible-runner's event_handler: note the event; True keeps it in the artifacts."""
        self.feed(event)
        return True

    def feed(self, event: dict) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        name = data.get("host")
        if kind == "runner_on_failed" and name and not data.get("ignore_errors"):
            self._failed(self.host(name), data)
        elif kind == "runner_on_unreachable" and name:
            host = self.host(name)
            host.status, host.task, host.message = "unreachable", data.get("task"), message_of(data.get("res"))
            self._report(host)
        elif kind == "runner_on_ok" and name and self.play != "site":
            result = host_result_of(data)
            host = self.host(name)
            if result is not None and host.status == "ok" and not host.reported:
                host.result = result
                if self.play == "doctor":
                    host.status = "protected" if result.get("protected") else "unprotected"
                self._report(host)
        elif kind == "playbook_on_stats":
            self._stats(data)
        elif not name and event.get("stdout"):
            self.outputs.append(event["stdout"])

    def _failed(self, host: Host, data: dict) -> None:
        message = message_of(data.get("res"))
        if host.status in ("failed", "refused", "unreachable"):
            return  # the first failure of a host is the one that stopped it
        # The plays' own refusals say so; a setting the roles' argument specs refuse (for example a bad
        # value in the inventory's group_vars) fails validate_argument_spec before any change.
        refused_setting = "validate_args_context" in (data.get("res") or {})
        if REFUSAL_MARK in message or refused_setting:
            self.refusal = self.refusal or message
            host.status = "refused"
        elif host.status != "unprotected":  # doctor fails unprotected hosts on purpose, at the end
            host.status = "failed"
        else:
            return
        host.task, host.message = data.get("task"), message
        self._report(host)

    def _stats(self, data: dict) -> None:
        self.stats = data
        result = (data.get("artifact_data") or {}).get("pfguard_result")
        self.result = result if isinstance(result, dict) else None
        per_host = (self.result or {}).get("hosts") or {}
        skipped = set((self.result or {}).get("skipped") or [])
        if self.result is not None:
            self.check_mode = bool(self.result.get("check_mode", self.check_mode))
        names = set(per_host) | skipped
        for key in ("processed", *RECAP):
            names |= set(data.get(key) or {})
        for name in sorted(names):
            host = self.host(name)
            host.recap = {key: (data.get(key) or {}).get(name, 0) for key in RECAP}
            if name in per_host and isinstance(per_host[name], dict):
                host.result = dict(per_host[name])
                if self.play == "doctor" and host.status != "unreachable":
                    host.status = "protected" if host.result.get("protected") else "unprotected"
            elif name in skipped and host.status == "ok":
                host.status = "skipped"
                if self.play == "doctor":
                    host.status = "unprotected"
                    host.result = {"protected": False, "link": "not_a_mac", "verdict": "not a Mac (skipped)"}
            if host.recap["dark"] and host.status != "unreachable":
                host.status = "unreachable"
            elif host.recap["failures"] and host.status in ("ok", "protected"):
                host.status = "failed"
            elif host.status == "ok" and self.play != "site" and name not in per_host:
                # The fleet plays publish every host's result at the end: this host never got there.
                host.status = "refused" if self.refusal else "incomplete"
            self._report(host)

    def _report(self, host: Host) -> None:
        if not host.reported:
            host.reported = True
            if self._line:
                self._line(host, self)

    def finish(self, status: str = "successful", rc: int | None = 0) -> Outcome:
        """The Outcome, once ansible-runner is done (`status`, `rc`: the runner's)."""
        error = None
        if status == "canceled":
            code = EXIT_CANCELED
        elif self.refusal:
            code = EXIT_REFUSED
        elif status == "timeout":
            code, error = EXIT_ERROR, "the play did not finish within --timeout"
        elif self.stats is None:
            code = EXIT_ERROR
            output = _last_lines("\n".join(self.outputs))
            error = f"ansible-playbook stopped before running the play (exit {rc})" + (f": {output}" if output else "")
            if f"pfguard.macos.{self.play} could not be found" in output:
                error += ("\npfguard.macos is not where ansible looks for collections: install it (ansible-galaxy "
                          "collection install pfguard-macos-<version>.tar.gz) or run pfguard from the checkout's "
                          "root, whose ansible.cfg finds it")  # fmt: skip
        elif not self.hosts:
            code, error = EXIT_REFUSED, "no host matched: check the inventory, --limit and the play's host group"
        else:
            code = exit_code(HOST_EXIT[host.status] for host in self.hosts.values())
        return Outcome(self.play, self.hosts, self.check_mode, self.result, self.refusal, error, status, code)


def _last_lines(text: str, count: int = 8) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-count:])
