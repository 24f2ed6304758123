"""Interrupts and softirqs: tasklets (kernel/softirq.c)."""
