"""debugfs (Linux's fs/debugfs/): files under /sys/kernel/debug.

`inode.py` makes and removes directories and files (dentries are kernel
objects a module holds as handles), `file.py` the files that show a
variable (`debugfs_create_u32`, ...) and a blob, `proxy.py` the files whose
operations are a module's own `struct file_operations`, called through
Linux's full proxy.
"""
