"""lib/: the helpers Linux's lib/ exports to modules (list debugging,
refcount saturation, rate limiting, bit searching), and what the loader and
the tools share from it (decompressing module files)."""
