# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos.launchd_job run by real `ansible` over SSH (admin, root by sudo) against a lab Mac's emulated
launchd (docs/reference/macos.md, launchctl verbs to launchctl quirks): a small test LaunchDaemon is loaded,
enabled again after `launchctl disable`, restarted, unloaded; check and diff mode; hostile input, a missing,
symlinked or foreign plist, and a hanging launchctl. Every refusal must leave launchd and the files as they
were. The fixture removes the test job whatever happens.

Run under the lab lock: flock /tmp/pfguard-lab.lock .venv/bin/pytest -q -p no:cacheprovider \
tests/lab/test_launchd_job_module.py
"""

from __future__ import annotations

import plistlib
import re
import time

import pytest
from hostile import assert_refused
from lab_fixtures import wait_for

pytest_plugins = ["lab_fixtures"]
pytestmark = pytest.mark.timeout(600)

MAC = "mac2"
MODULE = "pfguard.macos.launchd_job"
LABEL = "org.pfguard.test-job"
TARGET = f"system/{LABEL}"
DAEMONS = "/Library/LaunchDaemons"
PLIST = f"{DAEMONS}/{LABEL}.plist"
TEST_DIR = "/usr/local/pfguard-test"
SLEEPER = f"{TEST_DIR}/sleeper.sh"
# Plists the refusal tests point at, next to the real one.
LINK = f"{DAEMONS}/{LABEL}-link.plist"
WRITABLE = f"{DAEMONS}/{LABEL}-writable.plist"
FOREIGN = f"{DAEMONS}/{LABEL}-foreign.plist"
MISSING = f"{DAEMONS}/{LABEL}-missing.plist"
# A launchctl that hangs on bootstrap and is launchctl otherwise.
HUNG = f"{TEST_DIR}/launchctl-hung"
HUNG_SCRIPT = '#!/bin/sh\nif [ "$1" = bootstrap ]; then exec sleep 600; fi\nexec /bin/launchctl "$@"\n'
SPEC = {"Label": LABEL, "ProgramArguments": ["/bin/sh", SLEEPER], "RunAtLoad": True, "KeepAlive": True}


def install(lab, path: str, data: bytes | str, mode: str) -> None:
    """Write `path` on the Mac as root:wheel with `mode`."""
    text = data.decode() if isinstance(data, bytes) else data
    lab.exec(MAC, "/bin/sh", "-c", f"umask 077 && cat > '{path}' && chown 0:0 '{path}' && chmod {mode} '{path}'",
             input_text=text)  # fmt: skip
    assert lab.sh(MAC, f"stat -c '%u %g %a' '{path}'").split() == ["0", "0", mode.lstrip("0")]


def launchctl(lab, *args: str):
    return lab.exec(MAC, "/bin/launchctl", *args)


def printed(lab) -> tuple[int, dict]:
    """(exit code, top-level `key = value` fields) of `launchctl print system/LABEL`."""
    result = launchctl(lab, "print", TARGET)
    fields = dict(re.findall(r"^\t([a-z ]+) = (.*)$", result.stdout, re.MULTILINE))
    return result.returncode, fields


def override(lab) -> str | None:
    """The store's word for the test job (`enabled`/`disabled`), None without an entry."""
    match = re.search(rf'^\s*"{re.escape(LABEL)}" => (\w+)$', launchctl(lab, "print-disabled", "system").stdout,
                      re.MULTILINE)  # fmt: skip
    return match.group(1) if match else None


def snapshot(lab) -> tuple:
    """Everything a refused or check-mode run must leave alone: whether launchd has the job and which pid it
    runs, the store's override, and the test files (owner, mode, content)."""
    rc, fields = printed(lab)
    files = lab.sh(MAC, f"cd {DAEMONS} && for f in {LABEL}*; do stat -c '%N %u %g %a' \"$f\"; "
                        f"[ -L \"$f\" ] || sha256sum \"$f\"; done")  # fmt: skip
    return rc, fields.get("pid"), fields.get("runs"), override(lab), files


def wait_gone(lab, timeout: float = 20) -> None:
    wait_for(lambda: printed(lab)[0] == 113, timeout, interval=0.2, what=f"{TARGET} to be unloaded")


