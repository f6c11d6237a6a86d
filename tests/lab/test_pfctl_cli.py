# SPDX-License-Identifier: GPL-3.0-or-later
"""pfctl command line: getopt, usage, streams, order of operations, exit codes (docs/reference/pfctl.md)."""

from __future__ import annotations

import pytest
from pf_fixtures import ALTQ, F_WARNING, NOBODY, USAGE
from pfguard_lab.emulators.pf import pfctl_cli, pfctl_table

pytest_plugins = ["pf_fixtures"]


def test_option_tables_follow_pfctls_option_string():
    # pfctl.md#command-line: the getopt string and the order -T commands are looked up in
    assert pfctl_cli.OPTSTRING == "a:AdD:eEqf:F:gGhi:k:K:mMnNOo:p:rRs:t:T:vx:X:w:z"
    assert tuple(pfctl_table.TABLE_COMMANDS) == pfctl_cli.TABLE_CMDS == (
        "kill", "flush", "add", "delete", "load", "replace", "show", "test", "zero", "expire")


def test_no_arguments_prints_usage(pf_ctl):
    assert tuple(pf_ctl()) == (1, "", USAGE)


def test_h_prints_usage(pf_ctl):
    assert tuple(pf_ctl("-h")) == (1, "", USAGE)


def test_illegal_option_is_reported_by_getopt_then_usage(pf_ctl):
    assert tuple(pf_ctl("-Z")) == (1, "", "pfctl: illegal option -- Z\n" + USAGE)


def test_missing_option_argument(pf_ctl):
    assert tuple(pf_ctl("-s")) == (1, "", "pfctl: option requires an argument -- s\n" + USAGE)


def test_every_plain_invocation_prints_altq_lines_on_stderr(pf_ctl):
    assert tuple(pf_ctl("-s", "Tables")) == (0, "", ALTQ)


def test_quiet_suppresses_altq_lines(pf_ctl):
    assert tuple(pf_ctl("-q", "-s", "Tables")) == (0, "", "")


def test_noaction_skips_altq_probe(pf_ctl):
    result = pf_ctl("-n", "-t", "t", "-T", "add", "10.0.0.1")
    assert result.err.startswith("1 table created (dummy).\n")
    assert "ALTQ" not in result.err


def test_f_warning_comes_first_even_with_q_and_n(pf_ctl, tmp_path):
    rules = tmp_path / "r.conf"
    rules.write_text("pass all\n")
    assert tuple(pf_ctl("-q", "-n", "-f", str(rules))) == (0, "", F_WARNING)
    assert tuple(pf_ctl("-f", str(rules))) == (0, "", F_WARNING + ALTQ)
    assert tuple(pf_ctl("-a", "com.apple/250.X", "-f", str(rules))) == (0, "", F_WARNING + ALTQ)


def test_f_warning_is_printed_at_parse_time_before_later_option_errors(pf_ctl):
    assert tuple(pf_ctl("-f", "x", "-Z")) == (1, "", F_WARNING + "pfctl: illegal option -- Z\n" + USAGE)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-T", "bogus"), "pfctl: Unknown table command 'bogus'\n"),
        (("-s", "bogus"), "pfctl: Unknown show modifier 'bogus'\n"),
        (("-F", "bogus"), "pfctl: Unknown flush modifier 'bogus'\n"),
        (("-X", "x"), "pfctl: Invalid token value 'x'\n"),
        (("-x", "bogus"), "pfctl: Unknown debug level 'bogus'\n"),
        (("-s", "Tables", "1.2.3.4"), "pfctl: unknown command line argument: 1.2.3.4 ...\n"),
    ],
)
def test_argument_errors_print_message_then_usage(pf_ctl, args, message):
    assert tuple(pf_ctl(*args)) == (1, "", message + USAGE)


def test_modifiers_match_by_prefix(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "a", "10.0.0.1")  # a -> add
    assert pf_ctl("-q", "-t", "t", "-T", "sh").out == "   10.0.0.1\n"  # sh -> show
    assert pf_ctl("-q", "-s", "T").out == "t\n"  # T -> Tables
    assert pf_ctl("-q", "-s", "i").out.startswith("Status: Disabled")  # i -> info
    assert pf_ctl("-q", "-s", "A").rc == 0  # A -> Anchors


def test_table_command_without_table_is_usage(pf_ctl):
    assert tuple(pf_ctl("-T", "show")) == (1, "", ALTQ + USAGE)


