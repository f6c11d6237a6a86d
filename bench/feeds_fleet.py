# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: a 150 000-entry blocklist feed through feeds.yml on N lab Macs at once.

The lab comes up with N Macs, site.yml raises the Macs' table-entries limit (pfguard_pf_table_entries_limit),
a local HTTP server on the controller serves the feed, and feeds.yml runs twice: the first run loads the feed
into pfguard_feeds on every Mac, the second must change nothing. The time of the task that loads the table
(pfguard.macos.pfctl_table), from its start until the last Mac's result, comes from the ansible.posix.json
callback; the play's wall time and the machine's CPU time are measured around it.

    flock /tmp/pfguard-lab.lock .venv/bin/python bench/feeds_fleet.py [--macs 20] [--entries 150000]

The lab must not be up already.
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys
import tempfile
import threading
from datetime import datetime

from fleet import lab, profile_env, timed_playbook  # bench/fleet.py

LOAD_TASK = "Make pfguard_feeds hold exactly the merged feeds, kill their states, persist the table"
LIMIT = 400_000  # room for pfguard's anchor twice, as docs/blocklist-feeds.md asks for a reload


def spread(count: int) -> bytes:
    """`count` addresses of 11.0.0.0/8, every other one: no two of them merge into a network."""
    return "".join(f"11.{n >> 15 & 255}.{n >> 7 & 255}.{(n & 127) * 2}\n" for n in range(count)).encode()


def serve(body: bytes) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def seconds(duration: dict) -> float:
    start, end = (datetime.fromisoformat(duration[key].replace("Z", "+00:00")) for key in ("start", "end"))
    return (end - start).total_seconds()


def playbook(play: str, extra_vars: dict, env: dict, json_output: bool = False) -> tuple[float, float, dict]:
    """(wall s, machine CPU s, the json callback's document or {}) of one ansible-playbook run."""
    if json_output:
        env = {**env, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    done, wall, used, _ = timed_playbook(play, ["-e", json.dumps(extra_vars)], env)
    if done.returncode:
        sys.exit(f"{play} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return wall, used, json.loads(done.stdout) if json_output else {}


def load_time(document: dict) -> tuple[float, bool]:
    """(seconds from the start of the load task until the last Mac's result, whether any Mac reported a
    change) from the json callback (with the linear strategy it times each task, not each host)."""
    for play in document["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == LOAD_TASK:
                return seconds(task["task"]["duration"]), any(r.get("changed") for r in task["hosts"].values())
    sys.exit(f"no task {LOAD_TASK!r} in the run")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--macs", type=int, default=20)
    parser.add_argument("--entries", type=int, default=150_000)
    args = parser.parse_args()
    env = profile_env("tuned", args.macs)
    server = serve(b"# a big feed\n" + spread(args.entries))
    lab("up", "--hosts", str(args.macs), "--timeout", "300")
    try:
        with tempfile.TemporaryDirectory() as cache:
            wall, _, _ = playbook("playbooks/site.yml", {"pfguard_pf_table_entries_limit": LIMIT}, env)
            print(f"site.yml with the limit raised on {args.macs} Macs: {wall:.1f} s", file=sys.stderr, flush=True)
            feed = {"pfguard_blocklist_feeds": [{"name": "big", "format": "netset",
                                                 "url": f"http://127.0.0.1:{server.server_address[1]}/big"}],
                    "pfguard_feeds_cache_dir": cache, "pfguard_feeds_min_interval": 0}  # fmt: skip
            for run in ("first run", "re-run"):
                wall, cpu, document = playbook("playbooks/feeds.yml", feed, env, json_output=True)
                load, changed = load_time(document)
                print(f"{args.entries} entries, {args.macs} Macs, {run}: feeds.yml {wall:.1f} s ({cpu:.0f} s CPU); "
                      f"the load task on every Mac {load:.1f} s; changed: {changed}", flush=True)  # fmt: skip
    finally:
        server.shutdown()
        lab("down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
