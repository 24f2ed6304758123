"""net/netlink/: netlink sockets the kernel itself opens."""
