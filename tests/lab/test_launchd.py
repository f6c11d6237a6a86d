# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulated launchd and launchctl, run as real processes in a temp root
(docs/reference/macos.md#launchctl-verbs)."""

from __future__ import annotations

import json
import os
import plistlib
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from launchd_fixtures import LaunchdRoot, pid_alive, wait_for
from pfguard_lab.emulators.launchd import launchctl

STOCK_PFCTL_PLIST = Path(__file__).resolve().parents[2] / "lab/pfguard_lab/data/LaunchDaemons/com.apple.pfctl.plist"

REPORT_JOB = """#!/usr/bin/python3
import json, os, sys
print(json.dumps({
    "env": dict(os.environ), "cwd": os.getcwd(), "uid": os.getuid(), "gid": os.getgid(),
    "groups": sorted(os.getgroups()), "pid": os.getpid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
    "stdin": os.readlink("/proc/self/fd/0"), "argv": sys.argv[1:],
}), flush=True)
print("to stderr", file=sys.stderr, flush=True)
"""
SLEEP_JOB = "#!/bin/sh\nexec sleep 300\n"
# Records each start's time, then sleeps.
STAMP_JOB = "#!/bin/sh\ndate +%s.%N >> \"$STAMPS\"\nexec sleep 300\n"
IGNORES_TERM_JOB = "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.1; done\n"


@pytest.fixture
def lab():
    root = LaunchdRoot()
    try:
        yield root
    finally:
        root.cleanup()


def job(label: str, program: str, **keys) -> dict:
    return {"Label": label, "ProgramArguments": [program], **keys}


def reports(lab: LaunchdRoot, mac_path: str) -> list[dict]:
    return [json.loads(line) for line in lab.read(mac_path).splitlines() if line.startswith("{")]


# ---- boot, plist keys, environment


def test_boot_loads_system_dir_first_and_runs_runatload_jobs(lab):
    lab.write_script("/usr/local/bin/report", REPORT_JOB)
    lab.write_plist(job("com.test.report", "/usr/local/bin/report", RunAtLoad=True,
                        StandardOutPath="/var/log/report.log", StandardErrorPath="/var/log/report.err",
                        WorkingDirectory="/var/tmp", EnvironmentVariables={"FOO": "bar"},
                        ProgramArguments=["/usr/local/bin/report", "one", "two"]),
                    directory="/System/Library/LaunchDaemons")
    # Same label in /Library/LaunchDaemons: loaded second, so refused as already loaded.
    lab.write_plist(job("com.test.report", "/bin/false"), name="com.test.dup.plist")
    lab.write_plist(job("com.test.idle", "/usr/local/bin/report"))  # no RunAtLoad: loaded, not run
    lab.start()

    got = wait_for(lambda: reports(lab, "/var/log/report.log"))
    assert got, lab.launchd_log()
    report = got[0]
    assert report["argv"] == ["one", "two"]
    assert report["env"]["PATH"] == "/usr/bin:/bin:/usr/sbin:/sbin"
    assert report["env"]["FOO"] == "bar"
    assert report["env"]["XPC_SERVICE_NAME"] == "com.test.report"
    assert "LEAKED_FROM_PARENT" not in report["env"]
    assert report["cwd"] == str(lab.path("/var/tmp"))
    assert report["stdin"] == "/dev/null"
    assert report["pgid"] == report["pid"] == report["sid"]
    assert wait_for(lambda: lab.read("/var/log/report.err") == "to stderr\n")
    assert "com.test.report: service already loaded" in lab.launchd_log()

    listed = lab.launchctl("list").stdout
    assert listed.splitlines()[0] == "PID\tStatus\tLabel"
    assert "-\t0\tcom.test.idle" in listed.splitlines()
    assert lab.launchctl("print", "system/com.test.idle").stdout.count("runs = 0") == 1

    # A second run appends to StandardOutPath.
    assert lab.launchctl("kickstart", "system/com.test.report").returncode == 0
    assert wait_for(lambda: len(reports(lab, "/var/log/report.log")) == 2)


def test_stock_pfctl_plist_runs_pfctl_f_etc_pf_conf(lab):
    lab.write_script("/sbin/pfctl", '#!/bin/sh\necho "$PWD $*" >> "$PFGUARD_LAB_ROOT/var/log/pfctl-calls"\n')
    target = lab.path("/System/Library/LaunchDaemons/com.apple.pfctl.plist")
    shutil.copy(STOCK_PFCTL_PLIST, target)
    target.chmod(0o644)
    spec = plistlib.loads(STOCK_PFCTL_PLIST.read_bytes())
    assert spec == {"Disabled": False, "Label": "com.apple.pfctl", "WorkingDirectory": "/var/run",
                    "Program": "/sbin/pfctl", "ProgramArguments": ["pfctl", "-f", "/etc/pf.conf"],
                    "RunAtLoad": True}
    lab.start()
    assert wait_for(lambda: lab.read("/var/log/pfctl-calls")) == f"{lab.path('/var/run')} -f /etc/pf.conf\n"
    printed = lab.launchctl("print", "system/com.apple.pfctl").stdout
    assert "\tprogram = /sbin/pfctl\n" in printed
    assert "\targuments = {\n\t\tpfctl\n\t\t-f\n\t\t/etc/pf.conf\n\t}\n" in printed
    assert wait_for(lambda: "\tlast exit code = 0\n" in lab.launchctl("print", "system/com.apple.pfctl").stdout)


def test_username_runs_job_as_that_user(lab):
    lab.write_script("/usr/local/bin/report", REPORT_JOB)
    lab.write_plist(job("com.test.nobody", "/usr/local/bin/report", RunAtLoad=True, UserName="nobody",
                        StandardOutPath="/var/log/nobody.log"))
    lab.start()
    got = wait_for(lambda: reports(lab, "/var/log/nobody.log"))
    assert got, lab.launchd_log()
    assert (got[0]["uid"], got[0]["gid"]) == (65534, 65534)
    assert got[0]["env"]["USER"] == "nobody"
    assert got[0]["env"]["HOME"] == "/nonexistent"
    assert lab.path("/var/log/nobody.log").stat().st_uid == 65534


def test_bad_ownership_or_permissions_are_refused(lab):
    lab.write_script("/usr/local/bin/sleeper", SLEEP_JOB)
    writable = lab.write_plist(job("com.test.gw", "/usr/local/bin/sleeper", RunAtLoad=True), mode=0o664)
    foreign = lab.write_plist(job("com.test.foreign", "/usr/local/bin/sleeper", RunAtLoad=True))
    os.chown(lab.path(foreign), 1, 0)
    lab.start()
    log = lab.launchd_log()
    assert f"{writable}: Path had bad ownership/permissions" in log
    assert f"{foreign}: Path had bad ownership/permissions" in log
    assert lab.list_entry("com.test.gw") is None
    assert lab.list_entry("com.test.foreign") is None

    result = lab.launchctl("bootstrap", "system", writable)
    assert (result.returncode, result.stdout, result.stderr) == (
        122, "", "Bootstrap failed: 122: Path had bad ownership/permissions\n")
    result = lab.launchctl("load", foreign)
    # Legacy load reports on stderr and still exits 0, as on macOS.
    assert (result.returncode, result.stderr) == (0, f"{foreign}: Path had bad ownership/permissions\n")
    assert lab.list_entry("com.test.foreign") is None

    lab.path(writable).chmod(0o644)
    assert lab.launchctl("bootstrap", "system", writable).returncode == 0
    assert lab.running_pid("com.test.gw")


def test_disabled_store_wins_over_the_plist(lab):
    lab.write_script("/usr/local/bin/sleeper", SLEEP_JOB)
    off_in_store = lab.write_plist(job("com.test.offstore", "/usr/local/bin/sleeper", RunAtLoad=True,
                                       Disabled=False))
    lab.write_plist(job("com.test.onstore", "/usr/local/bin/sleeper", RunAtLoad=True, Disabled=True))
    lab.write_plist(job("com.test.plistoff", "/usr/local/bin/sleeper", RunAtLoad=True, Disabled=True))
    store = lab.path("/var/db/com.apple.xpc.launchd/disabled.plist")
    store.parent.mkdir(parents=True)
    store.write_bytes(plistlib.dumps({"com.test.offstore": True, "com.test.onstore": False}))
    lab.start()
    assert lab.list_entry("com.test.offstore") is None
    assert lab.list_entry("com.test.plistoff") is None
    assert lab.running_pid("com.test.onstore")

    result = lab.launchctl("bootstrap", "system", off_in_store)
    assert (result.returncode, result.stderr) == (119, "Bootstrap failed: 119: Service is disabled\n")
    result = lab.launchctl("load", off_in_store)
    assert (result.returncode, result.stderr) == (
        0, f"{off_in_store}: Service is disabled\nLoad failed: 119: Service is disabled\n")

    assert lab.launchctl("disable", "system/com.test.other").returncode == 0
    assert lab.launchctl("enable", "system/com.test.offstore").returncode == 0
    assert plistlib.loads(store.read_bytes()) == {"com.test.offstore": False, "com.test.onstore": False,
                                                  "com.test.other": True}
    result = lab.launchctl("print-disabled", "system")
    assert result.stdout == ('disabled services = {\n\t"com.test.offstore" => enabled\n'
                             '\t"com.test.onstore" => enabled\n\t"com.test.other" => disabled\n}\n')
    assert lab.launchctl("bootstrap", "system", off_in_store).returncode == 0
    assert lab.running_pid("com.test.offstore")

    # load -w clears a disable; unload -w writes one.
    assert lab.launchctl("unload", "-w", off_in_store).returncode == 0
    assert plistlib.loads(store.read_bytes())["com.test.offstore"] is True
    assert lab.list_entry("com.test.offstore") is None
    assert lab.launchctl("load", "-w", off_in_store).stderr == ""
    assert plistlib.loads(store.read_bytes())["com.test.offstore"] is False
    assert lab.running_pid("com.test.offstore")


# ---- KeepAlive, throttling, intervals


def test_keepalive_respawns_after_kill_9_no_sooner_than_throttle_interval(lab):
    lab.write_script("/usr/local/bin/stamp", STAMP_JOB)
    lab.write_plist(job("com.test.keep", "/usr/local/bin/stamp", KeepAlive=True, ThrottleInterval=2,
                        EnvironmentVariables={"STAMPS": str(lab.path("/var/tmp/stamps"))}))
    lab.start()
    first_pid = lab.running_pid("com.test.keep")
    assert first_pid
    os.kill(first_pid, 9)
    assert wait_for(lambda: lab.list_entry("com.test.keep") == ("-", "-9"), 1.5)
    printed = lab.launchctl("print", "system/com.test.keep").stdout
    assert "\tstate = spawn scheduled\n" in printed
    assert "\tlast terminating signal = Killed: 9\n" in printed
    assert "Pushing respawn out by" in lab.launchd_log()

    second_pid = lab.running_pid("com.test.keep", timeout=5)
    assert second_pid and second_pid != first_pid
    starts = [float(line) for line in lab.read("/var/tmp/stamps").split()]
    assert len(starts) == 2
    assert 1.8 <= starts[1] - starts[0] < 4.0
    assert "\truns = 2\n" in lab.launchctl("print", "system/com.test.keep").stdout


def test_keepalive_successful_exit_false_restarts_only_failures(lab):
    counter = lab.path("/var/tmp/count")
    lab.write_script("/usr/local/bin/flaky", f"""#!/bin/sh
n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}
[ "$n" -ge 2 ] && exit 0
exit 3
""")
    lab.write_plist(job("com.test.flaky", "/usr/local/bin/flaky", ThrottleInterval=1,
                        KeepAlive={"SuccessfulExit": False}))
    lab.start()  # SuccessfulExit implies a first run at load
    assert wait_for(lambda: lab.list_entry("com.test.flaky") == ("-", "0"), 5)
    time.sleep(1.5)  # past ThrottleInterval: a third run, which must not come, would have started by now
    assert counter.read_text().strip() == "2"
    assert lab.list_entry("com.test.flaky") == ("-", "0")


def test_start_interval_and_launch_only_once(lab):
    stamps = str(lab.path("/var/tmp/interval"))
    lab.write_script("/usr/local/bin/tick", f"#!/bin/sh\necho tick >> {stamps}\n")
    lab.write_plist(job("com.test.tick", "/usr/local/bin/tick", StartInterval=1, ThrottleInterval=1))
    lab.write_script("/usr/local/bin/once", f"#!/bin/sh\necho once >> {stamps}.once\n")
    lab.write_plist(job("com.test.once", "/usr/local/bin/once", RunAtLoad=True, LaunchOnlyOnce=True))
    lab.start()
    assert wait_for(lambda: lab.read("/var/tmp/interval").count("tick") >= 2, 4)
    assert wait_for(lambda: lab.read("/var/tmp/interval.once") == "once\n")
    lab.launchctl("kickstart", "system/com.test.once")
    time.sleep(0.3)  # time for the second run that LaunchOnlyOnce must refuse
    assert lab.read("/var/tmp/interval.once") == "once\n"


def test_spawn_failure_shows_ex_config(lab):
    lab.write_plist(job("com.test.missing", "/usr/local/bin/does-not-exist", RunAtLoad=True))
    lab.start()
    assert wait_for(lambda: lab.list_entry("com.test.missing") == ("-", "78"))
    assert "\tlast exit code = 78: EX_CONFIG\n" in lab.launchctl("print", "system/com.test.missing").stdout


# ---- launchctl verbs, messages and exit codes


def test_launchctl_errors_match_macos(lab):
    lab.write_script("/usr/local/bin/sleeper", SLEEP_JOB)
    path = lab.write_plist(job("com.test.sleep", "/usr/local/bin/sleeper", RunAtLoad=True))
    lab.start()
    expectations = [
        (("bootstrap", "system", path), 5, "Bootstrap failed: 5: Input/output error\n"),
        (("bootstrap", "system", "/Library/LaunchDaemons/nope.plist"), 2,
         "Bootstrap failed: 2: No such file or directory\n"),
        (("bootout", "system/com.test.nope"), 3, "Boot-out failed: 3: No such process\n"),
        (("print", "system/com.test.nope"), 113, 'Could not find service "com.test.nope" in domain for system\n'),
        (("kickstart", "-k", "system/com.test.nope"), 113,
         'Could not find service "com.test.nope" in domain for system\n'),
        (("list", "com.test.nope"), 113, 'Could not find service "com.test.nope" in domain for port\n'),
        (("start", "com.test.nope"), 3, ""),
        (("load", path), 0, "Load failed: 5: Input/output error\n"
                            "Try running `launchctl bootstrap` as root for richer errors.\n"),
        (("load", "/Library/LaunchDaemons/nope.plist"), 0,
         "/Library/LaunchDaemons/nope.plist: No such file or directory\n"),
        (("print", "gui/501/com.test.sleep"), 1,
         "pfguard-lab: launchctl: the gui domain is not supported by the lab\n"),
        (("blame", "system/com.test.sleep"), 1,
         "pfguard-lab: launchctl: launchctl blame is not supported by the lab\n"),
    ]
    for args, code, stderr in expectations:
        result = lab.launchctl(*args)
        assert (result.returncode, result.stderr, result.stdout) == (code, stderr, ""), args

    bad = lab.path("/Library/LaunchDaemons/bad.plist")
    bad.write_text("<plist><dict><key>Label</key></dict></plist>")
    bad.chmod(0o644)
    result = lab.launchctl("load", "/Library/LaunchDaemons/bad.plist")
    assert (result.returncode, result.stderr) == (0, "/Library/LaunchDaemons/bad.plist: Invalid property list\n")
    no_label = lab.write_plist({"ProgramArguments": ["/bin/true"]}, name="nolabel.plist")
    assert lab.launchctl("bootstrap", "system", no_label).returncode == 5

    sockets = lab.write_plist(job("com.test.sockets", "/bin/true", Sockets={"Listeners": {}}))
    result = lab.launchctl("bootstrap", "system", sockets)
    assert (result.returncode, result.stderr) == (
        1, "pfguard-lab: launchctl: launchd key Sockets is not supported by the lab\n")


def test_print_list_and_kickstart_output(lab):
    lab.write_script("/usr/local/bin/sleeper", SLEEP_JOB)
    path = lab.write_plist(job("com.test.print", "/usr/local/bin/sleeper", RunAtLoad=True,
                               ProgramArguments=["/usr/local/bin/sleeper", "--flag"]), fmt=plistlib.FMT_BINARY)
    lab.start()
    pid = lab.running_pid("com.test.print")
    assert pid
    printed = lab.launchctl("print", "system/com.test.print")
    assert printed.returncode == 0
    lines = printed.stdout.splitlines()
    assert lines[:5] == ["system/com.test.print = {", "\tactive count = 1", f"\tpath = {path}",
                         "\ttype = LaunchDaemon", "\tstate = running"]
    assert "\targuments = {" in lines
    assert lines[lines.index("\targuments = {") + 1: lines.index("\targuments = {") + 4] == [
        "\t\t/usr/local/bin/sleeper", "\t\t--flag", "\t}"]
    assert f"\tpid = {pid}" in lines
    assert "\tlast exit code = (never exited)" in lines
    assert lines[-1] == "}"

    listed = lab.launchctl("list", "com.test.print").stdout
    assert f'\t"PID" = {pid};\n' in listed
    assert '\t"Label" = "com.test.print";\n' in listed
    assert listed.startswith("{\n") and listed.endswith("};\n")

    kick = lab.launchctl("kickstart", "-p", "system/com.test.print")
    assert (kick.returncode, kick.stdout) == (0, f"{pid}\n")
    kick = lab.launchctl("kickstart", "-kp", "system/com.test.print")
    assert kick.returncode == 0
    new_pid = int(kick.stdout)
    assert new_pid != pid and pid_alive(new_pid) and not pid_alive(pid)
    assert lab.list_entry("com.test.print") == (str(new_pid), "-15")

    assert lab.launchctl("stop", "com.test.print").returncode == 0
    assert wait_for(lambda: lab.list_entry("com.test.print") == ("-", "-15"))
    printed = lab.launchctl("print", "system/com.test.print").stdout
    assert "\tstate = not running\n" in printed and "\tlast terminating signal = Terminated: 15\n" in printed
    assert "\tpid = " not in printed


def test_bootout_is_asynchronous_unless_wait(lab):
    lab.write_script("/usr/local/bin/stubborn", IGNORES_TERM_JOB)
    path = lab.write_plist(job("com.test.stubborn", "/usr/local/bin/stubborn", RunAtLoad=True, ExitTimeOut=1))
    lab.start()
    pid = lab.running_pid("com.test.stubborn")
    assert pid
    started = time.monotonic()
    assert lab.launchctl("bootout", "system/com.test.stubborn").returncode == 0
    assert time.monotonic() - started < 0.8
    assert "\tstate = SIGTERMed\n" in lab.launchctl("print", "system/com.test.stubborn").stdout
    assert lab.launchctl("bootstrap", "system", path).returncode == 5  # still there until it exits
    assert wait_for(lambda: lab.list_entry("com.test.stubborn") is None, 3)
    assert not pid_alive(pid)

    assert lab.launchctl("bootstrap", "system", path).returncode == 0
    pid = lab.running_pid("com.test.stubborn")
    started = time.monotonic()
    result = lab.launchctl("bootout", "--wait", "system", path)
    assert result.returncode == 0
    assert 0.8 <= time.monotonic() - started < 3.0  # SIGKILL after ExitTimeOut=1
    assert lab.list_entry("com.test.stubborn") is None
    assert not pid_alive(pid)


class FakeModule:
    """Just enough of AnsibleModule for community.general.launchd's LaunchCtl* classes."""

    def __init__(self, launchctl_path: str) -> None:
        self.launchctl_path = launchctl_path
        self.commands: list[str] = []

    def get_bin_path(self, name, required=False):
        assert name == "launchctl"
        return self.launchctl_path

    def run_command(self, command):
        self.commands.append(command)
        result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30)
        return result.returncode, result.stdout, result.stderr

    def fail_json(self, **kwargs):
        raise AssertionError(f"module failed: {kwargs}")


