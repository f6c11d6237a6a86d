# SPDX-License-Identifier: GPL-3.0-or-later
"""`make demo`: bring up a lab of emulated Macs, protect them with pfguard, catch an attacker on one Mac
and block it on all of them, check every Mac with the doctor, write the ban report, tear the lab down."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB = str(BIN / "pfguard-lab")
ATTACKER = "198.51.100.200"
MACS = ("mac1", "mac2", "mac3")
# The demo's ban policy (the roles' defaults are 5 failures in 10 minutes, banned for an hour).
POLICY = ["-e", "pfguard_fail2ban_maxretry=3", "-e", "pfguard_fail2ban_findtime=300",
          "-e", "pfguard_fail2ban_bantime=600"]  # fmt: skip
REPORT = REPO / "reports" / "pfguard-report.html"


class DemoFailed(Exception):
    pass


def say(text: str) -> None:
    print("\n== " + textwrap.fill(text, width=100, subsequent_indent="   "), flush=True)


def run(argv: list[str], check: bool = True, quiet: bool = False, echo: bool = True) -> subprocess.CompletedProcess:
    if echo:
        print("$ " + " ".join(argv), flush=True)
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "false"}
    proc = subprocess.run(argv, text=True, capture_output=True, cwd=REPO, check=False, env=env,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    if not quiet or proc.returncode != 0:
        sys.stdout.write(proc.stdout)
        sys.stdout.write(proc.stderr)
    if check and proc.returncode != 0:
        raise DemoFailed(f"`{' '.join(argv)}` failed with exit {proc.returncode}")
    return proc


def playbook(inventory: str, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run playbooks/<name>; print only from the summary task on (the plays end with one)."""
    proc = run([str(BIN / "ansible-playbook"), "-i", inventory, f"playbooks/{name}", *args], check=check,
               quiet=True)  # fmt: skip
    lines = proc.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("TASK") and "Summar" in line), None)
    if start is None:
        start = next(i for i, line in enumerate(lines) if line.startswith("PLAY RECAP"))
    print("\n".join(line for line in lines[start:] if line.strip()))
    return proc


def probe(host: str, source: str) -> bool:
    return run([LAB, "probe", host, "--from", source], check=False).returncode == 0


def expect(condition: bool, failure: str) -> None:
    if not condition:
        raise DemoFailed(failure)


def wait_for_ban(host: str, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shown = run([LAB, "exec", host, "--", "/sbin/pfctl", "-q", "-a", "f2b/sshd", "-t", "f2b-sshd", "-T", "show"],
                    check=False, quiet=True, echo=False)  # fmt: skip
        if ATTACKER in shown.stdout.split():
            return True
        time.sleep(0.5)
    return False


def demo() -> None:
    say("Bringing up a lab: mac1 (macOS 26, Apple silicon, fail2ban 1.1.0), mac2 (macOS 15, Intel, fail2ban "
        "1.0.2), mac3 (macOS 12 with Server.app), an attacker (198.51.100.200) outside the trusted network "
        "198.51.100.0/25 and a trusted host (198.51.100.50) inside it.")
    inventory = run([LAB, "up"], quiet=True).stdout.strip().splitlines()[-1]
    run([LAB, "status"])

    say("Out of the box a Mac protects nothing: macOS loads /etc/pf.conf at boot but leaves PF disabled.")
    print(run([LAB, "exec", "mac1", "--", "/sbin/pfctl", "-s", "info"], quiet=True).stdout.splitlines()[0])

    say("Running pfguard's main job, playbooks/site.yml, on the whole fleet: PF anchor and boot daemon, "
        "fail2ban on the unified log, the Adaptive Firewall whitelist on mac3. The lab's policy: 3 failed "
        "logins within 5 minutes ban an address for 10 minutes.")
    playbook(inventory, "site.yml", *POLICY)

    say("The attacker guesses passwords on mac1, three times.")
    run([LAB, "attack", "mac1", "--failures", "3"], check=False)
    expect(wait_for_ban("mac1"), "fail2ban did not ban the attacker on mac1")
    say("fail2ban banned it on mac1, into PF table f2b-sshd; a new connection from the attacker now times "
        "out, while the trusted host still gets in:")
    run([LAB, "exec", "mac1", "--", "/opt/homebrew/bin/fail2ban-client", "-c", "/opt/homebrew/etc/fail2ban",
         "status", "sshd"])  # fmt: skip
    expect(not probe("mac1", "attacker"), "the attacker still reaches mac1")
    expect(probe("mac1", "trusted"), "the trusted host no longer reaches mac1")

    say("mac2 and mac3 never saw the attacker, so it still reaches them:")
    expect(probe("mac2", "attacker") and probe("mac3", "attacker"), "mac2 or mac3 already blocked the attacker")

    say("playbooks/sync.yml collects every Mac's fail2ban bans and puts their union into pfguard's "
        "blocklist on every Mac (open connections killed, kept across reboots):")
    playbook(inventory, "sync.yml")
    for host in MACS:
        expect(not probe(host, "attacker"), f"the attacker still reaches {host} after the sync")
    expect(all(probe(host, "trusted") for host in MACS), "the trusted host lost access after the sync")

    say("playbooks/doctor.yml checks every link of the chain on every Mac (PF enabled, anchors hooked, "
        "tables referenced by block rules, fail2ban and its jail running, sshd's log reaching the jail, "
        "the LaunchDaemons loaded) and names the first broken one:")
    playbook(inventory, "doctor.yml")

    say("playbooks/report.yml writes the fleet's ban report (HTML, with a chart) and prints it as a table:")
    playbook(inventory, "report.yml", "-e", f"pfguard_report_path={REPORT}")
    expect(REPORT.is_file(), f"no report at {REPORT}")


def lab_is_gone() -> bool:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return "pfglab-" not in namespaces and not Path("/run/pfguard-lab/lab.json").exists()


def main() -> int:
    started = time.monotonic()
    failure = None
    try:
        demo()
    except DemoFailed as exc:
        failure = str(exc)
    finally:
        say("Tearing the lab down.")
        run([LAB, "down"], check=False)
    gone = lab_is_gone()
    if failure:
        say(f"demo failed: {failure}" + ("" if gone else " (and the lab is still up: run `pfguard-lab down`)"))
        return 1
    if not gone:
        say("demo failed: the lab is still there after `pfguard-lab down`")
        return 1
    say(f"Done in {time.monotonic() - started:.0f} s; the lab is gone. The ban report is at {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
