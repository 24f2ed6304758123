"""net/ethernet/: what Ethernet devices are set up with."""
