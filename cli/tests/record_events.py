# SPDX-License-Identifier: GPL-3.0-or-later
"""Turn the job_events/ of a real run's artifacts into a recording for the unit tests (cli/tests/events/).

    python cli/tests/record_events.py ARTIFACTS_DIR cli/tests/events/NAME.jsonl

Keeps, in the order ansible-runner numbered them, the events pfguard reads with the fields it reads (the
event name, host, task, action, ignore_errors, the result's msg/stderr/pfguard_host_result, the stats with
their artifact_data, and the text of `verbose` events, where ansible's errors land), so that a recording
stays small and holds nothing of the machine it was made on beyond what the messages say.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DATA_KEYS = ("host", "task", "task_action", "ignore_errors")
STATS_KEYS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed", "artifact_data")
# Events pfguard does not read (a task or host starting, loop items, includes), left out to keep it small.
SKIPPED = ("runner_on_start", "playbook_on_task_start", "runner_item_on_ok", "runner_item_on_skipped",
           "runner_item_on_failed", "playbook_on_include")  # fmt: skip
RESULT_KEYS = ("msg", "stderr", "reason", "added", "removed", "entries", "states_killed", "changed", "failed")


def trimmed(event: dict) -> dict:
    data = event.get("event_data") or {}
    kept = {key: data[key] for key in DATA_KEYS if key in data}
    if event["event"] == "playbook_on_stats":
        kept.update({key: data[key] for key in STATS_KEYS if key in data})
    res = data.get("res")
    if isinstance(res, dict):
        small = {key: res[key] for key in RESULT_KEYS if key in res}
        facts = res.get("ansible_facts") or {}
        if "pfguard_host_result" in facts:
            small["ansible_facts"] = {"pfguard_host_result": facts["pfguard_host_result"]}
        kept["res"] = small
    out = {"event": event["event"], "event_data": kept}
    if event["event"] == "verbose" and event.get("stdout"):  # ansible's own errors, before any play
        out["stdout"] = event["stdout"]
    return out


def main(artifacts: str, target: str) -> None:
    events = [json.loads(path.read_text()) for path in Path(artifacts, "job_events").glob("*.json")]
    events.sort(key=lambda event: event["counter"])
    lines = [json.dumps(trimmed(event)) for event in events if event.get("event") not in SKIPPED]
    Path(target).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
