"""Filesystems and what the VFS offers modules (fs/)."""
