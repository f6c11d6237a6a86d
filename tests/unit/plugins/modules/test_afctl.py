# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Drive the afctl module through AnsibleModule with a fake afctl that keeps its files the way the
lab's emulator does (docs/reference/macos.md#adaptive-firewall; line and state formats are UNVERIFIED there)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import plistlib

import pytest
from ansible.module_utils import basic
from ansible_collections.pfguard.macos.plugins.module_utils.bounded_command import CommandTimeout
from ansible_collections.pfguard.macos.plugins.modules import afctl
from ansible_collections.pfguard.macos.tests.unit.plugins.modules.utils import run_module

SERVER_ROOT = "Applications/Server.app/Contents/ServerRoot"


class FakeAfctl:
    """Answers run_command like afctl: edits the whitelist/blacklist files and plists, records calls."""

    def __init__(self, tmp_path, whitelist="", blacklist="", settings=None, threshold=10, af_state=None):
        self.root = tmp_path
        self.path = tmp_path / SERVER_ROOT / "usr/libexec/afctl"
        self.path.parent.mkdir(parents=True)
        self.path.write_text("#!/bin/sh\nexit 99\n")
        self.path.chmod(0o755)
        self.whitelist_file = tmp_path / "whitelist"
        self.blacklist_file = tmp_path / "blacklist"
        self.settings_file = tmp_path / SERVER_ROOT / "etc/af.plist"
        self.threshold_file = tmp_path / SERVER_ROOT / "private/etc/emond.d/rules/AdaptiveFirewall.plist"
        self.af_state_file = tmp_path / "af_state"
        self.whitelist_file.write_text(whitelist)
        self.blacklist_file.write_text(blacklist)
        self.settings_file.parent.mkdir(parents=True)
        self.settings_file.write_bytes(
            plistlib.dumps(settings or {"default_timeout": "15", "start_behavior": "disable"})
        )
        self.threshold_file.parent.mkdir(parents=True)
        self.threshold_file.write_bytes(
            plistlib.dumps([{"name": "AdaptiveFirewall", "enabled": True, "hostBlockThreshold": threshold}])
        )
        if af_state is not None:
            self.af_state_file.write_bytes(plistlib.dumps(af_state))
        self.calls = []
        self.timeouts = []  # the time limit of each call
        self.fail = None  # (flag, rc, stderr) to make one flag fail
        self.ignore_lists = False  # exit 0 without touching the files (a wrong whitelist_file)

    def args(self, **extra):
        base = dict(
            afctl_path=str(self.path),
            whitelist_file=str(self.whitelist_file),
            blacklist_file=str(self.blacklist_file),
            af_state_file=str(self.af_state_file),
        )
        base.update(extra)
        return base

    def flags(self):
        return [call["args"][1:] for call in self.calls]

    def snapshot(self):
        return dict((p, p.read_bytes()) for p in self.root.rglob("*") if p.is_file())

    def _lines(self, path):
        return [line for line in path.read_text().splitlines() if line]

    def __call__(self, args, environ_update=None, **kwargs):
        self.calls.append(dict(args=list(args), env=environ_update))
        assert args[0] == str(self.path)
        flag, value = args[1], args[2] if len(args) > 2 else None
        if self.fail and self.fail[0] == flag:
            return self.fail[1], "", self.fail[2]
        if flag in ("-w", "-x", "-r") and self.ignore_lists:
            return 0, "", ""
        if flag == "-w":
            self.whitelist_file.write_text("".join(x + "\n" for x in self._lines(self.whitelist_file) + [value]))
        elif flag == "-x":
            kept = [x for x in self._lines(self.whitelist_file) if x != value]
            self.whitelist_file.write_text("".join(x + "\n" for x in kept))
        elif flag == "-r":
            kept = [x for x in self._lines(self.blacklist_file) if x.split()[0] != value]
            self.blacklist_file.write_text("".join(x + "\n" for x in kept))
        elif flag == "-H":
            settings = plistlib.loads(self.settings_file.read_bytes())
            settings["default_timeout"] = value
            self.settings_file.write_bytes(plistlib.dumps(settings))
        elif flag == "-T":
            rules = plistlib.loads(self.threshold_file.read_bytes()) if self.threshold_file.exists() else [{}]
            rules[0]["hostBlockThreshold"] = int(value)
            self.threshold_file.write_bytes(plistlib.dumps(rules))
        elif flag in ("-e", "-d"):
            self.af_state_file.write_bytes(plistlib.dumps({"enabled": flag == "-e"}))
        else:
            raise AssertionError("unexpected afctl call %r" % (args,))
        return 0, "", ""


