# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: the fleet plays on 1..40 lab Macs, with Ansible's defaults and with the recommended settings.

For each fleet size and settings profile the lab comes up fresh (`pfguard-lab up --hosts N`), then
site.yml (first run), site.yml again (idempotent), ban.yml, sync.yml and doctor.yml run one after the
other and their wall times are measured, with the CPU time ansible-playbook used (the controller) and
the CPU time the whole machine used meanwhile (the controller and the lab's Macs share its cores). Prints a
Markdown table (copy it into docs/benchmarks.md with
the machine it ran on) and, with --json, writes every run's figures to a file.

    flock /tmp/pfguard-lab.lock .venv/bin/python bench/fleet.py [--sizes 1,5,10,20,40] [--profiles default,tuned]

`make bench-fleet` runs it under the lab lock. The lab must not be up already.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LAB = [str(BIN / "pfguard-lab")]
PLAYBOOK = str(BIN / "ansible-playbook")
INVENTORY = "/run/pfguard-lab/inventory.yml"
BANNED = "203.0.113.7"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)

# Ansible's own defaults, spelled out so a user's environment cannot change them (and pipelining off for the
# lab's Macs, whose inventory turns it on: see measure).
DEFAULT = {"ANSIBLE_FORKS": "5", "ANSIBLE_PIPELINING": "False", "ANSIBLE_STRATEGY": "linear"}
# docs/fleet-scale.md: what docs/ansible.cfg.fleet-example sets. Forks follow the fleet size up to 50.
TUNED = {
    "ANSIBLE_PIPELINING": "True",
    "ANSIBLE_STRATEGY": "linear",
    "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=600s -o PreferredAuthentications=publickey",
}
PLAYS = [
    ("site", "playbooks/site.yml", []),
    ("site (re-run)", "playbooks/site.yml", []),
    ("ban", "playbooks/ban.yml", ["-e", f"pfguard_ban={BANNED}"]),
    ("sync", "playbooks/sync.yml", []),
    ("doctor", "playbooks/doctor.yml", []),
]


def profile_env(profile: str, macs: int) -> dict[str, str]:
    if profile == "default":
        return dict(DEFAULT)
    return {**TUNED, "ANSIBLE_FORKS": str(min(max(macs, 5), 50))}


def lab(*args: str, timeout: float = 600) -> None:
    subprocess.run([*LAB, *args], check=True, timeout=timeout, stdout=subprocess.DEVNULL)


def machine_cpu_seconds() -> float:
    """CPU time this machine has spent busy (every process: the controller and the lab's Macs), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed_playbook(play: str, extra: list[str], env: dict[str, str]):
    """(the finished ansible-playbook process, wall s, machine CPU s, controller CPU s) of one run against the lab."""
    argv = [PLAYBOOK, "-i", INVENTORY, play, *extra]
    start, cpu_start = time.monotonic(), machine_cpu_seconds()
    controller_start = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - start
    machine_cpu = machine_cpu_seconds() - cpu_start
    controller_end = resource.getrusage(resource.RUSAGE_CHILDREN)
    controller_cpu = sum(getattr(controller_end, f) - getattr(controller_start, f) for f in ("ru_utime", "ru_stime"))
    return proc, wall, machine_cpu, controller_cpu


def run_play(play: str, extra: list[str], env: dict[str, str]) -> dict:
    proc, wall, machine_cpu, controller_cpu = timed_playbook(play, extra, env)
    recap = {m[1]: {"changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
             for m in RECAP.finditer(proc.stdout)}
    return {"rc": proc.returncode, "wall_s": round(wall, 1), "hosts": len(recap),
            # ansible-playbook and its workers and ssh clients; everything the machine ran (the Macs too)
            "controller_cpu_s": round(controller_cpu, 1), "machine_cpu_s": round(machine_cpu, 1),
            "changed": sum(h["changed"] for h in recap.values()),
            "failed": sum(h["failed"] + h["unreachable"] for h in recap.values()),
            "tail": "" if proc.returncode == 0 else proc.stdout[-2000:] + proc.stderr[-1000:]}


def measure(macs: int, profile: str) -> list[dict]:
    lab("up", "--hosts", str(macs), "--timeout", "300")
    rows = []
    try:
        for name, play, extra in PLAYS:
            # The lab's inventory turns pipelining on for every Mac; an extra var wins over it.
            unpipelined = ["-e", "ansible_pipelining=false"] if profile == "default" else []
            result = run_play(play, [*extra, *unpipelined], profile_env(profile, macs))
            rows.append({"macs": macs, "profile": profile, "play": name, **result})
            print(f"{macs:>3} Macs {profile:<8} {name:<14} {result['wall_s']:>7.1f} s rc={result['rc']} "
                  f"changed={result['changed']} failed={result['failed']} CPU: controller "
                  f"{result['controller_cpu_s']} s, machine {result['machine_cpu_s']} s", file=sys.stderr, flush=True)
            if result["rc"]:
                print(result["tail"], file=sys.stderr, flush=True)
    finally:
        lab("down")
    return rows


def cell(row: dict) -> str:
    """Wall time, then the machine's CPU time in parentheses (what the run cost the 2 cores)."""
    cpu = f" ({row['machine_cpu_s']:.0f} CPU)" if "machine_cpu_s" in row else ""
    return f"{row['wall_s']:.1f}{cpu}" + ("" if row["rc"] == 0 else " (failed)")


def markdown(rows: list[dict]) -> str:
    profiles = sorted({r["profile"] for r in rows}, key=["default", "tuned"].index)
    lines = ["| Macs | play | " + " | ".join(f"{p}: wall (CPU) s" for p in profiles) + " |",
             "|---:|---|" + "---:|" * len(profiles)]
    for macs in sorted({r["macs"] for r in rows}):
        for name, _, _ in PLAYS:
            cells = []
            for p in profiles:
                hit = [r for r in rows if (r["macs"], r["play"], r["profile"]) == (macs, name, p)]
                cells.append("-" if not hit else cell(hit[0]))
            lines.append(f"| {macs} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,10,20,40")
    parser.add_argument("--profiles", default="default,tuned")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    profiles = args.profiles.split(",")
    if not set(profiles) <= {"default", "tuned"}:
        parser.error(f"unknown profile in {args.profiles!r} (default, tuned)")
    rows = []
    for macs in sizes:
        for profile in profiles:
            rows += measure(macs, profile)
            if args.json:  # after each fleet, so a later failure keeps what was measured
                args.json.write_text(json.dumps(rows, indent=1))
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{subprocess.run([PLAYBOOK, '--version'], capture_output=True, text=True).stdout.splitlines()[0]}")
    print(markdown(rows))
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
