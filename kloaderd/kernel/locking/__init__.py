"""kernel/locking/: sleeping locks beyond the mutex (kernel/api/sched.py)."""
