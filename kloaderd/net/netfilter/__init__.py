"""net/netfilter/: the netfilter core's registration points."""
