"""The emulated PF: kernel state (kernel), pf.conf parser (conf), pfctl, states and nftables enforcement."""
