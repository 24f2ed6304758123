"""Kernel threads (kernel/kthread.c)."""
