# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulated PF: kernel state (kernel), pf.conf parser (lexer, grammar, parser, clauses, expand, printer),
pfctl, states and nftables enforcement."""
