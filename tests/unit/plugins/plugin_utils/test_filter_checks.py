# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright: (c) 2026, pfguard developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The filters' shared argument checks: how a value is shown in a message, and which numbers count."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.pfguard.macos.plugins.plugin_utils.filter_checks import (
    COUNT_MAX,
    EPOCH_MAX,
    check_count,
    check_epoch,
    check_list,
    check_text,
    checked_arguments,
    printable,
    show,
)


class BrokenRepr(object):
    def __repr__(self):
        raise RuntimeError("no repr")


class RecursiveRepr(object):
    def __repr__(self):
        return repr(self)


@pytest.mark.parametrize(
    "value, shown",
    [
        (None, "None"),
        (True, "True"),
        (-7, "-7"),
        (2**64, "18446744073709551616"),
        (10**5000, "an integer of about 5000 digits"),
        (-(10**5000), "a negative integer of about 5000 digits"),
        (float("nan"), "nan"),
        (-float("inf"), "-inf"),
        ("sshd", "'sshd'"),
        ("٢٤", "'٢٤'"),
        ("a\x00b\x1b[2J\n\u2028", r"'a\x00b\x1b[2J\n\u2028'"),
        ("\udcff", r"'\udcff'"),
        ("x" * 1000, "'" + "x" * 79 + "..."),
        (b"\xff\x00", r"b'\xff\x00'"),
        ({"a": [1, 2, 3, 4, 5]}, "{'a': [1, 2, 3, ...]}"),
        ([[[["deep"]]]], "[[[...]]]"),
        ((1,), "(1,)"),
        (BrokenRepr(), "<BrokenRepr>"),
        (RecursiveRepr(), "<RecursiveRepr>"),
    ],
    ids=lambda item: str(type(item).__name__),
)
def test_show_is_short_printable_and_never_raises(value, shown):
    assert show(value) == shown


def test_printable_escapes_and_cuts():
    assert printable("ab\tc") == r"ab\tc"
    assert printable("y" * 100, 10) == "y" * 10 + "..."


@pytest.mark.parametrize(
    "value, number",
    [(0, 0), (7, 7), (7.0, 7), ("7", 7), (" 7\t", 7), (COUNT_MAX, COUNT_MAX), (str(COUNT_MAX), COUNT_MAX)],
)
def test_counts_that_are_accepted(value, number):
    assert check_count(value, "f: n") == number


@pytest.mark.parametrize(
    "value, problem",
    [
        (True, "must be a number, got True"),
        (7.5, "must be a number, got 7.5"),
        ("٧", "must be a number, got '٧'"),
        ("7 7", "must be a number, got '7 7'"),
        ("", "must be a number, got ''"),
        ([7], "must be a number, got [7]"),
        (-1, "must not be negative, got -1"),
        ("-1", "must not be negative, got '-1'"),
        (COUNT_MAX + 1, "must be at most 9223372036854775807, got 9223372036854775808"),
        ("9" * 5000, "must be at most 9223372036854775807, got '99999"),
    ],
)
def test_counts_that_are_refused(value, problem):
    with pytest.raises(AnsibleFilterError) as caught:
        check_count(value, "f: n")
    assert str(caught.value).startswith("f: n " + problem)


def test_epochs_span_1970_to_9999():
    assert check_epoch(0, "t") == 0
    assert check_epoch(EPOCH_MAX + 0.5, "t") == EPOCH_MAX
    assert check_epoch(str(EPOCH_MAX), "t") == EPOCH_MAX
    for value in (-1, -0.5, EPOCH_MAX + 1, 1e300, "-1"):
        with pytest.raises(AnsibleFilterError, match="is out of range"):
            check_epoch(value, "t")


def test_a_string_is_not_a_list_and_null_only_when_optional():
    assert check_list(None, "f: x", optional=True) == []
    assert check_list(("a",), "f: x") == ["a"]
    for value in ("ab", None, {"a": 1}, {"a"}):
        with pytest.raises(AnsibleFilterError, match="^f: x must be a list, got "):
            check_list(value, "f: x")


@pytest.mark.parametrize("value", [" ", "", "a\tb", "a" * 256, 1, None])
def test_text_refused(value):
    with pytest.raises(AnsibleFilterError, match="^f: name must "):
        check_text(value, "f: name")


def test_checked_arguments_names_the_filter():
    @checked_arguments("demo")
    def demo(value, other=1):
        return value, other

    assert demo(1, other=2) == (1, 2)
    for args, kwargs, problem in [((), {}, "missing a required argument: 'value'"),
                                  ((1, 2, 3), {}, "too many positional arguments"),
                                  ((1,), {"others": 2}, "got an unexpected keyword argument 'others'")]:  # fmt: skip
        with pytest.raises(AnsibleFilterError) as caught:
            demo(*args, **kwargs)
        assert str(caught.value) == "demo: " + problem
