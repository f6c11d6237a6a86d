# SPDX-License-Identifier: GPL-3.0-or-later
"""One helper for every hostile-input test: run a module or filter through real Ansible, assert it
was refused by name with no traceback, and that the watched files and kernel state did not change.

Starting Ansible costs seconds, a module run a fraction of one, so a suite runs its cases as a
`Batch`: one ansible-playbook run, each case a task in a block whose rescue lets the next case run
and whose `always` snapshots the watched paths
(https://docs.ansible.com/ansible/latest/playbook_guide/playbooks_blocks.html); each test then
checks its own case's result and the snapshots around it. The snapshot tasks run this file through
the pipe lookup: `python hostile.py DIGESTS ROOT...` prints `snapshot(ROOT...)` as JSON."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import stat
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pfguard_lab.adhoc import QUIET

# `ansible` exits 2 when a host failed; a batch case reports the same when its rescue ran.
HOST_FAILED = 2
# ansible-core 2.19+ puts this in every failed result when tracebacks are off (ansible.posix.json
# shows it; the one-line callback drops the key): it carries no traceback, anything else does.
NO_TRACEBACK = "(traceback unavailable)"
TASK_TIMEOUT = 60  # seconds one case may take before Ansible fails it (task keyword `timeout`)
BANNER = re.compile(r"^TASK \[(.*)\] \**$", re.MULTILINE)


def snapshot(*roots: str | os.PathLike, digests: dict | None = None) -> dict[str, tuple]:
    """Every path below `roots` (links not followed) with its type, mode, owner and content digest
    (device numbers for devices), so any change, creation or removal shows up in a comparison. A
    root that is not a directory (such as /dev/null) is recorded itself. `digests` (kept from one
    snapshot to the next) spares re-reading large files that were not written since (`digest`)."""
    seen: dict[str, tuple] = {}
    for root in roots:
        names = [] if os.path.isdir(root) else [os.fspath(root)]
        for directory, dirnames, filenames in os.walk(root, followlinks=False):
            names += [directory, *(os.path.join(directory, n) for n in dirnames + filenames)]
        for name in names:
            info = os.lstat(name)
            if stat.S_ISREG(info.st_mode):
                detail = digest(name, info, digests)
            elif stat.S_ISLNK(info.st_mode):
                detail = os.readlink(name)
            elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                detail = info.st_rdev
            else:
                detail = None
            seen[name] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid, detail)
    return seen


def digest(name: str, info: os.stat_result, digests: dict | None) -> str:
    """sha256 of a regular file. A file of 1 MiB or more whose inode, size, mtime and ctime match
    `digests` is not read again: a write sets mtime and ctime to the time of the write, and ctime
    cannot be set back (inode(7)); a file changed less than a second ago is always read, as clock
    ticks are coarse (git's "racy" check, Documentation/technical/racy-git.txt)."""
    key = [info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
    settled = info.st_size >= 1 << 20 and time.time_ns() - info.st_ctime_ns > 10**9
    if digests is not None and settled and digests.get(name, [None])[0] == key:
        return digests[name][1]
    value = hashlib.sha256(Path(name).read_bytes()).hexdigest()
    if digests is not None and settled:
        digests[name] = [key, value]
    return value


def assert_refused(rc: int, result: dict, *names: str) -> str:
    """The task failed cleanly (no traceback) with a message naming every one of `names`."""
    text = repr(result)
    assert rc != 0 and result.get("failed") is True, result
    assert "Traceback" not in text and "exception" not in result, result
    message = str(result.get("msg", ""))
    for name in names:
        assert name in message, f"{name!r} not named in {message!r}"
    return message


@dataclass
class Case:
    """One case of a batch: the task `{module: args}` (with task `keywords` such as check_mode), after
    `setup` tasks (run before its "before" snapshot) and before `teardown` tasks."""

    id: str
    module: str
    args: dict
    keywords: dict = field(default_factory=dict)
    setup: list = field(default_factory=list)
    teardown: list = field(default_factory=list)


@dataclass
class Outcome:
    """What one case did: its result (JSON mode) or its part of the output (text mode), whether its
    rescue ran (the task failed), the watched state before and after it, and how long it ran."""

    result: dict
    output: str
    refused: bool
    before: dict | None
    after: dict | None
    seconds: float


def seconds_between(span: dict) -> float:
    """Length of an ansible.posix.json task duration ({"start": ISO time, "end": ISO time})."""
    start, end = (datetime.fromisoformat(span[key].rstrip("Z")) for key in ("start", "end"))
    return (end - start).total_seconds()


class Batch:
    """`cases` as one ansible-playbook run on localhost, started at once (so batches run side by
    side) and read by `wait()`. JSON mode records each task's result with ansible.posix.json; text
    mode (`text=True`) keeps what the default callback prints, stderr included, cut per task.
    With `watched` paths, a snapshot of them is taken before the first case and after every case."""

    def __init__(self, workdir: Path, cases: list[Case], watched=(), env: dict | None = None,
                 text: bool = False, argv: tuple[str, ...] = ()):  # fmt: skip
        self.cases = {case.id: case for case in cases}
        assert len(self.cases) == len(cases), "case ids must be unique"
        self.text = text
        workdir.mkdir(parents=True, exist_ok=True)
        playbook = workdir / "hostile.json"
        # JSON is YAML, and Ansible reads a JSON file with json.loads: every string arrives as the
        # test wrote it (NUL, surrogates), as with `ansible -a JSON`.
        play = {"name": "hostile input", "hosts": "localhost", "gather_facts": False}
        tasks = self._tasks(cases, watched, workdir / "digests.json")
        playbook.write_text(json.dumps([{**play, "tasks": tasks}]))
        # Imported here, not at the top: this file also runs as the snapshot script, under -I.
        from lab_fixtures import start_playbook

        # The tests' one runner; its output goes to files, so a batch nobody reads yet never blocks.
        self._run = start_playbook(playbook, *argv, env={**(os.environ if env is None else env), **QUIET},
                                   json_output=not text, merge_stderr=text)  # fmt: skip
        self.argv = self._run.argv
        self.returncode: int | None = None
        self.output = ""
        self._ran: dict[str, tuple[dict, float, str]] = {}  # task name: (result, seconds, output)

    @staticmethod
    def _tasks(cases: list[Case], watched, digests: Path) -> list[dict]:
        command = shlex.join([sys.executable, "-I", __file__, str(digests), *map(str, watched)])
        snap = {"ansible.builtin.debug": {"msg": "{{ lookup('ansible.builtin.pipe', %r) }}" % command}}
        tasks: list[dict] = []
        fresh = False  # whether the last snapshot still shows the state the next case starts from
        for case in cases:
            tasks += case.setup
            if watched and (case.setup or not fresh):
                tasks.append({"name": f"{case.id} | before", **snap})
            run = {"name": f"{case.id} | run", case.module: case.args, "timeout": TASK_TIMEOUT, **case.keywords}
            tasks.append({
                "name": case.id,
                "block": [run],
                "rescue": [{"name": f"{case.id} | refused", "ansible.builtin.debug": {"msg": "refused"}}],
                "always": ([{"name": f"{case.id} | after", **snap}] if watched else []) + case.teardown,
            })  # fmt: skip
            fresh = not case.teardown
        return tasks

    def wait(self, timeout: float) -> Batch:
        """Wait for the run (killed after `timeout` seconds: the cases that did not run fail, showing it)."""
        if self.returncode is None:
            run = self._run.finish(timeout)
            self.returncode = run.returncode
            self._ran = self._text_tasks(run.stdout) if self.text else self._json_tasks(run.data)
            self.output = run.stdout + run.stderr + (f"\n{run.hung_message()}" if run.hung_after is not None else "")
        return self

    @staticmethod
    def _json_tasks(document: dict | None) -> dict[str, tuple[dict, float, str]]:
        try:
            tasks = document["plays"][0]["tasks"]
        except (TypeError, LookupError):
            return {}
        ran = {}
        for task in tasks:
            result = dict(task["hosts"].get("localhost", {}))
            ran[task["task"]["name"]] = (result, seconds_between(task["task"]["duration"]), "")
        return ran

    @staticmethod
    def _text_tasks(stdout: str) -> dict[str, tuple[dict, float, str]]:
        banners = list(BANNER.finditer(stdout))
        ends = [banner.start() for banner in banners[1:]] + [stdout.find("\nPLAY RECAP")]
        return {banner.group(1): ({}, 0.0, stdout[banner.start() : end]) for banner, end in zip(banners, ends)}

    def __str__(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}\n{self.output[-6000:]}"

    def outcome(self, case_id: str) -> Outcome:
        """The case's outcome; fails the test, showing the run, if the case did not run."""
        assert self.returncode is not None, "wait() first"
        assert f"{case_id} | run" in self._ran, f"{case_id} did not run\n{self}"
        result, seconds, output = self._ran[f"{case_id} | run"]
        if result.get("exception") == NO_TRACEBACK:
            del result["exception"]
        refused = f"{case_id} | refused" in self._ran
        return Outcome(result, output, refused, self._before(case_id), self._snapshot(f"{case_id} | after"), seconds)

    def _snapshot(self, name: str) -> dict | None:
        if name not in self._ran:
            return None
        result = self._ran[name][0]
        assert not result.get("failed"), f"snapshot {name} failed: {result}"
        return json.loads(result["msg"])

    def _before(self, case_id: str) -> dict | None:
        if f"{case_id} | before" in self._ran:
            return self._snapshot(f"{case_id} | before")
        ids = list(self.cases)
        index = ids.index(case_id)
        return self._snapshot(f"{ids[index - 1]} | after") if index else None

    def refused(self, case_id: str, *names: str) -> Outcome:
        """The case failed cleanly naming every one of `names` and changed nothing (JSON mode)."""
        outcome = self.outcome(case_id)
        assert_refused(HOST_FAILED if outcome.refused else 0, outcome.result, *names)
        self.unchanged(outcome, case_id)
        return outcome

    def unchanged(self, outcome: Outcome, case_id: str) -> None:
        before, after = outcome.before, outcome.after
        assert before is not None and after is not None, f"{case_id}: no snapshot around it\n{self}"
        differ = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
        assert after == before, f"state changed by {case_id}: {differ}"


def wait_all(*batches: Batch, timeout: float) -> None:
    """Wait for batches started side by side."""
    for batch in batches:
        batch.wait(timeout)


if __name__ == "__main__":  # hostile.py DIGESTS ROOT...: the snapshot as JSON; DIGESTS is a file
    cache = Path(sys.argv[1])
    known = json.loads(cache.read_text()) if cache.exists() else {}
    print(json.dumps(snapshot(*sys.argv[2:], digests=known)))
    cache.write_text(json.dumps(known))
