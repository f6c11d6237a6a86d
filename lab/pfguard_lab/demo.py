"""`make demo`: bring up a lab of emulated Macs, run pfguard's main job on it, show an attacker cut
off, tear the lab down."""

from __future__ import annotations

import json
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


def say(text: str) -> None:
    print("\n== " + textwrap.fill(text, width=100, subsequent_indent="   "), flush=True)


def run(argv: list[str], data: str | None = None, check: bool = True, quiet: bool = False):
    print("$ " + " ".join(argv), flush=True)
    proc = subprocess.run(argv, input=data, text=True, capture_output=True, cwd=REPO, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_DEPRECATION_WARNINGS": "false"})
    if not quiet or proc.returncode != 0:
        sys.stdout.write(proc.stdout)
        sys.stdout.write(proc.stderr)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(argv)}` failed with exit {proc.returncode}")
    return proc


def lab_exec(host: str, *argv: str, check: bool = True):
    return run([LAB, "exec", host, "--", *argv], check=check)


def probe(host: str, source: str) -> bool:
    return run([LAB, "probe", host, "--from", source], check=False).returncode == 0


def pf_status(host: str) -> None:
    info = run([LAB, "exec", host, "--", "/sbin/pfctl", "-s", "info"], quiet=True).stdout
    print(info.splitlines()[0])


def blocked_within(host: str, seconds: float) -> bool:
    """Whether the attacker's new connections to `host` fail within `seconds` (boot jobs may still run)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not probe(host, "attacker"):
            return True
        time.sleep(2)
    return False


def recap(output: str) -> str:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("PLAY RECAP"))
    return "\n".join(lines[start:])


def wait_for_ban(host: str, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shown = lab_exec(host, "/sbin/pfctl", "-a", "f2b/sshd", "-t", "f2b-sshd", "-T", "show", check=False)
        if ATTACKER in shown.stdout:
            return True
        time.sleep(1)
    return False


def demo() -> None:
    say("Bringing up a lab: mac1 (macOS 14, Apple silicon), mac2 (macOS 15, Intel), mac3 (macOS 12 with "
        "Server.app), an attacker outside the trusted network 198.51.100.0/25 and a trusted host inside it.")
    inventory = run([LAB, "up"]).stdout.strip().splitlines()[-1]
    run([LAB, "status"])

    say("Out of the box the Macs protect nothing: macOS loads /etc/pf.conf at boot but leaves PF disabled.")
    pf_status("mac1")

    say("Running pfguard's main job, playbooks/site.yml, on the whole fleet: PF anchor and boot daemon, "
        "fail2ban on the unified log, the Adaptive Firewall whitelist on mac3.")
    playbook = [str(BIN / "ansible-playbook"), "-i", inventory, "playbooks/site.yml"]
    print(recap(run(playbook, quiet=True).stdout))
    say("Running it again changes nothing:")
    second = recap(run(playbook, quiet=True).stdout)
    print(second)

    for host in ("mac1", "mac2"):
        say(f"The attacker guesses passwords on {host}"
            + (" (macOS 15: sshd's failures are logged by sshd-auth)." if host == "mac2" else "."))
        run([LAB, "attack", host, "--failures", "5"], check=False)
        banned = wait_for_ban(host)
        print(f"fail2ban banned {ATTACKER} on {host}: {banned}")
        attacker_ok, trusted_ok = probe(host, "attacker"), probe(host, "trusted")
        print(f"attacker can connect to {host}: {attacker_ok}; trusted host can: {trusted_ok}")
        if not banned or attacker_ok or not trusted_ok:
            raise SystemExit(f"demo: {host} did not cut the attacker off while letting the trusted host in")

    say("mac3 was never attacked, so the attacker still reaches it. One task puts the attacker into "
        "pfguard_blocklist on every Mac, with its open connections killed and the trusted networks protected:")
    ban = {"anchor": "pfguard", "table": "pfguard_blocklist", "addresses": [ATTACKER],
           "protect": ["198.51.100.0/25"], "persist_file": "/var/db/pfguard/blocklist.txt"}
    print("attacker can connect to mac3 before:", probe("mac3", "attacker"))
    run([str(BIN / "ansible"), "-i", inventory, "macs", "-o", "-m", "pfguard.macos.pfctl_table",
         "-a", json.dumps(ban)])
    after = probe("mac3", "attacker")
    print("attacker can connect to mac3 after:", after)
    if after:
        raise SystemExit("demo: the blocklist did not cut the attacker off mac3")

    say("The lockout guard: banning the controller's own network fails and changes nothing.")
    refused = run([str(BIN / "ansible"), "-i", inventory, "mac1", "-o", "-m", "pfguard.macos.pfctl_table",
                   "-a", json.dumps({**ban, "addresses": ["198.51.100.0/24"]})], check=False)
    if refused.returncode == 0:
        raise SystemExit("demo: the lockout guard did not refuse 198.51.100.0/24")

    say("A macOS update puts Apple's stock /etc/pf.conf back and reboots. With no Ansible run, pfguard's "
        "boot daemon hooks its anchor again and enables PF:")
    run([LAB, "os-update", "mac3"])
    blocked = blocked_within("mac3", 60)
    pf_status("mac3")
    print("attacker blocked on mac3 after the update:", blocked)
    if not blocked:
        raise SystemExit("demo: mac3 stopped blocking after the macOS update")


def main() -> int:
    started = time.monotonic()
    try:
        demo()
    finally:
        say("Tearing the lab down.")
        run([LAB, "down"], check=False)
    say(f"Done in {time.monotonic() - started:.0f} s: the lab is gone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
