"""net/ipv4/: what IPv4 lets modules register."""
