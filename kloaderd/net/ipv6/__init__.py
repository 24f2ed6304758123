"""net/ipv6/: the IPv6 core's exports."""