def unload_raw(lab, disable: bool = False) -> None:
    """Put the job in a known state with launchctl itself: not loaded, enabled (or disabled)."""
    launchctl(lab, "bootout", TARGET)
    wait_gone(lab)
    assert launchctl(lab, "disable" if disable else "enable", TARGET).returncode == 0


def load_raw(lab) -> int:
    """The job loaded and running with launchctl itself; its pid."""
    unload_raw(lab)
    result = launchctl(lab, "bootstrap", "system", PLIST)
    assert result.returncode == 0, result.stderr
    return int(wait_pid(lab))


def wait_pid(lab, other_than: str | None = None, timeout: float = 20) -> str:
    def new_pid():
        pid = printed(lab)[1].get("pid")
        return pid if pid and pid != other_than else None

    return wait_for(new_pid, timeout, interval=0.2, what=f"{TARGET} to run with a (new) pid")


def alive(lab, pid) -> bool:
    return lab.exec(MAC, "kill", "-0", str(pid)).returncode == 0


def refused(rc: int, result: dict, *names: str) -> str:
    """hostile.assert_refused for a result from `lab.adhoc`. ansible-core 2.19 puts the placeholder
    `exception: (traceback unavailable)` into every failed result when tracebacks are not displayed; a module
    that crashed would instead leave module_stderr (and its traceback) in the result."""
    assert "module_stderr" not in result and "module_stdout" not in result, result
    if result.get("exception") == "(traceback unavailable)":
        result = {key: value for key, value in result.items() if key != "exception"}
    return assert_refused(rc, result, *names)


def module(lab, args: dict, *extra: str) -> tuple[int, dict]:
    return lab.adhoc(MAC, MODULE, args, *extra)


def args(**extra) -> dict:
    return {"name": LABEL, "plist": PLIST, **extra}


@pytest.fixture(scope="module")
def job(lab):
    lab.sh(MAC, f"mkdir -p {TEST_DIR} && chmod 755 {TEST_DIR}")
    install(lab, SLEEPER, "#!/bin/sh\nexec sleep 600\n", "0755")
    install(lab, HUNG, HUNG_SCRIPT, "0755")
    install(lab, PLIST, plistlib.dumps(SPEC), "0644")
    try:
        yield lab
    finally:
        launchctl(lab, "bootout", TARGET)
        launchctl(lab, "enable", TARGET)
        lab.exec(MAC, "/bin/sh", "-c", f"rm -f {DAEMONS}/{LABEL}*.plist; rm -rf {TEST_DIR}; pkill -f {HUNG}")
        wait_gone(lab)


def test_loads_then_a_second_run_changes_nothing(job):
    unload_raw(job)
    rc, first = module(job, args(state="loaded"))
    assert rc == 0, first
    assert first["changed"] is True and first["actions"] == ["bootstrap"]
    assert first["commands"] == [["/bin/launchctl", "bootstrap", "system", PLIST]]
    assert first["status_before"]["loaded"] is False
    status = first["status"]
    assert status["loaded"] is True and status["enabled"] is True and status["path"] == PLIST
    assert status["state"] == "running" and isinstance(status["pid"], int)
    code, fields = printed(job)
    assert code == 0 and fields["pid"] == str(status["pid"]) and alive(job, status["pid"])
    rc, second = module(job, args(state="loaded"))
    assert rc == 0 and second["changed"] is False and second["commands"] == [], second
    assert second["status"]["pid"] == status["pid"]


def test_a_job_disabled_with_launchctl_disable_is_enabled_again_and_loaded(job):
    unload_raw(job, disable=True)
    refused = launchctl(job, "bootstrap", "system", PLIST)  # what the role's raw bootstrap ran into
    assert (refused.returncode, refused.stderr) == (119, "Bootstrap failed: 119: Service is disabled\n")
    rc, result = module(job, args(state="loaded"))
    assert rc == 0, result
    assert result["actions"] == ["enable", "bootstrap"]
    assert result["status_before"]["enabled"] is False and result["status_before"]["override"] == "disabled"
    assert result["status"]["enabled"] is True and result["status"]["loaded"] is True
    assert override(job) == "enabled" and printed(job)[0] == 0


