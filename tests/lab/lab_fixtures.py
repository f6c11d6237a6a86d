# SPDX-License-Identifier: GPL-3.0-or-later
"""A lab shared by tests/lab/test_lab_*.py: brought up once per session, always taken down.

Test modules load this as a plugin (`pytest_plugins = ["lab_fixtures"]`, not an import) so that
the session fixture exists once, not once per importing module; they reach the helpers through
the `lab` fixture. `PFGUARD_LAB_COMMAND` may name another
`pfguard-lab` executable (the default runs this venv's `python -m pfguard_lab.cli`).
`PFGUARD_LAB_HOSTS=N` brings the session's lab up with N Macs instead of the default fleet's
(`pfguard-lab up --hosts N`, mac1..macN); only suites that read the Macs from the lab's inventory
(tests/fleet/test_pull.py, `make pull-fleet`) are meant for it, the others name mac1..mac3.

It also holds what every suite shares: `wait_for`, the one polling loop, and `run_playbook` /
`start_playbook`, the one ansible-playbook runner (`lab.playbook` runs it against the lab's inventory),
with its result `PlaybookRun` (recap counters from PLAY RECAP or the JSON callback).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from pfguard_lab.fleet import Lab, LabError

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = str(Path(sys.executable).with_name("ansible"))
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))
LAB_DIR = Path(os.environ.get("PFGUARD_LAB_DIR") or "/run/pfguard-lab")
DIAGNOSTICS = "/var/db/diagnostics/pfguard-lab.jsonl"  # logd's store (docs/lab-design.md)


def lab_command() -> list[str]:
    override = os.environ.get("PFGUARD_LAB_COMMAND")
    return shlex.split(override) if override else [sys.executable, "-m", "pfguard_lab.cli"]


def run_lab(*args: str, input_text: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `pfguard-lab ARGS...` and capture its output (never raises on a non-zero exit)."""
    return subprocess.run(
        [*lab_command(), *args], input=input_text, capture_output=True, text=True, timeout=timeout,
        stdin=None if input_text is not None else subprocess.DEVNULL,
    )  # fmt: skip


