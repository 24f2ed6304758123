"""lib/: the helpers Linux's lib/ exports to modules (list debugging,
refcount saturation, rate limiting, bit searching)."""