def test_a_loaded_job_disabled_in_the_store_is_enabled_without_a_restart(job):
    pid = load_raw(job)
    assert launchctl(job, "disable", TARGET).returncode == 0
    rc, result = module(job, args(state="loaded"))
    assert rc == 0 and result["actions"] == ["enable"], result
    assert result["status"]["pid"] == pid and override(job) == "enabled"


def test_restarted_runs_a_new_process(job):
    old = load_raw(job)
    rc, result = module(job, args(state="restarted"))
    assert rc == 0, result
    assert result["changed"] is True and result["actions"] == ["kickstart"]
    assert result["commands"] == [["/bin/launchctl", "kickstart", "-k", TARGET]]
    new = result["status"]["pid"]
    assert isinstance(new, int) and new != old and result["status"]["runs"] == result["status_before"]["runs"] + 1
    assert printed(job)[1]["pid"] == str(new) and alive(job, new) and not alive(job, old)


def test_reloaded_boots_out_and_bootstraps_the_current_plist(job):
    old = load_raw(job)
    rc, result = module(job, args(state="reloaded"))
    assert rc == 0 and result["actions"] == ["bootout", "bootstrap"], result
    assert result["status"]["runs"] == 1 and result["status"]["pid"] != old and not alive(job, old)


def test_unloaded_returns_once_launchd_has_removed_the_job(job):
    pid = load_raw(job)
    rc, result = module(job, {"name": LABEL, "state": "unloaded"})
    assert rc == 0, result
    assert result["changed"] is True and result["actions"] == ["bootout"]
    assert result["status"]["loaded"] is False
    # No waiting here: the module only returned once launchd no longer knew the job.
    assert printed(job)[0] == 113 and not alive(job, pid)
    rc, again = module(job, {"name": LABEL, "state": "unloaded"})
    assert rc == 0 and again["changed"] is False and again["commands"] == []


def test_unloaded_and_disabled_stays_off(job):
    load_raw(job)
    rc, result = module(job, {"name": LABEL, "state": "unloaded", "enabled": False})
    assert rc == 0 and result["actions"] == ["disable", "bootout"], result
    assert override(job) == "disabled" and printed(job)[0] == 113


def test_check_mode_reports_the_changes_and_makes_none(job):
    unload_raw(job, disable=True)
    before = snapshot(job)
    rc, result = module(job, args(state="loaded"), "--check")
    assert rc == 0, result
    assert result["changed"] is True and result["actions"] == ["enable", "bootstrap"]
    assert result["commands"] == [
        ["/bin/launchctl", "enable", TARGET],
        ["/bin/launchctl", "bootstrap", "system", PLIST],
    ]
    assert result["status"]["loaded"] is True and result["status"]["enabled"] is True
    assert snapshot(job) == before
    load_raw(job)
    before = snapshot(job)
    rc, result = module(job, {"name": LABEL, "state": "unloaded"}, "--check")
    assert rc == 0 and result["changed"] is True and result["actions"] == ["bootout"], result
    assert snapshot(job) == before


def test_diff_shows_loaded_and_enabled_before_and_after(job):
    unload_raw(job, disable=True)
    rc, result = module(job, args(state="loaded"), "--check", "--diff")
    assert rc == 0, result
    (status,) = result["diff"]
    assert status["before"] == "loaded: false\nenabled: false\n"
    assert status["after"] == "loaded: true\nenabled: true\n"
    assert status["before_header"] == TARGET


def test_without_a_state_it_only_reports(job):
    pid = load_raw(job)
    before = snapshot(job)
    rc, result = module(job, {"name": LABEL})
    assert rc == 0 and result["changed"] is False and result["commands"] == [], result
    assert result["status"]["loaded"] is True and result["status"]["pid"] == pid
    assert snapshot(job) == before


