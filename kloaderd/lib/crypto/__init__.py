"""lib/crypto/: the crypto library routines the core kernel exports."""
