"""NVMe (drivers/nvme/)."""