def test_names_reports_several_jobs_in_one_call(job):
    """The doctor's read of several jobs: launchd's answer for each, the store's override included, and
    nothing changed."""
    pid = load_raw(job)
    launchctl(job, "disable", TARGET)
    try:
        before = snapshot(job)
        rc, result = module(job, {"names": [LABEL, "org.pfguard.not-there"]})
        after = snapshot(job)
    finally:
        launchctl(job, "enable", TARGET)
    assert rc == 0 and result["changed"] is False and result["commands"] == [], result
    assert result["jobs"][LABEL]["loaded"] is True and result["jobs"][LABEL]["pid"] == pid, result
    assert result["jobs"][LABEL]["override"] == "disabled", result
    assert result["jobs"]["org.pfguard.not-there"]["loaded"] is False, result
    assert after == before


def installed_spec(lab) -> dict:
    return plistlib.loads(lab.exec(MAC, "cat", PLIST).stdout.encode())


def test_definition_installs_the_plist_loads_the_job_and_a_changed_one_reloads_it(job):
    """One task writes the plist (plistlib, root:wheel 0644) and loads the job; a second run changes
    nothing; a changed definition is written and reaches launchd by bootout and bootstrap; check mode
    writes nothing."""
    lab = job
    definition = {"ProgramArguments": ["/bin/sh", SLEEPER], "RunAtLoad": True, "KeepAlive": True}
    unload_raw(lab)
    lab.exec(MAC, "rm", "-f", PLIST)
    try:
        rc, first = module(lab, args(state="loaded", definition=definition))
        assert rc == 0 and first["changed"] is True and first["plist_changed"] is True, first
        assert first["actions"] == ["bootstrap"]
        assert lab.sh(MAC, f"stat -c '%u %g %a' {PLIST}").split() == ["0", "0", "644"]
        assert lab.sh(MAC, f"/usr/bin/plutil -lint {PLIST}").strip() == f"{PLIST}: OK"
        assert installed_spec(lab) == {**definition, "Label": LABEL}
        pid = int(wait_pid(lab))

        rc, again = module(lab, args(state="loaded", definition=definition))
        assert rc == 0 and again["changed"] is False and again["plist_changed"] is False, again
        assert again["commands"] == [] and printed(lab)[1]["pid"] == str(pid)

        changed = {**definition, "EnvironmentVariables": {"PFGUARD_TEST": "1"}}
        before = snapshot(lab)
        rc, checked = module(lab, args(state="loaded", definition=changed), "--check", "--diff")
        assert rc == 0 and checked["plist_changed"] is True and checked["actions"] == ["bootout", "bootstrap"]
        assert "PFGUARD_TEST" in checked["diff"][0]["after"] and "PFGUARD_TEST" not in checked["diff"][0]["before"]
        assert snapshot(lab) == before

        rc, reloaded = module(lab, args(state="loaded", definition=changed))
        assert rc == 0 and reloaded["actions"] == ["bootout", "bootstrap"], reloaded
        assert installed_spec(lab)["EnvironmentVariables"] == {"PFGUARD_TEST": "1"}
        assert int(wait_pid(lab, other_than=str(pid))) != pid and not alive(lab, pid)
    finally:
        install(lab, PLIST, plistlib.dumps(SPEC), "0644")


def test_definition_never_writes_through_a_link_or_a_bad_value(job):
    lab = job
    lab.sh(MAC, f"ln -sfn {PLIST} {LINK}")
    try:
        unload_raw(lab)
        before = snapshot(lab)
        definition = {"ProgramArguments": ["/bin/sh", SLEEPER], "RunAtLoad": True}
        message = refused(*module(lab, args(state="loaded", plist=LINK, definition=definition)), LINK)
        assert message == f"plist {LINK} is a symbolic link; only a regular file is written; nothing was changed"
        refused(*module(lab, args(state="loaded", definition={**definition, "Label": "org.pfguard.other"})),
                "definition's Label 'org.pfguard.other' is not name")  # fmt: skip
        refused(*module(lab, args(state="loaded", definition={**definition, "RunAtLoad": None})),
                "definition.RunAtLoad is None")  # fmt: skip
        assert snapshot(lab) == before and printed(lab)[0] == 113
    finally:
        lab.exec(MAC, "rm", "-f", LINK)