def wait_for(condition, timeout: float, interval: float = 0.5, what: str = "condition", detail=None,
             fail: bool = True):  # fmt: skip
    """The one polling loop of the test suites: call `condition()` every `interval` seconds until it
    returns something truthy, and return that value. After `timeout` seconds the test fails with
    "timed out ... waiting for <what>" and `detail()` (a callable, evaluated only then); with
    `fail=False` the last (falsy) value is returned instead, for a helper whose caller asserts on
    what did arrive (a list of log lines, say) and so shows more than a timeout would."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            if not fail:
                return value
            pytest.fail(f"timed out after {timeout}s waiting for {what}" + (f"\n{detail()}" if detail else ""))
        time.sleep(interval)


# PLAY RECAP of the default callback: "<host> : ok=2 changed=1 unreachable=0 failed=0 skipped=0 ...".
RECAP_LINE = re.compile(r"^(\S+)\s+: ((?:\w+=\d+\s*)+)$", re.MULTILINE)
# ansible.posix.json's "stats" name one counter differently from PLAY RECAP.
JSON_STATS = {"failures": "failed"}
# A task name as the callbacks print it for a role's task: "<role> : <task>".
ROLE_PREFIX = re.compile(r"^\S+ : ")


def parse_recap(stdout: str) -> dict[str, dict[str, int]]:
    """The counters per host of the last PLAY RECAP in `stdout` (empty without one)."""
    _, found, recap = stdout.rpartition("PLAY RECAP")
    if not found:
        return {}
    return {
        match.group(1): {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
        for match in RECAP_LINE.finditer(recap)
    }


class PlaybookRun:
    """One finished ansible-playbook run: argv, exit code, output and the recap counters per host
    (ok, changed, unreachable, failed, skipped, rescued, ignored), from PLAY RECAP or, with the JSON
    callback, from its "stats" (then `data` is the whole document). `str(run)` is the failure message
    every test shows: the command, the exit code and the tail of stdout and stderr."""

    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str, json_output: bool = False,
                 hung_after: float | None = None):  # fmt: skip
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.hung_after = hung_after  # the timeout after which the run was killed, None when it ended
        self.data: dict | None = None
        if json_output:
            with contextlib.suppress(ValueError):
                self.data = json.loads(stdout)
        if self.data is not None:
            self.recap = {
                host: {JSON_STATS.get(key, key): value for key, value in counters.items()}
                for host, counters in self.data.get("stats", {}).items()
            }
        else:
            self.recap = parse_recap(stdout)

    def changed(self) -> dict[str, int]:
        """changed= per host."""
        return {host: counters["changed"] for host, counters in self.recap.items()}

    def ok(self, hosts=()) -> bool:
        """Exit 0, no host failed or unreachable, and every one of `hosts` in the recap."""
        return (
            self.returncode == 0
            and set(hosts) <= set(self.recap)
            and all(c.get("failed", 0) == 0 and c.get("unreachable", 0) == 0 for c in self.recap.values())
        )

    def _tasks(self):
        """(task name without its role prefix, task) of every task of a JSON-callback run."""
        assert self.data is not None, f"not a run with the JSON callback (json_output=True)\n{self}"
        for play in self.data["plays"]:
            for task in play["tasks"]:
                yield ROLE_PREFIX.sub("", task["task"]["name"]), task

    def results(self, host: str, task_name: str) -> list[dict]:
        """The host's results of every task called `task_name` (with or without its role prefix)."""
        return [task["hosts"][host] for name, task in self._tasks() if name == task_name and host in task["hosts"]]

    def changed_tasks(self, host: str) -> list[str]:
        """Names (without role prefix) of the tasks that reported a change on the host."""
        return [name for name, task in self._tasks() if task["hosts"].get(host, {}).get("changed")]

    def hung_message(self) -> str:
        return f"ansible-playbook hung: killed after {self.hung_after}s" if self.hung_after is not None else ""

    def __str__(self) -> str:
        hung = f"\n{self.hung_message()}" if self.hung_after is not None else ""
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}{hung}\n{self.stdout[-8000:]}\n{self.stderr[-3000:]}"


def playbook_argv(playbook: str | os.PathLike, *args: str, inventory: str | os.PathLike | None = None,
                  extra_vars: dict | None = None, check: bool = False, diff: bool = False, tags=(),
                  skip_tags=(), limit: str | None = None, become: bool = False,
                  executable: str = ANSIBLE_PLAYBOOK) -> list[str]:  # fmt: skip
    """ansible-playbook's command line: options first, then `args` as given, then `extra_vars` as one
    JSON -e (last, so it wins over any -e in `args`)."""
    argv = [executable, *(["-i", str(inventory)] if inventory is not None else []), str(playbook)]
    argv += ["--check"] if check else []
    argv += ["--diff"] if diff else []
    argv += ["--become"] if become else []
    argv += ["--limit", limit] if limit else []
    argv += ["--tags", ",".join([tags] if isinstance(tags, str) else tags)] if tags else []
    argv += ["--skip-tags", ",".join([skip_tags] if isinstance(skip_tags, str) else skip_tags)] if skip_tags else []
    argv += args
    return argv + (["-e", json.dumps(extra_vars)] if extra_vars else [])


