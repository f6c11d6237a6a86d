# SPDX-License-Identifier: GPL-3.0-or-later
"""Rewrite asserts in lab_fixtures too: some test modules import helpers from it before `pytest_plugins`
loads it, which would otherwise leave its asserts without pytest's messages."""

import pytest

pytest.register_assert_rewrite("lab_fixtures")
