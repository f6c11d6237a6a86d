# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos.preflight on the lab fleet: every Mac `ready` with changed=0 after site.yml, and each
missing prerequisite named on the Mac that lacks it, one line per problem (roles/preflight/README.md).

Each break is made through the lab's console (`pfguard-lab exec`, root inside the Mac) and undone in a
finalizer, even when the test fails: /usr/bin/python3 (the machine's own, seen through the Mac's overlay
root) is moved aside and replaced by a stand-in; Homebrew's brew is moved or given to root; the emulated
sw_vers reads a SystemVersion.plist written with the lab's own helper; sshd is disabled or booted out
in the lab's launchd.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from fleet_fixtures import BREW_PREFIX, MACS, breaking
from lab_fixtures import wait_for
from pfguard_lab.emulators import sw_vers

pytest_plugins = ["lab_fixtures", "fleet_fixtures"]

PLAY = """\
- name: Check every Mac before pfguard changes anything
  hosts: macs
  gather_facts: false
  roles:
    - role: pfguard.macos.preflight
  tasks:
    - name: Run a task after the preflight
      ansible.builtin.debug:
        msg: after the preflight
"""
SUMMARY_TASK = "Summarize every Mac's preflight"
FAIL_TASK = "Fail every Mac that is not ready for pfguard"
LINE = re.compile(r"^\s+(mac\d+): (.+?)\s*$", re.MULTILINE)
PYTHON = "/usr/bin/python3"
SYSTEM_VERSION = "/System/Library/CoreServices/SystemVersion.plist"
SSHD = "com.openssh.sshd"
SSHD_PLIST = f"/System/Library/LaunchDaemons/{SSHD}.plist"
# What /usr/bin/python3 prints on a Mac without the Command Line Tools (Apple's stub), exit 1.
CLT_STUB = (
    "xcode-select: note: No developer tools were found, requesting install.\n"
    "If developer tools are located at a non-default location on disk, use `sudo xcode-select --switch "
    "path/to/Xcode.app` to specify the Xcode that you wish to use for command line developer tools, and "
    "cancel the installation dialog.\nSee `man xcode-select` for more details.\n"
)


@pytest.fixture(scope="module")
def play(tmp_path_factory):
    path = tmp_path_factory.mktemp("preflight") / "preflight.yml"
    path.write_text(PLAY)
    return path


def run_preflight(fleet, play, *args, changes=False, **extra_vars):
    """The play's run and the summary's lines per host. It must change nothing (unless `changes`: the
    unattended Homebrew install), and the summary must come before the task that fails the Macs."""
    run = fleet.lab.playbook(play, *args, extra_vars=extra_vars or None)
    summary = task_output(run, SUMMARY_TASK)
    lines: dict[str, list[str]] = {}
    for host, line in LINE.findall(summary):
        lines.setdefault(host, []).append(line)
    assert lines, f"no summary lines\n{run}"
    assert changes or set(run.changed().values()) == {0}, str(run)
    if FAIL_TASK in run.stdout:
        assert run.stdout.index(SUMMARY_TASK) < run.stdout.index(FAIL_TASK), str(run)
    return run, lines


# The lab fleet's macOS versions (lab/pfguard_lab/data/fleet.yml).
LAB_VERSIONS = {"mac1": "26.2", "mac2": "15.1", "mac3": "12.7"}


def ready(host: str) -> list[str]:
    """The line of a Mac that has everything, as the lab fleet after site.yml does."""
    return [f"ready: macOS {LAB_VERSIONS[host]}, {PYTHON} {python_version()}, sudo to root, "
            f"Homebrew at {BREW_PREFIX[host]} (admin), Remote Login on"]  # fmt: skip


def task_output(run, task: str) -> str:
    """What the run printed under one task."""
    assert f"{task}]" in run.stdout, str(run)
    return run.stdout.split(f"{task}]", 1)[1].split("TASK [", 1)[0]


