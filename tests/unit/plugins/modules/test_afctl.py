# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Drive the afctl module through AnsibleModule with a fake afctl that keeps its files the way the
lab's emulator does (shared/reference/pfctl-macos.md §5; line and state formats are UNVERIFIED there)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import plistlib

import pytest
from ansible.module_utils import basic
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
        (dict(block_time=0), "block_time must be at least 1, got 0"),
        (dict(threshold=-1), "threshold must be at least 1, got -1"),
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
