# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos.blocklist_feeds through real ansible-playbook on localhost, against a real HTTP server
on 127.0.0.1 that answers conditional requests as feed servers do (ETag, 304). No lab needed."""

from __future__ import annotations

import http.server
import json
import stat
import threading
from pathlib import Path

import pytest
from lab_fixtures import run_playbook

pytest_plugins = ["lab_fixtures"]

LEVEL1 = "# firehol_level1\n#\n1.10.16.0/20\n1.19.0.0/16\n192.0.2.0/25\n192.0.2.128/25\n10.0.0.0/8\n"
DROP_JSON = ('{"cidr":"2.56.192.0/22","sblid":"SBL459831","rir":"ripencc"}\n'
             '{"cidr":"2001:db8:100::/40","sblid":"SBL1","rir":"ripencc"}\n'
             '{"type":"metadata","timestamp":1764928800,"size":2,"records":2}\n')
PLAY = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Merge the feeds
      pfguard.macos.blocklist_feeds: "{{ feed_args }}"
"""


class FeedServer(http.server.ThreadingHTTPServer):
    """Serves `feeds` ({path: (status, body)}); an ETag per body, 304 for a matching If-None-Match."""

    def __init__(self):
        self.feeds: dict[str, tuple[int, str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        super().__init__(("127.0.0.1", 0), Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server: FeedServer = self.server
        server.requests.append((self.path, self.headers.get("If-None-Match")))
        status, body = server.feeds.get(self.path, (404, "not found\n"))
        etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        if status == 200 and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        data = body.encode()
        self.send_response(status)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    server = FeedServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def run(tmp_path):
    play = tmp_path / "feeds.yml"
    play.write_text(PLAY)

    def run_(feed_args: dict, *args: str, failed: bool = False) -> dict:
        done = run_playbook(play, *args, inventory="localhost,", json_output=True, timeout=120,
                            extra_vars={"feed_args": {"cache_dir": str(tmp_path / "cache"), **feed_args}})
        assert (done.returncode != 0) == failed, str(done)
        assert "Traceback" not in done.stdout + done.stderr, str(done)
        return done.results("localhost", "Merge the feeds")[0]

    return run_


def test_feeds_are_merged_cached_and_asked_again_only_when_due(server, run, tmp_path):
    local = tmp_path / "ours.txt"
    local.write_text("# our own\n203.0.113.7\n198.51.100.9 # the trusted host\n")
    server.feeds = {"/level1.netset": (200, LEVEL1), "/drop_v4.json": (200, DROP_JSON)}
    feeds = [{"name": "level1", "url": server.url("/level1.netset"), "format": "netset"},
             {"name": "drop", "url": server.url("/drop_v4.json"), "format": "spamhaus_json"},
             {"name": "ours", "path": str(local)}]
    args = {"feeds": feeds, "protect": ["198.51.100.0/25"], "min_interval": 0}

    first = run(args)
    assert first["entries"] == ["1.10.16.0/20", "1.19.0.0/16", "2.56.192.0/22", "192.0.2.0/24", "203.0.113.7",
                                "2001:db8:100::/40"]
    assert first["count"] == 6 and first["changed"] is False
    assert [(f["name"], f["status"], f["entries"]) for f in first["feeds"]] == [
        ("level1", "downloaded", 5), ("drop", "downloaded", 2), ("ours", "read", 2)]
    assert first["dropped"] == [
        {"entry": "10.0.0.0/8", "feeds": ["level1"], "reason": "as wide as IPv4 /8 or wider"},
        {"entry": "198.51.100.9", "feeds": ["ours"], "reason": "overlaps the protected network 198.51.100.0/25"}]
    cache = tmp_path / "cache"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    # Local files too: a local list that breaks keeps its last good copy like a download.
    assert sorted(p.name for p in cache.iterdir()) == [f"{name}{suffix}" for name in ("drop", "level1", "ours")
                                                      for suffix in (".list", ".meta.json")]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in cache.iterdir())

    # Due again (min_interval 0): asked with the ETag, answered 304, the cached list is used.
    del server.requests[:]
    second = run(args)
    assert [f["status"] for f in second["feeds"]] == ["not_modified", "not_modified", "read"]
    assert all(etag for _path, etag in server.requests) and len(server.requests) == 2
    assert second["entries"] == first["entries"]

    # Not due: nobody is asked.
    del server.requests[:]
    third = run({**args, "min_interval": 3600})
    assert [f["status"] for f in third["feeds"]] == ["cached", "cached", "read"] and server.requests == []
    assert third["entries"] == first["entries"]


def test_a_feed_that_breaks_keeps_its_last_good_list_and_says_so(server, run):
    server.feeds = {"/level1.netset": (200, LEVEL1)}
    args = {"feeds": [{"name": "level1", "url": server.url("/level1.netset"), "format": "netset"},
                      {"name": "gone", "url": server.url("/gone.txt")}], "min_interval": 0}
    first = run(args)
    assert first["feeds"][1]["status"] == "failed" and "HTTP 404" in first["feeds"][1]["error"]
    assert any("feed gone failed (HTTP 404 Not Found); no earlier list to keep" in w for w in first["warnings"])

    server.feeds["/level1.netset"] = (200, LEVEL1 + "1.2.3.4\nnot-an-address\n")
    broken = run(args)
    report = broken["feeds"][0]
    assert report["status"] == "failed" and "level1 line 9: 'not-an-address'" in report["error"]
    assert broken["entries"] == first["entries"] and "1.2.3.4" not in broken["entries"]
    assert any(w.startswith("feed level1 failed (level1 line 9") and "keeping the last good list from 20" in w
               for w in broken["warnings"])

    server.feeds["/level1.netset"] = (500, "oops\n")
    down = run(args)
    assert down["feeds"][0]["status"] == "failed" and "HTTP 500" in down["feeds"][0]["error"]
    assert down["entries"] == first["entries"]


def test_check_mode_writes_no_cache(server, run, tmp_path):
    server.feeds = {"/level1.netset": (200, LEVEL1)}
    checked = run({"feeds": [{"name": "level1", "url": server.url("/level1.netset")}]}, "--check")
    assert checked["count"] == 3 and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("feed_args", "named"),
    [
        ({"feeds": [{"name": "../x", "path": "/etc/hosts"}]}, "feed name '../x'"),
        ({"feeds": [{"name": "x", "url": "file:///etc/passwd"}]}, "url 'file:///etc/passwd' is not an http"),
        ({"feeds": [{"name": "x", "path": "relative.txt"}]}, "path 'relative.txt' is not absolute"),
        ({"feeds": [{"name": "x", "path": "/a"}, {"name": "x", "path": "/b"}]}, "x given more than once"),
        ({"feeds": [{"name": "x", "path": "/a", "url": "http://127.0.0.1/"}]}, "mutually exclusive"),
        ({"feeds": [{"name": "x", "path": "/a", "format": "csv"}]}, "csv"),
        ({"feeds": [{"name": "x", "path": "/a"}], "protect": ["trusted.example"]}, "'trusted.example' is not an"),
        ({"feeds": [{"name": "x", "path": "/a"}], "min_interval": -1}, "min_interval must be at least 0"),
        ({"feeds": []}, "feeds is empty"),
    ],
)
def test_bad_arguments_are_refused_by_name_before_anything_is_fetched(run, tmp_path, feed_args, named):
    result = run(feed_args, failed=True)
    assert named in result["msg"], result["msg"]
    assert not (tmp_path / "cache").exists()


def test_more_entries_than_the_macs_can_hold_fail(run, tmp_path):
    local = tmp_path / "big.txt"
    local.write_text("".join(f"100.64.{i >> 8}.{i & 255}\n" for i in range(0, 512, 2)))
    result = run({"feeds": [{"name": "big", "path": str(local)}], "max_entries": 255}, failed=True)
    assert result["msg"] == "the merged feeds hold 256 entries, more than max_entries 255; nothing was changed"


def test_a_symlinked_feed_file_is_refused(run, tmp_path):
    (tmp_path / "real.txt").write_text("203.0.113.7\n")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    result = run({"feeds": [{"name": "linked", "path": str(tmp_path / "link.txt")}]})
    assert result["feeds"][0]["status"] == "failed" and "link.txt" in result["feeds"][0]["error"]
    assert result["entries"] == []


def test_cache_is_json_the_next_run_can_read(server, run, tmp_path):
    server.feeds = {"/l.netset": (200, LEVEL1)}
    run({"feeds": [{"name": "l", "url": server.url("/l.netset")}]})
    meta = json.loads((tmp_path / "cache" / "l.meta.json").read_text())
    assert meta["source"] == server.url("/l.netset") and meta["entries"] == 5 and meta["etag"]
    assert Path(tmp_path / "cache" / "l.list").read_text().splitlines()[0] == "1.10.16.0/20"
