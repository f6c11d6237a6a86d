# SPDX-License-Identifier: GPL-3.0-or-later
"""`pfguard`: run pfguard.macos's plays (site, ban, unban, sync, doctor, report) through ansible-runner,
show one line per Mac as results arrive and the play's summary as a table, or one JSON document.
docs/awx.md describes the command next to the AWX and CI ways of running the same plays."""

__version__ = "0.1.0"
