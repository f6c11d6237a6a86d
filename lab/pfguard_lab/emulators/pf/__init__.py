# SPDX-License-Identifier: GPL-3.0-or-later
"""The emulated PF: kernel state (kernel), pf.conf parser (conf), pfctl, states and nftables enforcement."""
