# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: pfguard.macos.pfctl_table against the per-address loop fail2ban's pf action uses.

Runs `ansible localhost -m pfguard.macos.pfctl_table` from the checkout against the lab's emulated
pfctl (standalone, kernel state in a temp dir) and counts pfctl processes with a counting wrapper.
Prints a Markdown table; copy it into docs/benchmarks.md with the machine it ran on.

    .venv/bin/python bench/bench_pfctl_table.py [--sizes 1000,10000,100000] [--loop-sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pfguard_lab import adhoc
from pfguard_lab.commands import write_wrapper


def addresses(count: int, seed: int) -> list[str]:
    """`count` distinct public-looking IPv4 addresses (documentation ranges are too small)."""
    rng = random.Random(seed)
    chosen: set[int] = set()
    while len(chosen) < count:
        chosen.add(rng.randrange(0x0B000000, 0x7F000000))
    return [f"{v >> 24}.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}" for v in chosen]


class Lab:
    """An emulated pfctl with a fresh kernel state and a process counter."""

    def __init__(self, root: Path):
        self.root = root
        self.state = root / "pf"
        self.counter = root / "calls"
        self.real = write_wrapper(
            root / "pfctl-real", "pfguard_lab.emulators.pf.pfctl", {"PFGUARD_LAB_PF_STATE": str(self.state)}
        )
        self.pfctl = root / "pfctl"
        # A shell shim keeps the counting out of the emulator; it adds one exec per call.
        self.pfctl.write_text(f'#!/bin/sh\necho >> "{self.counter}"\nexec "{self.real}" "$@"\n')
        self.pfctl.chmod(0o755)

    def reset_counter(self) -> None:
        self.counter.write_text("")

    def calls(self) -> int:
        return len(self.counter.read_text().splitlines())


def converge(lab: Lab, addrs: list[str], state: str) -> tuple[float, int, dict]:
    # A list this long cannot go on the command line, and ansible-core 2.19 spends seconds tagging a
    # 100 000-item extra-vars file; a feed file read with the file lookup is what a user would do.
    feed = lab.root / "feed.txt"
    feed.write_text("\n".join(addrs) + "\n")
    args = {
        "table": "bench",
        "addresses": "{{ lookup('file', '%s').split() }}" % feed,
        "state": state,
        "pfctl_path": str(lab.pfctl),
    }
    lab.reset_counter()
    start = time.perf_counter()
    rc, result = adhoc.run_module("pfguard.macos.pfctl_table", args)
    elapsed = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"module failed: {result}")
    return elapsed, lab.calls(), result


def run_loop(lab: Lab, addrs: list[str]) -> tuple[float, int]:
    """fail2ban's actionban: one `pfctl -t T -T add ADDR` process per address."""
    lab.reset_counter()
    start = time.perf_counter()
    for addr in addrs:
        subprocess.run([str(lab.pfctl), "-t", "loop", "-T", "add", addr], capture_output=True, check=True)
    return time.perf_counter() - start, lab.calls()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--loop-sizes", default="1000,10000")
    options = parser.parse_args()
    sizes = [int(x) for x in options.sizes.split(",") if x]
    loop_sizes = [int(x) for x in options.loop_sizes.split(",") if x]

    rows = []
    module_first: dict[int, float] = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="pfguard-bench-") as tmp:
            lab = Lab(Path(tmp))
            addrs = addresses(size, seed=size)
            elapsed, calls, result = converge(lab, addrs, "present")
            assert result["entries"] == size and result["changed"], result
            module_first[size] = elapsed
            rows.append((size, "module: first run (empty table)", calls, elapsed))
            elapsed, calls, result = converge(lab, addrs, "present")
            assert result["changed"] is False, result
            rows.append((size, "module: idempotent re-run", calls, elapsed))
            swapped = addrs[size // 10 :] + addresses(size // 10, seed=size + 1)
            elapsed, calls, result = converge(lab, swapped, "exact")
            assert len(result["added"]) == size // 10 and len(result["removed"]) == size // 10, result
            rows.append((size, "module: 10% swapped, state=exact", calls, elapsed))
    for size in loop_sizes:
        with tempfile.TemporaryDirectory(prefix="pfguard-bench-") as tmp:
            lab = Lab(Path(tmp))
            elapsed, calls = run_loop(lab, addresses(size, seed=size))
            speedup = f" ({elapsed / module_first[size]:.0f}x slower)" if size in module_first else ""
            rows.append((size, "per-address loop (fail2ban pf action)" + speedup, calls, elapsed))

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print()
    print("| addresses | run | pfctl processes | wall time (s) |")
    print("|---:|---|---:|---:|")
    for size, name, calls, elapsed in rows:
        print(f"| {size:,} | {name} | {calls:,} | {elapsed:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
