# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile input for pfguard.macos.pfctl_table and pf_facts, run by real Ansible on localhost
(through the pfctl_table action plugin) against the lab's emulated pfctl, standalone: its kernel
state lives in a temp dir, as in test_pfctl_table_module.py.

Every case must be refused with an error naming the bad value, with no traceback, and must leave the
temp dir (the emulated kernel's state, the persist file, the hostile files and what links point to)
exactly as it was, and /dev/null a character device. The cases run in batches (hostile.Batch: one
ansible-playbook run each, a snapshot after every case), one per controller environment, the big one
split to run side by side; a FIFO would block a module that opened it, so every case has a task
timeout and a hang fails fast."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from hostile import Batch, Case, snapshot, wait_all
from pfguard_lab.adhoc import run_module as adhoc_run_module
from pfguard_lab.commands import write_wrapper

# The batch runs in a fixture, bounded by its own timeouts (hostile.TASK_TIMEOUT per case).
pytestmark = pytest.mark.timeout(90, func_only=True)

TABLE = "pfguard.macos.pfctl_table"
FACTS = "pfguard.macos.pf_facts"
SEEDED = "198.51.100.1"  # in the table and the persist file before every case
# `ansible` exits 2 when a host failed; ansible-core 2.19 leaves the `failed` key out of the one-line
# result adhoc.run_module parses, so it is put back from the exit code.
HOST_FAILED = 2


def run_module(module: str, args: dict, *extra: str, env: dict | None = None) -> tuple[int, dict]:
    rc, result = adhoc_run_module(module, args, *extra, env=env)
    return rc, ({**result, "failed": True} if rc == HOST_FAILED else result)


def make_lab(tmp_path: Path) -> SimpleNamespace:
    """An emulated pfctl whose table `t` holds SEEDED, its persist file, and hostile files around it."""
    root = tmp_path / "root"
    root.mkdir()
    pfctl = write_wrapper(root / "pfctl", "pfguard_lab.emulators.pf.pfctl", {"PFGUARD_LAB_PF_STATE": str(root / "pf")})
    subprocess.run([str(pfctl), "-t", "t", "-T", "add", SEEDED], check=True, capture_output=True, timeout=60)
    persist = root / "blocklist.txt"
    persist.write_text(SEEDED + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real").write_text("not a table file\n")
    (root / "dir").mkdir()
    os.mkfifo(root / "fifo")
    (root / "link").symlink_to(elsewhere / "real")
    (root / "dangling").symlink_to(elsewhere / "nothing")
    (root / "devnull-link").symlink_to("/dev/null")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "socket"))
    with open(root / "huge", "wb") as handle:  # sparse: no disk used
        handle.truncate(65 * 1024 * 1024)
    return SimpleNamespace(root=root, pfctl=str(pfctl), persist=str(persist), tmp=tmp_path)


@pytest.fixture
def lab(tmp_path, monkeypatch):
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        monkeypatch.delenv(name, raising=False)
    return make_lab(tmp_path)


def ban(lab, **args) -> dict:
    return dict(dict(table="t", addresses=["203.0.113.7"], persist_file=lab.persist, pfctl_path=lab.pfctl), **args)


def at(lab, name: str) -> str:
    return str(lab.root / name)


