# SPDX-License-Identifier: GPL-3.0-or-later
"""pfctl -f (pf.conf loading), -s rules/nat/Anchors and -F for rules (docs/reference/pfctl.md)."""

from __future__ import annotations

import subprocess

import pytest
from pf_fixtures import ALTQ, DATA, F_WARNING

pytest_plugins = ["pf_fixtures"]

ORDER = "Rules must be in order: options, normalization, queueing, translation, filtering"
NOT_LOADED = "pfctl: Syntax error in config file: pf rules not loaded\n"


def rules(pf_ctl, *args):
    return pf_ctl("-q", *args, "-s", "rules").out


# ---------------------------------------------------------------------------- stock files (macos.md)


def test_data_files_are_apples_stock_texts():
    conf = (DATA / "pf.conf").read_text()
    assert conf.startswith("#\n# Default PF configuration file.\n#\n")
    assert conf.endswith('anchor "com.apple/*"\nload anchor "com.apple" from "/etc/pf.anchors/com.apple"\n')
    anchors = (DATA / "pf.anchors" / "com.apple").read_text()
    assert anchors.endswith('anchor "200.AirDrop/*"\n\n#\n# Application Firewall anchor point.\n#\n'
                            'anchor "250.ApplicationFirewall/*"\n')


def test_stock_rules_and_nat(pf_stock):
    assert tuple(pf_stock("-s", "rules")) == (
        0, 'scrub-anchor "com.apple/*" all fragment reassemble\nanchor "com.apple/*" all\n', ALTQ)
    assert pf_stock("-q", "-s", "nat").out == 'nat-anchor "com.apple/*" all\nrdr-anchor "com.apple/*" all\n'


def test_stock_anchors(pf_stock):
    assert pf_stock("-q", "-s", "Anchors").out == "  com.apple\n"
    assert pf_stock("-q", "-a", "com.apple", "-s", "Anchors").out == (
        "  com.apple/200.AirDrop\n  com.apple/250.ApplicationFirewall\n")
    assert pf_stock("-q", "-v", "-s", "Anchors").out == (
        "  com.apple\n  com.apple/200.AirDrop\n  com.apple/250.ApplicationFirewall\n")
    assert pf_stock("-q", "-a", "com.apple", "-s", "rules").out == (
        'anchor "200.AirDrop/*" all\nanchor "250.ApplicationFirewall/*" all\n')


def test_recursive_anchor_show_bug(pf_stock):
    # pfctl.md#anchor-listing, known bug: -a 'com.apple/*' -sr shows `anchor "*" all {` and fails to descend
    result = pf_stock("-q", "-a", "com.apple/*", "-s", "rules")
    assert tuple(result) == (0, 'anchor "*" all {\n}\nanchor "*" all {\n}\n',
                             "pfctl: DIOCGETRULES: Invalid argument\n" * 2)


def test_missing_anchor_messages_exit_0(pf_ctl):
    assert tuple(pf_ctl("-a", "nosuch", "-s", "rules")) == (0, "", ALTQ + "pfctl: DIOCGETRULES: Invalid argument\n")
    assert tuple(pf_ctl("-a", "nosuch", "-s", "Anchors")) == (0, "", ALTQ + "Anchor 'nosuch' not found.\n")


def test_load_anchor_with_missing_file_is_not_fatal(pf_ctl):
    conf = 'anchor "x"\nload anchor "x" from "/nonexistent/x.conf"\n'
    assert tuple(pf_ctl.load(conf)) == (
        0, "", F_WARNING + ALTQ + "pfctl: /nonexistent/x.conf: No such file or directory\n")
    assert rules(pf_ctl) == 'anchor "x" all\n'


def test_verbose_prints_loading_anchor(pf_ctl, tmp_path):
    sub = tmp_path / "sub.conf"
    sub.write_text("pass in all\n")
    result = pf_ctl.load(f'anchor "sub"\nload anchor "sub" from "{sub}"\n', "-q", "-v")
    assert result.rc == 0
    assert result.err == F_WARNING + f"\nLoading anchor sub from {sub}\n"
    assert rules(pf_ctl, "-a", "sub") == "pass in all flags S/SA keep state\n"


def test_nested_load_anchor_is_relative_to_the_loading_anchor(pf_ctl, tmp_path):
    inner = tmp_path / "inner.conf"
    inner.write_text("block in all\n")
    outer = tmp_path / "outer.conf"
    outer.write_text(f'anchor "in/*"\nload anchor "in" from "{inner}"\n')
    pf_ctl.load(f'anchor "out/*"\nload anchor "out" from "{outer}"\n', "-q")
    assert rules(pf_ctl, "-a", "out/in") == "block drop in all\n"
    assert pf_ctl("-q", "-v", "-s", "Anchors").out == "  out\n  out/in\n"


