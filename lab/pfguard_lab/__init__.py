# SPDX-License-Identifier: GPL-3.0-or-later
"""pfguard's lab: a fleet of emulated Macs built from Linux namespaces."""