def python_version() -> str:
    """The version of the machine's /usr/bin/python3, which the Macs' overlay roots show."""
    out = subprocess.run([PYTHON, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                         capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
    return out.stdout.strip()


def assert_failed_only(run, broken: set[str]):
    """The broken Macs failed (once, on the final task); the others did not; no host was unreachable."""
    for host in MACS:
        counters = run.recap[host]
        assert counters["unreachable"] == 0, str(run)
        assert counters["failed"] == (1 if host in broken else 0), str(run)
    assert (run.returncode != 0) == bool(broken), str(run)


@pytest.fixture
def breaker(fleet):
    """fleet_fixtures.breaking: break now, restore at teardown, even when the test fails."""
    with breaking(fleet) as break_:
        yield break_


def stand_in(path: str, body: str) -> tuple[str, str]:
    """(break, restore) scripts: move the Mac's `path` aside and put a /bin/sh stand-in running `body` there."""
    script = shlex.quote("#!/bin/sh\n" + body)
    return (f"mv {path} {path}.pfguard-test && printf '%s' {script} > {path} && chmod 0755 {path}",
            f"mv -f {path}.pfguard-test {path}")  # fmt: skip


def stand_in_python(breaker, host: str, body: str):
    breaker(host, *stand_in(PYTHON, body))


def apple_silicon(breaker, host: str):
    """Make `uname -m` say arm64 on the Mac. The lab emulates sw_vers but not uname, whose -m reports
    this machine's CPU (a lab Mac's `arch` is only a label); everything else goes to the real uname."""
    body = 'if [ "$#" -eq 1 ] && [ "$1" = -m ]; then echo arm64; exit 0; fi\nexec /usr/bin/uname.pfguard-test "$@"\n'
    breaker(host, *stand_in("/usr/bin/uname", body))


def test_healthy_fleet_is_ready_and_unchanged(fleet, play):
    run, lines = run_preflight(fleet, play)
    assert lines == {host: ready(host) for host in MACS}, str(run)
    assert_failed_only(run, set())
    assert run.stdout.count("msg: after the preflight") == len(MACS), str(run)


def test_check_mode_is_ready_too(fleet, play):
    run, lines = run_preflight(fleet, play, "--check")
    assert lines == {host: ready(host) for host in MACS}, str(run)
    assert_failed_only(run, set())


def test_hosts_that_are_not_macos_are_skipped_and_keep_running_the_play(fleet, play):
    # The lab's Macs say Linux to uname; without the lab's override they are not Macs.
    run, lines = run_preflight(fleet, play, pfguard_assume_darwin=False)
    assert lines == {host: ["skipped: not macOS (Linux); pfguard changes nothing here"] for host in MACS}, str(run)
    assert_failed_only(run, set())
    assert run.stdout.count("msg: after the preflight") == len(MACS), str(run)


def test_the_command_line_tools_stub_is_named(fleet, play, breaker):
    stand_in_python(breaker, "mac1", f"printf '%s' {shlex.quote(CLT_STUB)} >&2\nexit 1\n")
    run, lines = run_preflight(fleet, play)
    assert lines["mac1"] == [
        f"{PYTHON} does not run (exit 1: xcode-select: note: No developer tools were found, requesting install.)"
        " — fix: install the Command Line Tools at the Mac with `xcode-select --install`, or headless with"
        " `softwareupdate --list` then `softwareupdate --install '<the Command Line Tools label>'`; or set"
        " ansible_python_interpreter to a Python 3.8 or later"
    ], str(run)
    assert lines["mac2"] == ready("mac2") and lines["mac3"] == ready("mac3"), str(run)
    assert_failed_only(run, {"mac1"})


def test_no_developer_directory_is_named_without_running_the_stub(fleet, play, breaker):
    # xcode-select -p prints nothing when no developer directory is set: the stub must not even be run
    # (it would open the install dialog); the stand-in python3 leaves a mark if it is.
    mark = "/var/root/python3-was-run"
    stand_in_python(breaker, "mac2", f"touch {mark}\nexit 1\n")
    xcode_select = "/usr/bin/xcode-select"  # macOS has one; the lab's Macs have none
    breaker("mac2", f"printf '#!/bin/sh\\nexit 2\\n' > {xcode_select} && chmod 0755 {xcode_select}",
            f"rm -f {xcode_select} {mark}")  # fmt: skip
    run, lines = run_preflight(fleet, play)
    assert lines["mac2"] == [
        "no Command Line Tools: xcode-select names no developer directory, so /usr/bin/python3 is only Apple's"
        " stub and Ansible's modules cannot run — fix: install the Command Line Tools at the Mac with"
        " `xcode-select --install`, or headless with `softwareupdate --list` then"
        " `softwareupdate --install '<the Command Line Tools label>'`"
    ], str(run)
    assert fleet.lab.exec("mac2", "test", "-e", mark).returncode == 1, "the stub was run"
    assert_failed_only(run, {"mac2"})


def test_a_python_that_hangs_is_stopped_by_the_timeout(fleet, play, breaker):
    stand_in_python(breaker, "mac3", "exec sleep 20\n")
    run, lines = run_preflight(fleet, play, "--limit", "mac3", pfguard_preflight_timeout=3)
    assert len(lines["mac3"]) == 1 and lines["mac3"][0].startswith(f"{PYTHON} did not finish within 3 s ("), str(run)
    assert "— fix: run it at the Mac to see what it waits for;" in lines["mac3"][0], str(run)
    assert run.recap["mac3"]["failed"] == 1, str(run)


def test_a_wrong_become_password_is_named_on_every_mac(fleet, play):
    run, lines = run_preflight(fleet, play, ansible_become_password="not-the-admin-password")
    expected = ("sudo to root as admin failed (Incorrect sudo password) — fix: pass -K (--ask-become-pass), set"
                " ansible_become_password from an ansible-vault file, or give admin a NOPASSWD sudoers drop-in"
                " (docs/macos-prerequisites.md#become-sudo-on-macs)")  # fmt: skip
    assert lines == {host: [expected] for host in MACS}, str(run)
    assert_failed_only(run, set(MACS))


NO_BREW = "no Homebrew at /opt/homebrew/bin/brew or /usr/local/bin/brew"
BREW_FIX = (
    " — fix: install Homebrew as the admin user (https://docs.brew.sh/Installation), set pfguard_homebrew_prefix to"
    " where it is, or set pfguard_homebrew_install: true to let pfguard install it unattended"
)
CANNOT_INSTALL = ", and pfguard_homebrew_install cannot install it: "


def move_brew_aside(breaker, host: str):
    brew = f"{BREW_PREFIX[host]}/bin/brew"
    breaker(host, f"mv {brew} {brew}.pfguard-test", f"mv {brew}.pfguard-test {brew}")


@pytest.mark.extended  # CI's time budget: `make test-extended` runs it
def test_missing_homebrew_is_named(fleet, play, breaker):
    move_brew_aside(breaker, "mac2")
    run, lines = run_preflight(fleet, play)
    assert lines["mac2"] == [NO_BREW + BREW_FIX], str(run)
    assert_failed_only(run, {"mac2"})

    # Check mode installs nothing and says so.
    run, lines = run_preflight(fleet, play, "--check", "--limit", "mac2", pfguard_homebrew_install=True)
    assert lines["mac2"] == [f"{NO_BREW} (check mode: pfguard_homebrew_install would install it){BREW_FIX}"], str(run)

    # Homebrew's installer aborts on Intel Macs (mac2 is x86_64): refused before anything is downloaded.
    run, lines = run_preflight(fleet, play, "--limit", "mac2", pfguard_homebrew_install=True)
    assert lines["mac2"] == [
        NO_BREW + CANNOT_INSTALL + "Homebrew's installer supports Apple silicon (arm64) Macs only, not x86_64 — fix:"
        " install Homebrew on this Mac by hand as the admin user (https://docs.brew.sh/Installation#alternative-installs)"
    ], str(run)
    assert "skipping: [mac2]" in task_output(run, "Make a file for the installer"), str(run)


@pytest.mark.extended  # CI's time budget: `make test-extended` runs it
def test_unattended_install_is_refused_when_it_cannot_work(fleet, play, breaker):
    apple_silicon(breaker, "mac1")  # the installer would put Homebrew in /opt/homebrew
    move_brew_aside(breaker, "mac1")
    # The installer runs sudo -n; the lab's admin needs a password for sudo (changed=0: no file was made).
    run, lines = run_preflight(fleet, play, "--limit", "mac1", pfguard_homebrew_install=True)
    assert len(lines["mac1"]) == 1, str(run)
    assert lines["mac1"][0].startswith(
        NO_BREW + CANNOT_INSTALL + "the installer runs sudo -n as admin, and admin needs a password for sudo ("
    ), str(run)
    assert lines["mac1"][0].endswith(
        ") — fix: give admin a NOPASSWD sudoers drop-in while it installs"
        " (docs/macos-prerequisites.md#become-sudo-on-macs), or install Homebrew by hand as that user"
    ), str(run)
    assert "skipping: [mac1]" in task_output(run, "Make a file for the installer"), str(run)

    run, lines = run_preflight(fleet, play, "--limit", "mac1", pfguard_homebrew_install=True,
                               pfguard_homebrew_user="root")  # fmt: skip
    assert lines["mac1"] == [
        NO_BREW
        + CANNOT_INSTALL
        + "Homebrew's installer refuses root — fix: set pfguard_homebrew_user to the admin user",
        "pfguard_homebrew_user is root, and Homebrew refuses to run as root — fix: set it to the admin user that owns"
        " /usr/local, or leave it empty",
    ], str(run)

    run, lines = run_preflight(fleet, play, "--limit", "mac1", pfguard_homebrew_install=True,
                               pfguard_homebrew_prefix="/usr/local")  # fmt: skip
    assert lines["mac1"] == [
        "no Homebrew at /usr/local/bin/brew" + CANNOT_INSTALL + "Homebrew's installer puts it in /opt/homebrew on this"
        " arm64 Mac, not in pfguard_homebrew_prefix /usr/local — fix: leave pfguard_homebrew_prefix empty, or install"
        " Homebrew there by hand"
    ], str(run)


def test_unattended_install_that_cannot_download_is_named_and_leaves_nothing(fleet, play, breaker):
    # With passwordless sudo the installer is fetched. The lab has no internet: nothing listens on the
    # URL given, the download fails, and the file made for it is removed. (The real installer is UNTESTED.)
    apple_silicon(breaker, "mac3")
    move_brew_aside(breaker, "mac3")
    dropin = "/etc/sudoers.d/pfguard-preflight-test"
    breaker("mac3", f"printf 'admin ALL = (ALL) NOPASSWD: ALL\\n' > {dropin} && chmod 0440 {dropin}", f"rm -f {dropin}")
    url = "https://127.0.0.1:9/install.sh"
    run, lines = run_preflight(fleet, play, "--limit", "mac3", changes=True, pfguard_homebrew_install=True,
                               pfguard_homebrew_install_url=url)  # fmt: skip
    assert len(lines["mac3"]) == 1, str(run)
    assert lines["mac3"][0].startswith(NO_BREW + ": Homebrew's installer failed ("), str(run)
    assert lines["mac3"][0].endswith(
        f') — fix: run it by hand as admin: NONINTERACTIVE=1 /bin/bash -c "$(curl -fsSL {url})"'
    ), str(run)
    assert "Run Homebrew's installer unattended]" not in run.stdout, str(run)  # the rescue came first
    assert "changed: [mac3]" in task_output(run, "Remove the installer file"), str(run)
    leftovers = fleet.lab.exec(
        "mac3", "/bin/sh", "-c", "find /tmp /var/tmp /Users/admin -name '*.pfguard-brew-install.sh'"
    )
    assert leftovers.returncode == 0 and leftovers.stdout == "", leftovers
    assert run.recap["mac3"]["failed"] == 1, str(run)


def test_homebrew_owned_by_root_is_named(fleet, play, breaker):
    brew = f"{BREW_PREFIX['mac1']}/bin/brew"
    owner = fleet.lab.sh("mac1", f"stat -L -c %u:%g {brew}").strip()
    assert owner and not owner.startswith("0:"), owner
    breaker("mac1", f"chown -h 0:0 {brew} && chown 0:0 $(readlink -f {brew})",
            f"chown -h {owner} {brew} && chown {owner} $(readlink -f {brew})")  # fmt: skip
    run, lines = run_preflight(fleet, play)
    assert lines["mac1"] == [
        f"{brew} is owned by root, and Homebrew refuses to run as root — fix: reinstall Homebrew as the admin user"
        " (https://docs.brew.sh/Installation), or give its files back to that user with chown"
    ], str(run)
    assert_failed_only(run, {"mac1"})


def test_a_homebrew_user_that_does_not_own_homebrew_is_named(fleet, play):
    run, lines = run_preflight(fleet, play, "--limit", "mac3", pfguard_homebrew_user="nobody")
    assert lines["mac3"] == [
        f"pfguard_homebrew_user is nobody, but {BREW_PREFIX['mac3']}/bin/brew belongs to admin — fix: leave"
        " pfguard_homebrew_user empty or set it to admin"
    ], str(run)


@pytest.mark.parametrize("version,build,problem", [
    ("11.7.10", "20G1427", "macOS 11.7.10 is not supported: pfguard supports macOS 12 to 26 — fix: upgrade macOS to"
                           " 12 or later"),
    ("27.0", "27A100", "macOS 27.0 is newer than pfguard supports (macOS 12 to 26) — fix: use a pfguard release that"
                       " supports it, or raise pfguard_preflight_macos_max once docs/macos-prerequisites.md says it"
                       " is verified"),
], ids=["older", "newer"])  # fmt: skip
def test_an_unsupported_macos_version_is_named(fleet, play, breaker, version, build, problem):
    aside = "/var/root/SystemVersion.plist.pfguard-test"
    # The lab's own SystemVersion.plist for that version, which its sw_vers reads like the real one.
    breaker("mac3", f"cp -p {SYSTEM_VERSION} {aside} && cat > {SYSTEM_VERSION}", f"mv -f {aside} {SYSTEM_VERSION}",
            input_text=sw_vers.system_version_plist(version, build).decode())  # fmt: skip
    assert fleet.lab.sh("mac3", "/usr/bin/sw_vers -productVersion").strip() == version
    run, lines = run_preflight(fleet, play)
    assert lines["mac3"] == [problem], str(run)
    assert_failed_only(run, {"mac3"})


def test_settings_that_cannot_be_right_are_named_before_any_probe(fleet, play):
    run, lines = run_preflight(fleet, play, "--limit", "mac1", pfguard_homebrew_prefix="opt/homebrew",
                               pfguard_preflight_macos_min=27)  # fmt: skip
    assert lines["mac1"] == [
        'pfguard_homebrew_prefix "opt/homebrew" is not an absolute path — fix: set it to Homebrew\'s prefix'
        " (/opt/homebrew or /usr/local), or leave it empty to detect it",
        "pfguard_preflight_macos_min 27 is above pfguard_preflight_macos_max 26 — fix: set the minimum at or below"
        " the maximum",
    ], str(run)
    assert "ok: [mac1]" not in task_output(run, f"Read the version of {PYTHON}"), str(run)


def test_sshd_disabled_in_launchd_is_named(fleet, play, breaker):
    breaker("mac1", f"/bin/launchctl disable system/{SSHD}", f"/bin/launchctl enable system/{SSHD}")
    run, lines = run_preflight(fleet, play)
    assert lines["mac1"] == [
        f"sshd (launchd job {SSHD}) is disabled in launchd: Remote Login goes off at the next reboot — fix: turn on"
        " Remote Login at the Mac (System Settings > General > Sharing), or run"
        f" `sudo launchctl enable system/{SSHD}` and `sudo launchctl bootstrap system"
        " /System/Library/LaunchDaemons/ssh.plist`"
    ], str(run)
    assert_failed_only(run, {"mac1"})


def sshd_state(fleet, host: str) -> str:
    """launchd's view of sshd, sshd's processes and launchd's last log lines, for a failure message."""
    script = (f"/bin/launchctl print system/{SSHD} | head -12; ps -eo pid,pgid,sid,stat,args | grep '[s]shd';"
              " tail -n 15 /var/log/com.apple.xpc.launchd/launchd.log")  # fmt: skip
    shown = fleet.lab.exec(host, "/bin/sh", "-c", script + "; ss -ltn")
    probe = fleet.lab.run("probe", host, "--from", "trusted")
    return shown.stdout + shown.stderr + probe.stdout + probe.stderr


@pytest.fixture
def held_connection(fleet):
    """An SSH master connection to mac1 as Ansible makes them (admin, the lab's key), whose socket the
    preflight's run reuses: it outlives sshd, as Ansible's ControlPersist connections do."""
    group = fleet.lab.inventory()["all"]["children"]["macs"]["vars"]
    address = fleet.lab.macs()["mac1"]["ansible_host"]
    socket = f"{group['ansible_control_path_dir']}/pfguard-preflight-test-mac1"
    common = ["-o", f"ControlPath={socket}", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
              "-o", "BatchMode=yes", "-i", group["ansible_ssh_private_key_file"], f"admin@{address}"]  # fmt: skip
    subprocess.run(["ssh", "-f", "-N", "-M", "-o", "ControlPersist=yes", *common], check=True, timeout=30,
                   stdin=subprocess.DEVNULL, capture_output=True)  # fmt: skip
    try:
        yield socket
    finally:
        subprocess.run(["ssh", "-O", "exit", *common], timeout=30, stdin=subprocess.DEVNULL, capture_output=True)


# In `make fleet-extended`, out of `make test` for CI's time budget (Makefile).
@pytest.mark.extended
def test_sshd_not_loaded_is_named_then_the_mac_is_unreachable(fleet, play, breaker, held_connection):
    breaker(
        "mac1",
        f"/bin/launchctl bootout system/{SSHD}",
        f"/bin/launchctl print system/{SSHD} >/dev/null 2>&1 || /bin/launchctl bootstrap system {SSHD_PLIST}",
    )
    wait_for(lambda: not fleet.probe("mac1", "trusted"), 30, what="mac1's sshd to stop answering")
    try:
        # Over the connection still open: the preflight sees sshd gone from launchd.
        run, lines = run_preflight(fleet, play, "--limit", "mac1", ansible_control_path=held_connection)
        assert lines["mac1"] == [
            f"sshd (launchd job {SSHD}) is not loaded: Remote Login is off, and the Mac refuses SSH once this"
            " connection closes — fix: turn on Remote Login at the Mac (System Settings > General > Sharing), or"
            f" run `sudo launchctl enable system/{SSHD}` and `sudo launchctl bootstrap system"
            " /System/Library/LaunchDaemons/ssh.plist`"
        ], str(run)
        # Without any held connection mac1 is unreachable; the summary still names it.
        run, lines = run_preflight(fleet, play, ansible_ssh_args="-o ControlMaster=no -o ControlPath=none")
        address = fleet.lab.macs()["mac1"]["ansible_host"]
        assert lines["mac1"] == [
            "not checked: unreachable, or a task failed on it before the preflight ended (see above) — fix: turn on"
            " Remote Login (System Settings > General > Sharing) and check that"
            f" `ssh admin@{address}` works with the key in the inventory"
        ], str(run)
        assert lines["mac2"] == ready("mac2") and lines["mac3"] == ready("mac3"), str(run)
        assert run.recap["mac1"]["unreachable"] == 1 and run.returncode != 0, str(run)
    finally:
        fleet.lab.exec("mac1", "/bin/sh", "-c",
                       f"/bin/launchctl print system/{SSHD} >/dev/null 2>&1 || "
                       f"/bin/launchctl bootstrap system {SSHD_PLIST}")  # fmt: skip
        wait_for(lambda: fleet.probe("mac1", "trusted"), 30, what="mac1's sshd to answer again",
                 detail=lambda: sshd_state(fleet, "mac1"))  # fmt: skip


def test_fleet_is_ready_again(fleet, play):
    run, lines = run_preflight(fleet, play)
    assert lines == {host: ready(host) for host in MACS}, str(run)
    assert_failed_only(run, set())
