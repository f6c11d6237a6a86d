# SPDX-License-Identifier: GPL-3.0-or-later
"""Rewrite asserts in the shared fixture modules too: test modules import constants from them before
`pytest_plugins` loads them, which would otherwise leave their asserts without pytest's messages."""

import pytest

pytest.register_assert_rewrite("lab_fixtures", "fleet_fixtures")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "extended: a fleet test kept out of `make test` (CI's time budget); `make fleet-extended` runs them",
    )
