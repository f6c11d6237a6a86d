"""`make demo`: bring up a lab of emulated Macs, show each link of the blocking chain, tear it down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LAB = str(BIN / "pfguard-lab")
ATTACKER = "198.51.100.200"
TRUSTED_NETWORKS = ["198.51.100.0/25"]
ANCHOR_RULES = "block drop in quick from <pfguard_blocklist> to any\n"


def say(text: str) -> None:
    print("\n== " + textwrap.fill(text, width=100, subsequent_indent="   "), flush=True)


def run(argv: list[str], data: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    print("$ " + " ".join(argv), flush=True)
    proc = subprocess.run(argv, input=data, text=True, capture_output=True, cwd=REPO, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: `{' '.join(argv)}` failed with exit {proc.returncode}")
    return proc


def lab_exec(host: str, *argv: str, data: str | None = None) -> subprocess.CompletedProcess:
    return run([LAB, "exec", host, "--", *argv], data=data)


def probe(host: str, source: str) -> bool:
    return run([LAB, "probe", host, "--from", source], check=False).returncode == 0


def ban_module_args(addresses: list[str]) -> str:
    return json.dumps({"anchor": "pfguard", "table": "pfguard_blocklist", "addresses": addresses,
                       "protect": TRUSTED_NETWORKS})


def demo() -> None:
    say("Bringing up a lab: mac1 (macOS 14, Apple silicon), mac2 (macOS 15, Intel), mac3 (macOS 12 with "
        "Server.app), an attacker outside the trusted network and a trusted host inside it.")
    inventory = run([LAB, "up"]).stdout.strip().splitlines()[-1]
    run([LAB, "status"])
    ansible = [str(BIN / "ansible"), "-i", inventory]
    run([*ansible, "macs", "-o", "-m", "ansible.builtin.ping"])

    say("The attacker guesses passwords on mac1. Nothing stops it yet.")
    run([LAB, "attack", "mac1", "--failures", "3"], check=False)

    say("pfguard.macos.pfctl_table puts the attacker into the PF table pfguard_blocklist on every Mac, in "
        "one run, idempotently, with the trusted networks protected.")
    run([*ansible, "macs", "-o", "-m", "pfguard.macos.pfctl_table", "-a", ban_module_args([ATTACKER])])
    lab_exec("mac1", "pfctl", "-a", "pfguard", "-t", "pfguard_blocklist", "-T", "show")
    say("Run again: nothing changes (changed=false).")
    run([*ansible, "macs", "-o", "-m", "pfguard.macos.pfctl_table", "-a", ban_module_args([ATTACKER])])

    say("But an address in a table blocks nothing on its own: no rule references the table, the anchor is not "
        "hooked into the main ruleset, and macOS never enabled PF. The attacker still gets in:")
    lab_exec("mac1", "pfctl", "-s", "info")
    print("attacker can connect to mac1:", probe("mac1", "attacker"))

    say("Each missing link, made by hand on mac1 (the pf_anchor role does this on every Mac, and keeps it "
        "across reboots and macOS updates): a block rule in anchor pfguard, the anchor hooked into the main "
        "ruleset, PF enabled with a reference token.")
    stock = Path("/etc/pf.conf")
    main_ruleset = lab_exec("mac1", "cat", str(stock)).stdout + 'anchor "pfguard"\n'
    lab_exec("mac1", "pfctl", "-f", "-", data=main_ruleset)
    lab_exec("mac1", "pfctl", "-a", "pfguard", "-f", "-", data=ANCHOR_RULES)
    lab_exec("mac1", "pfctl", "-E")
    attacker_ok = probe("mac1", "attacker")
    trusted_ok = probe("mac1", "trusted")
    print(f"attacker can connect to mac1: {attacker_ok}; trusted host can: {trusted_ok}")
    if attacker_ok or not trusted_ok:
        raise SystemExit("demo: mac1 does not block the attacker while letting the trusted host in")

    say("The lockout guard: banning a network that holds the trusted hosts fails and changes nothing.")
    refused = run([*ansible, "mac1", "-o", "-m", "pfguard.macos.pfctl_table", "-a",
                   ban_module_args(["198.51.100.0/24"])], check=False)
    if refused.returncode == 0:
        raise SystemExit("demo: the lockout guard did not refuse 198.51.100.0/24")


def main() -> int:
    try:
        demo()
    finally:
        say("Tearing the lab down.")
        run([LAB, "down"], check=False)
    say("Done: the lab is gone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
