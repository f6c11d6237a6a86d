# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/feeds.yml on the lab fleet: feeds served over HTTP to the controller, loaded into
pfguard_feeds on every Mac.

Run under the lab lock: `flock /tmp/pfguard-lab.lock .venv/bin/pytest -q -p no:cacheprovider
tests/fleet/test_feeds.py`. The module fixture makes the shared runs with a small feed: one refused
because the Macs' table-entries limit (lowered for it with `pfctl -O`) leaves no room for a reload of
pfguard's anchor, then one converge; the cases share them. The 150 000-entry feed, which needs
pfguard_pf_table_entries_limit raised, is an `extended` case (`make test-extended`). The fixture empties
the feeds tables and their persist files afterwards, so the fleet is left as `fleet` made it.
"""

from __future__ import annotations

import http.server
import re
import threading
import time

import pytest
from fleet_fixtures import ATTACKER, CONTROLLER, MACS, TRUSTED, breaking
from lab_fixtures import wait_for

pytest_plugins = ["lab_fixtures", "fleet_fixtures"]

FEEDS_FILE = "/var/db/pfguard/feeds.txt"
SMALL = "203.0.113.0/24"
OVERLAPPING = "198.51.100.0/24"  # holds the trusted /25 and the controller


def spread(count: int) -> str:
    """`count` addresses of 11.0.0.0/8, every other one: no two of them merge into a network."""
    return "".join(f"11.{n >> 15 & 255}.{n >> 7 & 255}.{(n & 127) * 2}\n" for n in range(count))


LISTED = 40
# The merged list: the attacker, the spread addresses and SMALL (OVERLAPPING is dropped).
MERGED = 1 + LISTED + 1
# Lowered for the refused run: room for every table after the change (2 trusted entries + the feeds),
# not for a reload of pfguard's anchor on top of it (docs/blocklist-feeds.md).
TIGHT_LIMIT = 2 + MERGED + 10
BIG = 150_000
BIG_LIMIT = 400_000  # pfguard_pf_table_entries_limit: room for pfguard's anchor twice


class FeedServer(http.server.ThreadingHTTPServer):
    """Serves `feeds` ({path: (status, body)}) to the controller, where blocklist_feeds runs."""

    def __init__(self):
        self.feeds: dict[str, tuple[int, bytes]] = {}
        super().__init__(("127.0.0.1", 0), Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = self.server.feeds.get(self.path, (404, b"not found\n"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def feeds(fleet, tmp_path_factory):
    """(fleet, server, run(feed_list=the listed feeds, *args), refused, first): `refused` is the run under
    TIGHT_LIMIT, `first` the converge after it."""
    server = FeedServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.feeds = {"/list.netset": (200, (f"# a feed\n{ATTACKER}\n{OVERLAPPING}\n" + spread(LISTED)).encode()),
                    "/small.txt": (200, f"{SMALL}\n".encode())}
    cache = tmp_path_factory.mktemp("feeds-cache")

    def run(feed_list, *args):
        return fleet.lab.playbook("playbooks/feeds.yml", *args, extra_vars={
            "pfguard_blocklist_feeds": feed_list, "pfguard_feeds_cache_dir": str(cache),
            "pfguard_feeds_min_interval": 0})

    wanted = [{"name": "list", "url": server.url("/list.netset"), "format": "netset"},
              {"name": "small", "url": server.url("/small.txt")}]
    try:
        with breaking(fleet) as break_:
            for host in MACS:  # pfctl -O: the limits of a ruleset, nothing else; /etc/pf.conf's are macOS's
                break_(host, "/sbin/pfctl -q -O -f -", "/sbin/pfctl -q -O -f /etc/pf.conf",
                       input_text=f"set limit table-entries {TIGHT_LIMIT}\n")
            refused = run(wanted)
            refused.left = {host: (feed_table(fleet, host), fleet.lab.sh(host, f"cat {FEEDS_FILE}")) for host in MACS}
        assert all(table_limit(fleet, host) == 200_000 for host in MACS)
        first = run(wanted)
        yield fleet, server, lambda *args, feed_list=wanted: run(feed_list, *args), refused, first
    finally:
        server.shutdown()
        server.server_close()
        for host in MACS:
            fleet.lab.sh(host, f"/sbin/pfctl -q -a pfguard -t pfguard_feeds -T flush; : > {FEEDS_FILE}")


def feed_table(fleet, host: str) -> list[str]:
    return fleet.table(host, "pfguard", "pfguard_feeds")


def table_limit(fleet, host: str) -> int:
    memory = fleet.lab.sh(host, "/sbin/pfctl -q -s memory")
    return int(re.search(r"^table-entries\s+hard limit\s+(\d+)$", memory, re.MULTILINE).group(1))


def test_a_limit_without_room_for_a_reload_refuses_the_feeds_and_changes_nothing(feeds):
    fleet, _server, _run, refused, _first = feeds
    assert refused.returncode != 0, str(refused)
    assert not any(refused.changed().values()), str(refused)
    out = " ".join(refused.stdout.split())
    # All tables after the change (2 trusted entries and the feeds) plus pfguard's anchor after the
    # change, the same again (the blocklist is empty).
    after = 2 + MERGED
    for text in (f"The merged feeds hold {MERGED} entries",
                 f"mac1's other PF tables that makes {after}, and "
                 f"a reload of pfguard's anchor builds its {after} entries (blocklist, trusted, feeds) a second time "
                 "before it drops the old ones",
                 f"{2 * after} entries, more than its table-entries limit of {TIGHT_LIMIT} (pfctl -s memory)",
                 f"Raise pfguard_pf_table_entries_limit to at least {2 * after}"):
        assert text in out, out[-3000:]
    assert refused.left == {host: ([], "") for host in MACS}  # read right after the refused run


def test_feeds_converge_on_every_mac_and_persist(feeds):
    fleet, _server, run, _refused, first = feeds
    assert first.returncode == 0, str(first)
    assert {host for host, count in first.changed().items() if count} == set(MACS), str(first)
    for host in MACS:
        table = feed_table(fleet, host)
        assert len(table) == MERGED, host
        assert ATTACKER in table and SMALL in table
        assert fleet.lab.sh(host, f"cat {FEEDS_FILE}").split() == table  # the persist file, in table order
    assert f"list: downloaded, {LISTED + 2} entries" in first.stdout, str(first)  # OVERLAPPING counted
    assert f"mac1: added {MERGED}, removed 0; {MERGED} entries in pfguard_feeds;" in first.stdout, str(first)


def test_an_entry_overlapping_the_trusted_networks_is_dropped_and_reported(feeds):
    fleet, _server, _run, _refused, first = feeds
    assert "dropped 1 entry (never loaded):" in first.stdout, str(first)
    assert f"{OVERLAPPING} from list: overlaps the protected" in first.stdout, str(first)
    for host in MACS:
        assert OVERLAPPING not in feed_table(fleet, host)
        for address in (TRUSTED, CONTROLLER):
            tested = fleet.lab.exec(host, "/sbin/pfctl", "-q", "-a", "pfguard", "-t", "pfguard_feeds",
                                    "-T", "test", address)
            assert tested.returncode != 0, (host, address)


def test_traffic_from_a_feed_listed_address_is_dropped(feeds):
    fleet = feeds[0]
    assert not fleet.probe("mac2", "attacker")
    assert fleet.probe("mac2", "trusted")


def test_the_feeds_come_back_after_a_reboot(feeds):
    fleet = feeds[0]
    rebooted = fleet.lab.run("reboot", "mac1", timeout=180)
    assert rebooted.returncode == 0, rebooted.stdout + rebooted.stderr
    wait_for(lambda: len(feed_table(fleet, "mac1")) == MERGED, 30, what="pfguard_feeds back on mac1")
    wait_for(lambda: not fleet.probe("mac1", "attacker"), 10, what="the feed-listed attacker dropped on mac1")


def test_fewer_feeds_shrink_the_table_then_a_broken_feed_keeps_its_last_good_list_and_nothing_changes(feeds):
    fleet, server, run, _refused, _first = feeds
    server.feeds["/small2.txt"] = (200, b"192.0.2.77\n")
    small = [{"name": "small", "url": server.url("/small.txt")}, {"name": "small2", "url": server.url("/small2.txt")}]
    shrunk = run(feed_list=small)
    assert shrunk.returncode == 0, str(shrunk)
    assert {host for host, count in shrunk.changed().items() if count} == set(MACS), str(shrunk)
    assert f"mac1: added 1, removed {MERGED - 1}; 2 entries in pfguard_feeds;" in shrunk.stdout, str(shrunk)
    for host in MACS:
        assert sorted(feed_table(fleet, host)) == ["192.0.2.77", SMALL]
        assert sorted(fleet.lab.sh(host, f"cat {FEEDS_FILE}").split()) == ["192.0.2.77", SMALL]
    # The same feeds again, one of them broken now: it keeps its last good list, so the merged list is
    # the same and no Mac changes.
    server.feeds["/small2.txt"] = (200, b"192.0.2.78\nnot-an-address\n")
    again = run(feed_list=small)
    assert again.returncode == 0, str(again)
    assert not any(again.changed().values()), str(again)
    assert "feed small2 failed" in again.stderr and "keeping the last good list" in again.stderr, str(again)
    assert "small2: failed, 1 entries (" in again.stdout, str(again)
    assert "mac1: unchanged; 2 entries in pfguard_feeds" in again.stdout, str(again)
    assert sorted(feed_table(fleet, "mac3")) == ["192.0.2.77", SMALL]


@pytest.mark.extended  # CI's time budget: `make test-extended` runs it
def test_a_150000_entry_feed_converges_with_the_limit_raised_and_a_rerun_changes_nothing(feeds):
    fleet, server, run, _refused, _first = feeds
    server.feeds["/big.netset"] = (200, ("# a big feed\n" + spread(BIG)).encode())
    big = [{"name": "big", "url": server.url("/big.netset"), "format": "netset"}]

    def set_limit(limit):
        ran = fleet.lab.playbook("playbooks/site.yml", tags="pf", extra_vars={
            **fleet.policy, "pfguard_pf_table_entries_limit": limit})
        assert ran.returncode == 0, str(ran)

    refused = run(feed_list=big)  # macOS's default limit has no room for a reload of BIG entries
    assert refused.returncode != 0 and not any(refused.changed().values()), str(refused)
    set_limit(BIG_LIMIT)
    try:
        started = time.monotonic()
        first = run(feed_list=big)
        seconds = time.monotonic() - started
        assert first.returncode == 0, str(first)
        print(f"feeds.yml, {BIG} entries on {len(MACS)} Macs: {seconds:.1f} s")
        for host in MACS:
            assert table_limit(fleet, host) == BIG_LIMIT, host
            assert len(feed_table(fleet, host)) == BIG, host
        again = run(feed_list=big)
        assert again.returncode == 0 and not any(again.changed().values()), str(again)
    finally:
        for host in MACS:
            fleet.lab.sh(host, f"/sbin/pfctl -q -a pfguard -t pfguard_feeds -T flush; : > {FEEDS_FILE}")
        set_limit(None)