@pytest.fixture
def fake(tmp_path):
    return FakeAfctl(tmp_path)


def run(monkeypatch, fake, args, check_mode=False, diff=False):
    """The module's result, with afctl's bounded runner answered by `fake` (timeouts recorded)."""
    timeouts = getattr(fake, "timeouts", None)

    def bounded(argv, timeout, data=None, environ_update=None, output_limit=None):
        assert data is None and output_limit == afctl.OUTPUT_LIMIT
        if timeouts is not None:
            timeouts.append(timeout)
        return fake(argv, environ_update=environ_update)

    monkeypatch.setattr(afctl, "run_bounded", bounded)
    return run_module(monkeypatch, afctl, fake, args, check_mode=check_mode, diff=diff)


def test_adds_missing_entries_normalised_then_second_run_changes_nothing(monkeypatch, fake):
    args = fake.args(whitelist=["198.51.100.7/25", "2001:DB8:0:0::1/128", "192.0.2.9/32"])
    first = run(monkeypatch, fake, args)
    assert first["changed"] is True
    assert first["added"] == ["198.51.100.0/25", "2001:db8::1", "192.0.2.9"]
    assert fake.flags() == [["-w", "198.51.100.0/25"], ["-w", "2001:db8::1"], ["-w", "192.0.2.9"]]
    assert fake.calls[0]["env"] == {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
    assert first["whitelist"] == ["198.51.100.0/25", "2001:db8::1", "192.0.2.9"]
    assert fake.whitelist_file.read_text() == "198.51.100.0/25\n2001:db8::1\n192.0.2.9\n"
    fake.calls = []
    second = run(monkeypatch, fake, args)
    assert second["changed"] is False and second["added"] == [] and second["commands"] == []
    assert fake.calls == []


def test_files_are_parsed_defensively(monkeypatch, tmp_path):
    fake = FakeAfctl(
        tmp_path,
        whitelist="# routers\n\n  10.0.0.1   added-by-c\n192.0.2.0/24\nrouter.example\n",
        blacklist="# address expiry\n203.0.113.7\t1700000000\n\n203.0.113.8 0 extra\n",
    )
    result = run(monkeypatch, fake, fake.args(whitelist=["10.0.0.1/32", "192.0.2.77/24"], unblock=["203.0.113.8"]))
    assert result["added"] == [] and result["removed"] == []
    assert result["unblocked"] == ["203.0.113.8"]
    assert fake.flags() == [["-r", "203.0.113.8"]]
    assert result["whitelist"] == ["10.0.0.1", "192.0.2.0/24", "router.example"]


def test_present_keeps_other_entries_and_exact_removes_them(monkeypatch, tmp_path):
    fake = FakeAfctl(tmp_path, whitelist="10.0.0.1\n192.0.2.0/24\nrouter.example\n")
    present = run(monkeypatch, fake, fake.args(whitelist=["198.51.100.0/25"]))
    assert present["removed"] == [] and present["added"] == ["198.51.100.0/25"]
    fake.calls = []
    exact = run(monkeypatch, fake, fake.args(whitelist=["198.51.100.0/25", "10.0.0.1"], whitelist_state="exact"))
    assert exact["removed"] == ["192.0.2.0/24", "router.example"] and exact["added"] == []
    assert fake.flags() == [["-x", "192.0.2.0/24"], ["-x", "router.example"]]
    assert fake.whitelist_file.read_text() == "10.0.0.1\n198.51.100.0/25\n"


def test_absent_removes_listed_entries_in_the_files_form(monkeypatch, tmp_path):
    fake = FakeAfctl(tmp_path, whitelist="10.0.0.0/8\n192.0.2.5/32\n198.51.100.50\n")
    result = run(monkeypatch, fake, fake.args(whitelist=["10.9.9.9/8", "192.0.2.5", "203.0.113.1"],
                                              whitelist_state="absent"))  # fmt: skip
    assert result["removed"] == ["10.0.0.0/8", "192.0.2.5/32"] and result["added"] == []
    assert fake.flags() == [["-x", "10.0.0.0/8"], ["-x", "192.0.2.5/32"]]
    assert result["whitelist"] == ["198.51.100.50"]


def test_omitted_whitelist_is_left_alone_even_when_exact(monkeypatch, tmp_path):
    fake = FakeAfctl(tmp_path, whitelist="10.0.0.1\n")
    result = run(monkeypatch, fake, fake.args(whitelist_state="exact"))
    assert result["changed"] is False and fake.calls == []
    assert result["whitelist"] == ["10.0.0.1"]


def test_unblock_runs_only_for_listed_addresses(monkeypatch, tmp_path):
    fake = FakeAfctl(tmp_path, blacklist="203.0.113.7/32\t1700000000\n2001:db8::5\t0\n")
    result = run(monkeypatch, fake, fake.args(unblock=["203.0.113.7", "2001:DB8::5", "198.51.100.200"]))
    assert result["unblocked"] == ["203.0.113.7/32", "2001:db8::5"]
    assert fake.flags() == [["-r", "203.0.113.7/32"], ["-r", "2001:db8::5"]]
    assert fake.blacklist_file.read_text() == ""
    fake.calls = []
    again = run(monkeypatch, fake, fake.args(unblock=["203.0.113.7"]))
    assert again["changed"] is False and fake.calls == []


def test_settings_are_read_from_afctls_files_and_set_only_when_different(monkeypatch, fake):
    same = run(monkeypatch, fake, fake.args(block_time=15, threshold=10, state="disabled"))
    assert same["changed"] is False and fake.calls == []
    assert same["settings_before"] == {"state": "disabled", "block_time": 15, "threshold": 10}
    changed = run(monkeypatch, fake, fake.args(block_time=60, threshold=5, state="enabled"))
    assert fake.flags() == [["-H", "60"], ["-T", "5"], ["-e"]]
    assert changed["settings_before"] == {"state": "disabled", "block_time": 15, "threshold": 10}
    assert changed["settings"] == {"state": "enabled", "block_time": 60, "threshold": 5}
    fake.calls = []
    again = run(monkeypatch, fake, fake.args(block_time=60, threshold=5, state="enabled"))
    assert again["changed"] is False and fake.calls == []


def test_run_time_state_wins_over_start_behavior(monkeypatch, tmp_path):
    fake = FakeAfctl(tmp_path, settings={"start_behavior": "enable"}, af_state={"enabled": False, "tokens": []})
    result = run(monkeypatch, fake, fake.args(state="enabled"))
    assert result["settings_before"]["state"] == "disabled"
    assert fake.flags() == [["-e"]]


def test_without_run_time_state_start_behavior_decides(monkeypatch, tmp_path):
    fake = FakeAfctl(tmp_path, settings={"start_behavior": "enable", "default_timeout": "30"})
    result = run(monkeypatch, fake, fake.args(state="disabled"))
    assert result["settings_before"] == {"state": "enabled", "block_time": 30, "threshold": 10}
    assert fake.flags() == [["-d"]]


def test_unreadable_settings_are_unknown_and_set(monkeypatch, fake):
    fake.settings_file.write_text("not a plist")
    fake.threshold_file.unlink()
    result = run(monkeypatch, fake, fake.args(threshold=7))
    assert result["settings_before"] == {"state": "disabled", "block_time": None, "threshold": None}
    assert fake.flags() == [["-T", "7"]]
    assert result["settings"]["threshold"] == 7


def test_binary_plists_and_numbers_stored_as_integers_are_read(monkeypatch, fake):
    fake.settings_file.write_bytes(plistlib.dumps({"default_timeout": 45}, fmt=plistlib.FMT_BINARY))
    fake.threshold_file.write_bytes(plistlib.dumps({"rules": [{"hostBlockThreshold": "3"}]}, fmt=plistlib.FMT_BINARY))
    result = run(monkeypatch, fake, fake.args(block_time=45, threshold=3))
    assert result["changed"] is False and fake.calls == []


def test_order_is_removals_additions_unblocks_settings_then_state(monkeypatch, tmp_path):
    fake = FakeAfctl(tmp_path, whitelist="10.0.0.1\n", blacklist="203.0.113.7\t0\n")
    run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"], whitelist_state="exact", unblock=["203.0.113.7"],
                                     block_time=20, threshold=4, state="enabled"))  # fmt: skip
    assert fake.flags() == [["-x", "10.0.0.1"], ["-w", "192.0.2.1"], ["-r", "203.0.113.7"], ["-H", "20"],
                            ["-T", "4"], ["-e"]]  # fmt: skip


