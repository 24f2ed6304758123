"""block/genhd.c: block device major numbers (`__register_blkdev`).

As Linux 6.1: major 0 asks for a free one, searched from 254 down among the
255 hash buckets (major % 255) that are empty, "__register_blkdev: failed to
get major for NAME" and -EBUSY if none is; a major of 512 or more is
"…: major requested (M) is greater than the maximum (511) for NAME" and
-EINVAL; a major already taken is "register_blkdev: cannot get major M for
NAME" and -EBUSY.  The name is kept to 15 characters.  `unregister_blkdev`
of a major not registered, or under another name, is a WARN_ON.  The
kernel's own "blkext" (259) is registered from boot.  Majors are recorded
in the "blkdev" registry, so a major a freed module kept is reported and
released.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from stat import S_IFBLK
from typing import Any, Callable

from ..config import HZ, PAGE_SIZE
from ..errors import KernelError
from ..fs.char_dev import DeviceNode, device_nodes
from ..fs.file import MAJOR, MINOR, MINORBITS, MINORMASK, MKDEV
from ..fs.tree import DEVTMPFS, Content, Directory, FileOps, Node, file_tree
from ..kernel.api import at_boot, export
from ..kernel.callback import call_module_code
from ..kernel.panic import warn
from ..kernel.printk import KERN_ERR, KERN_INFO, KERN_WARNING
from ..lib.kobject import kobjects
from .blk import (BDEV, BDOPS, GENDISK, GENHD, LIMITS, QUEUE, SECTOR_SHIFT, STRUCTS as BLK_STRUCTS, capacity, change_bit, disk_name,
                  err_ptr, owner, test_bit)

BLKDEV_MAJOR_HASH_SIZE = 255
BLKDEV_MAJOR_MAX = 512
NAME_MAX = 16
BUILTIN = {259: "blkext"}
STRUCTS = BLK_STRUCTS          # what these functions read at the kernel's offsets
# include/linux/blkdev.h's defaults (blk_set_default_limits), the same in 6.1 and 6.12
BLK_SAFE_MAX_SECTORS = 255
BLK_DEF_MAX_SECTORS = 2560
BLK_MAX_SEGMENTS = 128
BLK_MAX_SEGMENT_SIZE = 65536
BLK_SEG_BOUNDARY_MASK = 0xFFFFFFFF


def _module(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


@export("__register_blkdev", "int __register_blkdev(unsigned int major, const char *name, "
        "void (*probe)(dev_t devt))", nargs=3)
def __register_blkdev(ctx: Any, major: int, name: int, probe: int) -> int:
    major &= 0xFFFFFFFF
    text = ctx.mem.read_cstr(name, 256).decode("utf-8", "replace")
    registry = ctx.kernel.registrations.registry("blkdev")
    taken = set(BUILTIN) | {entry.key for entry in registry.entries()}
    result = 0
    if major == 0:
        buckets = {m % BLKDEV_MAJOR_HASH_SIZE for m in taken}
        free = next((i for i in range(BLKDEV_MAJOR_HASH_SIZE - 1, 0, -1) if i not in buckets), 0)
        if not free:
            ctx.kernel.log.emit(KERN_WARNING, f"__register_blkdev: failed to get major for {text}",
                                _module(ctx))
            return -errno.EBUSY
        major = result = free
    if major >= BLKDEV_MAJOR_MAX:
        ctx.kernel.log.emit(KERN_ERR, f"__register_blkdev: major requested ({major}) is greater "
                                      f"than the maximum ({BLKDEV_MAJOR_MAX - 1}) for {text}",
                            _module(ctx))
        return -errno.EINVAL
    if major in taken:
        ctx.kernel.log.emit(KERN_WARNING, f"register_blkdev: cannot get major {major} for {text}",
                            _module(ctx))
        return -errno.EBUSY
    regs = ctx.kernel.registrations
    registry.add(major, f"block major {major} ({text[:NAME_MAX - 1]})",
                 owner=regs.module_at(name) or ctx.module, address=0, points_to=(probe,),
                 data=text[:NAME_MAX - 1])
    return result


@export("unregister_blkdev", "void unregister_blkdev(unsigned int major, const char *name)",
        nargs=2)
def unregister_blkdev(ctx: Any, major: int, name: int) -> None:
    major &= 0xFFFFFFFF
    text = ctx.mem.read_cstr(name, 256).decode("utf-8", "replace")
    registry = ctx.kernel.registrations.registry("blkdev")
    entry = registry.find(major)
    if entry is None or entry.data != text:          # strcmp with the truncated name
        warn(ctx, "", "block/genhd.c:295", "unregister_blkdev")
        return
    registry.remove(major)


# -- disks ------------------------------------------------------------------------------

BLOCK_EXT_MAJOR = 259
NR_EXT_DEVT = 1 << MINORBITS
MINORS = MINORMASK + 1
VIRTUAL_BLOCK = "/sys/devices/virtual/block"


@dataclass(eq=False)
class Disk:
    """What the kernel knows of one gendisk besides its bytes."""
    address: int
    queue: int
    part0: int
    module: Any
    tag_set: int = 0                   # the blk-mq tag set of its queue (0: bio-based)
    ext_minor: int | None = None       # a minor of BLOCK_EXT_MAJOR add_disk handed out
    name: str = ""                     # its name while added
    nodes: list[Node] = field(default_factory=list)     # directory, links, /dev node
    dev_path: str = ""


class Disks:
    """The gendisks of one kernel: allocated ones by address, added ones in
    the order add_disk made them visible (/proc/partitions' order)."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.known: dict[int, Disk] = {}
        self.added: list[Disk] = []
        self.ext_minors: set[int] = set()
        self.registry = kernel.registrations.registry("gendisk")
        tree = file_tree(kernel)
        for path in ("/sys/block", "/sys/class", "/sys/class/block", "/sys/devices",
                     "/sys/devices/virtual", VIRTUAL_BLOCK):
            try:
                tree.lookup(path)
            except KernelError:
                tree.mkdir(path, mode=0o755)
        tree.add("/proc", "partitions", Content(lambda file: self.partitions()), mode=0o444)

    def partitions(self) -> str:
        """/proc/partitions (show_partition): disks with a size that are not hidden."""
        kernel, off = self.kernel, self.kernel.layouts[GENDISK]
        lines = ["major minor  #blocks  name\n\n"]
        for disk in self.added:
            sectors = capacity(kernel, disk.address)
            if not sectors or kernel.mem.read_u32(disk.address + off.flags) & kernel.layouts[GENHD].GENHD_FL_HIDDEN:
                continue
            dev = kernel.mem.read_u32(disk.part0 + kernel.layouts[BDEV].bd_dev)
            lines.append(f"{MAJOR(dev):4d}  {MINOR(dev):7d} {sectors >> 1:10d} {disk.name}\n")
        return "".join(lines)

    def alloc(self, ctx: Any, lim: int, tag_set: int, queuedata: int) -> int:
        """__alloc_disk_node over a new queue (blk_alloc_queue): the gendisk,
        or ERR_PTR(-EINVAL) for limits that do not validate."""
        kernel, mem = self.kernel, self.kernel.mem
        goff, boff, qoff = kernel.layouts[GENDISK], kernel.layouts[BDEV], kernel.layouts[QUEUE]
        slab = kernel.slab
        queue = slab.alloc(qoff.size, None, zero=True)
        ret = set_limits(kernel, queue + qoff.limits, lim)
        if ret:
            slab.free(queue, None)
            return err_ptr(-ret)
        disk = slab.alloc(goff.size, None, zero=True)
        part0 = slab.alloc(boff.size, None, zero=True)
        mem.write_u64(queue + qoff.queuedata, queuedata)
        mem.write_u64(queue + qoff.tag_set, tag_set)
        mem.write_u64(queue + qoff.disk, disk)
        mem.write_u32(queue + qoff.rq_timeout, 30 * HZ)
        mem.write_u64(disk + goff.part0, part0)
        mem.write_u64(disk + goff.queue, queue)
        mem.write_u64(disk + goff.state, 1 << kernel.layouts[GENHD].GD_OWNS_QUEUE)
        mem.write_u64(part0 + boff.bd_disk, disk)
        mem.write_u64(part0 + boff.bd_queue, queue)
        record = self.known[disk] = Disk(disk, queue, part0, ctx.module, tag_set)
        self.registry.add(disk, f"gendisk at {disk:#x} (never added; put_disk)", owner=ctx.module,
                          address=disk, data=record, on_leftover=lambda entry: self.free(record))
        return disk

    def add(self, ctx: Any, record: Disk) -> int:
        """device_add_disk: the disk's numbers checked or handed out, its
        sysfs directory, links and /dev node made, KOBJ_ADD sent."""
        kernel, mem, disk = self.kernel, self.kernel.mem, record.address
        goff, consts = kernel.layouts[GENDISK], kernel.layouts[GENHD]
        major = mem.read_s32(disk + goff.major)
        minors = mem.read_s32(disk + goff.minors)
        first = mem.read_s32(disk + goff.first_minor)
        if major:
            if minors <= 0:
                warn(ctx, "", "block/genhd.c", "device_add_disk")
                return -errno.EINVAL
            if minors > consts.DISK_MAX_PARTS:
                kernel.log.emit(KERN_ERR, f"block: can't allocate more than {consts.DISK_MAX_PARTS} partitions",
                                owner(ctx))
                minors = consts.DISK_MAX_PARTS
                mem.write_u32(disk + goff.minors, minors)
            if first < 0 or first + minors > MINORS:
                return -errno.EINVAL
        else:
            if minors:
                warn(ctx, "", "block/genhd.c", "device_add_disk")
                return -errno.EINVAL
            free = next((m for m in range(NR_EXT_DEVT) if m not in self.ext_minors), None)
            if free is None:
                return -errno.ENOSPC
            self.ext_minors.add(free)
            record.ext_minor, major, first = free, BLOCK_EXT_MAJOR, free
            mem.write_u32(disk + goff.major, major)
            mem.write_u32(disk + goff.first_minor, first)
        name = disk_name(kernel, disk)
        tree = file_tree(kernel)
        if not name or tree.lookup(VIRTUAL_BLOCK).child(name) is not None:   # type: ignore[attr-defined]
            kernel.log.emit(KERN_ERR, f"sysfs: cannot create duplicate filename "
                                      f"'/devices/virtual/block/{name}'", owner(ctx))
            warn(ctx, "", "fs/sysfs/dir.c", "sysfs_warn_dup")
            self._free_ext_minor(record)
            return -errno.EEXIST
        devt = MKDEV(major, first)
        mem.write_u32(record.part0 + kernel.layouts[BDEV].bd_dev, devt)
        record.name = name
        record.nodes = publish(kernel, record, devt)
        mem.write_u64(disk + goff.state, mem.read_u64(disk + goff.state) | 1 << consts.GD_ADDED)
        self.added.append(record)
        kobjects(kernel).announce(f"/devices/virtual/block/{name}", "add")
        entry = self.registry.find(disk)
        if entry is not None:
            entry.what = f"disk {name} ({major}:{first}, del_gendisk and put_disk)"
        return 0

    def delete(self, record: Disk) -> None:
        """del_gendisk: KOBJ_REMOVE, the files and node gone, the disk dead."""
        kernel, mem, disk = self.kernel, self.kernel.mem, record.address
        goff, consts = kernel.layouts[GENDISK], kernel.layouts[GENHD]
        kobjects(kernel).announce(f"/devices/virtual/block/{record.name}", "remove")
        self._unpublish(record)
        mem.write_u64(disk + goff.state, mem.read_u64(disk + goff.state) | 1 << consts.GD_DEAD)
        entry = self.registry.find(disk)
        if entry is not None:
            entry.what = f"gendisk {record.name} (deleted; put_disk)"

    def _unpublish(self, record: Disk) -> None:
        tree = file_tree(self.kernel)
        for node in reversed(record.nodes):
            if isinstance(node, DeviceNode):
                device_nodes(self.kernel).remove(record.dev_path)
            else:
                tree.remove_now(node)
        record.nodes = []
        if record in self.added:
            self.added.remove(record)

    def _free_ext_minor(self, record: Disk) -> None:
        if record.ext_minor is not None:
            self.ext_minors.discard(record.ext_minor)
            record.ext_minor = None

    def free(self, record: Disk) -> None:
        """disk_release: the last reference gone (put_disk), or the disk of
        a module freed without it (a leftover)."""
        if record in self.added:
            kobjects(self.kernel).announce(f"/devices/virtual/block/{record.name}", "remove")
            self._unpublish(record)
        self._free_ext_minor(record)
        self.known.pop(record.address, None)
        self.registry.remove(record.address)
        slab = self.kernel.slab
        goff = self.kernel.layouts[GENDISK]
        if test_bit(self.kernel, record.address + goff.state, self.kernel.layouts[GENHD].GD_OWNS_QUEUE):
            slab.free(record.queue, None)
        slab.free(record.part0, None)
        slab.free(record.address, None)


def disks(kernel: Any) -> Disks:
    return kernel.subsystem(Disks)


@at_boot
def _block(kernel: Any) -> None:
    """/sys/block, /sys/class/block and /proc/partitions exist from boot
    (where the block layouts are known: else there are no disks)."""
    if all(kernel.layouts.has(s) for s in STRUCTS):
        disks(kernel)


def set_limits(kernel: Any, limits: int, lim: int) -> int:
    """blk_set_default_limits, then (6.9's queue_limits argument) the
    caller's limits validated as blk_validate_limits does: 0 or -EINVAL."""
    off, mem = kernel.layouts[LIMITS], kernel.mem
    if lim:
        mem.write(limits, mem.read(lim, kernel.layouts[LIMITS].size))
    else:
        mem.write_u32(limits + off.max_hw_sectors, BLK_SAFE_MAX_SECTORS)
    if not mem.read_u64(limits + off.seg_boundary_mask):
        mem.write_u64(limits + off.seg_boundary_mask, BLK_SEG_BOUNDARY_MASK)
    if not mem.read_u16(limits + off.max_segments):
        mem.write_u16(limits + off.max_segments, BLK_MAX_SEGMENTS)
    if not mem.read_u32(limits + off.max_segment_size):
        mem.write_u32(limits + off.max_segment_size, BLK_MAX_SEGMENT_SIZE)
    logical = mem.read_u32(limits + off.logical_block_size) or 512
    if logical & (logical - 1) or not 512 <= logical <= PAGE_SIZE:
        return -errno.EINVAL
    mem.write_u32(limits + off.logical_block_size, logical)
    physical = max(mem.read_u32(limits + off.physical_block_size), logical)
    mem.write_u32(limits + off.physical_block_size, physical)
    mem.write_u32(limits + off.io_min, max(mem.read_u32(limits + off.io_min), physical))
    hw = mem.read_u32(limits + off.max_hw_sectors) or BLK_SAFE_MAX_SECTORS
    hw -= hw % (logical >> SECTOR_SHIFT)
    mem.write_u32(limits + off.max_hw_sectors, hw)
    if not mem.read_u32(limits + off.max_sectors):
        mem.write_u32(limits + off.max_sectors, min(hw, BLK_DEF_MAX_SECTORS))
    return 0


def publish(kernel: Any, record: Disk, devt: int) -> list[Node]:
    """The disk's directory in /sys/devices/virtual/block with its
    attributes, /sys/block/NAME and /sys/class/block/NAME, and /dev/NAME."""
    tree, name, disk = file_tree(kernel), record.name, record.address
    mem, goff, consts = kernel.mem, kernel.layouts[GENDISK], kernel.layouts[GENHD]
    directory = tree.mkdir(VIRTUAL_BLOCK, name, mode=0o755, owner=record.module)

    def flags() -> int:
        return mem.read_s32(disk + goff.flags)

    def attribute(where: Directory, attr: str, show: Callable[[], Any]) -> None:
        tree.add(where, attr, Content(lambda file: f"{show()}\n"), mode=0o444, size=PAGE_SIZE)

    attribute(directory, "size", lambda: capacity(kernel, disk))
    attribute(directory, "dev", lambda: f"{MAJOR(devt)}:{MINOR(devt)}")
    attribute(directory, "range", lambda: mem.read_s32(disk + goff.minors))
    attribute(directory, "ext_range", lambda: 1 if flags() & consts.GENHD_FL_NO_PART else consts.DISK_MAX_PARTS)
    attribute(directory, "removable", lambda: int(bool(flags() & consts.GENHD_FL_REMOVABLE)))
    attribute(directory, "hidden", lambda: int(bool(flags() & consts.GENHD_FL_HIDDEN)))
    attribute(directory, "ro", lambda: int(test_bit(kernel, disk + goff.state, consts.GD_READ_ONLY)))
    tree.add(directory, "uevent", Content(lambda file: f"MAJOR={MAJOR(devt)}\nMINOR={MINOR(devt)}\n"
                                                       f"DEVNAME={name}\nDEVTYPE=disk\n"), mode=0o644)
    queue_dir = tree.mkdir(directory, "queue", mode=0o755)
    loff, limits = kernel.layouts[LIMITS], record.queue + kernel.layouts[QUEUE].limits
    for attr, member, scale in (("logical_block_size", loff.logical_block_size, 1),
                                ("hw_sector_size", loff.logical_block_size, 1),
                                ("physical_block_size", loff.physical_block_size, 1),
                                ("minimum_io_size", loff.io_min, 1), ("optimal_io_size", loff.io_opt, 1),
                                ("max_hw_sectors_kb", loff.max_hw_sectors, 2),
                                ("max_sectors_kb", loff.max_sectors, 2)):
        attribute(queue_dir, attr, lambda member=member, scale=scale: mem.read_u32(limits + member) // scale)
    attribute(queue_dir, "max_segments", lambda: mem.read_u16(limits + loff.max_segments))
    if consts.QUEUE_FLAG_NONROT is not None:
        flags_word = record.queue + kernel.layouts[QUEUE].queue_flags
        attribute(queue_dir, "rotational", lambda: int(not test_bit(kernel, flags_word, consts.QUEUE_FLAG_NONROT)))
    made: list[Node] = [directory,
                        tree.symlink("/sys/block", name, f"../devices/virtual/block/{name}"),
                        tree.symlink("/sys/class/block", name, f"../../devices/virtual/block/{name}")]
    try:
        made.append(device_nodes(kernel).mknod(f"/dev/{name}", devt, made_by="devtmpfs",
                                               node_type=BlockDeviceNode))
        record.dev_path = f"/dev/{name}"
    except KernelError:
        pass                          # a node by that name exists already: devtmpfs keeps it
    return made


class BlockDeviceOps(FileOps):
    """def_blk_fops' open: kloader emulates no block I/O, so a disk's node
    exists (stat shows it) but does not open."""

    async def open(self, file: Any) -> None:
        raise KernelError(errno.EOPNOTSUPP, f"open {file.node.path}: kloader emulates no block I/O "
                                            "(the disk is registered; its data cannot be read or written)")


class BlockDeviceNode(DeviceNode):
    """A block device node devtmpfs made for a disk."""

    kind = S_IFBLK

    def __init__(self, name: str, dev: int, made_by: str) -> None:
        Node.__init__(self, name, BLOCK_DEVICE_OPS, mode=0o660, removal=DEVTMPFS, rdev=dev)
        self.made_by = made_by


BLOCK_DEVICE_OPS = BlockDeviceOps()


def _disk(ctx: Any, disk: int, function: str) -> Disk | None:
    record = disks(ctx.kernel).known.get(disk)
    if record is None:
        ctx.kernel.log.emit(KERN_ERR, f"{function}: {disk:#x} is not a gendisk the block layer allocated",
                            owner(ctx))
    return record


@export("__blk_alloc_disk", "struct gendisk *__blk_alloc_disk(int node, struct lock_class_key *lkclass)",
        nargs=3)
def __blk_alloc_disk(ctx: Any, a0: int, a1: int, a2: int) -> int:
    """A bio-based disk and its queue.  6.9 put `struct queue_limits *lim`
    first: the arguments are read by the running kernel's release."""
    lim = a0 if takes_limits(ctx) else 0
    return disks(ctx.kernel).alloc(ctx, lim, 0, 0)


def takes_limits(ctx: Any) -> bool:
    """Whether this kernel's disk allocators take a `struct queue_limits *` (6.9)."""
    version = getattr(ctx.kernel.profile, "version", None)
    return version is not None and version >= (6, 9)


@export("device_add_disk", "int device_add_disk(struct device *parent, struct gendisk *disk, "
        "const struct attribute_group **groups)", nargs=3)
def device_add_disk(ctx: Any, parent: int, disk: int, groups: int) -> int:
    record = _disk(ctx, disk, "device_add_disk")
    if record is None:
        return -errno.EINVAL
    if record in disks(ctx.kernel).added:
        warn(ctx, "", "block/genhd.c", "device_add_disk")
        return -errno.EINVAL
    return disks(ctx.kernel).add(ctx, record)


@export("del_gendisk", "void del_gendisk(struct gendisk *disk)", nargs=1)
def del_gendisk(ctx: Any, disk: int) -> None:
    table = disks(ctx.kernel)
    record = table.known.get(disk)
    if record is None or record not in table.added:      # WARN_ON_ONCE(!disk_live(disk) && !hidden)
        warn(ctx, "", "block/genhd.c", "del_gendisk")
        return
    table.delete(record)


@export("put_disk", "void put_disk(struct gendisk *disk)", nargs=1)
def put_disk(ctx: Any, disk: int) -> Any:
    """The last reference (disk_release): a disk that was added has its
    driver's `fops->free_disk` called, in module code, before it is freed."""
    record = _disk(ctx, disk, "put_disk") if disk else None
    if record is None:
        return 0
    kernel, mem = ctx.kernel, ctx.mem
    fops = mem.read_u64(disk + kernel.layouts[GENDISK].fops)
    free_disk = mem.read_u64(fops + kernel.layouts[BDOPS].free_disk) if fops else 0
    if not free_disk or not test_bit(kernel, disk + kernel.layouts[GENDISK].state, kernel.layouts[GENHD].GD_ADDED):
        disks(kernel).free(record)
        return 0
    called = call_module_code(ctx, free_disk, disk)

    async def releasing() -> int:
        try:
            await called
        finally:
            disks(kernel).free(record)
        return 0
    return releasing()


@export("blk_cleanup_disk", "void blk_cleanup_disk(struct gendisk *disk)", nargs=1)
def blk_cleanup_disk(ctx: Any, disk: int) -> Any:
    """6.1: blk_mq_destroy_queue (no queue is running) and put_disk."""
    return put_disk(ctx, disk)


@export("set_capacity", "void set_capacity(struct gendisk *disk, sector_t size)", nargs=2)
def set_capacity(ctx: Any, disk: int, size: int) -> None:
    part0 = ctx.mem.read_u64(disk + ctx.kernel.layouts[GENDISK].part0)
    ctx.mem.write_u64(part0 + ctx.kernel.layouts[BDEV].bd_nr_sectors, size)


@export("set_capacity_and_notify", "bool set_capacity_and_notify(struct gendisk *disk, sector_t size)", nargs=2)
def set_capacity_and_notify(ctx: Any, disk: int, size: int) -> int:
    kernel = ctx.kernel
    old = capacity(kernel, disk)
    set_capacity(ctx, disk, size)
    record = disks(kernel).known.get(disk)
    hidden = ctx.mem.read_s32(disk + kernel.layouts[GENDISK].flags) & kernel.layouts[GENHD].GENHD_FL_HIDDEN
    if size == old or record is None or record not in disks(kernel).added or hidden:
        return 0
    kernel.log.emit(KERN_INFO, f"{record.name}: detected capacity change from {old} to {size}", owner(ctx))
    if not old or not size:
        return 0
    kobjects(kernel).announce(f"/devices/virtual/block/{record.name}", "change")
    return 1


@export("set_disk_ro", "void set_disk_ro(struct gendisk *disk, bool read_only)", nargs=2)
def set_disk_ro(ctx: Any, disk: int, read_only: int) -> None:
    kernel = ctx.kernel
    state = disk + kernel.layouts[GENDISK].state
    bit = kernel.layouts[GENHD].GD_READ_ONLY
    read_only &= 0xFF
    if test_bit(kernel, state, bit) == bool(read_only):
        return
    change_bit(kernel, state, bit, bool(read_only))
    record = disks(kernel).known.get(disk)
    if record is not None and record in disks(kernel).added:
        kobjects(kernel).announce(f"/devices/virtual/block/{record.name}", "change")
