"""The NVMe host side (drivers/nvme/host/)."""
