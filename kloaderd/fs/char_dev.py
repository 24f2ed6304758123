"""Character devices: device number regions, `struct cdev`, and `chrdev_open`
(Linux's fs/char_dev.c).

Regions and cdevs are registrations (kloaderd/kernel/registry.py): shown
in `module_info`, reported and made inert if their module is freed with
them.  A driver reserves numbers (`register_chrdev_region`, `alloc_chrdev_region`,
or `__register_chrdev`, which also makes the cdev), and makes them live with
`cdev_add`.  Opening a node whose number is live runs `chrdev_open`, which
takes the references Linux takes and in the same order: `cdev_get` (a
reference on `cdev->owner`; if the module is going the device "is not
there": ENXIO), then `fops_get` (a reference on `fops->owner`; ENXIO too),
then the driver's `.open`.  Both references are held until the last close.

Dynamic majors are handed out as Linux does: 254 down to 234, then 511 down
to 384.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.printk import KERN_ERR, KERN_WARNING
from ..kernel.layouts import struct
from .file import (FILE, FOPS, INODE, MAJOR, MINOR, MINORMASK, MKDEV, S_IFCHR, Fops, OpenFile, call_open,
                   get_owner)
from .tree import DEVTMPFS, Directory, Node, file_tree

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

# struct cdev (include/linux/cdev.h): a kobject, then these
CDEV = struct("struct cdev", "linux/cdev.h", "owner", "ops", "list", "dev", "count")
STRUCTS = (CDEV, FILE, INODE, FOPS)

CHRDEV_MAJOR_MAX = 512
CHRDEV_MAJOR_DYN_END = 234
CHRDEV_MAJOR_DYN_EXT_START = 511
CHRDEV_MAJOR_DYN_EXT_END = 384
_NAME_MAX = 64


@dataclass(eq=False)
class Region:
    """A char_device_struct: numbers reserved under a name."""
    major: int
    baseminor: int
    count: int
    name: str
    module: Any                       # who registered it (None: the kernel)
    cdev: int = 0                     # the cdev __register_chrdev made for it


@dataclass(eq=False)
class CdevMapping:
    """A cdev made live by cdev_add (kobj_map): numbers → the cdev."""
    dev: int
    count: int
    cdev: int                         # struct cdev address, 0 for a kernel-internal device
    module: Any
    # A device the emulated kernel itself implements (misc): its open, in Python.
    kernel_open: Callable[..., Awaitable[None]] | None = None


class CharDevices:
    """The reserved regions (Linux's `chrdevs`) and the live cdevs
    (`cdev_map`), each entry a registration of the module that made it."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.regions = kernel.registrations.registry("chrdev")
        self.cdevs = kernel.registrations.registry("cdev")
        self.dynamic: set[int] = set()        # cdev_alloc's: freed by cdev_del

    # -- numbers ---------------------------------------------------------------

    def _overlaps(self, major: int, baseminor: int, count: int) -> bool:
        return any(r.major == major and baseminor < r.baseminor + r.count
                   and r.baseminor < baseminor + count
                   for r in (e.data for e in self.regions.entries()))

    def _dynamic_major(self) -> int:
        taken = {e.data.major for e in self.regions.entries()}
        for major in (*range(CHRDEV_MAJOR_MAX // 2 - 2, CHRDEV_MAJOR_DYN_END - 1, -1),
                      *range(CHRDEV_MAJOR_DYN_EXT_START, CHRDEV_MAJOR_DYN_EXT_END - 1, -1)):
            if major not in taken:
                return major
        return -errno.EBUSY

    def register_region(self, major: int, baseminor: int, count: int, name: str, module: Any) -> Region | int:
        """__register_chrdev_region: the Region, or a negative errno."""
        log = self.kernel.log
        if major >= CHRDEV_MAJOR_MAX:
            log.emit(KERN_ERR, f'CHRDEV "{name}" major requested ({major}) is greater than the maximum '
                               f"({CHRDEV_MAJOR_MAX - 1})")
            return -errno.EINVAL
        if count > MINORMASK + 1 - baseminor:
            log.emit(KERN_ERR, f'CHRDEV "{name}" minor range requested ({baseminor}-{baseminor + count - 1}) '
                               f"is out of range of maximum range (0-{MINORMASK}) for a single major")
            return -errno.EINVAL
        if major == 0:
            major = self._dynamic_major()
            if major < 0:
                log.emit(KERN_ERR, f'CHRDEV "{name}" dynamic allocation region is full')
                return major
        if self._overlaps(major, baseminor, count):
            return -errno.EBUSY
        region = Region(major, baseminor, count, name, module)
        self.regions.add((major, baseminor, count),
                         f'char device region {major}:{baseminor}-{baseminor + count - 1} "{name}"',
                         owner=module, data=region, on_leftover=self._region_left)
        return region

    def unregister_region(self, major: int, baseminor: int, count: int) -> Region | None:
        entry = self.regions.remove((major, baseminor, count))
        return entry.data if entry is not None else None

    def _region_left(self, entry: Any) -> None:
        """A region __register_chrdev made goes with its cdev."""
        if entry.data.cdev:
            self._drop_cdev(entry.data.cdev)

    def _drop_cdev(self, cdev: int) -> None:
        self.cdevs.remove(cdev)
        self.kernel.slab.free(cdev, None)

    # -- cdev_map ------------------------------------------------------------------

    def add(self, mapping: CdevMapping, key: Any = None, ops: int = 0) -> None:
        dev = mapping.dev
        self.cdevs.add(key if key is not None else mapping.cdev,
                       f"cdev {MAJOR(dev)}:{MINOR(dev)}-{MINOR(dev) + mapping.count - 1}",
                       owner=mapping.module, points_to=(ops,), data=mapping)

    def lookup(self, dev: int) -> CdevMapping | None:
        """kobj_lookup: the most recently added mapping covering dev."""
        for m in reversed([e.data for e in self.cdevs.entries()]):
            if m.dev <= dev < m.dev + m.count:
                return m
        return None


def chardevs(kernel: "Kernel") -> CharDevices:
    return kernel.subsystem(CharDevices)


async def chrdev_open(kernel: "Kernel", file: OpenFile, comm: str) -> None:
    mapping = chardevs(kernel).lookup(file.node.dev)
    dev = file.node.dev
    if mapping is None:
        raise KernelError(errno.ENXIO, f"open {file.node.path}: no device {MAJOR(dev)}:{MINOR(dev)} "
                                       "(No such device or address)")
    if mapping.kernel_open is not None:
        await mapping.kernel_open(kernel, file, comm)
        return
    mem, cdev = kernel.mem, kernel.layouts[CDEV]
    get_owner(kernel, file, mem.read_u64(mapping.cdev + cdev.owner), "cdev_get", errno.ENXIO)
    fops = mem.read_u64(mapping.cdev + cdev.ops)
    get_owner(kernel, file, mem.read_u64(fops + kernel.layouts[FOPS].owner), "fops_get", errno.ENXIO)
    await call_open(kernel, file, fops, comm)


class ChrdevOps(Fops):
    """def_chr_fops: a device node's open is chrdev_open, which installs the
    driver's file operations; the rest goes through `file->f_op`."""

    async def open(self, file: OpenFile) -> None:
        await chrdev_open(file.kernel, file, file.comm)


CHRDEV_OPS = ChrdevOps()


class DeviceNode(Node):
    """A character device node: what devtmpfs or mknod made in /dev."""

    kind = S_IFCHR

    def __init__(self, name: str, dev: int, made_by: str) -> None:
        super().__init__(name, CHRDEV_OPS, mode=0o600, removal=DEVTMPFS, rdev=dev)
        self.made_by = made_by         # "misc" (removed by misc_deregister) or "mknod"


class DeviceNodes:
    """/dev: the character device nodes of the tree (file_tree(kernel).root/dev)."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.tree = file_tree(kernel)
        self.nodes: dict[str, DeviceNode] = {}

    def mknod(self, path: str, dev: int, made_by: str = "mknod",
              node_type: type[DeviceNode] = DeviceNode) -> DeviceNode:
        """A node at `path` under /dev (a block device's is a `node_type` of
        block/genhd.py); missing directories are made (as devtmpfs)."""
        if not path.startswith("/") or "\0" in path or len(path) > 4095:
            raise KernelError(errno.EINVAL, f"mknod: {path!r} is not an absolute path")
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2 or parts[0] != "dev" or any(p in (".", "..") for p in parts):
            raise KernelError(errno.EPERM, f"mknod: {path}: Operation not permitted "
                                           "(device nodes are made under /dev only)")
        parent = self.tree.lookup("/dev")
        for part in parts[1:-1]:
            child = parent.child(part)  # type: ignore[attr-defined]
            parent = child if child is not None else self.tree.mkdir(parent, part, mode=0o755)
            if not isinstance(parent, Directory):
                raise KernelError(errno.ENOTDIR, f"mknod: {path}: Not a directory")
        path = "/" + "/".join(parts)
        if parent.child(parts[-1]) is not None:
            raise KernelError(errno.EEXIST, f"mknod: {path}: File exists")
        node = node_type(parts[-1], dev, made_by)
        self.tree.attach(parent, node)
        self.nodes[path] = node
        return node

    def remove(self, path: str) -> None:
        node = self.nodes.pop(path, None)
        if node is not None:
            self.tree.remove_now(node)

    def list(self) -> list[dict[str, Any]]:
        return [{"path": path, "major": MAJOR(n.dev), "minor": MINOR(n.dev), "made_by": n.made_by}
                for path, n in sorted(self.nodes.items())]


def _name(ctx: Any, addr: int) -> str:
    return ctx.mem.read_cstr(addr, _NAME_MAX).decode(errors="replace") if addr else ""


# -- the exported functions ---------------------------------------------------------

@export("register_chrdev_region", "int register_chrdev_region(dev_t from, unsigned count, const char *name)",
        nargs=3)
def register_chrdev_region(ctx: Any, frm: int, count: int, name: int) -> int:
    devs, label = chardevs(ctx.kernel), _name(ctx, name)
    frm &= 0xFFFFFFFF
    end = frm + (count & 0xFFFFFFFF)
    done: list[Region] = []
    n = frm
    while n < end:
        nxt = min(MKDEV(MAJOR(n) + 1, 0), end)
        region = devs.register_region(MAJOR(n), MINOR(n), nxt - n, label, ctx.module)
        if isinstance(region, int):
            for r in done:
                devs.regions.remove((r.major, r.baseminor, r.count))
            return region
        done.append(region)
        n = nxt
    return 0


@export("alloc_chrdev_region",
        "int alloc_chrdev_region(dev_t *dev, unsigned baseminor, unsigned count, const char *name)", nargs=4)
def alloc_chrdev_region(ctx: Any, dev: int, baseminor: int, count: int, name: int) -> int:
    region = chardevs(ctx.kernel).register_region(0, baseminor & 0xFFFFFFFF, count & 0xFFFFFFFF,
                                                  _name(ctx, name), ctx.module)
    if isinstance(region, int):
        return region
    ctx.mem.write_u32(dev, MKDEV(region.major, region.baseminor))
    return 0


@export("unregister_chrdev_region", "void unregister_chrdev_region(dev_t from, unsigned count)", nargs=2)
def unregister_chrdev_region(ctx: Any, frm: int, count: int) -> None:
    devs = chardevs(ctx.kernel)
    frm &= 0xFFFFFFFF
    end = frm + (count & 0xFFFFFFFF)
    n = frm
    while n < end:
        nxt = min(MKDEV(MAJOR(n) + 1, 0), end)
        devs.unregister_region(MAJOR(n), MINOR(n), nxt - n)
        n = nxt


@export("__register_chrdev",
        "int __register_chrdev(unsigned int major, unsigned int baseminor, unsigned int count, "
        "const char *name, const struct file_operations *fops)", nargs=5)
def __register_chrdev(ctx: Any, major: int, baseminor: int, count: int, name: int, fops: int) -> int:
    kernel, devs = ctx.kernel, chardevs(ctx.kernel)
    region = devs.register_region(major & 0xFFFFFFFF, baseminor & 0xFFFFFFFF, count & 0xFFFFFFFF,
                                  _name(ctx, name), ctx.module)
    if isinstance(region, int):
        return region
    c = kernel.layouts[CDEV]
    cdev = kernel.slab.alloc(c.size, None, zero=True)       # cdev_alloc()
    if not cdev:
        devs.regions.remove((region.major, region.baseminor, region.count))
        return -errno.ENOMEM
    ctx.mem.write_u64(cdev + c.owner, ctx.mem.read_u64(fops + kernel.layouts[FOPS].owner))
    ctx.mem.write_u64(cdev + c.ops, fops)
    dev = MKDEV(region.major, region.baseminor)
    ctx.mem.write_u32(cdev + c.dev, dev)
    ctx.mem.write_u32(cdev + c.count, region.count)
    region.cdev = cdev
    devs.add(CdevMapping(dev, region.count, cdev, ctx.module), ops=fops)
    return region.major if (major & 0xFFFFFFFF) == 0 else 0


@export("__unregister_chrdev",
        "void __unregister_chrdev(unsigned int major, unsigned int baseminor, unsigned int count, "
        "const char *name)", nargs=4)
def __unregister_chrdev(ctx: Any, major: int, baseminor: int, count: int, name: int) -> None:
    devs = chardevs(ctx.kernel)
    region = devs.unregister_region(major & 0xFFFFFFFF, baseminor & 0xFFFFFFFF, count & 0xFFFFFFFF)
    if region is not None and region.cdev:
        devs._drop_cdev(region.cdev)


@export("cdev_init", "void cdev_init(struct cdev *cdev, const struct file_operations *fops)", nargs=2)
def cdev_init(ctx: Any, cdev: int, fops: int) -> None:
    c = ctx.kernel.layouts[CDEV]
    ctx.mem.write(cdev, bytes(c.size))
    ctx.mem.write_u64(cdev + c.list, cdev + c.list)          # INIT_LIST_HEAD
    ctx.mem.write_u64(cdev + c.list + 8, cdev + c.list)
    ctx.mem.write_u64(cdev + c.ops, fops)


@export("cdev_alloc", "struct cdev *cdev_alloc(void)", nargs=0)
def cdev_alloc(ctx: Any) -> int:
    """A cdev the kernel frees when it is deleted (ktype_cdev_dynamic)."""
    c = ctx.kernel.layouts[CDEV]
    cdev = ctx.kernel.slab.alloc(c.size, getattr(ctx.module, "name", None), zero=True)
    if cdev:
        ctx.mem.write_u64(cdev + c.list, cdev + c.list)
        ctx.mem.write_u64(cdev + c.list + 8, cdev + c.list)
        chardevs(ctx.kernel).dynamic.add(cdev)
    return cdev


@export("cdev_add", "int cdev_add(struct cdev *p, dev_t dev, unsigned count)", nargs=3)
def cdev_add(ctx: Any, p: int, dev: int, count: int) -> int:
    dev &= 0xFFFFFFFF
    c = ctx.kernel.layouts[CDEV]
    ctx.mem.write_u32(p + c.dev, dev)
    ctx.mem.write_u32(p + c.count, count & 0xFFFFFFFF)
    devs = chardevs(ctx.kernel)
    if devs.cdevs.find(p) is not None:
        return -errno.EBUSY            # kobj_map of a cdev already mapped: its kobject is in use
    devs.add(CdevMapping(dev, count & 0xFFFFFFFF, p, ctx.module), ops=ctx.mem.read_u64(p + c.ops))
    return 0


@export("cdev_del", "void cdev_del(struct cdev *p)", nargs=1)
def cdev_del(ctx: Any, p: int) -> None:
    devs = chardevs(ctx.kernel)
    if devs.cdevs.remove(p) is None:
        ctx.kernel.log.emit(KERN_WARNING, f"cdev_del: {p:#x} was never added",
                            getattr(ctx.module, "name", None))
    if p in devs.dynamic:                     # kobject_put: cdev_dynamic_release
        devs.dynamic.discard(p)
        ctx.kernel.slab.free(p, None)


def register_kernel_device(kernel: "Kernel", major: int, name: str,
                           kernel_open: Callable[..., Awaitable[None]]) -> None:
    """A whole major the emulated kernel serves itself (misc's major 10)."""
    devs = chardevs(kernel)
    region = devs.register_region(major, 0, MINORMASK + 1, name, None)
    assert not isinstance(region, int), f"major {major} is taken"
    devs.add(CdevMapping(MKDEV(major, 0), MINORMASK + 1, 0, None, kernel_open), key=("kernel", major))


def device_nodes(kernel: "Kernel") -> DeviceNodes:
    return kernel.subsystem(DeviceNodes)
