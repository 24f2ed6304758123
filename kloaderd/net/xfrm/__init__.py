"""net/xfrm/: IPsec transforms."""
