# SPDX-License-Identifier: GPL-3.0-or-later
"""pfctl -t TABLE -T COMMAND: counters, kernel errors, address input and show formats (docs/reference/pfctl.md)."""

from __future__ import annotations

import json
import random
import re
import time

import pytest
from pf_fixtures import ALTQ, F_WARNING, USAGE

pytest_plugins = ["pf_fixtures"]

NO_TABLE = "pfctl: Table does not exist.\n"
CTIME = r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}"
COUNTER = "\t{:<12} [ Packets: 0                  Bytes: 0                  ]\n"


def entries(pf_ctl, table="t", *args):
    return pf_ctl("-q", *args, "-t", table, "-T", "show").out


# ---------------------------------------------------------------------------- counters (pfctl.md#table-commands)


def test_add_creates_a_persistent_table(pf_ctl):
    result = pf_ctl("-t", "t", "-T", "add", "10.0.0.1", "10.0.0.2")
    assert tuple(result) == (0, "", ALTQ + "1 table created.\n2/2 addresses added.\n")
    assert pf_ctl("-q", "-s", "Tables", "-v").out == "-pa---\tt\n"


def test_add_present_address_counts_zero(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    assert tuple(pf_ctl("-t", "t", "-T", "add", "10.0.0.1")) == (0, "", ALTQ + "0/1 addresses added.\n")


def test_add_without_addresses_creates_empty_table(pf_ctl):
    assert tuple(pf_ctl("-t", "t", "-T", "add")) == (0, "", ALTQ + "1 table created.\n0/0 addresses added.\n")
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "show")) == (0, "", "")


