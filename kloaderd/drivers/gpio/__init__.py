"""GPIO: gpiolib on a machine without GPIO chips."""
