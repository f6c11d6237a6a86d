# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's filters fed hostile input through real Ansible (ansible-playbook on localhost from the checkout,
which finds pfguard.macos through ansible.cfg; no lab needed): the user sees the filter's own message naming the value,
printable and short, and no Python traceback or exception from inside a filter.

Each expression is a debug task of one batch (hostile.Batch in text mode: one ansible-playbook run, what the default
callback prints cut per task); a second batch runs the refused ones with tracebacks shown."""

from __future__ import annotations

import os
import re
from types import SimpleNamespace

import pytest
from hostile import Batch, Case, wait_all

ATTACKER = "198.51.100.200"
# A Python exception other than Ansible's, as a traceback names it: what a crash inside a filter looks like.
CRASH = re.compile(r"^\S*(TypeError|ValueError|KeyError|IndexError|AttributeError|OverflowError|RecursionError|"
                   r"UnicodeError|UnicodeEncodeError|UnicodeDecodeError)\b", re.MULTILINE)  # fmt: skip


def fleet_with_ban_time(when: str) -> str:
    """A one-host fleet, as a Jinja expression, whose one ban record has the ban time `when` (an expression)."""
    return "{'mac1': {'fail2ban': {'history': [{'jail': 'sshd', 'ip': '%s', 'timeofban': %s}]}}}" % (ATTACKER, when)


# (id, the expression, what the error message says)
REFUSED = [
    ("verdict-jails-string", "{{ {} | pfguard.macos.protection_verdict(jails='sshd') }}",
     "protection_verdict: jails must be a list of jail names, got 'sshd'"),
    ("verdict-reachable-anchors-null",
     "{{ {'pf': {'enabled': true, 'reachable_anchors': none}} | pfguard.macos.protection_verdict(jails=[]) }}",
     "protection_verdict: pf.reachable_anchors must be a list of strings, got None"),
    ("verdict-log-minutes-bool", "{{ {} | pfguard.macos.protection_verdict(log_minutes=true) }}",
     "protection_verdict: log_minutes must be a positive integer, got True"),
    ("report-year-10000", "{{ %s | pfguard.macos.ban_report }}" % fleet_with_ban_time("253402300800"),
     "ban_report: mac1: timeofban of 198.51.100.200 in jail sshd is out of range"),
    ("report-nan", "{{ %s | pfguard.macos.ban_report }}" % fleet_with_ban_time("'nan' | float"),
     "ban_report: mac1: timeofban of 198.51.100.200 in jail sshd must be a number, got nan"),
    ("report-bool", "{{ %s | pfguard.macos.ban_report }}" % fleet_with_ban_time("false"),
     "ban_report: mac1: timeofban of 198.51.100.200 in jail sshd must be a number, got False"),
    ("report-top-huge", "{{ {} | pfguard.macos.ban_report(top=10 ** 5000) }}",
     "ban_report: top must be at most 9223372036854775807, got an integer of about 5000 digits"),
    ("normalize-string", "{{ '203.0.113.7' | pfguard.macos.pf_normalize }}",
     "pf_normalize must be a list of addresses, got '203.0.113.7'"),
    ("normalize-arabic-indic-digits", "{{ ['10.0.0.0/٢٤'] | pfguard.macos.pf_normalize }}",
     "pf_normalize: not valid addresses: '10.0.0.0/٢٤'"),
    ("overlapping-networks-null", "{{ ['203.0.113.7'] | pfguard.macos.pf_overlapping(none) }}",
     "pf_overlapping networks must be a list of addresses, got None"),
    ("overlapping-escape-sequence", "{{ ['198.51.100.7\\x1b[2J'] | pfguard.macos.pf_overlapping(['0.0.0.0/0']) }}",
     "pf_overlapping: not valid addresses: '198.51.100.7\\x1b[2J'"),
    ("inside-surrogate", "{{ ['\\udcff'] | pfguard.macos.pf_inside(['0.0.0.0/0']) }}",
     "pf_inside: not valid addresses: '\\udcff'"),
    ("inside-very-long", "{{ ['1' * 100000] | pfguard.macos.pf_inside(['0.0.0.0/0']) }}",
     "pf_inside: not valid addresses: '" + "1" * 80 + "...'"),
]  # fmt: skip


VALID = "{{ ['203.0.113.7/32', '2001:DB8:0:0::1/64', '10.1.2.3/8'] | pfguard.macos.pf_normalize }}"
INVALID = "{{ ['203.0.113.7', '\\x1b[2J', none, '١٩٢.٠.٢.١'] | pfguard.macos.pf_invalid }}"


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """Every expression as a debug task on localhost: once as users see it, once (the refused ones) with
    tracebacks on; the two runs side by side."""
    refused = [Case(name, "ansible.builtin.debug", {"msg": expression}) for name, expression, _message in REFUSED]
    accepted = [Case(name, "ansible.builtin.debug", {"msg": expression}) for name, expression in
                (("valid-input", VALID), ("pf-invalid", INVALID))]  # fmt: skip
    local = ("-i", "localhost,", "-c", "local")
    runs = {
        traceback: Batch(tmp_path_factory.mktemp(f"filters-{traceback}"), cases, text=True, argv=local,
                         env={**os.environ, "ANSIBLE_DISPLAY_TRACEBACK": traceback})
        for traceback, cases in (("never", refused + accepted), ("always", refused))
    }  # fmt: skip
    wait_all(*runs.values(), timeout=600)
    return SimpleNamespace(shown=runs["never"], traced=runs["always"])


@pytest.mark.parametrize("name, expression, message", REFUSED, ids=[row[0] for row in REFUSED])
def test_hostile_input_fails_the_task_with_the_filters_message(batches, name, expression, message):
    outcome = batches.shown.outcome(name)
    output = outcome.output
    assert outcome.refused, output
    errors = [line for line in output.splitlines() if line.startswith("[ERROR]: ")]
    assert len(errors) == 1, output
    assert message in errors[0]
    assert "Traceback" not in output
    # The value is shown escaped and cut short: no control character or surrogate reaches the terminal.
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]", output)
    assert "1" * 200 not in output


@pytest.mark.parametrize("name, expression, message", REFUSED, ids=[row[0] for row in REFUSED])
def test_the_traceback_behind_the_message_is_the_filters_refusal_not_a_crash(batches, name, expression, message):
    """With tracebacks on, what is shown is the filter's own AnsibleFilterError, raised on purpose."""
    outcome = batches.traced.outcome(name)
    output = outcome.output
    assert outcome.refused, output
    assert "ansible.errors.AnsibleTemplatePluginError: " + message in output
    assert not CRASH.search(output), CRASH.search(output).group(0)


def test_valid_input_still_gives_the_documented_result(batches):
    """The same harness, with input the filters accept: the task succeeds and prints the result."""
    outcome = batches.shown.outcome("valid-input")
    assert not outcome.refused and "ok: [localhost]" in outcome.output, outcome.output
    assert all(f"- {value}\n" in outcome.output for value in ("203.0.113.7", "2001:db8::/64", "10.0.0.0/8"))


def test_pf_invalid_lists_hostile_values_without_failing(batches):
    """pf_invalid never fails: it names each bad value, escaped, so a play can show them all at once."""
    outcome = batches.shown.outcome("pf-invalid")
    output = outcome.output
    assert not outcome.refused and "ok: [localhost]" in output, output
    assert "\\x1b[2J" in output and "'None'" in output and "١٩٢.٠.٢.١" in output
    assert "\x1b" not in output
