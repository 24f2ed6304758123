"""Networking's registration points (net/): congestion control, netfilter hooks."""