def test_check_mode_reports_and_runs_nothing(monkeypatch, tmp_path):
    fake = FakeAfctl(tmp_path, whitelist="10.0.0.1\n", blacklist="203.0.113.7\t0\n")
    before = fake.snapshot()
    result = run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"], whitelist_state="exact",
                                              unblock=["203.0.113.7"], block_time=20, state="enabled"),
                 check_mode=True)  # fmt: skip
    assert result["changed"] is True
    assert result["added"] == ["192.0.2.1"] and result["removed"] == ["10.0.0.1"]
    assert result["unblocked"] == ["203.0.113.7"]
    assert result["whitelist"] == ["192.0.2.1"]
    assert result["settings"] == {"state": "enabled", "block_time": 20, "threshold": 10}
    assert [c[1:] for c in result["commands"]] == [["-x", "10.0.0.1"], ["-w", "192.0.2.1"], ["-r", "203.0.113.7"],
                                                   ["-H", "20"], ["-e"]]  # fmt: skip
    assert fake.calls == []
    assert fake.snapshot() == before


def test_diff_shows_whitelist_and_settings(monkeypatch, tmp_path):
    fake = FakeAfctl(tmp_path, whitelist="10.0.0.1\n", blacklist="203.0.113.7\t0\n")
    result = run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"], unblock=["203.0.113.7"], block_time=20),
                 diff=True)  # fmt: skip
    assert result["diff"]["before"] == (
        "# before\nwhitelist:\n  - 10.0.0.1\nstate: disabled\nblock_time: 15\nthreshold: 10\n"
    )
    assert result["diff"]["after"] == (
        "# after\nwhitelist:\n  - 10.0.0.1\n  - 192.0.2.1\nstate: disabled\nblock_time: 20\nthreshold: 10\n"
        "unblocked:\n  - 203.0.113.7\n"
    )


