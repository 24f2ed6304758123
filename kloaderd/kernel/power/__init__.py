"""kernel/power: power-management QoS."""