class FakePlist:
    def __init__(self, path: str) -> None:
        self.path = path

    def get_file(self):
        return self.path

    def is_changed(self):
        return False


def test_community_general_launchd_task_classes_drive_the_legacy_verbs(lab, monkeypatch):
    launchd_module = pytest.importorskip("ansible_collections.community.general.plugins.modules.launchd")
    monkeypatch.setattr(launchd_module.LaunchCtlTask, "WAITING_TIME", 0.3)
    state = launchd_module.ServiceState
    lab.start()
    lab.write_script("/usr/local/bin/sleeper", SLEEP_JOB)
    path = lab.write_plist(job("com.test.svc", "/usr/local/bin/sleeper"))
    module = FakeModule(str(lab.path("/bin/launchctl")))
    plist = FakePlist(path)
    service = "com.test.svc"

    assert launchd_module.LaunchCtlList(module, service).run()[:2] == (state.UNLOADED, "-")
    current, pid, status, _err = launchd_module.LaunchCtlStart(module, service, plist).run()
    assert (current, status) == (state.STARTED, "0") and pid.isdigit() and pid_alive(int(pid))
    assert f"{lab.path('/bin/launchctl')} load {path}" in module.commands
    assert f"{lab.path('/bin/launchctl')} start {service}" in module.commands

    current, stopped_pid, status, _err = launchd_module.LaunchCtlStop(module, service, plist).run()
    assert (current, stopped_pid, status) == (state.STOPPED, "-", "-15")

    current, new_pid, _status, _err = launchd_module.LaunchCtlRestart(module, service, plist).run()
    assert current == state.STARTED and new_pid not in ("-", pid)

    current, _pid, _status, _err = launchd_module.LaunchCtlUnload(module, service, plist).run()
    assert current == state.UNLOADED
    assert not pid_alive(int(new_pid))
    # Unloading again: stderr complaint, exit 0, so the module does not fail.
    assert launchd_module.LaunchCtlUnload(module, service, plist).run()[0] == state.UNLOADED