@pytest.mark.parametrize(
    "args, named",
    [
        (dict(whitelist=["192.0.2.1", "mac1.example"]), "whitelist 'mac1.example'"),
        (dict(whitelist=["!192.0.2.1"]), "whitelist '!192.0.2.1'"),
        (dict(whitelist=["192.0.2.0/33"]), "whitelist '192.0.2.0/33'"),
        (dict(unblock=["en0"]), "unblock 'en0'"),
        (dict(block_time=0), "block_time must be 1 to 2147483647, got 0"),
        (dict(threshold=-1), "threshold must be 1 to 2147483647, got -1"),
        (dict(block_time=2 ** 31), "block_time must be 1 to 2147483647, got 2147483648"),
        (dict(whitelist=["192.0.2.1"] * 1025), "whitelist has 1025 entries, at most 1024"),
        (dict(unblock=["192.0.2.1"] * 2000), "unblock has 2000 entries, at most 1024"),
        (dict(whitelist=["\u0661\u0662.0.0.1"]), "whitelist '\u0661\u0662.0.0.1'"),
        (dict(whitelist=["-d"]), "whitelist '-d'"),
        (dict(command_timeout=0), "command_timeout 0 is out of range"),
        (dict(command_timeout=3601), "command_timeout 3601 is out of range"),
    ],
)
def test_bad_input_fails_naming_the_value_and_runs_nothing(monkeypatch, fake, args, named):
    result = run(monkeypatch, fake, fake.args(**args))
    assert result["failed"] is True
    assert named in result["msg"]
    assert fake.calls == []


