# SPDX-License-Identifier: GPL-3.0-or-later
"""How a run is shown: one line per host, the play's summary as a table, or one JSON document."""

from __future__ import annotations

from pfguard_cli.outcome import Host, Outcome

LABELS = {
    "ok": "ok",
    "skipped": "skipped (not a Mac)",
    "protected": "protected",
    "unprotected": "NOT PROTECTED",
    "failed": "FAILED",
    "incomplete": "NOT DONE",
    "refused": "REFUSED",
    "unreachable": "UNREACHABLE",
}


def _join(values) -> str:
    return ", ".join(str(value) for value in values or [])


def _plural(count, word: str, words: str = "") -> str:
    return f"{count} {word}" if count == 1 else f"{count} {words or word + 's'}"


def _lifted(lifted) -> str:
    return "; ".join(f"{jail} {_join(addresses)}" for jail, addresses in (lifted or {}).items())


def describe(play: str, host: Host, check_mode: bool = False) -> str:
    """The host's line after its status label: what the play did (or would do) there, or why not."""
    if host.status == "skipped":
        return ""
    if host.status in ("failed", "refused", "unreachable", "incomplete") or not (host.result or host.recap):
        if host.status == "incomplete":
            return "the play stopped before this host's result"
        if host.status == "refused" and not host.message:
            return "nothing was changed"
        return (f"{host.task}: " if host.task and host.status != "refused" else "") + (host.message or "")
    result, would = host.result, "would be " if check_mode else ""
    if not result:  # a host without a result of its own (the controller in pull mode): its recap
        return _recap(host.recap)
    if play == "ban":
        return "; ".join([
            f"{would}added {_join(result.get('added'))}" if result.get("added") else "already banned",
            f"{_plural(result.get('states_killed', 0), 'state')} {would}killed",
            f"{_plural(result.get('entries', 0), 'entry', 'entries')} in pfguard_blocklist",
        ])  # fmt: skip
    if play == "unban":
        removed, lifted = result.get("removed"), result.get("fail2ban_lifted")
        return "; ".join([
            f"{would}removed {_join(removed)} from pfguard_blocklist" if removed else "nothing in pfguard_blocklist",
            f"{would}lifted in fail2ban: {_lifted(lifted)}" if lifted else "no fail2ban ban",
        ])  # fmt: skip
    if play == "sync":
        parts = [
            f"{would}added {_join(result.get('added'))}" if result.get("added") else "nothing to add",
            f"{would}taken out {_join(result.get('removed'))}" if result.get("removed") else "nothing to take out",
            f"{_plural(result.get('states_killed', 0), 'state')} {would}killed",
        ]
        if result.get("not_synced"):
            parts.append(f"not synced (trusted or the controller): {_join(result['not_synced'])}")
        return "; ".join(parts)
    if play == "doctor":
        return str(result.get("verdict", ""))
    if play == "report":
        blocklist = result.get("blocklist")
        entries = ("no pfguard_blocklist" if blocklist is None
                   else _plural(blocklist, "entry", "entries") + " in pfguard_blocklist")  # fmt: skip
        return f"{entries}; {result.get('banned', 0)} banned by fail2ban"
    return _recap(host.recap)


def _recap(recap: dict) -> str:
    return f"ok={recap.get('ok', 0)} changed={recap.get('changed', 0)} skipped={recap.get('skipped', 0)}"


def progress_line(play: str, host: Host, check_mode: bool = False) -> str:
    label, text = LABELS.get(host.status, host.status), describe(play, host, check_mode)
    return f"{host.name}: {label}" + (f": {text}" if text and text != label else "")


