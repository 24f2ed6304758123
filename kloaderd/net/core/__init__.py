"""net/core/: packet handlers, socket diagnostics, rtnetlink link types."""
