"""Emulated launchd (the lab host's PID 1) and launchctl. Reference: pfctl-macos.md §6."""