def test_every_bad_value_is_listed(monkeypatch, fake):
    result = run(monkeypatch, fake, fake.args(whitelist=["a.example", "192.0.2.1", "b"], unblock=["c"]))
    assert result["invalid"] == ["a.example", "b", "c"]


def test_missing_afctl_fails_with_a_clear_message(monkeypatch, fake, tmp_path):
    result = run(monkeypatch, fake, fake.args(afctl_path=str(tmp_path / "nope/afctl"), whitelist=["192.0.2.1"]))
    assert result["failed"] is True
    assert result["msg"].startswith("afctl not found or not executable at %s" % (tmp_path / "nope/afctl"))
    assert "Server.app" in result["msg"]
    assert fake.calls == []


def test_afctl_failure_reports_command_rc_stderr_and_what_ran(monkeypatch, fake):
    fake.fail = ("-T", 1, "afctl: option -T requires a number, got 'x'\n")
    result = run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"], threshold=3))
    assert result["failed"] is True
    assert result["msg"] == "-T 3 failed: afctl: option -T requires a number, got 'x'"
    assert result["rc"] == 1 and result["cmd"] == [str(fake.path), "-T", "3"]
    assert [c[1:] for c in result["commands"]] == [["-w", "192.0.2.1"], ["-T", "3"]]


def test_a_change_the_file_does_not_show_fails_naming_the_option(monkeypatch, fake):
    fake.ignore_lists = True
    result = run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"]))
    assert result["failed"] is True
    assert "afctl -w 192.0.2.1 ran but %s does not list it" % fake.whitelist_file in result["msg"]
    assert "whitelist_file" in result["msg"]


def test_a_setting_afctl_does_not_store_where_read_warns(monkeypatch, fake):
    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    fake.settings_file.unlink()  # -H then fails to find it in the fake: simulate afctl writing elsewhere
    fake.settings_file.write_bytes(plistlib.dumps({"default_timeout": "15"}))

    def elsewhere(args, environ_update=None, **kwargs):
        fake.calls.append(dict(args=list(args), env=environ_update))
        return 0, "", ""

    result = run(monkeypatch, elsewhere, fake.args(block_time=30))
    assert result["changed"] is True
    assert warnings == ["afctl was asked to set block_time to 30 but afctl's files say 15; the next run will set it "
                        "again"]  # fmt: skip


def test_default_paths_follow_the_afctl_path(monkeypatch, tmp_path):
    assert afctl.server_root("/Applications/Server.app/Contents/ServerRoot/usr/libexec/afctl") == (
        "/Applications/Server.app/Contents/ServerRoot"
    )
    assert afctl.server_root("/usr/libexec/afctl") == ""
    assert afctl.server_root("/opt/afctl") == afctl.DEFAULT_SERVER_ROOT
    legacy = tmp_path / "etc-af.plist"
    monkeypatch.setattr(afctl, "LEGACY_SETTINGS_FILE", str(legacy))
    assert afctl.default_settings_file(str(tmp_path)) == str(tmp_path) + "/etc/af.plist"
    legacy.write_bytes(plistlib.dumps({}))
    assert afctl.default_settings_file(str(tmp_path)) == str(legacy)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/af.plist").write_bytes(plistlib.dumps({}))
    assert afctl.default_settings_file(str(tmp_path)) == str(tmp_path) + "/etc/af.plist"