# ---------------------------------------------------------------------------- errors and ordering (pfctl.md#rule-order)


def test_rule_order_error_exact_message_and_nothing_loaded(pf_ctl):
    pf_ctl.load("pass all\n", "-q")
    conf = 'anchor "com.apple/*"\nnat-anchor "x"\n'
    assert tuple(pf_ctl.load(conf)) == (1, "", F_WARNING + ALTQ + f"stdin:2: {ORDER}\n" + NOT_LOADED)
    assert rules(pf_ctl) == "pass all flags S/SA keep state\n"


def test_rule_order_error_with_file_name_and_noaction(pf_ctl, tmp_path):
    conf = tmp_path / "pf.conf"
    conf.write_text("\n" * 11 + "pass all\nscrub in all\n")
    # -n: same per-line message, no final "pf rules not loaded" line, still exit 1
    assert tuple(pf_ctl("-q", "-n", "-f", str(conf))) == (1, "", F_WARNING + f"{conf}:13: {ORDER}\n")


def test_require_order_no_disables_the_check(pf_ctl):
    assert pf_ctl.load('set require-order no\nanchor "a"\nnat-anchor "b"\n', "-q").rc == 0
    assert pf_ctl("-q", "-s", "nat").out == 'nat-anchor "b" all\n'


def test_appending_anchor_and_load_anchor_after_stock_is_valid(pf_ctl, tmp_path):
    ours = tmp_path / "pfguard"
    ours.write_text("block in quick from <pfguard_block> to any\n")
    conf = (DATA / "pf.conf").read_text().replace("/etc/pf.anchors/com.apple", "/nonexistent")
    conf += f'anchor "pfguard"\nload anchor "pfguard" from "{ours}"\n'
    result = pf_ctl.load(conf, "-q", "-n")
    assert tuple(result) == (0, "", F_WARNING + "pfctl: /nonexistent: No such file or directory\n")


def test_syntax_error_message(pf_ctl):
    result = pf_ctl.load("pass all\npass bogus\n")
    assert tuple(result) == (1, "", F_WARNING + ALTQ + "stdin:2: syntax error\n" + NOT_LOADED)


def test_errors_in_loaded_anchor_file_abort_the_load(pf_ctl, tmp_path):
    sub = tmp_path / "sub.conf"
    sub.write_text("pass all\nfrobnicate\n")
    result = pf_ctl.load(f'anchor "sub"\nload anchor "sub" from "{sub}"\n', "-q")
    assert tuple(result) == (1, "", F_WARNING + f"{sub}:2: syntax error\n" + NOT_LOADED + "pfctl: load anchors\n")
    assert rules(pf_ctl) == ""


@pytest.mark.parametrize(
    ("line", "messages"),
    [
        ("block in proto tcp to port 99999", ["illegal port value 99999"]),
        ("pass in proto tcp to port nosuchservice", ["unknown port nosuchservice"]),
        ("pass proto nosuchproto", ["unknown protocol nosuchproto"]),
        ("block keep state", ["keep state on block rules doesn't make sense", "skipping rule due to errors",
                              "rule expands to no valid combination"]),
        ("pass to port 22", ["port only applies to tcp/udp", "skipping rule due to errors",
                             "rule expands to no valid combination"]),
        ("pass proto udp flags S/SA", ["flags only apply to tcp"]),
        ("table <abcdefghijabcdefghijabcdefghijab> persist", ["table name too long, max 31 chars"]),
        ("table <t> persistent", ["invalid table option 'persistent'"]),
        ("pass from $nope", ["macro 'nope' not defined", "syntax error"]),
        ('anchor "_x"', ["anchor names beginning with '_' are reserved for internal use"]),
        ("set require-order maybe", ["invalid value 'maybe', expected 'yes' or 'no'"]),
    ],
)
def test_parse_errors(pf_ctl, line, messages):
    expected = "".join(f"stdin:1: {m}\n" for m in messages)
    assert tuple(pf_ctl.load(line + "\n", "-q", "-n")) == (1, "", F_WARNING + expected)