def descendants(pid: int) -> list[int]:
    """Every living process below `pid` (children first), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text() if entry.isdigit() else ""
        except OSError:
            continue
        if stat:
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo += children.get(child, [])
    return found


class RunningPlaybook:
    """ansible-playbook started with its output going to temporary files (so a run nobody reads yet
    never blocks on a full pipe). `wait()` or `finish()` ends it; used as a context
    manager it is killed when the block ends while it still runs."""

    def __init__(self, argv: list[str], cwd, env: dict, json_output: bool, merge_stderr: bool):
        self.argv = argv
        self.json_output = json_output
        # Closed by finish(), which every way out of a run goes through.
        self._stdout = tempfile.TemporaryFile()  # noqa: SIM115
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._stdout,
            stderr=subprocess.STDOUT if merge_stderr else self._stderr,
        )  # fmt: skip
        self.run: PlaybookRun | None = None

    def poll(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        """SIGKILL to ansible-playbook and every process below it: its workers call setsid() and so
        do their ssh clients, which a signal to the process group would miss."""
        if self.process.poll() is None:
            for pid in [self.process.pid, *descendants(self.process.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait()

    def finish(self, timeout: float) -> PlaybookRun:
        """Wait up to `timeout` seconds, kill the run if it is still going (`hung_after` says so); never fails."""
        if self.run is None:
            hung_after = None
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                hung_after = timeout
            finally:
                self.kill()  # also on an interrupt; a no-op once it ended
            output = []
            for handle in (self._stdout, self._stderr):
                handle.seek(0)
                output.append(handle.read().decode(errors="surrogateescape"))
                handle.close()
            self.run = PlaybookRun(self.argv, self.process.returncode, *output, json_output=self.json_output,
                                   hung_after=hung_after)  # fmt: skip
        return self.run

    def wait(self, timeout: float, detail=None) -> PlaybookRun:
        """The finished run; the test fails if it hung (with `detail()`) or, with the JSON callback,
        printed no JSON document. A run that failed is returned: tests assert on it."""
        run = self.finish(timeout)
        if run.hung_after is not None:
            pytest.fail(f"{run}" + (f"\n{detail()}" if detail else ""))
        if self.json_output and run.data is None:
            pytest.fail(f"ansible-playbook printed no JSON document\n{run}")
        return run

    def __enter__(self) -> RunningPlaybook:
        return self

    def __exit__(self, *exc) -> None:
        self.finish(timeout=0)  # kills a run still going, closes the output files


def start_playbook(playbook: str | os.PathLike, *args: str, json_output: bool = False, cwd=REPO,
                   env: dict | None = None, merge_stderr: bool = False, **options) -> RunningPlaybook:
    """Start ansible-playbook (`playbook_argv` for `args` and `options`: inventory, extra_vars, check,
    diff, tags, skip_tags, limit, become, executable) from `cwd` (the repo root: its ansible.cfg finds
    pfguard.macos) with `env` (default: this environment), colour off; `json_output` selects the
    ansible.posix.json callback, `merge_stderr` sends stderr into stdout."""
    argv = playbook_argv(playbook, *args, **options)
    env = {**(os.environ if env is None else env), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    if json_output:
        env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    return RunningPlaybook(argv, cwd, env, json_output, merge_stderr)


def run_playbook(playbook: str | os.PathLike, *args: str, timeout: float = 600, detail=None,
                 **options) -> PlaybookRun:  # fmt: skip
    """The one ansible-playbook runner of the tests: `start_playbook(playbook, *args, **options)`, then
    `wait(timeout, detail)`. Never raises on a failed run; fails the test when the run hangs."""
    return start_playbook(playbook, *args, **options).wait(timeout, detail)


class LabSession:
    """The running lab as tests see it: the CLI plus a few helpers."""

    dir = LAB_DIR

    def __init__(self) -> None:
        self.inventory_path: Path | None = None

    @staticmethod
    def run(*args: str, input_text: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_lab(*args, input_text=input_text, timeout=timeout)

    @staticmethod
    def command() -> list[str]:
        return lab_command()

    def up(self, *args: str) -> subprocess.CompletedProcess:
        result = run_lab("up", *args, timeout=180)
        assert result.returncode == 0, f"pfguard-lab up failed:\n{result.stdout}\n{result.stderr}"
        self.inventory_path = Path(result.stdout.strip().splitlines()[-1])
        return result

    def down(self) -> subprocess.CompletedProcess:
        return run_lab("down", timeout=60)

    def inventory(self) -> dict:
        assert self.inventory_path is not None
        return yaml.safe_load(self.inventory_path.read_text())

    def macs(self) -> dict:
        return self.inventory()["all"]["children"]["macs"]["hosts"]

    def exec(self, host: str, *argv: str, input_text: str | None = None, timeout: float = 60):
        """`pfguard-lab exec HOST -- ARGV...`: the lab's own command line for it, run from here, which
        spares a lab CLI process per call (tests make thousands). The CLI itself when PFGUARD_LAB_COMMAND
        names another one, or when the lab cannot run it (a host not running or unknown: its message and exit code)."""
        if not os.environ.get("PFGUARD_LAB_COMMAND"):
            try:
                command, env = Lab(self.dir).exec_argv(host, list(argv))
            except LabError:
                pass
            else:
                return subprocess.run(
                    command, env=env, input=input_text, capture_output=True, text=True, timeout=timeout,
                    stdin=None if input_text is not None else subprocess.DEVNULL,
                )  # fmt: skip
        return run_lab("exec", host, "--", *argv, input_text=input_text, timeout=timeout)

    def sh(self, host: str, script: str) -> str:
        """Run a shell script on a host; fail the test if it fails; return stdout."""
        result = self.exec(host, "/bin/sh", "-c", script)
        assert result.returncode == 0, f"{host}: {script!r} -> {result.returncode}\n{result.stderr}"
        return result.stdout

    def playbook(self, playbook: str | Path, *args: str, **options) -> PlaybookRun:
        """`run_playbook` against the lab's inventory (default callback, from the repo root, 600 s):
        a relative `playbook` is taken from the repo root (`playbooks/ban.yml`); never raises on failure.
        `options`: see `start_playbook` and `run_playbook` (extra_vars, check, diff, tags, limit, become,
        json_output, timeout, detail, ...)."""
        return run_playbook(playbook, *args, inventory=self.inventory_path, **options)

    def start_playbook(self, playbook: str | Path, *args: str, **options) -> RunningPlaybook:
        """`start_playbook` against the lab's inventory, for a test that acts while the play runs."""
        return start_playbook(playbook, *args, inventory=self.inventory_path, **options)

    def adhoc(self, host: str, module: str, args: str | dict | None = None, *extra: str, timeout: float = 120):
        """Ad hoc `ansible HOST -m MODULE [-a ARGS] EXTRA...` against the lab's inventory (as Ansible
        reaches a Mac: admin over ssh, root by sudo); returns (exit code, the host's result dict)."""
        if isinstance(args, dict):
            # No "-a" without arguments: ansible takes "-a {}" for raw params, which modules refuse.
            args = json.dumps(args) if args else None
        argv = [ANSIBLE, host, "-i", str(self.inventory_path), "-m", module, *(["-a", args] if args else []), *extra]
        env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            return proc.returncode, json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][host]
        except (ValueError, LookupError):
            pytest.fail(f"$ {' '.join(argv)}\nexit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")

    def log_messages(self, host: str) -> list[dict]:
        """The host's unified log store (one JSON object per line)."""
        text = self.exec(host, "cat", DIAGNOSTICS).stdout
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _down_at_exit() -> None:
    # Last resort if the interpreter exits without running fixture finalizers.
    if (LAB_DIR / "lab.json").exists():
        run_lab("down", timeout=60)


@pytest.fixture(scope="session")
def lab():
    assert os.geteuid() == 0, "the lab tests need root (network namespaces, mounts, nftables)"
    session = LabSession()
    session.down()  # an earlier run may have crashed and left a lab behind
    atexit.register(_down_at_exit)
    hosts = os.environ.get("PFGUARD_LAB_HOSTS")
    try:
        session.up(*(["--hosts", hosts] if hosts else []))
        yield session
    finally:
        result = session.down()
        assert result.returncode == 0, f"pfguard-lab down failed: {result.stderr}"