def test_settings_and_threshold_files_default_under_server_root(monkeypatch, fake):
    # The fake's plists sit under <tmp>/ServerRoot, derived from afctl_path: no path options needed.
    result = run(monkeypatch, fake, fake.args(block_time=15, threshold=10))
    assert result["settings_before"]["block_time"] == 15 and result["settings_before"]["threshold"] == 10
    assert fake.calls == []


def test_every_call_is_bounded_by_command_timeout(monkeypatch, fake):
    run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"], threshold=4))
    assert fake.timeouts == [30, 30]
    fake.calls, fake.timeouts = [], []
    run(monkeypatch, fake, fake.args(whitelist=["192.0.2.2"], command_timeout=7))
    assert fake.timeouts == [7]


def test_a_hung_afctl_fails_naming_the_call_and_stops(monkeypatch, fake):
    def hung(args, environ_update=None, **kwargs):
        fake.calls.append(dict(args=list(args), env=environ_update))
        raise CommandTimeout("%s did not finish within 5 seconds and was killed (command_timeout)" % " ".join(args),
                             cmd=list(args))  # fmt: skip

    result = run(monkeypatch, hung, fake.args(whitelist=["192.0.2.1", "192.0.2.2"], command_timeout=5))
    assert result["failed"] is True
    assert result["msg"] == "%s -w 192.0.2.1 did not finish within 5 seconds and was killed (command_timeout)" % (
        fake.path
    )
    assert result["cmd"] == [str(fake.path), "-w", "192.0.2.1"]
    assert [c[1:] for c in result["commands"]] == [["-w", "192.0.2.1"]]


def unsafe_paths(tmp_path):
    """Kinds of path afctl's files must never be read through."""
    target = tmp_path / "elsewhere"
    target.write_text("10.0.0.1\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    directory = tmp_path / "dir"
    directory.mkdir()
    return {"a symbolic link": str(link), "a FIFO": str(fifo), "a directory": str(directory),
            "a character device": "/dev/zero"}  # fmt: skip


@pytest.mark.parametrize("option", ["whitelist_file", "blacklist_file", "settings_file", "threshold_file",
                                    "af_state_file"])  # fmt: skip
def test_unsafe_files_are_refused_by_name_before_any_call(monkeypatch, fake, tmp_path, option):
    base = tmp_path / ("unsafe-" + option)
    base.mkdir()
    for kind, path in unsafe_paths(base).items():
        fake.calls = []
        result = run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"], block_time=5, **{option: path}))
        assert result["failed"] is True, (option, kind)
        assert option in result["msg"] and path in result["msg"], result["msg"]
        assert ("symbolic link" in result["msg"]) == (kind == "a symbolic link")
        assert fake.calls == [] and result["commands"] == []


@pytest.mark.parametrize(
    "path, named",
    [
        ("relative/whitelist", "'relative/whitelist' is not an absolute path"),
        ("/var/db/af/white\nlist", "contains a control character"),
        ("/var/db/af/white\x1blist", "contains a control character"),
    ],
)
def test_path_options_must_be_absolute_without_control_characters(monkeypatch, fake, path, named):
    for option in afctl.PATH_OPTIONS:
        fake.calls = []
        result = run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"], **{option: path}))
        assert result["failed"] is True and option in result["msg"] and named in result["msg"], result["msg"]
        assert fake.calls == []


def test_afctl_path_may_be_a_link_to_afctl_but_not_a_device(monkeypatch, fake, tmp_path):
    link = tmp_path / "usr-libexec-afctl"
    link.symlink_to(fake.path)  # OS X 10.6/10.7: /usr/libexec/afctl links into AdaptiveFirewall.bundle

    def answer(args, environ_update=None, **kwargs):
        return fake([str(fake.path)] + list(args[1:]), environ_update=environ_update)

    result = run(monkeypatch, answer, fake.args(afctl_path=str(link), whitelist=["192.0.2.1"],
                                                settings_file=str(fake.settings_file)))  # fmt: skip
    assert result["changed"] is True and result["commands"] == [[str(link), "-w", "192.0.2.1"]]
    refused = run(monkeypatch, fake, fake.args(afctl_path="/dev/null", whitelist=["192.0.2.9"]))
    assert refused["failed"] is True and "afctl not found or not executable at /dev/null" in refused["msg"]


@pytest.mark.parametrize(
    "content, named",
    [
        (b"10.0.0.1\n\xff\xfe10.0.0.2\n", "line 2 is not UTF-8 text: '\ufffd\ufffd10.0.0.2'"),
        (b"10.0.0.1\n10.0.0.2\x1b[2J\n", "line 2 holds a control character"),
        (b"-e\n", "line 1 starts with '-', which afctl would read as an option"),
        (b"10.0.0.1\x00\n", "line 1 holds a control character"),
    ],
)
def test_list_lines_afctl_could_be_given_are_refused_by_line(monkeypatch, fake, content, named):
    for option, path in (("whitelist_file", fake.whitelist_file), ("blacklist_file", fake.blacklist_file)):
        original = path.read_bytes()
        path.write_bytes(content)
        fake.calls = []
        result = run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"], whitelist_state="exact",
                                                  unblock=["10.0.0.1"]))  # fmt: skip
        assert result["failed"] is True
        assert "%s %s %s" % (option, path, named) in result["msg"], result["msg"]
        assert fake.calls == []
        path.write_bytes(original)


