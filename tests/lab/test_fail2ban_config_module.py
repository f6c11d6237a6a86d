# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard.macos.fail2ban_config run by real `ansible` with this machine's real fail2ban-client 1.0.2.

No lab needed: the configuration directory is a temporary copy of /etc/fail2ban, laid out as Homebrew's
etc/fail2ban is on a Mac, and `fail2ban-client -t` is the real one."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from pfguard_lab.adhoc import ANSIBLE, QUIET, REPO, run_module

FAIL2BAN_CLIENT = "/usr/bin/fail2ban-client"
ROLE_FILTER = Path(__file__).resolve().parents[2] / "roles" / "fail2ban" / "files" / "filter.d" / "sshd.local"
GOOD_JAIL = "[sshd]\nenabled = true\nbackend = polling\nlogpath = {log}\n"
# A jail whose filter does not exist: fail2ban-client -t says "Unable to read the filter".
BAD_JAIL = "[sshd]\nenabled = true\nfilter = pfguard-no-such-filter\nbackend = polling\nlogpath = {log}\n"


@pytest.fixture
def config_dir(tmp_path):
    copy = tmp_path / "etc" / "fail2ban"
    shutil.copytree("/etc/fail2ban", copy)
    (tmp_path / "auth.log").write_text("")
    return copy


def configure(config_dir: Path, files: dict, *extra: str, client: str = FAIL2BAN_CLIENT) -> tuple[int, dict]:
    return run_module("pfguard.macos.fail2ban_config",
                      {"config_dir": str(config_dir), "client": client, "files": files}, *extra)  # fmt: skip


def role_files(config_dir: Path, jail: str = GOOD_JAIL) -> dict:
    log = config_dir.parents[1] / "auth.log"
    return {"jail.local": jail.format(log=log), "filter.d/sshd.local": ROLE_FILTER.read_text()}


