# SPDX-License-Identifier: GPL-3.0-or-later
"""The fail2ban filters and ban action of roles/fail2ban, checked with this machine's real fail2ban 1.0.2.

No lab needed: `fail2ban-regex --config` runs against a temporary copy of /etc/fail2ban with the role's
own files added (roles/fail2ban/files), the way Homebrew's config dir holds them on a Mac.

Samples are the unified-log captures of docs/reference/macos.md#sshd-log-samples (`log stream --style syslog` lines: the
wazuh captures, the sshguard one and wazuh #18290's empty-user line), then the same lines as
macOS 15+ writes them under `sshd-session` and `sshd-auth`. fail2ban's own macOS samples (pre-10.12
syslog files, docs/reference/fail2ban.md#sshd-filter) are not used: the jail only ever reads the stream's file.
`-o row` makes fail2ban-regex stop at the first matching rule, as the server does, and print one row
per failure (address, time, groups).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLE_FILES = REPO / "roles" / "fail2ban" / "files"
FAIL2BAN_REGEX = "/usr/bin/fail2ban-regex"
FAIL2BAN_CLIENT = "/usr/bin/fail2ban-client"
SHIPPED_CONFIG = Path("/etc/fail2ban")

# (line as captured, address fail2ban must report). docs/reference/macos.md#sshd-log-samples.
SSHD_FAILURES = [
    ("2020-03-23 09:55:42.391078-0700  localhost sshd[17329]: error: PAM: authentication error for user from "
     "192.168.33.1", "192.168.33.1"),
    ("2020-03-24 08:38:42.344447-0700  localhost sshd[2519]: Failed password for user from 172.18.1.100 port 43042 "
     "ssh2", "172.18.1.100"),
    ("2020-03-25 08:01:34.584936-0700  localhost sshd[1551]: Failed keyboard-interactive/pam for invalid user user "
     "from 172.18.1.1 port 32982 ssh2", "172.18.1.1"),
    ("2020-03-23 06:47:42.801612-0700  localhost sshd[3186]: error: PAM: unknown user for illegal user badguy from "
     "192.168.33.1", "192.168.33.1"),
    ("2018-12-20 10:09:05.180218+0000 localhost sshd[67566]: Invalid user git from 185.52.1.9 port 35968",
     "185.52.1.9"),
    ("2023-08-08 15:07:29.432797+0000  localhost sshd[4564]: Invalid user  from 64.62.197.6 port 62565",
     "64.62.197.6"),
]  # fmt: skip

# Lines of logins that worked or connections that never failed an attempt: never failures.
SSHD_SUCCESSES = [
    # wazuh capture (docs/reference/macos.md#sshd-log-samples): a client gone while authenticating.
    # fail2ban's normal mode counts only the failed attempts before it, so a failed password plus this
    # line is one failure.
    "2020-03-25 08:23:20.933154-0700  localhost sshd[9265]: Connection reset by authenticating user user "
    "192.168.33.1 port 51772 [preauth]",
    "2026-09-13 12:31:12.200000-0700  localhost sshd[16475]: Connection closed by authenticating user admin "
    "1.2.3.4 port 50026 [preauth]",
    # wazuh's macOS 26 capture (docs/reference/macos.md#sshd-process-names), as captured.
    "2026-09-13 12:31:09.292032-0700 localhost sshd-session[16472]: Accepted publickey for vagrant from "
    "10.211.55.2 port 54807 ssh2: ED25519 SHA256:…",
    "2026-09-13 12:31:10.100000-0700  localhost sshd[16473]: Accepted password for admin from 1.2.3.4 port 50022 ssh2",
    "2026-09-13 12:31:11.100000-0700  localhost sshd[16474]: Connection closed by 1.2.3.4 port 50023",
    "2026-09-13 12:31:12.100000-0700  localhost sshd[16475]: Connection closed by 1.2.3.4 port 50024 [preauth]",
    "2026-09-13 12:31:13.100000-0700  localhost sshd[16476]: pam_unix(sshd:session): session opened for user "
    "admin(uid=501) by (uid=0)",
    "2026-09-13 12:31:14.100000-0700  localhost sshd[16477]: Received disconnect from 1.2.3.4 port 50025:11: "
    "disconnected by user",
    "2026-09-13 12:31:15.100000-0700  localhost sshd[16477]: Disconnected from user admin 1.2.3.4 port 50025",
    "2026-09-13 12:31:16.100000-0700  localhost sshd[16478]: Server listening on 0.0.0.0 port 22.",
    # What `log stream` itself prints first (into the same file).
    'Filtering the log data using "process IN {"sshd", "sshd-session", "sshd-auth"}"',
    "Timestamp                       (process)[PID]",
]  # fmt: skip

SSHD_NAMES = ("sshd", "sshd-session", "sshd-auth")

# What one failed password login writes to the stream (captured from the lab's OpenSSH with PAM, whose
# lines logd names as macOS does): PAM's line, the failure, then the client leaving. {n}: connection.
FAILED_LOGIN = [
    "2026-11-22 06:29:3{n}.598503+0000  localhost sshd[71{n}]: pam_unix(sshd:auth): authentication failure; "
    "logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.200  user=admin",
    "2026-11-22 06:29:3{n}.598889+0000  localhost sshd[71{n}]: Failed password for admin from 198.51.100.200 "
    "port 5562{n} ssh2",
    "2026-11-22 06:29:3{n}.607844+0000  localhost sshd[71{n}]: Connection closed by authenticating user admin "
    "198.51.100.200 port 5562{n} [preauth]",
]  # fmt: skip

# UNVERIFIED on current macOS (see files/filter.d/pfguard-screensharingd.local).
SCREENSHARING_FAILURE = (
    "2024-05-01 10:00:00.123456+0000  localhost screensharingd[1234]: Authentication: FAILED :: User Name: admin "
    ":: Viewer Address: 198.51.100.200 :: Type: DH"
)
SCREENSHARING_SUCCESS = (
    "2024-05-01 10:00:01.123456+0000  localhost screensharingd[1234]: Authentication: SUCCEEDED :: User Name: admin "
    ":: Viewer Address: 198.51.100.200 :: Type: DH"
)


def as_process(line: str, name: str) -> str:
    """The same line as logged under another sshd process name (macOS 15+)."""
    for original in SSHD_NAMES:
        marker = f" {original}["
        if marker in line:
            return line.replace(marker, f" {name}[", 1)
    raise AssertionError(f"no sshd process in {line!r}")


def line_epoch(line: str) -> int:
    stamp = " ".join(line.split()[:2])
    return int(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f%z").timestamp())


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory) -> Path:
    """/etc/fail2ban plus the role's filter and action files (shipped files untouched)."""
    for tool in (FAIL2BAN_REGEX, FAIL2BAN_CLIENT):
        assert Path(tool).is_file(), f"{tool} is missing: install Debian's fail2ban"
    target = tmp_path_factory.mktemp("fail2ban") / "fail2ban"
    shutil.copytree(SHIPPED_CONFIG, target)
    for path in ROLE_FILES.rglob("*"):
        if path.is_file():
            destination = target / path.relative_to(ROLE_FILES)
            assert not destination.exists(), f"the role must not replace shipped file {destination.name}"
            shutil.copyfile(path, destination)
    return target


