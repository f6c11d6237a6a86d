# SPDX-License-Identifier: GPL-3.0-or-later
"""Emulated launchd (the lab host's PID 1) and launchctl. Reference: docs/reference/macos.md#launchctl-verbs."""