# Each case: (id, args from the lab, names the message must hold [from the lab], environment).
PERSIST_CASES = [
    ("persist-dev-null", lambda L: ban(L, persist_file="/dev/null"), ("/dev/null", "character device")),
    ("persist-dev-zero", lambda L: ban(L, persist_file="/dev/zero"), ("/dev/zero", "character device")),
    ("persist-directory", lambda L: ban(L, persist_file=at(L, "dir")), (lambda L: at(L, "dir"), "a directory")),
    ("persist-fifo", lambda L: ban(L, persist_file=at(L, "fifo")), (lambda L: at(L, "fifo"), "a FIFO")),
    ("persist-socket", lambda L: ban(L, persist_file=at(L, "socket")), (lambda L: at(L, "socket"), "a socket")),
    ("persist-symlink", lambda L: ban(L, persist_file=at(L, "link")), (lambda L: at(L, "link"), "symbolic link")),
    ("persist-dangling-symlink", lambda L: ban(L, persist_file=at(L, "dangling")), ("symbolic link",)),
    ("persist-symlink-to-dev-null", lambda L: ban(L, persist_file=at(L, "devnull-link")), ("symbolic link",)),
    ("persist-nul", lambda L: ban(L, persist_file=at(L, "x\x00y")), ("control character",)),
    ("persist-newline", lambda L: ban(L, persist_file=at(L, "x\ny")), ("control character",)),
    ("persist-relative", lambda L: ban(L, persist_file="blocklist.txt"), ("'blocklist.txt'", "not an absolute path")),
    ("persist-tilde", lambda L: ban(L, persist_file="~/blocklist.txt"), ("not an absolute path",)),
    ("persist-trailing-slash", lambda L: ban(L, persist_file=at(L, "dir") + "/"), ("does not name a file",)),
    ("persist-root", lambda L: ban(L, persist_file="/"), ("does not name a file",)),
    ("persist-too-large", lambda L: ban(L, persist_file=at(L, "huge")), ("larger than",)),
]
ANCHOR_CASES = [
    ("anchor-dotdot", lambda L: ban(L, anchor="f2b/../pfguard"), ("'f2b/../pfguard'", "'..' component")),
    ("anchor-dot", lambda L: ban(L, anchor="pfguard/."), ("'.' component",)),
    ("anchor-newline", lambda L: ban(L, anchor="pfguard\nevil/x"), (r"'pfguard\nevil/x'", "control character")),
    ("anchor-carriage-return", lambda L: ban(L, anchor="pfguard\r"), (r"'pfguard\r'",)),
    ("anchor-nul", lambda L: ban(L, anchor="pf\x00guard"), (r"'pf\x00guard'",)),
    ("anchor-space", lambda L: ban(L, anchor="pf guard"), ("whitespace",)),
    ("anchor-tab", lambda L: ban(L, anchor="pf\tguard"), ("whitespace",)),
    ("anchor-line-separator", lambda L: ban(L, anchor="pf\u2028guard"), ("non-ASCII",)),
    ("anchor-non-ascii", lambda L: ban(L, anchor="caf\u00e9"), ("non-ASCII",)),
    ("anchor-quote", lambda L: ban(L, anchor='pf"guard'), ("quote",)),
    ("anchor-component-64-bytes", lambda L: ban(L, anchor="a/" + "b" * 64), ("64 bytes", "at most 63")),
    ("anchor-path-1087-bytes", lambda L: ban(L, anchor="/".join(["a" * 63] * 17)), ("1087 bytes", "1023 bytes")),
    ("anchor-reserved", lambda L: ban(L, anchor="_pf"), ("reserved",)),
    ("anchor-wildcard", lambda L: ban(L, anchor="f2b/*"), ("wildcards",)),
    ("anchor-empty-component", lambda L: ban(L, anchor="f2b//sshd"), ("empty path component",)),
]
TABLE_NAME_CASES = [
    ("table-empty", lambda L: ban(L, table=""), ("must not be empty",)),
    ("table-32-bytes", lambda L: ban(L, table="x" * 32), ("32 bytes", "at most 31")),
    ("table-40-bytes-20-chars", lambda L: ban(L, table="\u00e9" * 20), ("40 bytes",)),
    ("table-non-ascii", lambda L: ban(L, table="t\u00e9"), ("non-ASCII",)),
    ("table-nul", lambda L: ban(L, table="t\x00x"), (r"'t\x00x'", "control character")),
    ("table-newline", lambda L: ban(L, table="t\nx"), (r"'t\nx'",)),
    ("table-space", lambda L: ban(L, table="t x"), ("whitespace",)),
    ("table-angle", lambda L: ban(L, table="<t>"), ("'<t>'", "cannot hold")),
    ("table-slash", lambda L: ban(L, table="t/x"), ("cannot hold",)),
    ("table-list", lambda L: ban(L, table=["t"]), ("cannot hold",)),
]
ADDRESS_CASES = [
    ("unicode-digits-mask", lambda L: ban(L, addresses=["203.0.113.0/\u0662\u0664"]), ("ASCII digits",)),
    ("unicode-digit-address", lambda L: ban(L, addresses=["\u0662.0.113.7"]), ("not an IPv4 or IPv6",)),
    ("octal-mask", lambda L: ban(L, addresses=["1.2.3.4/010"]), ("'1.2.3.4/010'", "leading zero", "octal")),
    ("hex-mask", lambda L: ban(L, addresses=["1.2.3.4/0x18"]), ("hexadecimal",)),
    ("plus-mask", lambda L: ban(L, addresses=["1.2.3.4/+24"]), ("sign or blanks",)),
    ("blank-mask", lambda L: ban(L, addresses=["1.2.3.4/ 24"]), ("sign or blanks",)),
    ("empty-mask", lambda L: ban(L, addresses=["1.2.3.4/"]), ("invalid netmask",)),
    ("mask-33", lambda L: ban(L, addresses=["1.2.3.4/33"]), ("wider than an IPv4",)),
    ("inner-space", lambda L: ban(L, addresses=["1.2.3.4 5.6.7.8"]), ("'1.2.3.4 5.6.7.8'",)),
    ("empty", lambda L: ban(L, addresses=[""]), ("empty address",)),
    ("negation", lambda L: ban(L, addresses=["!192.0.2.1"]), ("negation",)),
    ("hostname", lambda L: ban(L, addresses=["evil.example"]), ("'evil.example'", "hostnames")),
    ("interface-en0", lambda L: ban(L, addresses=["en0"]), ("'en0'",)),
    ("interface-network", lambda L: ban(L, addresses=["en0:network"]), ("'en0:network'",)),
    ("self", lambda L: ban(L, addresses=["self"]), ("'self'",)),
    ("scoped-v6", lambda L: ban(L, addresses=["fe80::1%en0"]), ("scoped",)),
    ("nul-address", lambda L: ban(L, addresses=["192.0.2.1\x00"]), (r"'192.0.2.1\x00'",)),
    ("inet-aton-shorthand", lambda L: ban(L, addresses=["10.1"]), ("'10.1'",)),
    ("leading-zero-octet", lambda L: ban(L, addresses=["010.1.1.1"]), ("'010.1.1.1'",)),
    ("wide-v4-slash-8", lambda L: ban(L, addresses=["10.0.0.0/8"]), ("10.0.0.0/8", "allow_wide_networks")),
    ("wide-v4-slash-1", lambda L: ban(L, addresses=["128.0.0.0/1"]), ("allow_wide_networks",)),
    ("wide-v6-slash-32", lambda L: ban(L, addresses=["2001:db8::/32"]), ("2001:db8::/32", "allow_wide")),
    ("default-v4", lambda L: ban(L, addresses=["0.0.0.0/0"]), ("0.0.0.0/0", "covers every IPv4 address")),
    ("default-v6", lambda L: ban(L, addresses=["::/0"]), ("::/0", "covers every IPv6 address")),
    ("default-even-if-wide-allowed", lambda L: ban(L, addresses=["0.0.0.0/0"], allow_wide_networks=True), ("covers",)),
    ("protected-network", lambda L: ban(L, addresses=["198.51.100.0/23"], protect=[SEEDED]), ("overlaps",)),
]
CONTROLLER_CASES = [
    (
        "controller-v4",
        lambda L: ban(L, addresses=["192.0.2.0/24"]),
        ("192.0.2.0/24 overlaps the controller's address 192.0.2.10",),
        {"SSH_CONNECTION": "192.0.2.10 50222 192.0.2.1 22"},
    ),
    (
        "controller-v6",
        lambda L: ban(L, addresses=["2001:db8:5::/48"]),
        ("the controller's address 2001:db8:5::10",),
        {"SSH_CONNECTION": "2001:db8:5::10 50222 2001:db8::1 22"},
    ),
    (
        "controller-v4-mapped",
        lambda L: ban(L, addresses=["192.0.2.8/29"]),
        ("the controller's address 192.0.2.10",),
        {"SSH_CONNECTION": "::ffff:192.0.2.10 50222 ::ffff:192.0.2.1 22"},
    ),
    (
        "controller-ssh-client-only",
        lambda L: ban(L, addresses=["192.0.2.10"]),
        ("the controller's address 192.0.2.10",),
        {"SSH_CLIENT": "192.0.2.10 50222 22"},
    ),
    (
        "controller-wide-names-it",
        lambda L: ban(L, addresses=["10.0.0.0/8"]),
        ("allow_wide_networks", "as this host sees it: 192.0.2.10"),
        {"SSH_CONNECTION": "192.0.2.10 50222 192.0.2.1 22"},
    ),
    (
        "controller-option-garbage",
        lambda L: ban(L, controller_address=["controller.example"]),
        ("'controller.example'",),
        None,
    ),
]
TYPE_CASES = [
    ("addresses-dict", lambda L: ban(L, addresses={"203.0.113.7": 1}), ("addresses",)),
    ("addresses-nested-list", lambda L: ban(L, addresses=[["203.0.113.7"]]), ("203.0.113.7",)),
    ("addresses-number", lambda L: ban(L, addresses=[12345]), ("'12345'",)),
    ("protect-hostname", lambda L: ban(L, protect=["trusted.example"]), ("'trusted.example'",)),
    ("state-bogus", lambda L: ban(L, state="bogus"), ("state",)),
    ("kill-states-not-bool", lambda L: ban(L, kill_states="maybe"), ("kill_states",)),
    ("allow-wide-not-bool", lambda L: ban(L, allow_wide_networks="sure"), ("allow_wide_networks",)),
    ("unknown-option", lambda L: ban(L, bogus=1), ("bogus",)),
    ("timeout-zero", lambda L: ban(L, command_timeout=0), ("command_timeout 0",)),
    ("timeout-negative", lambda L: ban(L, command_timeout=-1), ("command_timeout -1",)),
    ("timeout-huge", lambda L: ban(L, command_timeout=10**12), ("command_timeout 1000000000000",)),
    ("timeout-text", lambda L: ban(L, command_timeout="soon"), ("command_timeout",)),
    ("pfctl-relative", lambda L: ban(L, pfctl_path="pfctl"), ("'pfctl'", "not an absolute path")),
    ("pfctl-newline", lambda L: ban(L, pfctl_path="/sbin/pf\nctl"), ("control character",)),
    ("pfctl-missing", lambda L: ban(L, pfctl_path=at(L, "nope/pfctl")), ("not found or not executable",)),
    ("pfctl-directory", lambda L: ban(L, pfctl_path=at(L, "dir")), ("not found or not executable",)),
    ("pfctl-fifo", lambda L: ban(L, pfctl_path=at(L, "fifo")), ("not found or not executable",)),
]
FACTS_CASES = [
    ("facts-pfctl-relative", lambda L: dict(pfctl_path="sbin/pfctl"), ("not an absolute path",)),
    ("facts-pfctl-nul", lambda L: dict(pfctl_path="/sbin/pf\x00ctl"), ("control character",)),
    ("facts-pfctl-fifo", lambda L: dict(pfctl_path=at(L, "fifo")), ("not found or not executable",)),
    ("facts-timeout-zero", lambda L: dict(pfctl_path=L.pfctl, command_timeout=0), ("command_timeout 0",)),
    ("facts-timeout-huge", lambda L: dict(pfctl_path=L.pfctl, command_timeout=86400), ("command_timeout 86400",)),
    ("facts-unknown-option", lambda L: dict(pfctl_path=L.pfctl, anchor="x"), ("anchor",)),
]