def run_as_nobody(func, *args) -> tuple[int, str, str]:
    """Run func(*args) (a launchctl main) in a forked child with uid/gid nobody; capture its output."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 70
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            import sys

            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            code = func(*args)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    with open(out_r) as out_file, open(err_r) as err_file:
        stdout, stderr = out_file.read(), err_file.read()
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status), stdout, stderr


def test_non_root_callers(lab, monkeypatch):
    lab.write_script("/usr/local/bin/sleeper", SLEEP_JOB)
    path = lab.write_plist(job("com.test.root", "/usr/local/bin/sleeper", RunAtLoad=True))
    other = lab.write_plist(job("com.test.other", "/usr/local/bin/sleeper"), name="other.plist",
                            directory="/var/tmp")
    lab.start()
    monkeypatch.setenv("PFGUARD_LAB_ROOT", str(lab.root))
    assert run_as_nobody(launchctl.main, ["bootstrap", "system", other]) == (
        5, "", "Bootstrap failed: 5: Input/output error\nTry re-running the command as root for richer errors.\n")
    code, stdout, _ = run_as_nobody(launchctl.main, ["print", "system/com.test.root"])
    assert code == 0 and "\tstate = running\n" in stdout
    assert run_as_nobody(launchctl.main, ["list"]) == (0, "PID\tStatus\tLabel\n", "")
    assert run_as_nobody(launchctl.main, ["kickstart", "-k", "system/com.test.root"])[0] == 1
    assert run_as_nobody(launchctl.main, ["disable", "system/com.test.root"])[0] == 1
    assert run_as_nobody(launchctl.main, ["bootout", "system", path])[0] == 1
    assert lab.list_entry("com.test.other") is None
    assert lab.running_pid("com.test.root")


def test_launchctl_without_launchd_fails_clearly(lab):
    result = lab.launchctl("list")
    assert result.returncode == 1
    assert result.stderr.startswith("pfguard-lab: launchctl: launchd is not running")


# ---- init duties


def test_reaps_orphans_and_sigterm_stops_everything(lab):
    lab.write_script("/usr/local/bin/sleeper", SLEEP_JOB)
    lab.write_script("/usr/local/bin/stubborn", IGNORES_TERM_JOB)
    # Leaves short-lived orphans behind (they must be reaped) and a long-lived detached one.
    lab.write_script("/usr/local/bin/forker", f"""#!/bin/sh
