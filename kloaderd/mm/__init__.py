"""Memory management beyond the slab: user copies (mm/ and lib/usercopy.c)."""