# The summary table's columns after host and status, per play: (heading, value of the host's result).
COLUMNS = {
    "ban": [("added", lambda r, _: _join(r.get("added")) or "-"),
            ("states killed", lambda r, _: r.get("states_killed", 0)),
            ("entries", lambda r, _: r.get("entries", ""))],
    "unban": [("removed from pfguard_blocklist", lambda r, _: _join(r.get("removed")) or "-"),
              ("lifted in fail2ban", lambda r, _: _lifted(r.get("fail2ban_lifted")) or "-")],
    "sync": [("added", lambda r, _: _join(r.get("added")) or "-"),
             ("taken out", lambda r, _: _join(r.get("removed")) or "-"),
             ("states killed", lambda r, _: r.get("states_killed", 0)),
             ("not synced", lambda r, _: _join(r.get("not_synced")) or "-")],
    "doctor": [("link", lambda r, _: r.get("link", "")),
               ("verdict", lambda r, _: r.get("verdict", ""))],
    "report": [("blocklist", lambda r, _: "-" if r.get("blocklist") is None else r.get("blocklist")),
               ("banned", lambda r, _: r.get("banned", 0))],
    "site": [("ok", lambda _, recap: recap.get("ok", 0)),
             ("changed", lambda _, recap: recap.get("changed", 0)),
             ("skipped", lambda _, recap: recap.get("skipped", 0))],
}  # fmt: skip


def pull_summary(outcome: Outcome) -> str:
    """Pull mode: what went into the pull repository, and when the Macs get it."""
    pull = outcome.pull or {}
    changes = "; ".join(f"{word} {_join(pull[key])}" for key, word in (("added", "added"), ("removed", "removed"))
                        if pull.get(key))  # fmt: skip
    head = f"pull repository {pull.get('file', '')}"
    if not changes:
        return f"{head}: nothing to change, no commit"
    if outcome.check_mode:
        return f"{head}: would be {changes}; no commit in check mode"
    pushed = "pushed" if pull.get("pushed") else "not pushed (the clone has no remote)"
    commit = str(pull.get("commit", ""))[:12]
    return f"{head}: {changes}; commit {commit}, {pushed}; the Macs apply it at their next pull"


def table(outcome: Outcome) -> str:
    """The play's summary: one row per host (a host without a result gets its message instead), the totals."""
    columns = COLUMNS[outcome.play]
    rows = [["host", "status", *(heading for heading, _ in columns)]]
    for name in sorted(outcome.hosts):
        host = outcome.hosts[name]
        label = LABELS.get(host.status, host.status)
        if host.result or (outcome.play == "site" and host.status == "ok"):
            rows.append([name, label, *(str(value(host.result, host.recap)) for _, value in columns)])
        else:
            rows.append([name, label, describe(outcome.play, host, outcome.check_mode)])
    # The last column and the messages are left unpadded, so a long verdict does not widen the table.
    widths = [max(len(row[i]) for row in rows if len(row) > i + 1) if any(len(row) > i + 1 for row in rows) else 0
              for i in range(len(rows[0]))]  # fmt: skip
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append(" | ".join(cells).rstrip())
        if index == 0:
            lines.append("-+-".join("-" * max(widths[i], len(row[i])) for i in range(len(row))))
    if outcome.totals:
        lines.append("total: " + ", ".join(f"{key.replace('_', ' ')} {_total(value)}"
                                           for key, value in outcome.totals.items()))  # fmt: skip
    return "\n".join(lines)


def _total(value) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(f"{key} {_total(item)}" for key, item in value.items()) + ")"
    if isinstance(value, (list, tuple)):
        return _join(value) or "none"
    return str(value)


def document(outcome: Outcome, artifacts: str, inventory, limit: str | None) -> dict:
    """The --json document: the outcome, per host its status and result, the totals, the artifacts."""
    hosts = {}
    for name in sorted(outcome.hosts):
        host = outcome.hosts[name]
        entry = {"status": host.status, **host.result}
        if host.message is not None:
            entry.update(task=host.task, message=host.message)
        entry["recap"] = host.recap
        hosts[name] = entry
    return {
        "play": outcome.play,
        "check_mode": outcome.check_mode,
        "outcome": outcome.word,
        "exit_code": outcome.exit_code,
        "message": outcome.refusal or outcome.error,
        "hosts": hosts,
        "totals": outcome.totals,
        **({"pull": outcome.pull} if outcome.pull else {}),
        "inventory": list(inventory),
        "limit": limit,
        "artifacts": artifacts,
    }