def test_unresolvable_host_in_rule(pf_ctl):
    result = pf_ctl.load("block from 300.1.2.3\n", "-q", "-n")
    assert tuple(result) == (1, "", F_WARNING + "no IP address found for 300.1.2.3\n"
                             "stdin:1: could not parse host specification\n")


@pytest.mark.parametrize(
    "conf",
    ["block from foo.invalid\n", "pass in proto tcp from 10.0.0.1 to { 10.0.0.2, bar.invalid } port 22\n",
     "table <t> persist { 10.0.0.1 foo.invalid }\n", "block from foo.invalid/24\n"],
)
def test_name_under_invalid_in_rules_and_tables(pf_ctl, conf):
    # pfctl.md#address-input: host() prints its line, parse.y's `host` adds the parse error
    name = next(word.strip(",") for word in conf.split() if ".invalid" in word)
    pf_ctl.load("pass out all\n", "-q")
    assert tuple(pf_ctl.load("\n" + conf, "-q")) == (
        1, "", F_WARNING + f"no IP address found for {name}\nstdin:2: could not parse host specification\n"
        + NOT_LOADED)
    assert tuple(pf_ctl.load(conf, "-q", "-n")) == (
        1, "", F_WARNING + f"no IP address found for {name}\nstdin:1: could not parse host specification\n")
    assert rules(pf_ctl) == "pass out all flags S/SA keep state\n"
    assert pf_ctl("-q", "-s", "Tables").out == ""


def test_name_under_invalid_in_a_table_file(pf_ctl, tmp_path):
    listing = tmp_path / "list"
    listing.write_text("10.0.0.1 gone.invalid\n")
    result = pf_ctl.load(f'table <t> persist file "{listing}"\n', "-q")
    assert tuple(result) == (1, "", F_WARNING + "no IP address found for gone.invalid\n"
                             f'stdin:1: file "{listing}" contains bad data\n' + NOT_LOADED)
    assert pf_ctl("-q", "-s", "Tables").out == ""


def test_table_of_any_lists_no_address(pf_ctl):
    # parse.y: `any` items vanish from a host list, so `{ any }` is an empty list of addresses
    assert pf_ctl.load("table <t> persist { any }\n", "-q").rc == 0
    assert pf_ctl("-q", "-s", "Tables").out == "t\n"
    assert pf_ctl("-q", "-t", "t", "-T", "show").out == ""


def test_error_after_negation_does_not_swallow_the_next_line(pf_ctl):
    # `! tagged` is the only filter option starting with `!`: the error is at the token after `!`, and
    # recovery stops at that line's end
    assert tuple(pf_ctl.load("pass all !\nblock from 300.1.2.3\n", "-q", "-n")) == (
        1, "", F_WARNING + "stdin:1: syntax error\nno IP address found for 300.1.2.3\n"
        "stdin:2: could not parse host specification\n")


def test_missing_table_file(pf_ctl):
    result = pf_ctl.load('table <t> persist file "/nonexistent/list"\n', "-q")
    assert tuple(result) == (1, "", F_WARNING + 'stdin:1: cannot load "/nonexistent/list": No such file or '
                             "directory\n" + NOT_LOADED)


def test_statement_needs_a_final_newline(pf_ctl):
    # OpenBSD 4.1's grammar ends every statement with '\n' (UNVERIFIED on macOS)
    assert tuple(pf_ctl.load("pass all", "-q", "-n")) == (1, "", F_WARNING + "stdin:1: syntax error\n")


def test_unsupported_constructs_fail_loudly(pf_ctl):
    result = pf_ctl.load("pass all\nnat on en0 from any to any -> 10.0.0.1\n", "-q")
    assert tuple(result) == (
        1, "", F_WARNING + "pfguard-lab: pfctl: stdin:2: 'nat' rules is not supported by the lab\n")


def test_noaction_loads_nothing(pf_ctl):
    assert tuple(pf_ctl.load("block all\n", "-q", "-n")) == (0, "", F_WARNING)
    assert rules(pf_ctl) == ""


# ---------------------------------------------------------------------------- canonical rule text