def test_delete_absent_address_counts_zero(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    assert tuple(pf_ctl("-t", "t", "-T", "delete", "10.0.0.9")) == (0, "", ALTQ + "0/1 addresses deleted.\n")
    assert tuple(pf_ctl("-t", "t", "-T", "delete", "10.0.0.1")) == (0, "", ALTQ + "1/1 addresses deleted.\n")
    assert entries(pf_ctl) == ""


def test_flush(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1", "10.0.0.2")
    assert tuple(pf_ctl("-t", "t", "-T", "flush")) == (0, "", ALTQ + "2 addresses deleted.\n")
    assert entries(pf_ctl) == ""


def test_kill_and_kill_of_missing_table(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    assert tuple(pf_ctl("-t", "t", "-T", "kill")) == (0, "", ALTQ + "1 table deleted.\n")
    assert tuple(pf_ctl("-t", "t", "-T", "kill")) == (0, "", ALTQ + "0 table deleted.\n")
    assert pf_ctl("-q", "-s", "Tables").out == ""


def test_flush_all_tables(pf_ctl):
    pf_ctl.q("-t", "a", "-T", "add", "10.0.0.1")
    pf_ctl.q("-t", "b", "-T", "add")
    assert tuple(pf_ctl("-F", "Tables")) == (0, "", ALTQ + "2 tables deleted.\n")


def test_zero(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    assert tuple(pf_ctl("-t", "t", "-T", "zero")) == (0, "", ALTQ + "1 table/stats cleared.\n")
    assert tuple(pf_ctl("-t", "u", "-T", "zero")) == (0, "", ALTQ + "0 table/stats cleared.\n")


def test_replace_counts_and_no_changes(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1", "10.0.0.2", "10.0.0.3")
    result = pf_ctl("-t", "t", "-T", "replace", "10.0.0.1", "!10.0.0.2", "10.0.0.4")
    assert tuple(result) == (
        0, "", ALTQ + "1 addresses added.\n1 addresses deleted.\n1 addresses changed.\n")
    assert entries(pf_ctl) == "   10.0.0.1\n  !10.0.0.2\n   10.0.0.4\n"
    assert tuple(pf_ctl("-t", "t", "-T", "replace", "10.0.0.1", "!10.0.0.2", "10.0.0.4")) == (
        0, "", ALTQ + "no changes.\n")


def test_replace_creates_missing_table(pf_ctl):
    assert tuple(pf_ctl("-t", "t", "-T", "replace", "10.0.0.1")) == (
        0, "", ALTQ + "1 table created.\n1 addresses added.\n")


def test_expire(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1", "10.0.0.2")
    assert tuple(pf_ctl("-t", "t", "-T", "expire", "3600")) == (0, "", ALTQ + "0/0 addresses expired.\n")
    state_file = pf_ctl.state / "state.json"
    data = json.loads(state_file.read_text())
    table = data["rulesets"][""]["tables"]["t"]
    table["tzero"] = [int(time.time()) - 7200, int(time.time())]
    state_file.write_text(json.dumps(data))
    assert tuple(pf_ctl("-v", "-t", "t", "-T", "expire", "3600")) == (
        0, "D  10.0.0.1\n", ALTQ + "1/1 addresses expired.\n")
    assert entries(pf_ctl) == "   10.0.0.2\n"


@pytest.mark.parametrize(("arg", "reason"), [("x", "invalid"), ("4294967296", "too large"), ("-1", "too small")])
def test_expire_argument_errors(pf_ctl, arg, reason):
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "expire", "--", arg)) == (1, "", f"pfctl: expiry time: {reason}\n")


@pytest.mark.parametrize("command", ["kill", "flush", "show", "zero"])
def test_arguments_to_argumentless_commands_are_usage(pf_ctl, command):
    assert tuple(pf_ctl("-q", "-t", "t", "-T", command, "10.0.0.1")) == (1, "", USAGE)


def test_expire_needs_exactly_one_argument(pf_ctl):
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "expire")) == (1, "", USAGE)


# ---------------------------------------------------------------------------- kernel errors (pfctl.md#table-errors)


@pytest.mark.parametrize(
    "args",
    [("show",), ("test", "10.0.0.1"), ("delete", "10.0.0.1"), ("flush",), ("expire", "10")],
)
def test_missing_table_is_esrch_exit_255(pf_ctl, args):
    assert tuple(pf_ctl("-t", "nope", "-T", *args)) == (255, "", ALTQ + NO_TABLE)


def test_table_in_missing_anchor_does_not_exist(pf_ctl):
    assert tuple(pf_ctl("-q", "-a", "no/such", "-t", "t", "-T", "show")) == (255, "", NO_TABLE)


def test_add_into_missing_anchor_creates_it(pf_ctl):
    assert pf_ctl("-q", "-a", "f2b/sshd", "-t", "f2b-sshd", "-T", "add", "192.0.2.1").rc == 0
    assert pf_ctl("-q", "-s", "Anchors", "-v").out == "  f2b\n  f2b/sshd\n"
    assert pf_ctl("-q", "-a", "f2b/sshd", "-s", "Tables", "-v").out == "-pa---\tf2b-sshd\tf2b/sshd\n"
    assert entries(pf_ctl, "f2b-sshd", "-a", "f2b/sshd") == "   192.0.2.1\n"


def test_anchor_goes_away_with_its_last_table(pf_ctl):
    pf_ctl.q("-a", "f2b/sshd", "-t", "t", "-T", "add")
    pf_ctl.q("-a", "f2b/sshd", "-t", "t", "-T", "kill")
    assert pf_ctl("-q", "-s", "Anchors").out == ""


def test_anchor_path_leading_slash_and_star_are_stripped(pf_ctl):
    pf_ctl.q("-a", "/x/y", "-t", "t", "-T", "add", "10.0.0.1")
    assert entries(pf_ctl, "t", "-a", "x/y/*") == "   10.0.0.1\n"


def test_anchor_component_of_64_characters(pf_ctl):
    long = "a" * 64
    assert tuple(pf_ctl("-q", "-a", long, "-t", "t", "-T", "add", "10.0.0.1")) == (
        255, "", "pfctl: Cannot allocate memory.\n")
    assert tuple(pf_ctl("-q", "-a", long, "-t", "t", "-T", "show")) == (255, "", NO_TABLE)
    assert pf_ctl("-q", "-a", "a" * 63, "-t", "t", "-T", "add").rc == 0


def test_reserved_anchor_and_empty_table_name_are_einval(pf_ctl):
    assert tuple(pf_ctl("-q", "-a", "_pf", "-t", "t", "-T", "add")) == (255, "", "pfctl: Invalid argument.\n")
    assert tuple(pf_ctl("-q", "-t", "", "-T", "add")) == (255, "", "pfctl: Invalid argument.\n")


def test_const_table_is_eperm(pf_ctl):
    pf_ctl.q("-f", "-", data="table <c> const persist { 10.0.0.1 }\n")
    assert tuple(pf_ctl("-q", "-t", "c", "-T", "add", "10.0.0.2")) == (255, "", "pfctl: Operation not permitted.\n")
    assert tuple(pf_ctl("-q", "-t", "c", "-T", "flush")) == (255, "", "pfctl: Operation not permitted.\n")
    assert entries(pf_ctl, "c") == "   10.0.0.1\n"
    assert pf_ctl("-q", "-s", "Tables", "-v").out == "cpa---\tc\n"


def test_namespace_collision_warning(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    result = pf_ctl("-a", "x", "-t", "t", "-T", "add", "10.0.0.2")
    assert tuple(result) == (0, "", ALTQ + "1 table created.\n"
                             "pfctl: warning: namespace collision with <t> global table.\n"
                             "1/1 addresses added.\n")
    # the anchor's table keeps a reference on the global one: the h flag
    assert pf_ctl("-q", "-s", "Tables", "-v").out == "-pa--h\tt\n"


def test_show_tables_lists_active_tables_of_one_anchor_sorted(pf_ctl):
    for name in ("zeta", "alpha", "Mid"):
        pf_ctl.q("-t", name, "-T", "add")
    pf_ctl.q("-a", "x", "-t", "other", "-T", "add")
    assert pf_ctl("-q", "-s", "Tables").out == "Mid\nalpha\nzeta\n"


def test_show_tables_of_missing_anchor_is_enoent_exit_0(pf_ctl):
    assert tuple(pf_ctl("-a", "nosuch", "-s", "Tables")) == (0, "", ALTQ + "pfctl: Anchor or Ruleset does not exist.\n")
    assert tuple(pf_ctl("-a", "nosuch", "-F", "Tables")) == (0, "", ALTQ + "pfctl: Anchor or Ruleset does not exist.\n")


def test_show_tables_vv_block(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1", "10.0.0.2")
    out = pf_ctl("-q", "-s", "Tables", "-vv").out
    expected = (
        "-pa---\tt\n\tAddresses:   2\n\tCleared:     (CTIME)\n"
        "\tReferences:  [ Anchors: 0                  Rules: 0                  ]\n"
        "\tEvaluations: [ NoMatch: 0                  Match: 0                  ]\n"
        + "".join(COUNTER.format(x) for x in ("In/Block:", "In/Pass:", "In/XPass:", "Out/Block:", "Out/Pass:",
                                             "Out/XPass:"))
    )
    assert re.fullmatch(re.escape(expected).replace(re.escape("(CTIME)"), CTIME), out), out


# --------------------------------------------------------------------------- show formats (pfctl.md#table-show-formats)


def test_show_format_and_radix_order(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "2001:db8::/32", "!192.168.1.5", "10.0.0.1", "10.0.0.0/8", "::ffff:1.2.3.4")
    assert entries(pf_ctl) == "   10.0.0.0/8\n   10.0.0.1\n  !192.168.1.5\n   ::ffff:1.2.3.4\n   2001:db8::/32\n"


def test_show_v_prints_counters_per_entry(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "8.8.8.8")
    out = pf_ctl("-q", "-v", "-t", "t", "-T", "show").out
    expected = "   8.8.8.8\n\tCleared:     (CTIME)\n" + "".join(
        COUNTER.format(x) for x in ("In/Block:", "In/Pass:", "Out/Block:", "Out/Pass:"))
    assert re.fullmatch(re.escape(expected).replace(re.escape("(CTIME)"), CTIME), out), out


def test_add_v_feedback_prints_only_changes(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1", "!10.0.0.2")
    result = pf_ctl("-q", "-v", "-t", "t", "-T", "add", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.3")
    assert tuple(result) == (0, "Y  10.0.0.2\nA  10.0.0.3\nX  10.0.0.3\n", "")


def test_add_vv_feedback_prints_everything(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    assert pf_ctl("-q", "-vv", "-t", "t", "-T", "add", "10.0.0.1", "1.2.3.4").out == "   10.0.0.1\nA  1.2.3.4\n"


def test_delete_v_feedback(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    assert pf_ctl("-q", "-v", "-t", "t", "-T", "delete", "10.0.0.1", "10.0.0.9").out == "D  10.0.0.1\n"


def test_replace_vv_feedback_lists_deletions_last(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1", "10.0.0.2")
    out = pf_ctl("-q", "-vv", "-t", "t", "-T", "replace", "10.0.0.1", "!10.0.0.3").out
    assert out == "   10.0.0.1\nA !10.0.0.3\nD  10.0.0.2\n"


def test_test_matches_hosts_by_longest_prefix_exit_2_when_not_all(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "1.2.0.0/16", "!1.2.3.0/24")
    assert tuple(pf_ctl("-t", "t", "-T", "test", "1.2.9.9")) == (0, "", ALTQ + "1/1 addresses match.\n")
    # 1.2.3.4 falls in the negated /24: NOTMATCH, not counted
    assert tuple(pf_ctl("-t", "t", "-T", "test", "1.2.9.9", "1.2.3.4", "5.6.7.8")) == (
        2, "", ALTQ + "1/3 addresses match.\n")


def test_test_v_and_vv_output(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "1.2.0.0/16")
    assert pf_ctl("-q", "-v", "-t", "t", "-T", "test", "1.2.3.4", "5.6.7.8").out == "M  1.2.3.4\n"
    assert pf_ctl("-q", "-vv", "-t", "t", "-T", "test", "1.2.3.4", "5.6.7.8").out == (
        "M  1.2.3.4\t 1.2.0.0/16\n   5.6.7.8\t nomatch\n")


@pytest.mark.parametrize("token", ["10.0.0.0/8", "!10.0.0.1"])
def test_test_accepts_only_host_addresses(pf_ctl, token):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "test", token)) == (
        255, "", f"pfctl: cannot decode {token}: Invalid argument\n")


def test_noaction_as_root_is_dummy(pf_ctl):
    assert tuple(pf_ctl("-n", "-t", "t", "-T", "add", "10.0.0.1")) == (0, "", "1 table created (dummy).\n")
    assert pf_ctl("-q", "-s", "Tables").out == ""
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    assert tuple(pf_ctl("-n", "-t", "t", "-T", "add", "10.0.0.1", "10.0.0.2")) == (
        0, "", "1/2 addresses added (dummy).\n")
    assert entries(pf_ctl) == "   10.0.0.1\n"


# ---------------------------------------------------------------------------- address input (pfctl.md#address-input)


@pytest.mark.parametrize(
    ("token", "stored"),
    [
        ("10.1.2.3/8", "   10.0.0.0/8\n"),
        ("10.0.0.1/32", "   10.0.0.1\n"),
        ("2001:DB8:0:0:0:0:0:1/128", "   2001:db8::1\n"),
        ("2001:db8:1:2:3:4:5:6/32", "   2001:db8::/32\n"),
        ("!!10.0.0.1", "   10.0.0.1\n"),
        ("!10.0.0.1", "  !10.0.0.1\n"),
        ("10/8", "   10.0.0.0/8\n"),
        ("192.168.1.1/0x18", "   192.168.1.0/24\n"),
    ],
)
def test_addresses_are_stored_canonically(pf_ctl, token, stored):
    pf_ctl.q("-t", "t", "-T", "add", token)
    assert entries(pf_ctl) == stored


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("10.0.0.1/abc", "invalid netmask '/abc'\n"),
        ("10.0.0.1/129", "invalid netmask '/129'\n"),
        ("300.1.1.1", "no IP address found for 300.1.1.1\n"),
        ("bad..name", "no IP address found for bad..name\n"),
        ("!1.2.3.4.5", "no IP address found for 1.2.3.4.5\n"),
        ("1.2.3.4/33", "pfctl: cannot decode 1.2.3.4/33: Invalid argument\n"),
    ],
)
def test_bad_addresses_exit_255_and_add_nothing(pf_ctl, token, message):
    pf_ctl.q("-t", "t", "-T", "add")
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "add", "10.0.0.1", token)) == (255, "", message)
    assert entries(pf_ctl) == ""


@pytest.mark.parametrize("token", ["lo0", "self", "example.com", "en0:network", "10.1", "fe80::1%en0"])
def test_names_the_lab_cannot_resolve_fail_loudly(pf_ctl, token):
    rc, out, err = pf_ctl("-q", "-t", "t", "-T", "add", token)
    assert (rc, out) == (1, "")
    assert err.startswith("pfguard-lab: pfctl: ") and err.endswith(" is not supported by the lab\n")
    assert repr(token)[1:-1] in err


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        ("foo.invalid", "foo.invalid"),
        ("!foo.invalid", "foo.invalid"),  # the message names the token without its `!`
        ("foo.invalid/24", "foo.invalid/24"),  # host_dns looks up the name without the mask
        ("FOO.Invalid.", "FOO.Invalid."),
        ("a.b.invalid:0", "a.b.invalid:0"),  # host_dns drops `:0` before getaddrinfo
    ],
)
def test_names_under_invalid_never_resolve(pf_ctl, token, shown):
    # pfctl.md#address-input: RFC 6761 `.invalid`; the addresses are read before the table is created
    assert tuple(pf_ctl("-t", "t", "-T", "add", "10.0.0.1", token)) == (
        255, "", ALTQ + f"no IP address found for {shown}\n")
    assert tuple(pf_ctl("-q", "-s", "Tables")) == (0, "", "")
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "test", token)) == (255, "", f"no IP address found for {shown}\n")
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "delete", token)) == (255, "", f"no IP address found for {shown}\n")
    assert entries(pf_ctl) == "   10.0.0.1\n"