def test_an_oversized_list_file_is_refused(monkeypatch, fake):
    fake.whitelist_file.write_text("10.0.0.1\n" * 200000)
    result = run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"]))
    assert result["failed"] is True
    assert "whitelist_file %s is larger than 1048576 bytes" % fake.whitelist_file in result["msg"]
    assert fake.calls == []


def test_hostile_plists_are_unknown_not_a_crash(monkeypatch, fake):
    nested = {"hostBlockThreshold": 3}
    for _level in range(200):  # deeper than any rule file, and than a recursive search could go
        nested = [nested]
    fake.threshold_file.write_bytes(plistlib.dumps(nested))
    fake.settings_file.write_bytes(plistlib.dumps({"default_timeout": "9" * 5000, "start_behavior": ["x"]}))
    fake.af_state_file.write_bytes(b"<?xml version='1.0'?><!DOCTYPE p [<!ENTITY a 'aaaa'>]><plist>&a;</plist>")
    result = run(monkeypatch, fake, fake.args(threshold=3, block_time=5), check_mode=True)
    assert result["settings_before"] == {"state": "disabled", "block_time": None, "threshold": None}
    assert [c[1:] for c in result["commands"]] == [["-H", "5"], ["-T", "3"]]


@pytest.mark.parametrize(
    "value, number",
    [("15", 15), (" 15 ", 15), (15, 15), (True, None), ("1e3", None), ("\u0661\u0665", None),
     ("99999999999", None), (2 ** 40, None), (1.5, None), ("", None), (None, None)],
)  # fmt: skip
def test_numbers_in_afs_files(value, number):
    assert afctl.as_int(value) == number


def test_failure_output_that_is_not_utf8_stays_text(monkeypatch, fake):
    fake.fail = ("-w", 1, "afctl: \ufffd\ufffd bad\n")  # as run_bounded decodes b"\xff\xfe"
    result = run(monkeypatch, fake, fake.args(whitelist=["192.0.2.1"]))
    assert result["failed"] is True and result["msg"] == "-w 192.0.2.1 failed: afctl: \ufffd\ufffd bad"