def cases():
    for group in (PERSIST_CASES, ANCHOR_CASES, TABLE_NAME_CASES, ADDRESS_CASES, TYPE_CASES):
        for name, args, names in group:
            yield pytest.param(name, TABLE, args, names, None, id=name)
    for name, args, names, env in CONTROLLER_CASES:
        yield pytest.param(name, TABLE, args, names, env, id=name)
    for name, args, names in FACTS_CASES:
        yield pytest.param(name, FACTS, args, names, None, id=name)


ALL_CASES = list(cases())
CHECK = " --check"  # id suffix of a case's check-mode run
MISSING_DIR = "missing-persist-directory"  # refused, but not in check mode (its own test below)
MISSING = (MISSING_DIR, TABLE, lambda L: ban(L, persist_file=at(L, "nope/x.txt")), (), None)
SHARDS = min(4, len(os.sched_getaffinity(0)))  # a big batch is split into this many, run side by side


def case_tasks(lab, name: str, module: str, args) -> list[Case]:
    """A case run as is, then in check mode (which must be refused the same way)."""
    return [Case(name, module, args(lab)), Case(name + CHECK, module, args(lab), {"check_mode": True})]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Every case, in a batch per controller environment (on a local connection the action plugin
    reads the controller's own SSH_CONNECTION, so it cannot be set per task), a big batch split in
    up to SHARDS; each batch has a lab of its own. Returns {case id: (lab, batch)}."""
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_CONNECTION", "SSH_CLIENT")}
    groups: dict[str, list] = {}
    for name, module, args, _names, extra in [*(param.values for param in ALL_CASES), MISSING]:
        groups.setdefault(json.dumps(extra or {}, sort_keys=True), []).append((name, module, args))
    runs = {}
    for extra, members in groups.items():
        count = max(1, min(SHARDS, len(members) // 16))
        for part in (members[start::count] for start in range(count)):
            tmp = tmp_path_factory.mktemp("hostile")
            lab = make_lab(tmp)
            cases = [case for name, module, args in part for case in case_tasks(lab, name, module, args)]
            run = Batch(tmp_path_factory.mktemp("playbook"), cases, watched=[tmp, "/dev/null"],
                        env={**env, **json.loads(extra)})  # fmt: skip
            runs.update({case.id: (lab, run) for case in cases})
    wait_all(*{id(run): run for _lab, run in runs.values()}.values(), timeout=1200)
    return runs


def refused(batch, name: str, *names: str) -> str:
    """The case failed naming `names` (no traceback) and changed nothing in its temp dir nor /dev/null."""
    _lab, run = batch[name]
    outcome = run.refused(name, *names)
    assert outcome.after["/dev/null"][0] == stat.S_IFCHR, "/dev/null is no longer a character device"
    return outcome.result["msg"]


def test_at_least_sixty_hostile_cases():
    assert len(ALL_CASES) >= 60, len(ALL_CASES)


@pytest.mark.parametrize("name, module, args, names, env", ALL_CASES)
def test_hostile_input_is_refused_by_name_and_changes_nothing(batch, name, module, args, names, env):
    lab, _run = batch[name]
    refused(batch, name, *(n(lab) if callable(n) else n for n in names))
    # check mode is refused the same way
    refused(batch, name + CHECK)


def test_a_missing_persist_directory_is_refused_but_not_in_check_mode(batch):
    """A play creates the directory before this task (the roles do), which check mode does not: there a
    missing directory means no file to read, not a refusal. Nothing is written either way."""
    refused(batch, MISSING_DIR, "does not exist")
    _lab, run = batch[MISSING_DIR + CHECK]
    outcome = run.outcome(MISSING_DIR + CHECK)
    assert not outcome.refused and outcome.result["changed"] is True, outcome.result
    run.unchanged(outcome, MISSING_DIR + CHECK)


def test_the_seeded_state_is_what_a_good_run_would_change(lab):
    """The cases above are worth something only if a good run does change the watched state."""
    before = snapshot(lab.tmp)
    rc, result = run_module(TABLE, ban(lab))
    assert rc == 0 and result["added"] == ["203.0.113.7"], result
    assert Path(lab.persist).read_text() == "198.51.100.1\n203.0.113.7\n"
    assert snapshot(lab.tmp) != before


def test_pf_facts_reports_anchor_names_with_control_characters_escaped(lab):
    odd = "f2b/ev\x1b[2Jil"
    subprocess.run([lab.pfctl, "-a", odd, "-t", "x", "-T", "add", "192.0.2.1"], check=True, capture_output=True)
    subprocess.run([lab.pfctl, "-a", "pfguard", "-t", "y", "-T", "add", "192.0.2.2"], check=True, capture_output=True)
    rc, result = run_module(FACTS, dict(pfctl_path=lab.pfctl))
    assert rc == 0, result
    pf = result["ansible_facts"]["pf"]
    assert "f2b/ev\\x1b[2Jil" in pf["anchors"] and "pfguard" in pf["anchors"]
    assert all(" " <= char <= "~" for name in pf["anchors"] for char in name)
    assert "\x1b" not in str(result) and "\\u001b" not in json.dumps(result)
    assert {"anchor": "pfguard", "name": "y", "count": 1, "blocking": False} in pf["tables"]
