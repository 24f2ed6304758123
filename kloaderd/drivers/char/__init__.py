"""Character drivers of the core kernel (drivers/char/)."""