def tree(directory: Path) -> dict:
    """Every entry under the directory with its kind and bytes (links as their target)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            found[str(path)] = ("link", os.readlink(path))
        elif path.is_file():
            found[str(path)] = ("file", path.read_bytes())
        else:
            found[str(path)] = ("other", stat.S_IFMT(path.lstat().st_mode))
    return found


def test_installs_tested_files_once_then_changes_nothing(config_dir):
    files = role_files(config_dir)
    rc, result = configure(config_dir, files)
    assert rc == 0 and result["changed"] is True and result["tested"] is True, result
    assert result["changed_files"] == ["filter.d/sshd.local", "jail.local"]
    for name, text in files.items():
        installed = config_dir / name
        assert installed.read_text() == text
        info = installed.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o644), name
    assert not [p for p in config_dir.rglob(".*")], "a temporary file was left behind"
    # Unchanged files are neither tested nor written: a client that always fails is never run.
    rc, again = configure(config_dir, files, client="/bin/false")
    assert rc == 0 and again["changed"] is False and again["tested"] is False, again
    assert again["changed_files"] == []


def test_a_configuration_fail2ban_refuses_is_not_installed(config_dir):
    rc, good = configure(config_dir, role_files(config_dir))
    assert rc == 0, good
    before = tree(config_dir)
    rc, result = configure(config_dir, role_files(config_dir, BAD_JAIL))
    assert rc != 0 and result.get("failed") is True, result
    assert "fail2ban-client -t refused the configuration with jail.local" in result["msg"], result["msg"]
    assert "Unable to read the filter 'pfguard-no-such-filter'" in result["msg"], result["msg"]
    assert tree(config_dir) == before


def test_check_mode_tells_the_change_and_the_test_and_writes_nothing(config_dir):
    before = tree(config_dir)
    rc, result = configure(config_dir, role_files(config_dir), "--check")
    assert rc == 0 and result["changed"] is True and result["tested"] is True, result
    assert result["changed_files"] == ["filter.d/sshd.local", "jail.local"]
    args = {"config_dir": str(config_dir), "client": FAIL2BAN_CLIENT, "files": role_files(config_dir)}
    shown = subprocess.run([ANSIBLE, "localhost", "-m", "pfguard.macos.fail2ban_config", "-a", json.dumps(args),
                            "--check", "--diff"], cwd=REPO, env={**os.environ, **QUIET}, capture_output=True,
                           text=True, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"--- before: {config_dir}/jail.local\n+++ after: {config_dir}/jail.local" in shown.stdout, shown.stdout
    assert "+[sshd]" in shown.stdout and "+enabled = true" in shown.stdout, shown.stdout
    assert tree(config_dir) == before
    rc, bad = configure(config_dir, role_files(config_dir, BAD_JAIL), "--check")
    assert rc != 0 and "Unable to read the filter" in bad["msg"], bad  # check mode tells a refusal too


def test_check_mode_before_fail2ban_is_installed_reports_every_file(tmp_path):
    missing = tmp_path / "etc" / "fail2ban"
    rc, result = configure(missing, {"jail.local": "[DEFAULT]\n"}, "--check")
    assert rc == 0 and result["changed"] is True and result["tested"] is False, result
    rc, result = configure(missing, {"jail.local": "[DEFAULT]\n"})
    assert rc != 0 and result["msg"] == f"config_dir {missing} does not exist: install fail2ban first", result
    assert not missing.exists()


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"../jail.local": "x"}, "'../jail.local' is not a fail2ban configuration file name"),
        ({"/etc/passwd": "x"}, "'/etc/passwd' is not a fail2ban configuration file name"),
        ({"jail.d/../../x.local": "x"}, "'jail.d/../../x.local' is not a fail2ban configuration file name"),
        ({"paths-osx.py": "x"}, "'paths-osx.py' is not a fail2ban configuration file name"),
        ({"jail.local\n": "x"}, "'jail.local\\n' is not a fail2ban configuration file name"),
        ({"jail.local": "[sshd]\0"}, "the text of jail.local contains a NUL character"),
        ({"jail.local": "#" * (1024 * 1024 + 1)}, "the text of jail.local is larger than 1048576 bytes"),
        ({"jail.local": 7}, "the text of jail.local must be a string, got int"),
        ({}, "files is empty"),
    ],
    ids=["parent", "absolute", "through-subdir", "not-local-or-conf", "newline", "nul", "too-large", "not-text",
         "empty"],
)  # fmt: skip
def test_bad_files_are_refused_by_name_and_nothing_changes(config_dir, tmp_path, files, named):
    before = tree(config_dir)
    # Through an extra-vars file: one argument of over 128 KiB is more than the kernel takes.
    extra = tmp_path / "files.json"
    extra.write_text(json.dumps({"files": files}))
    rc, result = run_module("pfguard.macos.fail2ban_config",
                            {"config_dir": str(config_dir), "client": FAIL2BAN_CLIENT, "files": "{{ files }}"},
                            "-e", f"@{extra}")  # fmt: skip
    assert rc != 0 and named in result["msg"], result
    assert "Traceback" not in json.dumps(result)
    assert tree(config_dir) == before


def test_a_link_in_place_of_a_file_is_refused_and_left_alone(config_dir, tmp_path):
    target = tmp_path / "elsewhere.local"
    target.write_text("# not fail2ban's\n")
    (config_dir / "jail.local").symlink_to(target)
    before = tree(config_dir)
    rc, result = configure(config_dir, role_files(config_dir))
    assert rc != 0 and f"{config_dir}/jail.local is a symbolic link" in result["msg"], result
    assert tree(config_dir) == before and target.read_text() == "# not fail2ban's\n"


def test_a_fifo_in_the_configuration_does_not_hang_the_test(config_dir):
    os.mkfifo(config_dir / "jail.d" / "stray.fifo")
    # A copy that opened the FIFO would wait for a writer forever; ansible ends the task after 60 s.
    rc, result = run_module("pfguard.macos.fail2ban_config",
                            {"config_dir": str(config_dir), "client": FAIL2BAN_CLIENT, "files": role_files(config_dir)},
                            env={"ANSIBLE_TASK_TIMEOUT": "60"})  # fmt: skip
    assert rc == 0 and result["tested"] is True, result


def test_bad_config_dir_and_client_are_named(config_dir, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    rc, result = configure(a_file, role_files(config_dir))
    assert rc != 0 and result["msg"] == f"config_dir {a_file} is not a directory", result
    rc, result = configure(config_dir, role_files(config_dir), client=str(tmp_path / "no-client"))
    assert rc != 0 and f"fail2ban-client not found or not executable at {tmp_path}/no-client" in result["msg"], result
    assert not (config_dir / "jail.local").exists()
