# SPDX-License-Identifier: GPL-3.0-or-later
"""Emulations of the macOS commands pfguard drives: pfctl and PF, launchd, the unified log, Homebrew,
plutil, afctl and sw_vers. The rest of the package is the lab that runs them (namespaces, hosts, fleet)."""
