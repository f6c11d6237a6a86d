# SPDX-License-Identifier: GPL-3.0-or-later
"""Rewrite asserts in lab_fixtures too: some test modules import helpers from it before `pytest_plugins`
loads it, which would otherwise leave its asserts without pytest's messages."""

import pytest

pytest.register_assert_rewrite("lab_fixtures")


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: needs the running lab of emulated Macs (the session fixture `lab`)")
    config.addinivalue_line(
        "markers", "extended: a lab test kept out of `make test` (CI's time budget); `make lab-extended` runs them"
    )


def pytest_collection_modifyitems(items):
    """Mark every test that uses the running lab, directly or through another fixture, so that the
    emulator conformance tests can run apart from it: `-m "not lab"` (no namespaces, no sshd)."""
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)
