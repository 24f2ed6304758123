"""Linux's security/: the key types of security/keys."""
