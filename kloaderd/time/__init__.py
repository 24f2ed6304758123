"""Time: timers driven by jiffies (kernel/time/)."""
