"""Device drivers the emulated kernel provides to modules (drivers/)."""
