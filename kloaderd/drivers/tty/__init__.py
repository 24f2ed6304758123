"""TTY drivers: the serial device bus (serdev) on a machine without serial controllers."""
