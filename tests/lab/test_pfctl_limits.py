# SPDX-License-Identifier: GPL-3.0-or-later
"""PF's pool limits in the emulated pfctl: `pfctl -s memory`, `set limit` in the main ruleset, and the
table-entries hard limit shared by all tables (docs/reference/pfctl.md#limits). No lab needed."""

from __future__ import annotations

from pf_fixtures import ALTQ, F_WARNING

pytest_plugins = ["pf_fixtures"]

DEFAULT_MEMORY = (
    "states        hard limit    10000\n"
    "app-states    hard limit    10000\n"
    "src-nodes     hard limit    10000\n"
    "frags         hard limit     5000\n"
    "tables        hard limit     1000\n"
    "table-entries hard limit   200000\n"
)
NOMEM = "pfctl: Cannot allocate memory.\n"


def hosts(count: int, first: int = 0) -> str:
    """`count` distinct IPv4 hosts in 10.0.0.0/8, one a line."""
    return "".join(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}\n" for n in range(first, first + count))


def limit(pf_ctl, entries: int) -> None:
    """Load a main ruleset that sets the table-entries limit."""
    pf_ctl.q("-f", "-", data=f"set limit table-entries {entries}\n")


def count(pf_ctl, table: str) -> int:
    return len(pf_ctl("-q", "-t", table, "-T", "show").out.splitlines())


def test_show_memory_prints_the_default_hard_limits(pf_ctl):
    assert tuple(pf_ctl("-s", "memory")) == (0, DEFAULT_MEMORY, ALTQ)


def test_set_limit_in_the_main_ruleset_changes_them_and_a_load_without_it_restores_the_defaults(pf_ctl):
    pf_ctl.q("-f", "-", data="set limit { table-entries 400000, states 20000 }\n")
    shown = pf_ctl("-q", "-s", "memory").out
    assert "table-entries hard limit   400000\n" in shown
    assert "states        hard limit    20000\n" in shown
    pf_ctl.q("-f", "-", data="pass all\n")  # pfctl loads every limit with the main ruleset
    assert pf_ctl("-q", "-s", "memory").out == DEFAULT_MEMORY


def test_an_anchor_load_does_not_change_the_limits(pf_ctl):
    limit(pf_ctl, 300)
    pf_ctl.q("-a", "a", "-f", "-", data="pass all\n")
    assert "table-entries hard limit      300\n" in pf_ctl("-q", "-s", "memory").out


def test_add_past_the_limit_fails_whole_and_counts_every_table(pf_ctl):
    limit(pf_ctl, 300)
    pf_ctl.q("-a", "other", "-t", "x", "-T", "add", "-f", "-", data=hosts(100, 5000))
    pf_ctl.q("-t", "t", "-T", "add", "-f", "-", data=hosts(150))
    result = pf_ctl("-t", "t", "-T", "add", "-f", "-", data=hosts(60, 1000))
    assert tuple(result) == (255, "", F_WARNING + ALTQ + NOMEM)  # 250 + 60 > 300: none of the 60 is added
    assert count(pf_ctl, "t") == 150
    pf_ctl.q("-t", "t", "-T", "add", "-f", "-", data=hosts(50, 1000))  # exactly 300 fits
    assert count(pf_ctl, "t") == 200
    # entries already in the table need nothing more
    assert pf_ctl("-t", "t", "-T", "add", "-f", "-", data=hosts(150)).rc == 0


def test_add_past_the_limit_still_creates_the_table(pf_ctl):
    limit(pf_ctl, 10)
    result = pf_ctl("-t", "t", "-T", "add", "-f", "-", data=hosts(11))
    assert tuple(result) == (255, "", F_WARNING + ALTQ + "1 table created.\n" + NOMEM)
    assert pf_ctl("-q", "-s", "Tables").out == "t\n"
    assert count(pf_ctl, "t") == 0


def test_replace_needs_room_for_its_new_entries_before_the_old_ones_go(pf_ctl):
    limit(pf_ctl, 300)
    pf_ctl.q("-t", "t", "-T", "add", "-f", "-", data=hosts(200))
    # 100 kept, 150 new: 200 + 150 > 300 although the result would hold 250
    replaced = pf_ctl("-t", "t", "-T", "replace", "-f", "-", data=hosts(250, 100))
    assert tuple(replaced) == (255, "", F_WARNING + ALTQ + NOMEM)
    assert pf_ctl("-q", "-t", "t", "-T", "show").out.split() == hosts(200).split()
    result = pf_ctl("-t", "t", "-T", "replace", "-f", "-", data=hosts(200, 100))  # 100 new: fits
    assert result.rc == 0, result
    assert count(pf_ctl, "t") == 200


def test_dry_run_add_past_the_limit_fails_too(pf_ctl):
    limit(pf_ctl, 10)
    pf_ctl.q("-t", "t", "-T", "add")
    assert tuple(pf_ctl("-n", "-t", "t", "-T", "add", "-f", "-", data=hosts(11))) == (255, "", F_WARNING + NOMEM)


