"""virtio: the virtio bus of a kernel that builds it in (6.12's cloud kernels)."""
