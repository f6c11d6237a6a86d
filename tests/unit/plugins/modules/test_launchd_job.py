# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Drive the launchd_job module through AnsibleModule with a fake launchctl that answers with launchctl's
documented exit codes, messages and output shapes (docs/reference/macos.md, launchctl exit codes, launchctl
print and launchctl quirks; the lab's emulated launchctl prints the same)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import plistlib

import pytest
from ansible.module_utils import basic
from ansible_collections.pfguard.macos.plugins.module_utils import launchd
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import CommandTimeout
from ansible_collections.pfguard.macos.plugins.modules import launchd_job
from ansible_collections.pfguard.macos.tests.unit.plugins.modules.utils import run_module

LABEL = "org.pfguard.test"
TARGET = "system/" + LABEL
NOT_FOUND = (113, "", 'Could not find service "%s" in domain for system\n' % LABEL)
PRINT = """system/{label} = {{
\tactive count = {active}
\tpath = {path}
\ttype = LaunchDaemon
\tstate = {state}

\tprogram = /bin/sh
\targuments = {{
\t\t/bin/sh
\t\t-c
\t\texec sleep 600
\t}}

\tdomain = system
\tminimum runtime = 10
\texit timeout = 5
\truns = {runs}
{pid}\tlast exit code = (never exited)

\tspawn type = daemon (3)
\tproperties = keepalive | runatload
}}
"""


class FakeLaunchd(object):
    """launchd's system domain for one job, answering run_bounded like launchctl. A booted-out job stays
    (SIGTERMed) for `stop_polls` prints before it is gone: bootout is asynchronous."""

    def __init__(self, tmp_path, loaded=False, override=None, disabled_key=None, stop_polls=0):
        self.tool = tmp_path / "launchctl"
        self.tool.write_text("#!/bin/sh\nexit 99\n")
        self.tool.chmod(0o755)
        self.plist = tmp_path / (LABEL + ".plist")
        spec = {"Label": LABEL, "ProgramArguments": ["/bin/sh", "-c", "exec sleep 600"], "KeepAlive": True}
        if disabled_key is not None:
            spec["Disabled"] = disabled_key
        self.plist.write_bytes(plistlib.dumps(spec))
        self.plist.chmod(0o644)
        self.disabled_key = bool(disabled_key)
        self.loaded, self.removing, self.stopping = loaded, False, 0
        self.loaded_from = str(self.plist)
        self.pid, self.runs = (100, 1) if loaded else (None, 0)
        self.next_pid = 500
        self.override = override  # True: disabled in the store, False: enabled, None: no entry
        self.stop_polls = stop_polls
        self.calls, self.timeouts = [], []
        self.faults = {}  # verb -> answers given before the normal ones

    def args(self, **extra):
        return dict(dict(name=LABEL, plist=str(self.plist), launchctl_path=str(self.tool)), **extra)

    def changes(self):
        return [call for call in self.calls if call[0] not in ("print", "print-disabled")]

    def __call__(self, argv, timeout, data=None, environ_update=None, output_limit=None):
        assert argv[0] == str(self.tool) and data is None
        assert environ_update == {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
        assert output_limit == launchd.OUTPUT_LIMIT
        self.calls.append(list(argv[1:]))
        self.timeouts.append(timeout)
        verb = argv[1]
        if self.faults.get(verb):
            return self.faults[verb].pop(0)
        return getattr(self, verb.replace("-", "_"))(argv[2:])

    def start(self):
        self.pid, self.runs, self.next_pid = self.next_pid, self.runs + 1, self.next_pid + 1

    def print(self, args):
        assert len(args) == 1 and args[0].startswith("system/")
        if args != [TARGET]:  # a job launchd does not know
            return 113, "", 'Could not find service "%s" in domain for system\n' % args[0][len("system/"):]
        if self.removing and not self.stopping:
            self.loaded = self.removing = False
            self.pid = None
        if not self.loaded:
            return NOT_FOUND
        state = "running"
        if self.removing:
            self.stopping -= 1
            state = "SIGTERMed"
        pid = "\tpid = %d\n" % self.pid if self.pid else ""
        text = PRINT.format(label=LABEL, active=1 if self.pid else 0, path=self.loaded_from, state=state,
                            runs=self.runs, pid=pid)  # fmt: skip
        return 0, text, ""

    def print_disabled(self, args):
        assert args == ["system"]
        entries = [("com.apple.ftpd", True)] + ([(LABEL, self.override)] if self.override is not None else [])
        lines = ['\t"%s" => %s' % (label, "disabled" if off else "enabled") for label, off in entries]
        return 0, "disabled services = {\n%s\n}\n" % "\n".join(lines), ""

    def bootstrap(self, args):
        assert args[0] == "system" and len(args) == 2
        if self.loaded:
            return 5, "", "Bootstrap failed: 5: Input/output error\n"
        if self.override if self.override is not None else self.disabled_key:
            return 119, "", "Bootstrap failed: 119: Service is disabled\n"
        self.loaded, self.loaded_from, self.runs = True, args[1], 0
        self.start()
        return 0, "", ""

    def bootout(self, args):
        assert args == [TARGET]
        if not self.loaded or self.removing:
            return 3, "", "Boot-out failed: 3: No such process\n"
        self.removing, self.stopping = True, self.stop_polls
        return 0, "", ""

    def enable(self, args):
        assert args == [TARGET]
        self.override = False
        return 0, "", ""

    def disable(self, args):
        assert args == [TARGET]
        self.override = True
        return 0, "", ""

    def kickstart(self, args):
        assert args == ["-k", TARGET]
        if not self.loaded or self.removing:
            return NOT_FOUND
        self.start()
        return 0, "", ""


def run(monkeypatch, fake, args, check_mode=False, diff=False):
    """The module's result (with the warnings it gave), launchctl's bounded runner answered by `fake`,
    short polls."""
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    monkeypatch.setattr(launchd, "run_bounded", fake)
    monkeypatch.setattr(launchd, "PLIST_OWNER", (os.getuid(), os.getgid()))
    monkeypatch.setattr(launchd_job, "PLIST_OWNER", (os.getuid(), os.getgid()))
    monkeypatch.setattr(launchd_job, "POLL_INTERVAL", 0.01)
    result = run_module(monkeypatch, launchd_job, fake, args, check_mode=check_mode, diff=diff)
    result["warnings"] = warnings
    return result


def test_loads_then_second_run_changes_nothing(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    first = run(monkeypatch, fake, fake.args(state="loaded"))
    assert first["changed"] is True, first
    assert first["commands"] == [[str(fake.tool), "bootstrap", "system", str(fake.plist)]]
    assert first["actions"] == ["bootstrap"]
    assert first["status_before"]["loaded"] is False and first["status_before"]["pid"] is None
    assert first["status"] == dict(loaded=True, enabled=True, override=None, state="running", pid=500, runs=1,
                                   last_exit_code=None, last_signal=None, path=str(fake.plist))  # fmt: skip
    fake.calls = []
    second = run(monkeypatch, fake, fake.args(state="loaded"))
    assert second["changed"] is False and second["commands"] == [] and fake.changes() == []
    assert second["status"]["pid"] == 500


def test_a_job_disabled_in_the_store_is_enabled_then_loaded(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, override=True)
    result = run(monkeypatch, fake, fake.args(state="loaded"))
    assert result["actions"] == ["enable", "bootstrap"] and fake.changes()[0] == ["enable", TARGET]
    assert result["status_before"]["enabled"] is False and result["status_before"]["override"] == "disabled"
    assert result["status"]["enabled"] is True and result["status"]["override"] == "enabled"
    assert result["status"]["loaded"] is True


def test_a_loaded_job_disabled_in_the_store_is_enabled_only(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True, override=True)
    result = run(monkeypatch, fake, fake.args(state="loaded"))
    assert result["changed"] is True and result["actions"] == ["enable"]
    assert result["status"]["pid"] == 100  # not restarted


def test_the_plists_disabled_key_counts_without_an_override(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, disabled_key=True)
    result = run(monkeypatch, fake, fake.args(state="loaded"))
    assert result["actions"] == ["enable", "bootstrap"] and result["status"]["loaded"] is True
    fake = FakeLaunchd(tmp_path, disabled_key=True)
    report = run(monkeypatch, fake, fake.args())
    assert report["changed"] is False and report["status"]["enabled"] is False and report["status"]["override"] is None


def test_unloaded_waits_until_launchd_no_longer_knows_the_job(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True, stop_polls=3)
    result = run(monkeypatch, fake, fake.args(state="unloaded"))
    assert result["changed"] is True and result["actions"] == ["bootout"]
    assert [call[0] for call in fake.calls] == ["print", "print-disabled", "bootout", "print", "print", "print",
                                                "print", "print", "print-disabled"]  # fmt: skip
    assert result["status"]["loaded"] is False and result["status"]["state"] is None
    fake.calls = []
    again = run(monkeypatch, fake, fake.args(state="unloaded"))
    assert again["changed"] is False and fake.changes() == []


def test_unloaded_and_disabled_keeps_the_job_off_after_a_reboot(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True)
    result = run(monkeypatch, fake, dict(name=LABEL, launchctl_path=str(fake.tool), state="unloaded", enabled=False))
    assert result["actions"] == ["disable", "bootout"]
    assert result["status"]["override"] == "disabled" and result["status"]["enabled"] is False
    again = run(monkeypatch, fake, dict(name=LABEL, launchctl_path=str(fake.tool), state="unloaded", enabled=False))
    assert again["changed"] is False


def test_enabled_alone_changes_only_the_override(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, override=True)
    result = run(monkeypatch, fake, dict(name=LABEL, launchctl_path=str(fake.tool), enabled=True))
    assert result["actions"] == ["enable"] and result["status"]["loaded"] is False
    again = run(monkeypatch, fake, dict(name=LABEL, launchctl_path=str(fake.tool), enabled=True))
    assert again["changed"] is False


def test_restarted_kickstarts_and_waits_for_a_new_run(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True)
    result = run(monkeypatch, fake, fake.args(state="restarted"))
    assert result["changed"] is True and result["commands"] == [[str(fake.tool), "kickstart", "-k", TARGET]]
    assert result["status_before"]["pid"] == 100 and result["status"]["pid"] == 500
    assert result["status"]["runs"] == 2
    again = run(monkeypatch, fake, fake.args(state="restarted"))
    assert again["changed"] is True and again["status"]["pid"] == 501


def test_restarted_bootstraps_a_job_that_is_not_loaded(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    result = run(monkeypatch, fake, fake.args(state="restarted"))
    assert result["actions"] == ["bootstrap"] and result["status"]["loaded"] is True


def test_restarted_bootstraps_when_the_job_went_away_meanwhile(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True)
    fake.faults["kickstart"] = [NOT_FOUND]
    fake.faults["print"] = [fake.print([TARGET]), NOT_FOUND]
    fake.loaded = False
    result = run(monkeypatch, fake, fake.args(state="restarted"))
    assert result["actions"] == ["kickstart", "bootstrap"] and result["status"]["loaded"] is True


def test_reloaded_boots_out_waits_and_bootstraps_the_plist_again(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True, stop_polls=2)
    fake.loaded_from = "/Library/LaunchDaemons/old.plist"
    result = run(monkeypatch, fake, fake.args(state="reloaded"))
    assert result["actions"] == ["bootout", "bootstrap"]
    assert result["status"]["path"] == str(fake.plist) and result["status"]["pid"] == 500
    # The bootstrap only once launchd no longer knew the old job (two prints showed it stopping).
    assert [call[0] for call in fake.calls] == ["print", "print-disabled", "bootout", "print", "print", "print",
                                                "bootstrap", "print", "print", "print-disabled"]  # fmt: skip
    assert result["warnings"] == []


def test_a_bootstrap_racing_a_bootout_is_tried_again(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    # Another run's bootout is still under way: launchd answers 5 (or 37) and shows the old job stopping.
    stopping = PRINT.format(label=LABEL, active=1, path=str(fake.plist), state="SIGTERMed", runs=1, pid="\tpid = 7\n")
    fake.faults["bootstrap"] = [(5, "", "Bootstrap failed: 5: Input/output error\n"),
                                (37, "", "Bootstrap failed: 37: Operation already in progress\n")]  # fmt: skip
    fake.faults["print"] = [NOT_FOUND, (0, stopping, ""), (0, stopping, "")]
    result = run(monkeypatch, fake, fake.args(state="loaded"))
    assert result["changed"] is True and result["actions"] == ["bootstrap", "bootstrap", "bootstrap"]
    assert result["status"]["loaded"] is True and result["status"]["state"] == "running"


def test_a_bootstrap_answered_5_for_a_job_someone_else_loaded_succeeds(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    fake.faults["print"] = [NOT_FOUND]
    fake.loaded, fake.pid, fake.runs = True, 100, 1  # loaded between our print and our bootstrap
    result = run(monkeypatch, fake, fake.args(state="loaded"))
    assert result["actions"] == ["bootstrap"] and result["status"]["pid"] == 100


def test_a_bootstrap_that_keeps_failing_with_5_fails_after_wait(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    fake.faults["bootstrap"] = [(5, "", "Bootstrap failed: 5: Input/output error\n")] * 1000
    result = run(monkeypatch, fake, fake.args(state="loaded", wait=1))
    assert result["failed"] is True
    assert result["msg"].startswith("%s bootstrap system %s failed (exit 5): Bootstrap failed: 5: Input/output "
                                    "error; launchd gives 5" % (fake.tool, fake.plist))  # fmt: skip
    assert result["msg"].endswith("launchd still does not show %s after 1 seconds (wait)" % TARGET)
    assert result["rc"] == 5 and result["status_before"]["loaded"] is False


@pytest.mark.parametrize("answer, named", [
    ((122, "", "Bootstrap failed: 122: Path had bad ownership/permissions\n"), "owned by root:wheel"),
    ((119, "", "Bootstrap failed: 119: Service is disabled\n"), "launchctl enable system/LABEL"),
    ((108, "", "Bootstrap failed: 108: Invalid path\n"), "Bootstrap failed: 108: Invalid path"),
])  # fmt: skip
def test_other_bootstrap_failures_fail_at_once_quoting_launchctl(monkeypatch, tmp_path, answer, named):
    fake = FakeLaunchd(tmp_path)
    fake.faults["bootstrap"] = [answer]
    result = run(monkeypatch, fake, fake.args(state="loaded"))
    assert result["failed"] is True and named in result["msg"] and result["rc"] == answer[0]
    assert result["commands"] == [[str(fake.tool), "bootstrap", "system", str(fake.plist)]]


@pytest.mark.parametrize("answer", [
    (3, "", "Boot-out failed: 3: No such process\n"),
    (113, "", 'Could not find service "org.pfguard.test" in domain for system\n'),
    (36, "", "Boot-out failed: 36: Operation now in progress\n"),
])  # fmt: skip
def test_bootout_answers_that_mean_gone_or_going_end_in_waiting(monkeypatch, tmp_path, answer):
    fake = FakeLaunchd(tmp_path, loaded=True, stop_polls=2)
    fake.faults["bootout"] = [answer]
    fake.removing, fake.stopping = True, 2  # what launchd is doing anyway
    result = run(monkeypatch, fake, fake.args(state="unloaded"))
    assert result["changed"] is True and result["status"]["loaded"] is False


def test_a_job_that_does_not_go_away_fails_after_wait_naming_its_state(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True, stop_polls=10**6)
    result = run(monkeypatch, fake, fake.args(state="unloaded", wait=1))
    assert result["failed"] is True
    assert result["msg"] == ("bootout ran but launchd did not remove the job within 1 seconds (wait); launchd shows "
                             "%s (state = SIGTERMed)" % TARGET)  # fmt: skip
    assert result["actions"] == ["bootout"]


def test_check_mode_reports_and_runs_only_reads(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, override=True)
    result = run(monkeypatch, fake, fake.args(state="loaded"), check_mode=True)
    assert result["changed"] is True and result["actions"] == ["enable", "bootstrap"]
    assert result["commands"][1] == [str(fake.tool), "bootstrap", "system", str(fake.plist)]
    assert fake.changes() == [] and fake.override is True and fake.loaded is False
    assert result["status"]["loaded"] is True and result["status"]["enabled"] is True
    assert result["status"]["pid"] is None
    unload = run(monkeypatch, FakeLaunchd(tmp_path, loaded=True), fake.args(state="unloaded"), check_mode=True)
    assert unload["changed"] is True and unload["status"]["loaded"] is False and unload["actions"] == ["bootout"]


def test_check_mode_accepts_a_plist_an_earlier_task_would_create(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    missing = str(tmp_path / "new.plist")
    result = run(monkeypatch, fake, fake.args(state="loaded", plist=missing), check_mode=True)
    assert result["changed"] is True and result["actions"] == ["bootstrap"]
    assert result["warnings"] == ["plist %s does not exist yet; the task fails unless an earlier task creates it"
                                  % missing] and fake.changes() == []  # fmt: skip
    failed = run(monkeypatch, fake, fake.args(state="loaded", plist=missing))
    assert failed["failed"] is True and failed["msg"] == "plist %s does not exist; nothing was changed" % missing
    assert fake.changes() == []


def test_diff_shows_loaded_and_enabled(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, override=True)
    result = run(monkeypatch, fake, fake.args(state="loaded"), diff=True)
    assert result["diff"] == [dict(before="loaded: false\nenabled: false\n", after="loaded: true\nenabled: true\n",
                                   before_header=TARGET, after_header=TARGET)]  # fmt: skip


def test_without_state_or_enabled_it_only_reports(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True, override=True)
    result = run(monkeypatch, fake, dict(name=LABEL, launchctl_path=str(fake.tool)), check_mode=True)
    assert result["changed"] is False and result["commands"] == [] and fake.changes() == []
    assert result["status"] == result["status_before"]
    assert result["status"]["loaded"] is True and result["status"]["enabled"] is False
    assert [call[0] for call in fake.calls] == ["print", "print-disabled"]


def test_names_reports_several_jobs_with_one_print_disabled(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True, override=True)
    other = "org.pfguard.other"
    result = run(monkeypatch, fake, dict(names=[LABEL, other], launchctl_path=str(fake.tool)))
    assert result["changed"] is False and result["commands"] == [] and fake.changes() == []
    assert sorted(result["jobs"]) == sorted([LABEL, other]) and "status" not in result
    assert result["jobs"][LABEL]["loaded"] is True and result["jobs"][LABEL]["override"] == "disabled"
    assert result["jobs"][LABEL]["pid"] == 100
    assert result["jobs"][other]["loaded"] is False and result["jobs"][other]["override"] is None
    assert fake.calls == [["print-disabled", "system"], ["print", TARGET], ["print", "system/" + other]]


@pytest.mark.parametrize("args, named", [
    (dict(state="unloaded"), "names reads the status of several jobs; it cannot go with state"),
    (dict(enabled=True), "it cannot go with enabled"),
    (dict(plist="/Library/LaunchDaemons/x.plist"), "it cannot go with plist"),
    (dict(names=[LABEL, "../evil"]), "name '../evil' is not a label"),
    (dict(name=LABEL), "parameters are mutually exclusive: name|names"),
])  # fmt: skip
def test_names_is_read_only_and_checked_before_any_call(monkeypatch, tmp_path, args, named):
    fake = FakeLaunchd(tmp_path)
    given = dict(dict(names=[LABEL], launchctl_path=str(fake.tool)), **args)
    result = run(monkeypatch, fake, given)
    assert result["failed"] is True and named in result["msg"], result
    assert fake.calls == []


@pytest.mark.parametrize("args, named", [
    (dict(name="org.pfguard.test; reboot"), "name 'org.pfguard.test; reboot' is not a label"),
    (dict(name="../evil"), "name '../evil' is not a label"),
    (dict(name=""), "name must be a launchd label, got ''"),
    (dict(name="-w"), "name '-w' is not a label"),
    (dict(wait=0), "wait 0 is out of range: use 1 to 3600 seconds"),
    (dict(wait=3601), "wait 3601 is out of range"),
    (dict(enabled=False), "enabled=false cannot go with state=loaded"),
    (dict(launchctl_path="bin/launchctl"), "launchctl_path 'bin/launchctl' is not an absolute path"),
    (dict(launchctl_path="/dev/null"), "launchctl not found or not executable at /dev/null"),
    (dict(plist="Library/LaunchDaemons/x.plist"), "plist 'Library/LaunchDaemons/x.plist' is not an absolute path"),
    (dict(plist="/dev/zero"), "plist /dev/zero is not a regular file (it is a character device)"),
    (dict(command_timeout=0), "command_timeout 0 is out of range"),
    (dict(state="started"), "state"),
    (dict(plist=None), "state is loaded but all of the following are missing: plist"),
])  # fmt: skip
def test_bad_input_is_refused_naming_the_value_before_any_call(monkeypatch, tmp_path, args, named):
    fake = FakeLaunchd(tmp_path)
    base = fake.args(state="loaded")
    base.update(args)
    result = run(monkeypatch, fake, dict((k, v) for k, v in base.items() if v is not None))
    assert result["failed"] is True and named in result["msg"], result
    assert fake.calls == []


def test_unsafe_or_foreign_plists_are_refused_before_any_call(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    link = tmp_path / "link.plist"
    link.symlink_to(fake.plist)
    other = tmp_path / "other.plist"
    other.write_bytes(plistlib.dumps({"Label": "org.pfguard.other", "Program": "/bin/true"}))
    writable = tmp_path / "writable.plist"
    writable.write_bytes(fake.plist.read_bytes())
    writable.chmod(0o666)
    for path, reason in ((link, "is a symbolic link; it is not followed"), (other, "has Label 'org.pfguard.other'"),
                         (writable, "has mode 0666")):  # fmt: skip
        result = run(monkeypatch, fake, fake.args(state="loaded", plist=str(path)), check_mode=True)
        assert result["failed"] is True and str(path) in result["msg"] and reason in result["msg"], result
        assert result["msg"].endswith("nothing was changed")
    assert fake.calls == []


def test_output_launchctl_does_not_print_fails_the_task_naming_the_line(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    fake.faults["print"] = [(0, "system/org.pfguard.test = {\n\tstate = running\n\t$(reboot)\n}\n", "")]
    result = run(monkeypatch, fake, fake.args(state="loaded"))
    assert result["failed"] is True and fake.changes() == []
    assert result["msg"] == ("%s print %s printed a line that is not launchctl print output: '\\t$(reboot)'"
                             % (fake.tool, TARGET))  # fmt: skip
    fake.faults["print-disabled"] = [(0, 'disabled services = {\n\t"x" => perhaps\n}\n', "")]
    result = run(monkeypatch, fake, fake.args(state="loaded"))
    assert "not launchctl print-disabled output: '\\t\"x\" => perhaps'" in result["msg"] and fake.changes() == []


def test_a_failing_print_fails_the_task_with_launchctls_message(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    fake.faults["print"] = [(64, "", "Unrecognized target specifier.\n")]
    result = run(monkeypatch, fake, fake.args(state="loaded"))
    assert result["failed"] is True and result["rc"] == 64
    assert result["msg"] == "%s print %s failed (exit 64): Unrecognized target specifier." % (fake.tool, TARGET)


def test_every_call_is_bounded_by_command_timeout(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, override=True)
    run(monkeypatch, fake, fake.args(state="loaded", command_timeout=7))
    assert len(fake.timeouts) >= 5 and set(fake.timeouts) == {7}


def test_a_hung_launchctl_fails_naming_the_call_and_stops(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, override=True)

    def hung(argv, timeout, **kwargs):
        if argv[1] != "bootstrap":
            return fake(argv, timeout, **kwargs)
        raise CommandTimeout("%s did not finish within %d seconds and was killed (command_timeout)"
                             % (" ".join(argv), timeout), cmd=list(argv))  # fmt: skip

    hung.tool, hung.calls = fake.tool, fake.calls
    result = run(monkeypatch, hung, fake.args(state="loaded", command_timeout=3))
    assert result["failed"] is True
    assert result["msg"] == ("%s bootstrap system %s did not finish within 3 seconds and was killed "
                             "(command_timeout)" % (fake.tool, fake.plist))  # fmt: skip
    assert result["actions"] == ["enable", "bootstrap"]
    assert [call[0] for call in fake.calls] == ["print", "print-disabled", "enable"]


def test_a_loaded_job_whose_plist_is_gone_warns(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True)
    missing = str(tmp_path / "gone.plist")
    result = run(monkeypatch, fake, fake.args(state="loaded", plist=missing))
    assert result["changed"] is False
    assert any("launchd will not load it at the next boot" in w for w in result["warnings"]), result


def test_a_bootstrap_refused_for_not_being_root_fails_at_once(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    fake.faults["bootstrap"] = [
        (5, "", "Bootstrap failed: 5: Input/output error\nTry re-running the command as root for richer errors.\n")
    ]
    result = run(monkeypatch, fake, fake.args(state="loaded"))
    assert result["failed"] is True and result["actions"] == ["bootstrap"]
    assert result["msg"].endswith("Try re-running the command as root for richer errors.; run the task as root "
                                  "(become: true)")  # fmt: skip


# definition: the module installs the plist itself.
DEFINITION = {"ProgramArguments": ["/bin/sh", "/usr/local/libexec/job.sh"], "RunAtLoad": True, "StartInterval": 60}


def installed(fake):
    return plistlib.loads(fake.plist.read_bytes())


def test_definition_installs_the_plist_and_loads_the_job_then_changes_nothing(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    fake.plist.unlink()
    first = run(monkeypatch, fake, fake.args(state="loaded", definition=DEFINITION))
    assert first["changed"] is True and first["plist_changed"] is True and first["actions"] == ["bootstrap"]
    assert installed(fake) == dict(DEFINITION, Label=LABEL)
    assert fake.plist.read_bytes() == plistlib.dumps(dict(DEFINITION, Label=LABEL), sort_keys=True)
    assert oct(fake.plist.stat().st_mode & 0o7777) == oct(0o644)
    assert [name for name in os.listdir(str(tmp_path)) if name.startswith(".")] == []  # no staged file left
    fake.calls = []
    second = run(monkeypatch, fake, fake.args(state="loaded", definition=DEFINITION))
    assert second["changed"] is False and second["plist_changed"] is False and fake.changes() == []


def test_a_changed_definition_boots_a_loaded_job_out_and_in_again_and_shows_the_plist_diff(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True)
    old_text = fake.plist.read_text()
    result = run(monkeypatch, fake, fake.args(state="loaded", definition=DEFINITION), diff=True)
    assert result["changed"] is True and result["plist_changed"] is True
    assert result["actions"] == ["bootout", "bootstrap"] and fake.pid == 500
    assert installed(fake)["ProgramArguments"] == DEFINITION["ProgramArguments"]
    plist_diff, status_diff = result["diff"]
    assert plist_diff["before"] == old_text and "/usr/local/libexec/job.sh" in plist_diff["after"]
    assert plist_diff["before_header"] == str(fake.plist) and status_diff["before_header"] == TARGET


def test_layout_does_not_count_but_types_and_mode_do(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path, loaded=True)
    # Same keys and values, written by hand: a comment, keys in another order.
    body = plistlib.dumps(dict(DEFINITION, Label=LABEL), sort_keys=False).decode()
    fake.plist.write_text(body.replace("<plist version=\"1.0\">", "<!-- written by hand -->\n<plist version=\"1.0\">"))
    same = run(monkeypatch, fake, fake.args(state="loaded", definition=DEFINITION))
    assert same["changed"] is False and same["plist_changed"] is False and fake.changes() == []
    # RunAtLoad 1 is an integer, not true: launchd would not read the same plist.
    typed = run(monkeypatch, fake, fake.args(state="loaded", definition=dict(DEFINITION, RunAtLoad=1)), check_mode=True)
    assert typed["plist_changed"] is True and typed["actions"] == ["bootout", "bootstrap"]
    fake.plist.chmod(0o600)
    mode = run(monkeypatch, fake, fake.args(state="loaded", definition=DEFINITION))
    assert mode["plist_changed"] is True and oct(fake.plist.stat().st_mode & 0o7777) == oct(0o644)


def test_check_mode_tells_the_new_plist_and_writes_nothing(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    fake.plist.unlink()
    result = run(monkeypatch, fake, fake.args(state="loaded", definition=DEFINITION), check_mode=True, diff=True)
    assert result["changed"] is True and result["plist_changed"] is True and result["actions"] == ["bootstrap"]
    assert result["warnings"] == [] and result["diff"][0]["before"] == ""
    assert not fake.plist.exists() and fake.changes() == []


@pytest.mark.parametrize("definition, named", [
    (dict(DEFINITION, Label="org.pfguard.other"), "definition's Label 'org.pfguard.other' is not name"),
    (dict(DEFINITION, Disabled="yes"), "definition's Disabled must be a boolean, got 'yes'"),
    (dict(DEFINITION, StartInterval=None), "definition.StartInterval is None, which a launchd property list"),
    (dict(DEFINITION, ProgramArguments=["/bin/sh", "a\x01b"]), "ProgramArguments[1] 'a\\x01b' holds a control"),
    (dict(DEFINITION, StartInterval=1 << 64), "definition.StartInterval 18446744073709551616 is out of"),
])  # fmt: skip
def test_a_definition_a_plist_cannot_hold_is_refused_naming_the_key(monkeypatch, tmp_path, definition, named):
    fake = FakeLaunchd(tmp_path)
    before = fake.plist.read_bytes()
    result = run(monkeypatch, fake, fake.args(state="loaded", definition=definition))
    assert result["failed"] is True and named in result["msg"] and result["msg"].endswith("nothing was changed")
    assert fake.calls == [] and fake.plist.read_bytes() == before


def test_a_definition_never_replaces_a_link_or_a_device_and_needs_a_plist(monkeypatch, tmp_path):
    fake = FakeLaunchd(tmp_path)
    target = tmp_path / "target.plist"
    target.write_bytes(fake.plist.read_bytes())
    link = tmp_path / "link.plist"
    link.symlink_to(target)
    refused = run(monkeypatch, fake, fake.args(state="loaded", plist=str(link), definition=DEFINITION))
    assert refused["failed"] is True and "plist %s is a symbolic link" % link in refused["msg"], refused
    assert link.is_symlink() and target.read_bytes() == fake.plist.read_bytes() and fake.calls == []
    device = run(monkeypatch, fake, fake.args(state="loaded", plist="/dev/null", definition=DEFINITION))
    assert device["failed"] is True and "plist /dev/null is a character device" in device["msg"], device
    missing = run(monkeypatch, fake, dict(name=LABEL, definition=DEFINITION, launchctl_path=str(fake.tool)))
    assert missing["failed"] is True and "plist" in missing["msg"] and fake.calls == []
    names = run(monkeypatch, fake, dict(names=[LABEL], definition=DEFINITION, launchctl_path=str(fake.tool)))
    assert names["failed"] is True and fake.calls == []