def test_table_name_of_32_characters_is_usage(pf_ctl):
    assert tuple(pf_ctl("-q", "-t", "x" * 32, "-T", "show")) == (1, "", USAGE)
    assert pf_ctl("-q", "-t", "x" * 31, "-T", "add").rc == 0


def test_getopt_stops_at_first_non_option(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    # "-v" after the first address is an address, not an option
    assert tuple(pf_ctl("-q", "-t", "t", "-T", "test", "10.0.0.1", "-v")) == (255, "", "no IP address found for -v\n")


def test_non_root_gets_permission_denied(pf_ctl):
    assert tuple(pf_ctl("-s", "rules", prefix=NOBODY)) == (1, "", "pfctl: /dev/pf: Permission denied\n")


def test_non_root_noaction_is_syntax_only(pf_ctl):
    result = pf_ctl("-n", "-t", "t", "-T", "add", "10.0.0.1", prefix=NOBODY)
    assert tuple(result) == (0, "", "0/1 addresses added (syntax only).\n")


def test_anchor_name_of_1024_characters_is_too_long(pf_ctl):
    name = "a" * 1024
    assert tuple(pf_ctl("-a", name, "-s", "rules")) == (1, "", f"pfctl: anchor name '{name}' too long\n")


@pytest.mark.parametrize("anchor", ["_x", "a/_x"])
def test_underscore_anchors_cannot_be_flushed_or_loaded(pf_ctl, tmp_path, anchor):
    message = "pfctl: anchor names beginning with '_' cannot be modified from the command line\n"
    assert tuple(pf_ctl("-a", anchor, "-F", "rules")) == (1, "", ALTQ + message)
    rules = tmp_path / "r"
    rules.write_text("pass all\n")
    assert tuple(pf_ctl("-a", anchor, "-f", str(rules))) == (1, "", F_WARNING + ALTQ + message)


def test_missing_rules_file(pf_ctl, tmp_path):
    missing = tmp_path / "nope.conf"
    result = pf_ctl("-f", str(missing))
    assert tuple(result) == (1, "", F_WARNING + ALTQ + f"pfctl: {missing}: No such file or directory\n")


def test_options_run_in_pfctl_order_show_before_flush(pf_ctl):
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.1")
    # -s runs (step 5) before -F (step 7) whatever the order on the command line
    result = pf_ctl("-F", "Tables", "-s", "Tables")
    assert tuple(result) == (0, "t\n", ALTQ + "1 tables deleted.\n")
    assert pf_ctl("-q", "-s", "Tables").out == ""


def test_enable_runs_after_load_and_fails_when_already_enabled(pf_ctl, tmp_path):
    rules = tmp_path / "r"
    rules.write_text("block all\n")
    pf_ctl.q("-e")
    result = pf_ctl("-e", "-f", str(rules))
    assert tuple(result) == (1, "", F_WARNING + ALTQ + "pfctl: pf already enabled\n")
    assert pf_ctl("-q", "-s", "rules").out == "block drop all\n"  # loaded before -e failed


@pytest.mark.parametrize("option", ["-A", "-N", "-R", "-m", "-r", "-G", "-M"])
def test_unimplemented_options_fail_loudly(pf_ctl, option):
    rc, out, err = pf_ctl(option, "-s", "rules")
    assert (rc, out) == (1, "")
    assert err.startswith(f"pfguard-lab: pfctl: {option}") and err.endswith("is not supported by the lab\n")


def test_unimplemented_show_modifier_fails_loudly(pf_ctl):
    assert tuple(pf_ctl("-q", "-s", "timeouts")) == (
        1, "", "pfguard-lab: pfctl: -s timeouts is not supported by the lab\n")


def test_debug_level(pf_ctl):
    assert tuple(pf_ctl("-x", "m")) == (0, "", ALTQ + "debug level set to 'misc'\n")
    assert pf_ctl("-q", "-s", "info").out.startswith("Status: Disabled                                Debug: Misc\n")


def test_define_macro_from_command_line(pf_ctl):
    assert pf_ctl("-q", "-D", "ports=22", "-f", "-", data="pass in proto tcp to port $ports\n").rc == 0
    assert pf_ctl("-q", "-s", "rules").out == "pass in proto tcp from any to any port = ssh flags S/SA keep state\n"
