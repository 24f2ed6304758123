"""fs/nfs_common: the pieces of NFS that Debian builds into vmlinux."""
