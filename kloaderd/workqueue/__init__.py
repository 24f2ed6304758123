"""Workqueues and their kworkers (kernel/workqueue.c)."""