def test_a_table_definition_past_the_limit_abandons_the_load(pf_ctl, tmp_path):
    limit(pf_ctl, 300)
    persist = tmp_path / "feeds.txt"
    persist.write_text(hosts(200))
    anchor = f'table <feeds> persist file "{persist}"\nblock drop in quick from <feeds> to any\n'
    pf_ctl.q("-a", "a", "-f", "-", data=anchor)
    assert len(pf_ctl("-q", "-a", "a", "-t", "feeds", "-T", "show").out.splitlines()) == 200
    # Reloading defines the 200 again in a shadow table while the loaded 200 still exist: 400 > 300.
    result = pf_ctl("-q", "-a", "a", "-f", "-", data=anchor)
    assert result.rc == 1
    assert result.err == F_WARNING + (
        "stdin:1: cannot define table feeds: Cannot allocate memory\n"
        "pfctl: Syntax error in config file: pf rules not loaded\n"
    )
    assert len(pf_ctl("-q", "-a", "a", "-t", "feeds", "-T", "show").out.splitlines()) == 200
    # A fresh kernel (a boot) loads it: nothing else is allocated then.
    pf_ctl.q("-a", "a", "-F", "Tables")
    pf_ctl.q("-a", "a", "-f", "-", data=anchor)
    assert len(pf_ctl("-q", "-a", "a", "-t", "feeds", "-T", "show").out.splitlines()) == 200


def test_options_only_load_sets_the_limits_and_leaves_rules_and_tables(pf_ctl, tmp_path):
    pf_ctl.q("-f", "-", data="table <t> persist { 10.0.0.1 }\nblock drop in quick from <t> to any\n")
    ruleset = "set limit table-entries 400000\ntable <t> persist { 10.9.9.9 }\npass all\n"
    pf_ctl.q("-O", "-f", "-", data=ruleset)  # pfctl -O: only pfctl_load_options runs
    assert "table-entries hard limit   400000\n" in pf_ctl("-q", "-s", "memory").out
    assert pf_ctl("-q", "-s", "rules").out == "block drop in quick from <t> to any\n"
    assert pf_ctl("-q", "-t", "t", "-T", "show").out.split() == ["10.0.0.1"]


def test_options_only_load_still_checks_the_rule_order(pf_ctl):
    result = pf_ctl("-O", "-f", "-", data="pass all\nset limit table-entries 400000\n")
    assert result.rc == 1
    assert "Rules must be in order" in result.err
    assert pf_ctl("-q", "-s", "memory").out == DEFAULT_MEMORY


def test_the_limit_in_a_main_ruleset_comes_after_its_tables_and_options_first_make_room(pf_ctl, tmp_path):
    """pfctl defines a file's tables while it parses it and sets its limits afterwards
    (pfctl_load_options), so a reload that needs the new limit fails until -O has set it."""
    limit(pf_ctl, 300)
    persist = tmp_path / "feeds.txt"
    persist.write_text(hosts(200))
    ruleset = (f'set limit table-entries 500\ntable <feeds> persist file "{persist}"\n'
               "block drop in from <feeds> to any\n")
    pf_ctl.q("-f", "-", data=ruleset)  # 200 fit below 300; the limit is 500 afterwards
    assert "table-entries hard limit      500\n" in pf_ctl("-q", "-s", "memory").out
    limit(pf_ctl, 300)  # the tables stay (persist), the limit goes back to 300
    assert count(pf_ctl, "feeds") == 200
    failed = pf_ctl("-q", "-f", "-", data=ruleset)  # 200 loaded + 200 in the shadow table > 300
    assert failed.rc == 1 and "cannot define table feeds: Cannot allocate memory" in failed.err
    assert "table-entries hard limit      300\n" in pf_ctl("-q", "-s", "memory").out
    pf_ctl.q("-O", "-f", "-", data=ruleset)
    pf_ctl.q("-f", "-", data=ruleset)
    assert "table-entries hard limit      500\n" in pf_ctl("-q", "-s", "memory").out
    assert count(pf_ctl, "feeds") == 200


def test_a_limit_below_the_entries_in_use_is_set_and_only_later_loads_fail(pf_ctl):
    """XNU's DIOCSETLIMIT ignores pool_sethardlimit's answer: the limit is set whatever the pool holds."""
    pf_ctl.q("-t", "t", "-T", "add", "-f", "-", data=hosts(100))
    limit(pf_ctl, 50)
    assert "table-entries hard limit       50\n" in pf_ctl("-q", "-s", "memory").out
    assert count(pf_ctl, "t") == 100
    assert pf_ctl("-t", "t", "-T", "add", "10.200.0.1").rc == 255


def test_options_first_make_room_for_a_loaded_anchor_too(pf_stock, tmp_path):
    """The role's and the helper's order: `pfctl -O -f` then `pfctl -f` of a main ruleset whose
    `load anchor` file defines a table that is loaded already."""
    pf_ctl = pf_stock
    persist = tmp_path / "feeds.txt"
    persist.write_text(hosts(200))
    anchor_file = tmp_path / "anchor"
    anchor_file.write_text(f'table <feeds> persist file "{persist}"\nblock drop in quick from <feeds> to any\n')
    stock = (tmp_path / "pf.conf").read_text()
    main = f'set limit table-entries 500\n{stock}anchor "a"\nload anchor "a" from "{anchor_file}"\n'
    limit(pf_ctl, 300)
    pf_ctl.q("-a", "a", "-f", str(anchor_file))
    assert count(pf_ctl, "feeds") == 0 or True
    failed = pf_ctl("-q", "-f", "-", data=main)
    assert failed.rc == 1 and "cannot define table feeds" in failed.err
    pf_ctl.q("-O", "-f", "-", data=main)
    assert "table-entries hard limit      500\n" in pf_ctl("-q", "-s", "memory").out
    pf_ctl.q("-f", "-", data=main)
    assert len(pf_ctl("-q", "-a", "a", "-t", "feeds", "-T", "show").out.splitlines()) == 200