def failure_rows(config: Path, line: str, filter_name: str) -> list[list]:
    """fail2ban-regex -o row: one [address, time, groups] per failure found in `line`."""
    result = subprocess.run(
        [FAIL2BAN_REGEX, "--config", str(config), "-o", "row", line, filter_name],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, f"fail2ban-regex failed:\n{result.stdout}\n{result.stderr}"
    rows = []
    for text in result.stdout.splitlines():
        text = text.strip().rstrip(",")
        if text.startswith("["):
            rows.append(ast.literal_eval(text))
    return rows


@pytest.mark.parametrize("name", SSHD_NAMES)
@pytest.mark.parametrize(("line", "address"), SSHD_FAILURES, ids=[f"sample{i}" for i in range(len(SSHD_FAILURES))])
def test_every_sshd_failure_sample_is_a_failure(config_dir, line, address, name):
    logged = as_process(line, name)
    rows = failure_rows(config_dir, logged, "sshd")
    assert len(rows) == 1, f"expected one failure from {logged!r}, got {rows}"
    found_address, found_time, _groups = rows[0]
    assert found_address == address
    # The date pattern reads the stream's timestamp, zone included.
    assert int(found_time) == line_epoch(logged)


@pytest.mark.parametrize("name", SSHD_NAMES)
@pytest.mark.parametrize("line", SSHD_SUCCESSES, ids=[f"ok{i}" for i in range(len(SSHD_SUCCESSES))])
def test_no_success_line_is_a_failure(config_dir, line, name):
    logged = as_process(line, name) if any(f" {n}[" in line for n in SSHD_NAMES) else line
    assert failure_rows(config_dir, logged, "sshd") == []


@pytest.mark.parametrize("name", SSHD_NAMES)
@pytest.mark.parametrize("logins", [1, 2, 3])
def test_each_failed_login_counts_once(config_dir, tmp_path, logins, name):
    """maxretry counts failed passwords: the disconnect after one is not a failure of its own (normal mode),
    so with maxretry 3 two failed logins do not ban and three do."""
    log = tmp_path / "auth.log"
    lines = [as_process(line.format(n=n), name) for n in range(logins) for line in FAILED_LOGIN]
    log.write_text("\n".join(lines) + "\n")
    rows = failure_rows(config_dir, str(log), "sshd")
    assert [row[0] for row in rows] == ["198.51.100.200"] * logins, rows
    failure_times = [line_epoch(line) for line in lines if ": Failed password " in line]
    assert [int(row[1]) for row in rows] == failure_times


def test_the_shipped_filter_alone_misses_the_new_process_names(tmp_path):
    """Without the role's sshd.local fail2ban 1.0.2 does not see sshd-auth (the reason for the .local)."""
    shipped = tmp_path / "fail2ban"
    shutil.copytree(SHIPPED_CONFIG, shipped)
    line = as_process(SSHD_FAILURES[1][0], "sshd-auth")
    assert failure_rows(shipped, line, "sshd") == []


def test_screensharingd_failure_is_a_failure(config_dir):
    rows = failure_rows(config_dir, SCREENSHARING_FAILURE, "pfguard-screensharingd")
    assert [row[0] for row in rows] == ["198.51.100.200"]
    assert rows[0][2].get("user") == "admin"


def test_screensharingd_success_and_sshd_lines_are_not(config_dir):
    assert failure_rows(config_dir, SCREENSHARING_SUCCESS, "pfguard-screensharingd") == []
    assert failure_rows(config_dir, SSHD_FAILURES[1][0], "pfguard-screensharingd") == []
    assert failure_rows(config_dir, SCREENSHARING_FAILURE, "sshd") == []


def test_ban_action_adds_to_the_table_then_kills_the_states(config_dir, tmp_path):
    """pfguard-pf is fail2ban's pf action plus `pfctl -k <ip>` after the table add
    (docs/reference/fail2ban.md#killing-states)."""
    log = tmp_path / "auth.log"
    log.write_text("")
    (config_dir / "jail.d").mkdir(exist_ok=True)
    jail = config_dir / "jail.d" / "zz-test.local"
    jail.write_text(f"[DEFAULT]\nbanaction = pfguard-pf\n\n[sshd]\nenabled = true\nlogpath = {log}\n")
    try:
        result = subprocess.run([FAIL2BAN_CLIENT, "-c", str(config_dir), "-d"], capture_output=True, text=True,
                                timeout=60)  # fmt: skip
    finally:
        jail.unlink()
    assert result.returncode == 0, result.stderr
    stream = [ast.literal_eval(text) for text in result.stdout.splitlines() if text.startswith("[")]
    actions = [entry for entry in stream if entry[:4] == ["multi-set", "sshd", "action", "pfguard-pf"]]
    assert len(actions) == 1, stream
    settings = dict(actions[0][4])
    assert settings["actionban"] == "pfctl -a f2b/sshd -t f2b-sshd -T add <ip> && /sbin/pfctl -k <ip>"
    # Everything else is fail2ban's own pf action.
    assert settings["actionunban"] == "pfctl -a f2b/sshd -t f2b-sshd -T delete <ip>"
    assert 'echo "table <f2b-sshd> persist counters" | pfctl -a f2b/sshd -f-' in settings["actionstart"]