@pytest.mark.parametrize(
    ("conf", "shown"),
    [
        ("pass in all\n", "pass in all flags S/SA keep state\n"),
        ("pass out proto udp all\n", "pass out proto udp all keep state\n"),
        ("pass all no state\n", "pass all no state\n"),
        ("pass in proto tcp flags any\n", "pass in proto tcp all flags any keep state\n"),
        ("block in all\n", "block drop in all\n"),
        ("set block-policy return\nblock in all\n", "block return in all\n"),
        ("block drop in log quick on en0 inet proto tcp from 10.1.2.3/8 to ! <t> port 22\n",
         "block drop in log quick on en0 inet proto tcp from 10.0.0.0/8 to ! <t> port = ssh\n"),
        ("block in quick proto tcp from <f2b-sshd> to any port 2022 label \"f2b\"\n",
         'block drop in quick proto tcp from <f2b-sshd> to any port = 2022 label "f2b"\n'),
        ("pass in proto tcp to port { 22 80 }\n",
         "pass in proto tcp from any to any port = ssh flags S/SA keep state\n"
         "pass in proto tcp from any to any port = http flags S/SA keep state\n"),
        ("block from { 192.0.2.1 2001:db8::1 } to any\n",
         "block drop inet from 192.0.2.1 to any\nblock drop inet6 from 2001:db8::1 to any\n"),
        ("block in on ! lo0 proto tcp from any port 1000:2000 to any port > 1023\n",
         "block drop in on ! lo0 proto tcp from any port 1000:2000 to any port > 1023\n"),
        ("ext = \"en0\"\nblock in on $ext all\n", "block drop in on en0 all\n"),
        ("scrub in all fragment reassemble\n", "scrub in all fragment reassemble\n"),
    ],
)
def test_rules_are_shown_in_canonical_form(pf_ctl, conf, shown):
    assert pf_ctl.load(conf, "-q").rc == 0
    assert rules(pf_ctl) == shown


def test_shown_rules_load_back_unchanged(pf_ctl):
    conf = ("table <bad> persist\nscrub in all\n"
            "block in quick proto tcp from <bad> to any port { 22 2022 }\npass out all\n")
    pf_ctl.load(conf, "-q")
    first = rules(pf_ctl)
    assert pf_ctl.load(first, "-q").rc == 0
    assert rules(pf_ctl) == first


# ---------------------------------------------------------------------------- anchors, tables and flushing


def test_loading_an_anchor_replaces_only_that_anchor(pf_ctl):
    pf_ctl.load("block in all\n", "-q", "-a", "a")
    pf_ctl.load("block out all\n", "-q", "-a", "b")
    pf_ctl.load("pass in all\n", "-q", "-a", "a")
    assert rules(pf_ctl, "-a", "a") == "pass in all flags S/SA keep state\n"
    assert rules(pf_ctl, "-a", "b") == "block drop out all\n"


def test_fail2ban_action_sequence(pf_ctl):
    """docs/reference/fail2ban.md#pf-action: actionstart, ban, actioncheck, actionstop against anchor f2b/sshd."""
    pf = ("-q", "-a", "f2b/sshd")
    assert pf_ctl.load("table <f2b-sshd> persist counters\n", *pf).rc == 0
    assert pf_ctl.load("block quick proto tcp from <f2b-sshd> to any port 22\n", *pf).rc == 0
    assert pf_ctl(*pf, "-t", "f2b-sshd", "-T", "add", "192.0.2.1").rc == 0
    shown = pf_ctl(*pf, "-s", "rules").out
    assert shown == "block drop quick proto tcp from <f2b-sshd> to any port = ssh\n"
    assert pf_ctl(*pf, "-s", "Tables", "-v").out == "-pa-r-\tf2b-sshd\tf2b/sshd\n"
    remaining = "".join(line + "\n" for line in shown.splitlines() if "f2b-sshd" not in line)
    assert pf_ctl.load(remaining, *pf).rc == 0
    assert tuple(pf_ctl("-a", "f2b/sshd", "-t", "f2b-sshd", "-T", "flush")) == (0, "", ALTQ + "1 addresses deleted.\n")
    assert tuple(pf_ctl("-a", "f2b/sshd", "-t", "f2b-sshd", "-T", "kill")) == (0, "", ALTQ + "1 table deleted.\n")
    assert pf_ctl("-q", "-s", "Anchors").out == ""


def test_table_definitions_are_active_only_when_persistent_or_referenced(pf_ctl):
    pf_ctl.load("table <loose> { 10.0.0.1 }\ntable <kept> persist { 10.0.0.2 }\n"
                "table <used> { 10.0.0.3, !10.0.0.4 }\nblock from <used>\n", "-q")
    assert pf_ctl("-q", "-s", "Tables", "-v").out == "-pa---\tkept\n--a-r-\tused\n"
    assert pf_ctl("-q", "-t", "used", "-T", "show").out == "   10.0.0.3\n  !10.0.0.4\n"
    assert pf_ctl("-q", "-t", "loose", "-T", "show").rc == 255


