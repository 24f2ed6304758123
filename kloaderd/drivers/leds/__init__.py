"""drivers/leds/."""
