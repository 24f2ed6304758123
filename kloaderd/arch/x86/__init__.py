"""x86 facts of the emulated machine that modules read: the CPU (cpuinfo.py,
match.py) and the platform it is not (hypervisor.py)."""
