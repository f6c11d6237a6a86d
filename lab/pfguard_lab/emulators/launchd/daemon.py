# SPDX-License-Identifier: GPL-3.0-or-later
"""Emulated launchd: the lab host's PID 1 (also runs as an ordinary process for tests).

Boots every *.plist in <root>/System/Library/LaunchDaemons then <root>/Library/LaunchDaemons,
runs the jobs the way launchd.plist(5) describes (docs/reference/macos.md#launchd-plist-keys), reaps
every child (it is init; off PID 1 it makes itself a child subreaper so it still inherits orphans) and
serves launchctl on
<root>/var/run/pfguard-lab/launchd.sock. SIGTERM stops every job and exits within ~2 s.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from pfguard_lab.emulators.launchd import plist as lp
from pfguard_lab.emulators.launchd.protocol import MAX_MESSAGE, encode, socket_path

# The lab caps SIGTERM -> SIGKILL grace (ExitTimeOut, default 5 s) so a reboot stays under ~2 s.
EXIT_TIMEOUT_CAP = 1.5
SHUTDOWN_GRACE = 1.5
POLL_INTERVAL = 1.0  # WatchPaths / KeepAlive.PathState / OtherJobEnabled are polled
PR_SET_CHILD_SUBREAPER = 36
CRASH_SIGNALS = {signal.SIGILL, signal.SIGTRAP, signal.SIGABRT, signal.SIGFPE, signal.SIGBUS, signal.SIGSEGV,
                 signal.SIGSYS}
MUTATING_OPS = {"bootstrap", "bootout", "enable", "disable", "kickstart", "start", "stop"}
# Environment the lab itself needs in job processes (e.g. PFGUARD_LAB_ROOT for a standalone root);
# not part of what macOS would pass.
LAB_ENV_PREFIX = "PFGUARD_LAB_"


class Job:
    """One loaded job and its runtime status."""

    def __init__(self, spec: dict, mac_path: str) -> None:
        self.spec = spec
        self.label: str = spec["Label"]
        self.path = mac_path
        self.program, self.arguments = lp.program_and_arguments(spec)
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.state = "not running"
        self.last_status: int | None = None  # raw wait(2) status of the last exit; None: never exited
        self.runs = 0
        self.last_start: float | None = None
        self.respawn_at: float | None = None
        self.kill_at: float | None = None
        self.removing = False
        self.restart_after_exit = False
        self.exit_waiters: list = []
        self.next_interval_at: float | None = None
        self.next_calendar_at: float | None = None
        self.watch_snapshot: list | None = None

    @property
    def throttle(self) -> int:
        return int(self.spec.get("ThrottleInterval", lp.DEFAULT_THROTTLE_INTERVAL))

    @property
    def exit_timeout(self) -> float:
        configured = int(self.spec.get("ExitTimeOut", lp.DEFAULT_EXIT_TIMEOUT))
        # launchd.plist(5): 0 means "never SIGKILL"; the lab's cap applies to that too.
        return EXIT_TIMEOUT_CAP if configured <= 0 else min(configured, EXIT_TIMEOUT_CAP)

    @property
    def running(self) -> bool:
        return self.pid is not None

    def info(self) -> dict:
        """What launchctl print / list need."""
        spec = self.spec
        keep_alive = spec.get("KeepAlive", False)
        properties = []
        if keep_alive:
            properties.append("keepalive")
        if spec.get("RunAtLoad"):
            properties.append("runatload")
        if not spec.get("Program"):
            properties.append("inferred program")
        environment = {str(k): str(v) for k, v in (spec.get("EnvironmentVariables") or {}).items()}
        environment["XPC_SERVICE_NAME"] = self.label
        return {
            "label": self.label,
            "path": self.path,
            "state": self.state,
            "pid": self.pid,
            "program": self.program,
            "arguments": self.arguments,
            "working_directory": spec.get("WorkingDirectory"),
            "stdout_path": spec.get("StandardOutPath"),
            "stderr_path": spec.get("StandardErrorPath"),
            "environment": environment,
            "username": spec.get("UserName"),
            "group": spec.get("GroupName"),
            "throttle": self.throttle,
            "exit_timeout": int(spec.get("ExitTimeOut", lp.DEFAULT_EXIT_TIMEOUT)),
            "runs": self.runs,
            "last_status": self.last_status,
            "on_demand": keep_alive is not True,
            "properties": properties,
        }


def is_successful(raw_status: int) -> bool:
    return os.WIFEXITED(raw_status) and os.WEXITSTATUS(raw_status) == 0


def is_crash(raw_status: int) -> bool:
    return os.WIFSIGNALED(raw_status) and os.WTERMSIG(raw_status) in CRASH_SIGNALS


def exit_description(raw_status: int) -> str:
    if os.WIFSIGNALED(raw_status):
        return f"exited due to {signal.Signals(os.WTERMSIG(raw_status)).name}"
    return f"exited due to exit({os.WEXITSTATUS(raw_status)})"


def calendar_matches(entry: dict, moment: time.struct_time) -> bool:
    weekday = (moment.tm_wday + 1) % 7  # launchd: 0 and 7 are Sunday
    checks = {
        "Minute": moment.tm_min,
        "Hour": moment.tm_hour,
        "Day": moment.tm_mday,
        "Month": moment.tm_mon,
    }
    for key, value in checks.items():
        if key in entry and int(entry[key]) != value:
            return False
    return not ("Weekday" in entry and int(entry["Weekday"]) % 7 != weekday)


def next_calendar_fire(entries: list[dict], after: float) -> float | None:
    """The next whole minute after `after` that matches any StartCalendarInterval entry (local time)."""
    minute = (int(after) // 60 + 1) * 60
    for _ in range(366 * 24 * 60):
        moment = time.localtime(minute)
        if any(calendar_matches(entry, moment) for entry in entries):
            return float(minute)
        minute += 60
    return None


class Launchd:
    def __init__(self, root: str) -> None:
        self.root = root
        self.jobs: dict[str, Job] = {}
        self.by_pid: dict[int, Job] = {}
        self.launched_once: set[str] = set()
        self.selector = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.wake_read, self.wake_write = os.pipe()
        self.stop_requested = False
        self.shutting_down = False
        self.shutdown_deadline: float | None = None
        self.log_file = None

    # ---- logging: launchd.log under the root plus our own stderr (the host console)

    def log(self, level: str, message: str, job: Job | None = None) -> None:
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
        where = "system" if job is None else f"system/{job.label}" + (f" [{job.pid}]" if job.pid else "")
        line = f"{stamp} ({where}) <{level}>: {message}\n"
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except OSError:
            pass
        try:
            if self.log_file is None:
                path = Path(lp.host_path(lp.LAUNCHD_LOG, self.root))
                path.parent.mkdir(parents=True, exist_ok=True)
                self.log_file = open(path, "a", buffering=1)  # noqa: SIM115 - kept open for the daemon's life
            self.log_file.write(line)
        except OSError:
            pass

    # ---- setup

    def install_signals(self) -> None:
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        signal.set_wakeup_fd(self.wake_write, warn_on_full_buffer=False)

        def request_stop(_signum, _frame):
            self.stop_requested = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        # Handlers (not SIG_IGN) so children start with default dispositions after exec.
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        signal.signal(signal.SIGHUP, lambda _s, _f: None)
        self.selector.register(self.wake_read, selectors.EVENT_READ, self.drain_wakeups)

    def become_subreaper(self) -> None:
        if os.getpid() == 1:
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        except (OSError, AttributeError):
            self.log("Warning", "could not become a child subreaper; orphans will not be reaped")

    def open_listener(self) -> bool:
        path = socket_path(self.root)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)
            else:
                self.log("Error", f"another launchd is already serving {path}")
                return False
            finally:
                probe.close()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o666)  # anyone may query the system domain; changes are checked per caller
        listener.listen(64)
        listener.setblocking(False)
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, self.accept)
        return True

    def boot(self) -> None:
        overrides = lp.read_disabled_store(self.root)
        for directory in lp.SYSTEM_DAEMON_DIRS:
            try:
                names = sorted(os.listdir(lp.host_path(directory, self.root)))
            except OSError:
                continue
            for name in names:
                if not name.endswith(".plist"):
                    continue
                mac_path = f"{directory}/{name}"
                error = self.load(mac_path, overrides)
                if error:
                    self.log("Error", f"{mac_path}: {error}")

    def load(self, mac_path: str, overrides: dict[str, bool], force: bool = False) -> str | None:
        """Load one plist at boot; returns why it was refused, or None."""
        try:
            spec = lp.load_job_plist(mac_path, self.root)
        except lp.PlistProblem as problem:
            return problem.detail
        except lp.LabUnsupported as unsupported:
            return f"pfguard-lab: launchd: {unsupported}"
        label = spec["Label"]
        if not force and lp.is_disabled(spec, overrides):
            return f"{label}: {lp.error_text(lp.E_DISABLED)}"
        if label in self.jobs:
            return f"{label}: service already loaded"
        self.add_job(Job(spec, mac_path))
        return None

    def add_job(self, job: Job) -> None:
        now = time.time()
        self.jobs[job.label] = job
        spec = job.spec
        if spec.get("StartInterval"):
            job.next_interval_at = now + int(spec["StartInterval"])
        entries = spec.get("StartCalendarInterval")
        if entries is not None:
            entries = [entries] if isinstance(entries, dict) else entries
            job.next_calendar_at = next_calendar_fire(entries, now)
        if spec.get("WatchPaths"):
            job.watch_snapshot = self.watch_snapshot(job)
        keep_alive = spec.get("KeepAlive")
        starts_now = bool(spec.get("RunAtLoad")) or keep_alive is True
        if isinstance(keep_alive, dict):
            # launchd.plist(5): SuccessfulExit (and Crashed) need one run to have an exit to judge.
            starts_now = starts_now or "SuccessfulExit" in keep_alive or "Crashed" in keep_alive
            starts_now = starts_now or self.conditions_hold(job)
        if starts_now:
            self.spawn(job)

    # ---- spawning

    def resolve_executable(self, program: str, env_path: str) -> str | None:
        if "/" in program:
            return lp.host_path(program if program.startswith("/") else "/" + program, self.root)
        for directory in env_path.split(":"):
            if directory:
                candidate = lp.host_path(f"{directory.rstrip('/')}/{program}", self.root)
                if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                    return candidate
        return None

    def job_environment(self, job: Job, account: lp.Account | None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key.startswith(LAB_ENV_PREFIX)}
        env.update({"PATH": lp.DEFAULT_PATH, "XPC_FLAGS": "0x0", "XPC_SERVICE_NAME": job.label})
        if account is not None:
            env.update({"USER": account.name, "LOGNAME": account.name, "HOME": account.home, "SHELL": account.shell})
        for key, value in (job.spec.get("EnvironmentVariables") or {}).items():
            env[str(key)] = str(value)
        return env

    def open_output(self, mac_path: str | None, owner: tuple[int, int] | None) -> int:
        if not mac_path:
            return os.open(os.devnull, os.O_WRONLY)
        path = lp.host_path(mac_path, self.root)
        existed = os.path.exists(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not existed and owner is not None:
            os.fchown(fd, owner[0], owner[1])
        return fd

    def spawn(self, job: Job, reason: str = "") -> bool:
        job.respawn_at = None
        if job.spec.get("LaunchOnlyOnce") and job.label in self.launched_once:
            self.log("Notice", "LaunchOnlyOnce job already ran this boot; not starting it again", job)
            job.state = "not running"
            return False
        spec = job.spec
        account = None
        uid = gid = None
        groups = None
        try:
            if spec.get("UserName"):
                account = lp.lookup_user(spec["UserName"], self.root)
                if account is None:
                    raise OSError(errno.EINVAL, f"Could not find user: {spec['UserName']}")
                uid, gid = account.uid, account.gid
                groups = lp.supplementary_groups(account.name, self.root)
            if spec.get("GroupName"):
                gid = lp.lookup_group(spec["GroupName"], self.root)
                if gid is None:
                    raise OSError(errno.EINVAL, f"Could not find group: {spec['GroupName']}")
            env = self.job_environment(job, account)
            executable = self.resolve_executable(job.program, env.get("PATH", lp.DEFAULT_PATH))
            if executable is None:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", job.program)
            # UNVERIFIED: a missing WorkingDirectory is treated as a spawn failure.
            cwd = lp.host_path(spec.get("WorkingDirectory") or "/", self.root)
            owner = (uid if uid is not None else 0, gid if gid is not None else 0) if account or gid else None
            stdout_fd = self.open_output(spec.get("StandardOutPath"), owner)
            try:
                if spec.get("StandardErrorPath") and spec.get("StandardErrorPath") != spec.get("StandardOutPath"):
                    stderr_fd = self.open_output(spec.get("StandardErrorPath"), owner)
                elif spec.get("StandardErrorPath"):
                    stderr_fd = os.dup(stdout_fd)
                else:
                    stderr_fd = os.open(os.devnull, os.O_WRONLY)
                try:
                    proc = subprocess.Popen(
                        job.arguments,
                        executable=executable,
                        env=env,
                        cwd=cwd,
                        stdin=subprocess.DEVNULL,
                        stdout=stdout_fd,
                        stderr=stderr_fd,
                        start_new_session=True,  # own session, so its own process group
                        user=uid,
                        group=gid,
                        extra_groups=groups,
                        close_fds=True,
                        restore_signals=True,
                    )
                finally:
                    os.close(stderr_fd)
            finally:
                os.close(stdout_fd)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            job.last_start = time.time()
            job.runs += 1
            self.log("Error", f"Could not spawn job: {exc}", job)
            # launchctl list shows 78 (EX_CONFIG) for a job launchd could not exec.
            self.after_exit(job, lp.EX_CONFIG << 8, spawned=False)
            return False
        job.proc = proc
        job.pid = proc.pid
        job.state = "running"
        job.runs += 1
        job.last_start = time.time()
        self.by_pid[proc.pid] = job
        if spec.get("LaunchOnlyOnce"):
            self.launched_once.add(job.label)
        self.log("Notice", f"Successfully spawned {job.program}{' (' + reason + ')' if reason else ''}", job)
        return True

    # ---- exits

    def drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            job = self.by_pid.pop(pid, None)
            if job is None:
                continue  # an orphan we inherited as init / subreaper
            if job.proc is not None:
                job.proc.returncode = status  # we reaped it; keep Popen from waiting on the pid again
            self.after_exit(job, status)

    def after_exit(self, job: Job, raw_status: int, spawned: bool = True) -> None:
        old_pid = job.pid
        if spawned:
            self.log("Notice" if is_successful(raw_status) else "Warning", exit_description(raw_status), job)
        job.pid = None
        job.proc = None
        job.kill_at = None
        job.last_status = raw_status
        if spawned and old_pid and not job.spec.get("AbandonProcessGroup"):
            # launchd reaps what the job left in its process group.
            with contextlib.suppress(OSError):
                os.killpg(old_pid, signal.SIGKILL)
        waiters, job.exit_waiters = job.exit_waiters, []
        if job.removing:
            job.state = "not running"
            if self.jobs.get(job.label) is job:
                del self.jobs[job.label]
                self.log("Notice", "Service removed", job)
        elif self.shutting_down:
            job.state = "not running"
        elif job.restart_after_exit:
            job.restart_after_exit = False
            self.spawn(job, "kickstart")
        elif self.keeps_alive_after_exit(job, raw_status):
            self.schedule_respawn(job)
        else:
            job.state = "not running"
        for waiter in waiters:
            waiter(job)

    def keeps_alive_after_exit(self, job: Job, raw_status: int) -> bool:
        keep_alive = job.spec.get("KeepAlive")
        if keep_alive is True:
            return True
        if not isinstance(keep_alive, dict):
            return False
        if "SuccessfulExit" in keep_alive and is_successful(raw_status) == bool(keep_alive["SuccessfulExit"]):
            return True
        if "Crashed" in keep_alive and is_crash(raw_status) == bool(keep_alive["Crashed"]):
            return True
        return self.conditions_hold(job)

    def conditions_hold(self, job: Job) -> bool:
        """KeepAlive's state conditions (PathState, OtherJobEnabled). NetworkState is a no-op in launchd."""
        keep_alive = job.spec.get("KeepAlive")
        if not isinstance(keep_alive, dict):
            return False
        for path, wanted in (keep_alive.get("PathState") or {}).items():
            if os.path.exists(lp.host_path(str(path), self.root)) == bool(wanted):
                return True
        for label, wanted in (keep_alive.get("OtherJobEnabled") or {}).items():
            if (label in self.jobs) == bool(wanted):
                return True
        return False

    def schedule_respawn(self, job: Job) -> None:
        now = time.time()
        earliest = (job.last_start or 0) + job.throttle
        if earliest <= now:
            self.spawn(job, "keepalive")
            return
        ran_for = int(now - (job.last_start or now))
        delay = int(round(earliest - now))
        self.log("Warning", f"Service only ran for {ran_for} seconds. Pushing respawn out by {delay} seconds.", job)
        job.state = "spawn scheduled"
        job.respawn_at = earliest

    # ---- stopping

    def terminate(self, job: Job, grace: float | None = None) -> None:
        """SIGTERM now, SIGKILL once ExitTimeOut (capped) has passed."""
        job.respawn_at = None
        if not job.running:
            return
        if job.state not in ("SIGTERMed", "SIGKILLed"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.pid, signal.SIGTERM)
            job.state = "SIGTERMed"
        deadline = time.time() + (job.exit_timeout if grace is None else min(grace, job.exit_timeout))
        job.kill_at = deadline if job.kill_at is None else min(job.kill_at, deadline)

    def sigkill(self, job: Job) -> None:
        job.kill_at = None
        if not job.running:
            return
        for kill, target in ((os.killpg, job.pid), (os.kill, job.pid)):
            with contextlib.suppress(OSError):
                kill(target, signal.SIGKILL)
        job.state = "SIGKILLed"

    # ---- timers

    def next_timeout(self) -> float | None:
        now = time.time()
        moments = []
        for job in self.jobs.values():
            moments += [m for m in (job.respawn_at, job.kill_at, job.next_interval_at, job.next_calendar_at) if m]
            if job.watch_snapshot is not None or isinstance(job.spec.get("KeepAlive"), dict):
                moments.append(now + POLL_INTERVAL)
        if self.shutdown_deadline:
            moments.append(self.shutdown_deadline)
        if not moments:
            return None
        return max(0.0, min(moments) - now)

    def run_timers(self) -> None:
        now = time.time()
        for job in list(self.jobs.values()):
            if job.kill_at and job.kill_at <= now:
                self.sigkill(job)
            if job.removing or self.shutting_down:
                continue
            if job.respawn_at and job.respawn_at <= now and not job.running:
                self.spawn(job, "keepalive")
            if job.next_interval_at and job.next_interval_at <= now:
                interval = int(job.spec["StartInterval"])
                while job.next_interval_at <= now:
                    job.next_interval_at += interval
                self.trigger(job, "interval")
            if job.next_calendar_at and job.next_calendar_at <= now:
                entries = job.spec["StartCalendarInterval"]
                entries = [entries] if isinstance(entries, dict) else entries
                job.next_calendar_at = next_calendar_fire(entries, now)
                self.trigger(job, "calendar")
            if job.watch_snapshot is not None:
                snapshot = self.watch_snapshot(job)
                if snapshot != job.watch_snapshot:
                    job.watch_snapshot = snapshot
                    self.trigger(job, "path modified")
            if not job.running and job.respawn_at is None and self.conditions_hold(job):
                self.trigger(job, "keepalive")

    def trigger(self, job: Job, reason: str) -> None:
        """An on-demand event: start the job unless running; honour ThrottleInterval."""
        if job.running or job.respawn_at is not None:
            return
        earliest = (job.last_start or 0) + job.throttle
        if earliest > time.time():
            job.state = "spawn scheduled"
            job.respawn_at = earliest
            return
        self.spawn(job, reason)

    def watch_snapshot(self, job: Job) -> list:
        snapshot = []
        for path in job.spec.get("WatchPaths") or []:
            try:
                st = os.stat(lp.host_path(str(path), self.root))
                snapshot.append((st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode))
            except OSError:
                snapshot.append(None)
        return snapshot

    # ---- launchctl requests

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError, OSError):
            return
        conn.setblocking(True)
        conn.settimeout(5.0)
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            data = b""
            while b"\n" not in data and len(data) < MAX_MESSAGE:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            message = json.loads(data.split(b"\n", 1)[0] or b"{}")
        except (OSError, ValueError) as exc:
            self.log("Warning", f"bad launchctl request: {exc}")
            conn.close()
            return

        def reply(answer: dict) -> None:
            try:
                conn.sendall(encode(answer))
            except OSError:
                pass
            finally:
                conn.close()

        try:
            self.dispatch(message, uid, reply)
        except Exception as exc:  # launchd must survive any request
            self.log("Error", f"request {message.get('op')!r} failed: {exc!r}")
            reply({"error": lp.EIO})

    def dispatch(self, message: dict, uid: int, reply) -> None:
        op = message.get("op")
        if op in MUTATING_OPS and uid != 0:
            reply({"error": lp.EPERM, "not_root": True})
            return
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            reply({"error": "unsupported", "construct": f"request {op!r}"})
            return
        handler(message, reply)

    def op_ping(self, _message: dict, reply) -> None:
        reply({"error": 0, "pid": os.getpid()})

    def op_bootstrap(self, message: dict, reply) -> None:
        mac_path = message["path"]
        overrides = lp.read_disabled_store(self.root)
        try:
            spec = lp.load_job_plist(mac_path, self.root)
        except lp.PlistProblem as problem:
            self.log("Error", f"{mac_path}: {problem.detail}")
            reply({"error": problem.code, "text": problem.text})
            return
        except lp.LabUnsupported as unsupported:
            reply({"error": "unsupported", "construct": unsupported.construct})
            return
        label = spec["Label"]
        if message.get("enable"):
            overrides[label] = False
            lp.write_disabled_store(overrides, self.root)
        if not message.get("force") and lp.is_disabled(spec, overrides):
            reply({"error": lp.E_DISABLED, "label": label})
            return
        if label in self.jobs:
            # docs/reference/macos.md#launchctl-exit-codes: 5 (some versions say 37) for an already-loaded service.
            reply({"error": lp.EIO, "label": label, "text": "service already loaded"})
            return
        self.add_job(Job(spec, mac_path))
        reply({"error": 0, "label": label})

    def label_for(self, message: dict) -> tuple[str | None, dict | None]:
        if message.get("label"):
            return message["label"], None
        try:
            spec = lp.load_job_plist(message["path"], self.root)
        except lp.PlistProblem as problem:
            return None, {"error": problem.code, "text": problem.text}
        except lp.LabUnsupported as unsupported:
            return None, {"error": "unsupported", "construct": unsupported.construct}
        return spec["Label"], None

    def op_bootout(self, message: dict, reply) -> None:
        label, problem = self.label_for(message)
        if message.get("disable") and label:
            overrides = lp.read_disabled_store(self.root)
            overrides[label] = True
            lp.write_disabled_store(overrides, self.root)
        if problem:
            reply(problem)
            return
        job = self.jobs.get(label)
        if job is None or job.removing and not message.get("wait"):
            reply({"error": lp.ESRCH, "label": label})
            return
        job.removing = True
        job.respawn_at = None
        if not job.running:
            job.state = "not running"
            del self.jobs[label]
            self.log("Notice", "Service removed", job)
            reply({"error": 0})
            return
        self.terminate(job)
        if message.get("wait"):
            job.exit_waiters.append(lambda _job: reply({"error": 0}))
        else:
            reply({"error": 0})  # docs/reference/macos.md#launchctl-verbs: bootout is asynchronous unless --wait

    def set_override(self, label: str, disabled: bool) -> None:
        overrides = lp.read_disabled_store(self.root)
        overrides[label] = disabled
        lp.write_disabled_store(overrides, self.root)

    def op_enable(self, message: dict, reply) -> None:
        self.set_override(message["label"], False)
        reply({"error": 0})

    def op_disable(self, message: dict, reply) -> None:
        self.set_override(message["label"], True)
        reply({"error": 0})

    def op_print(self, message: dict, reply) -> None:
        job = self.jobs.get(message["label"])
        if job is None:
            reply({"error": lp.E_NOT_FOUND})
            return
        reply({"error": 0, "job": job.info()})

    def op_print_disabled(self, _message: dict, reply) -> None:
        reply({"error": 0, "overrides": lp.read_disabled_store(self.root)})

    def op_list(self, message: dict, reply) -> None:
        label = message.get("label")
        if label:
            job = self.jobs.get(label)
            if job is None:
                reply({"error": lp.E_NOT_FOUND})
                return
            reply({"error": 0, "job": job.info()})
            return
        reply({"error": 0, "jobs": [job.info() for job in self.jobs.values()]})

    def op_kickstart(self, message: dict, reply) -> None:
        job = self.jobs.get(message["label"])
        if job is None or job.removing:
            reply({"error": lp.E_NOT_FOUND})
            return
        if job.running and message.get("kill"):
            job.restart_after_exit = True
            self.terminate(job)

            def answer(restarted: Job) -> None:
                reply({"error": 0, "pid": restarted.pid} if restarted.running else {"error": lp.EIO})

            job.exit_waiters.append(answer)
            return
        if not job.running and not self.spawn(job, "kickstart"):
            reply({"error": lp.EIO})
            return
        reply({"error": 0, "pid": job.pid})

    def op_start(self, message: dict, reply) -> None:
        job = self.jobs.get(message["label"])
        if job is None or job.removing:
            reply({"error": lp.ESRCH})
            return
        if not job.running:
            self.spawn(job, "launchctl start")
        reply({"error": 0})

    def op_stop(self, message: dict, reply) -> None:
        job = self.jobs.get(message["label"])
        if job is None or job.removing:
            reply({"error": lp.ESRCH})
            return
        # Legacy stop only signals the job; KeepAlive brings it back (after ThrottleInterval).
        self.terminate(job)
        reply({"error": 0})

    # ---- shutdown

    def begin_shutdown(self) -> None:
        self.shutting_down = True
        self.log("Notice", "shutting down: stopping all jobs")
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None
            with contextlib.suppress(OSError):
                os.unlink(socket_path(self.root))
        self.shutdown_deadline = time.time() + SHUTDOWN_GRACE
        for job in self.jobs.values():
            job.respawn_at = None
            job.next_interval_at = job.next_calendar_at = None
            job.watch_snapshot = None
            self.terminate(job, grace=SHUTDOWN_GRACE)

    def finish_shutdown(self) -> None:
        for job in self.jobs.values():
            self.sigkill(job)
        # Whatever is left (orphans we inherited) dies too, as on a real shutdown.
        deadline = time.time() + 0.5
        while time.time() < deadline:
            children = self.child_pids()
            for pid in children:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.reap()
            if not children:
                break
            time.sleep(0.02)
        self.reap()

    def child_pids(self) -> list[int]:
        me = os.getpid()
        children = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat_text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat_text.rsplit(")", 1)[-1].split()
            if len(fields) > 1 and fields[1] == str(me):
                children.append(int(entry))
        return children

    # ---- main loop

    def run(self) -> int:
        self.install_signals()
        self.become_subreaper()
        if not self.open_listener():
            return 1
        self.log("Notice", f"launchd (pfguard-lab) started as pid {os.getpid()}, root {self.root}")
        self.boot()
        while True:
            if self.stop_requested and not self.shutting_down:
                self.begin_shutdown()
            if self.shutting_down and (
                not any(job.running for job in self.jobs.values()) or time.time() >= self.shutdown_deadline
            ):
                break
            try:
                events = self.selector.select(self.next_timeout())
            except InterruptedError:
                events = []
            for key, _mask in events:
                try:
                    key.data()
                except Exception as exc:  # init must not die
                    self.log("Error", f"internal error: {exc!r}")
            try:
                self.reap()
                self.run_timers()
            except Exception as exc:
                self.log("Error", f"internal error: {exc!r}")
        self.finish_shutdown()
        self.log("Notice", "launchd exiting")
        return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        sys.stderr.write(f"pfguard-lab: launchd: arguments ({' '.join(argv)}) are not supported by the lab\n")
        return 1
    root = lp.lab_root()
    daemon = Launchd(root)
    return daemon.run()