for i in 1 2 3; do (sleep 0.1 &) ; done
setsid sleep 300 &
echo $! > {lab.path('/var/tmp/detached.pid')}
exit 0
""")
    for label, program in (("com.test.a", "sleeper"), ("com.test.b", "stubborn"), ("com.test.c", "forker")):
        lab.write_plist(job(label, f"/usr/local/bin/{program}", RunAtLoad=True, ExitTimeOut=30,
                            AbandonProcessGroup=True))
    launchd = lab.start()
    pids = [lab.running_pid("com.test.a"), lab.running_pid("com.test.b")]
    assert all(pids)
    detached = int(wait_for(lambda: lab.read("/var/tmp/detached.pid").strip()))
    time.sleep(0.5)  # the orphans' `sleep 0.1` has ended: launchd must have reaped them by now

    def zombie_children():
        zombies = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()
                except OSError:
                    continue
                if fields[1] == str(launchd.pid) and fields[0] == "Z":
                    zombies.append(entry)
        return zombies

    assert zombie_children() == []
    assert pid_alive(detached)

    started = time.monotonic()
    assert lab.stop() == 0
    assert time.monotonic() - started < 2.5  # the stubborn job was SIGKILLed after the lab's cap
    assert not any(pid_alive(pid) for pid in [*pids, detached])
    assert not lab.socket.exists()


def test_watch_paths_and_path_state_start_jobs(lab):
    runs = str(lab.path("/var/tmp/watch-runs"))
    lab.write_script("/usr/local/bin/noted", f"#!/bin/sh\necho \"$1\" >> {runs}\n")
    lab.write_script("/usr/local/bin/sleeper", SLEEP_JOB)
    lab.path("/var/tmp/watched").write_text("v1")
    lab.write_plist(job("com.test.watch", "/usr/local/bin/noted", WatchPaths=["/var/tmp/watched"],
                        ThrottleInterval=1, ProgramArguments=["/usr/local/bin/noted", "watch"]))
    lab.write_plist(job("com.test.pathstate", "/usr/local/bin/sleeper",
                        KeepAlive={"PathState": {"/var/tmp/flag": True}}))
    lab.start()
    time.sleep(1.2)  # past ThrottleInterval: a watch that fired without a change would show by now
    assert lab.read("/var/tmp/watch-runs") == ""
    assert lab.list_entry("com.test.pathstate") == ("-", "0")

    lab.path("/var/tmp/watched").write_text("v2, longer")
    lab.path("/var/tmp/flag").touch()
    assert wait_for(lambda: lab.read("/var/tmp/watch-runs") == "watch\n", 3)
    assert lab.running_pid("com.test.pathstate", timeout=3)


def test_calendar_interval_next_fire():
    from pfguard_lab.emulators.launchd.daemon import next_calendar_fire

    start = time.mktime((2024, 3, 4, 10, 15, 30, 0, 0, -1))  # Monday 10:15:30 local time
    assert time.localtime(next_calendar_fire([{"Minute": 20}], start))[3:5] == (10, 20)
    assert time.localtime(next_calendar_fire([{"Minute": 0, "Hour": 3}], start))[2:5] == (5, 3, 0)
    sunday = time.localtime(next_calendar_fire([{"Weekday": 7, "Hour": 1, "Minute": 0}], start))
    assert (sunday.tm_wday, sunday.tm_hour) == (6, 1)
    assert next_calendar_fire([{"Day": 31, "Month": 2}], start) is None


def test_launchctl_usage_errors(lab):
    lab.start()
    result = lab.launchctl("bootstrap", "system")
    assert (result.returncode, result.stderr) == (
        64, "Usage: launchctl bootstrap <domain-target> [service-path, service-path2, ...]\n")
    result = lab.launchctl("print", "bogus/target")
    assert result.returncode == 64 and result.stderr.startswith("Unrecognized target specifier.\n")
    result = lab.launchctl("frobnicate")
    assert result.returncode == 64 and result.stderr.startswith("Unrecognized subcommand: frobnicate\n")