BAD_ARGS = [
    ("shell-name", dict(name=f"{LABEL}; reboot"), ("name", f"'{LABEL}; reboot'")),
    ("path-name", dict(name="../../etc/passwd"), ("name", "'../../etc/passwd'")),
    ("option-name", dict(name="-w"), ("name", "'-w'")),
    ("newline-name", dict(name=f"{LABEL}\nx"), ("name",)),
    ("zero-wait", dict(wait=0), ("wait 0 is out of range",)),
    ("text-wait", dict(wait="forever"), ("wait",)),
    ("disabled-and-loaded", dict(enabled=False), ("enabled=false cannot go with state=loaded",)),
    ("relative-plist", dict(plist="Library/LaunchDaemons/x.plist"), ("plist", "is not an absolute path")),
    ("relative-launchctl", dict(launchctl_path="bin/launchctl"), ("launchctl_path", "is not an absolute path")),
    ("device-launchctl", dict(launchctl_path="/dev/null"), ("launchctl not found or not executable at /dev/null",)),
    ("bad-state", dict(state="started"), ("state", "started")),
    ("zero-timeout", dict(command_timeout=0), ("command_timeout 0 is out of range",)),
    ("no-plist", dict(plist=None), ("state is loaded but all of the following are missing: plist",)),
]


@pytest.mark.parametrize("bad, names", [c[1:] for c in BAD_ARGS], ids=[c[0] for c in BAD_ARGS])
def test_bad_input_is_refused_naming_the_value_and_nothing_changes(job, bad, names):
    unload_raw(job, disable=True)
    before = snapshot(job)
    given = {key: value for key, value in {**args(state="loaded"), **bad}.items() if value is not None}
    refused(*module(job, given), *names)
    assert snapshot(job) == before


def test_a_missing_plist_is_refused_and_nothing_changes(job):
    unload_raw(job, disable=True)
    before = snapshot(job)
    rc, result = module(job, args(state="loaded", plist=MISSING))
    assert refused(rc, result) == f"plist {MISSING} does not exist; nothing was changed"
    assert snapshot(job) == before


def test_unsafe_or_foreign_plists_are_refused_and_nothing_changes(job):
    lab = job
    lab.sh(MAC, f"ln -sfn {PLIST} {LINK}")
    install(lab, WRITABLE, plistlib.dumps(SPEC), "0664")
    install(lab, FOREIGN, plistlib.dumps({**SPEC, "Label": "org.pfguard.other"}), "0644")
    try:
        unload_raw(lab)
        before = snapshot(lab)
        for path, reason in ((LINK, "is a symbolic link; it is not followed"), (WRITABLE, "has mode 0664"),
                             (FOREIGN, "has Label 'org.pfguard.other', not 'org.pfguard.test-job'")):  # fmt: skip
            message = refused(*module(lab, args(state="loaded", plist=path)), path, reason)
            assert message.endswith("nothing was changed")
            assert snapshot(lab) == before
        # launchd itself would have followed the link and loaded the job.
        assert printed(lab)[0] == 113
    finally:
        lab.exec(MAC, "rm", "-f", LINK, WRITABLE, FOREIGN)


def test_a_hanging_launchctl_is_killed_within_command_timeout_and_named(job):
    unload_raw(job, disable=True)
    before = snapshot(job)
    started = time.monotonic()
    rc, result = module(job, args(state="loaded", launchctl_path=HUNG, command_timeout=2))
    elapsed = time.monotonic() - started
    refused(rc, result, f"{HUNG} bootstrap system {PLIST} did not finish within 2 seconds and was killed")
    assert elapsed < 30
    # The enable before it ran (and is reported); the job was not loaded and nothing is left running.
    assert result["actions"] == ["enable", "bootstrap"]
    assert override(job) == "enabled" and printed(job)[0] == 113
    assert snapshot(job)[:3] == before[:3]
    assert lab_pgrep(job, HUNG) == "" and lab_pgrep(job, "sleep 600$") == ""


def lab_pgrep(lab, pattern: str) -> str:
    return lab.exec(MAC, "pgrep", "-f", pattern).stdout