def test_name_under_invalid_in_an_address_file(pf_ctl, tmp_path):
    listing = tmp_path / "list"
    listing.write_text("10.0.0.1\nbanned.invalid\n")
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "add", "-f", str(listing))) == (
        255, "", F_WARNING + "no IP address found for banned.invalid\n"
        f"pfctl: cannot load {listing}: Undefined error: 0\n")
    assert tuple(pf_ctl("-q", "-s", "Tables")) == (0, "", "")


@pytest.mark.parametrize("token", ["invalid", "foo.invalid:network", "invalid.example.com", "foo.invalidx"])
def test_other_names_still_fail_loudly(pf_ctl, token):
    # only names in the `invalid.` domain are known not to resolve; a bare `invalid` may get a search domain
    rc, out, err = pf_ctl("-q", "-t", "t", "-T", "add", token)
    assert (rc, out) == (1, "")
    assert err == (f"pfguard-lab: pfctl: host name or interface '{token}' (resolved by DNS or interface lookup "
                   "on macOS) is not supported by the lab\n")


def test_addresses_from_file_with_comments(pf_ctl, tmp_path):
    listing = tmp_path / "list"
    listing.write_text("# banned\n10.0.0.1 10.0.0.2 # two on a line\n\n\t!10.0.0.3\n2001:db8::1#not-a-comment\n")
    # a `#` inside a token is not a comment
    result = pf_ctl("-q", "-t", "t", "-T", "add", "-f", str(listing), "10.0.0.9")
    assert tuple(result) == (255, "", F_WARNING + "no IP address found for 2001:db8::1#not-a-comment\n"
                             f"pfctl: cannot load {listing}: Undefined error: 0\n")
    listing.write_text("# banned\n10.0.0.1 10.0.0.2 # two on a line\n\n\t!10.0.0.3\n")
    assert tuple(pf_ctl("-t", "t", "-T", "add", "-f", str(listing), "10.0.0.9")) == (
        0, "", F_WARNING + ALTQ + "1 table created.\n4/4 addresses added.\n")
    assert entries(pf_ctl) == "   10.0.0.1\n   10.0.0.2\n  !10.0.0.3\n   10.0.0.9\n"