def test_reloading_a_table_definition_replaces_its_addresses(pf_ctl):
    pf_ctl.load("table <t> persist { 10.0.0.1 10.0.0.2 }\n", "-q")
    pf_ctl.q("-t", "t", "-T", "add", "10.0.0.9")
    pf_ctl.load("table <t> persist { 10.0.0.2 10.0.0.3 }\n", "-q")
    assert pf_ctl("-q", "-t", "t", "-T", "show").out == "   10.0.0.2\n   10.0.0.3\n"
    # without an address list the definition keeps the current addresses
    pf_ctl.load("table <t> persist\n", "-q")
    assert pf_ctl("-q", "-t", "t", "-T", "show").out == "   10.0.0.2\n   10.0.0.3\n"


def test_table_file_in_definition(pf_ctl, tmp_path):
    listing = tmp_path / "list"
    listing.write_text("10.0.0.1\n# comment\n10.0.0.0/8\n")
    pf_ctl.load(f'table <t> persist file "{listing}" {{ 192.0.2.1 }}\n', "-q")
    assert pf_ctl("-q", "-t", "t", "-T", "show").out == "   10.0.0.0/8\n   10.0.0.1\n   192.0.2.1\n"


def test_table_load_command_loads_only_table_definitions(pf_ctl):
    conf = "table <t> persist { 10.0.0.1 }\nblock all\n"
    assert tuple(pf_ctl("-t", "any", "-T", "load", "-f", "-", data=conf)) == (0, "", F_WARNING + ALTQ)
    assert rules(pf_ctl) == ""
    assert pf_ctl("-q", "-t", "t", "-T", "show").out == "   10.0.0.1\n"


def test_flush_rules_and_nat(pf_stock):
    assert tuple(pf_stock("-F", "rules")) == (0, "", ALTQ + "rules cleared\n")
    assert rules(pf_stock) == ""
    assert tuple(pf_stock("-F", "nat")) == (0, "", ALTQ + "nat cleared\n")
    assert pf_stock("-q", "-s", "nat").out == ""
    # com.apple keeps its own rules, so it survives losing the main ruleset's reference
    assert pf_stock("-q", "-s", "Anchors").out == "  com.apple\n"


def test_flush_all_main_capture(pf_ctl):
    expected = ("rules cleared\nnat cleared\ndummynet cleared\n0 tables deleted.\n0 states cleared\n"
                "source tracking entries cleared\npf: statistics cleared\npf: interface flags reset\n")
    assert tuple(pf_ctl("-F", "all")) == (0, "", ALTQ + expected)


def test_flush_all_in_anchor_prints_first_four_lines(pf_ctl):
    pf_ctl.load("table <t> persist\nblock all\n", "-q", "-a", "x")
    assert tuple(pf_ctl("-a", "x", "-F", "all")) == (
        0, "", ALTQ + "rules cleared\nnat cleared\ndummynet cleared\n1 tables deleted.\n")


def test_flush_all_removes_an_emptied_anchor_before_its_tables_step(pf_ctl):
    # the anchor held only rules: once they are cleared it no longer exists (ENOENT, exit 0)
    pf_ctl.load("block all\n", "-q", "-a", "x")
    assert tuple(pf_ctl("-a", "x", "-F", "all")) == (
        0, "", ALTQ + "rules cleared\nnat cleared\ndummynet cleared\npfctl: Anchor or Ruleset does not exist.\n")


def test_a_pipe_from_pfctl_into_pfctl_does_not_deadlock(pf_ctl):
    # fail2ban's pf actionstop: `pfctl -a f2b/J -sr | grep -v f2b-J | pfctl -a f2b/J -f-`. Real pfctl has
    # no lock; the emulator must not hold its kernel lock while the writer still needs it.
    pf_ctl.load("table <f2b-j> persist counters\nblock quick proto tcp from <f2b-j> to any\n", "-q", "-a", "f2b/j")
    for _ in range(8):
        reader = subprocess.Popen([str(pf_ctl.path), "-a", "f2b/j", "-sr"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        writer = subprocess.run([str(pf_ctl.path), "-q", "-a", "f2b/j", "-f-"], stdin=reader.stdout,
                                capture_output=True, text=True, timeout=20, check=False)
        reader.stdout.close()
        assert reader.wait(timeout=20) == 0
        assert writer.returncode == 0, writer.stderr
    assert pf_ctl("-a", "f2b/j", "-sr").out == "block drop quick proto tcp from <f2b-j> to any\n"
