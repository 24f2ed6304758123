"""drivers/base/: the driver model (buses and drivers)."""