def test_addresses_from_stdin(pf_ctl):
    assert pf_ctl("-q", "-t", "t", "-T", "add", "-f", "-", data="10.0.0.1\n10.0.0.2").rc == 0
    assert entries(pf_ctl) == "   10.0.0.1\n   10.0.0.2\n"


def test_file_token_of_256_characters_is_einval(pf_ctl, tmp_path):
    listing = tmp_path / "list"
    listing.write_text("10.0.0.1 " + "a" * 255 + "\n")
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "add", "-f", str(listing))) == (
        255, "", F_WARNING + "no IP address found for " + "a" * 255 + "\n"
        f"pfctl: cannot load {listing}: Undefined error: 0\n")
    listing.write_text("10.0.0.1 " + "a" * 256 + "\n")
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "add", "-f", str(listing))) == (
        255, "", F_WARNING + f"pfctl: cannot load {listing}: Invalid argument\n")


def test_missing_address_file(pf_ctl, tmp_path):
    missing = tmp_path / "nope"
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "add", "-f", str(missing))) == (
        255, "", F_WARNING + f"pfctl: cannot load {missing}: No such file or directory\n")


# ---------------------------------------------------------------------------- performance


def test_100k_addresses_add_and_show_well_under_a_second(pf_ctl):
    rng = random.Random(7)
    values = set()
    while len(values) < 100_000:
        values.add(rng.randrange(0x0B000000, 0x7F000000))
    data = "\n".join(f"{v >> 24}.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}" for v in values) + "\n"
    start = time.perf_counter()
    result = pf_ctl("-t", "big", "-T", "add", "-f", "-", data=data)
    add_seconds = time.perf_counter() - start
    assert result.err.endswith("1 table created.\n100000/100000 addresses added.\n")
    start = time.perf_counter()
    shown = pf_ctl("-q", "-t", "big", "-T", "show").out
    show_seconds = time.perf_counter() - start
    lines = shown.splitlines()
    assert len(lines) == 100_000
    keys = [tuple(int(x) for x in line.split(".")) for line in lines]
    assert keys == sorted(keys)
    print(f"100k add: {add_seconds:.2f}s, show: {show_seconds:.2f}s")
    assert add_seconds < 0.9 and show_seconds < 0.9
