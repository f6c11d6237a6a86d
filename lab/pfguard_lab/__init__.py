"""pfguard's lab: a fleet of emulated Macs built from Linux namespaces."""
