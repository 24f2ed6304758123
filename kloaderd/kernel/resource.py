"""I/O port and memory regions (Linux's kernel/resource.c): the trees of
`struct resource` under `ioport_resource` and `iomem_resource`, what
`request_region`/`request_mem_region` (the header's `__request_region`) and
their releases do to them, and /proc/ioports and /proc/iomem.

The trees are Linux's, in guest memory: every `struct resource` is linked
through `parent`/`sibling`/`child` as kernel/resource.c links it, so a module
that walks `iomem_resource.child` or reads `res->start` reads what Linux
would.  The machine's boot entries are x86's: the legacy ports
`arch/x86/kernel/setup.c` reserves (`dma1`, `pic1`, `timer0`, ...), and
"System RAM" where kloader's direct map keeps memory (the kernel image and
per-CPU area below 2 GiB, the heap at 4 GiB; see docs/semantics.md).
There is no other device, so any other range is free: a driver's request
of it succeeds, a second request of an overlapping busy range answers
NULL (the caller's -EBUSY), and `__release_region` of a range nobody holds
is "Trying to free nonexistent resource <...>".

A region a module requested (or a `struct resource` of its own it put in a
tree with `request_resource`) is a registration of the module ("resource"):
one still held when the module is freed is reported as a leaked
registration and taken out of its tree, whose listing would otherwise read
the freed module's name string.

Bounds: a walk of a tree stops after `MAX_WALK` entries (a module that
corrupts the links cannot hang a reader of /proc/iomem).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import trio

from ..fs.tree import Content, FileTree, populate
from .api import at_boot, export, export_object
from .layouts import struct
from .printk import KERN_ERR, KERN_WARNING

if TYPE_CHECKING:
    from .kernel import Kernel

RESOURCE = struct("struct resource", "linux/ioport.h", "start", "end", "name", "flags", "desc", "parent",
                  "sibling", "child")
STRUCTS = (RESOURCE,)
RESOURCE_SIZE = 64              # ioport_resource and iomem_resource: room for any release's

IORESOURCE_TYPE_BITS = 0x00001F00
IORESOURCE_IO = 0x00000100
IORESOURCE_MEM = 0x00000200
IORESOURCE_SYSRAM = 0x01000000
IORESOURCE_EXT_TYPE_BITS = 0x01000000
IORESOURCE_MUXED = 0x00400000
IORESOURCE_BUSY = 0x80000000
IORESOURCE_SYSTEM_RAM = IORESOURCE_MEM | IORESOURCE_SYSRAM

IO_SPACE_LIMIT = 0xFFFF
MAX_IORES_LEVEL = 5            # r_show's indentation depth
MAX_WALK = 1 << 16
_MASK64 = (1 << 64) - 1
_NAME_MAX = 256

# arch/x86/kernel/setup.c: the legacy ports every PC reserves at boot.
STANDARD_IO = (("dma1", 0x00, 0x1F), ("pic1", 0x20, 0x21), ("timer0", 0x40, 0x43),
               ("timer1", 0x50, 0x53), ("keyboard", 0x60, 0x60), ("keyboard", 0x64, 0x64),
               ("dma page reg", 0x80, 0x8F), ("pic2", 0xA0, 0xA1), ("dma2", 0xC0, 0xDF),
               ("fpu", 0xF0, 0xFF))
# kloader's physical memory as its direct map holds it (config.py): the
# kernel image at 16 MiB and CPU 0's per-CPU area below 2 GiB; the heap
# from 4 GiB (KERNEL_HEAP_BASE - PAGE_OFFSET) to 36 GiB.
SYSTEM_RAM = ((0x00100000, 0x7FFFFFFF), (0x100000000, 0x8FFFFFFFF))

export_object("ioport_resource", "extern struct resource ioport_resource", RESOURCE_SIZE, writable=True)
export_object("iomem_resource", "extern struct resource iomem_resource", RESOURCE_SIZE, writable=True)


def format_resource(kernel: "Kernel", res: int) -> str:
    """%pR of a region: `[io  0x0300-0x031f]`, `[mem 0xfed00000-0xfed003ff]`."""
    lay = kernel.layouts[RESOURCE]
    mem = kernel.mem
    start, end, flags = mem.read_u64(res + lay.start), mem.read_u64(res + lay.end), mem.read_u64(res + lay.flags)
    if flags & IORESOURCE_IO:
        return f"[io  {start:#06x}-{end:#06x}]"
    if flags & IORESOURCE_MEM:
        return f"[mem {start:#010x}-{end:#010x}]"
    return f"[??? {start:#010x}-{end:#010x} flags {flags:#x}]"


class Resources:
    """The resource trees of one kernel, walked and changed in guest memory."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.registry = kernel.registrations.registry("resource")
        self.muxed = trio.Event()           # muxed_resource_wait
        symbols = kernel.machine.kernel_symbols()
        self.ioport = symbols["ioport_resource"]
        self.iomem = symbols["iomem_resource"]
        self._strings: dict[str, int] = {}
        self._root(self.ioport, "PCI IO", IO_SPACE_LIMIT, IORESOURCE_IO)
        self._root(self.iomem, "PCI mem", _MASK64, IORESOURCE_MEM)
        for name, start, end in STANDARD_IO:
            self._boot(self.ioport, name, start, end, IORESOURCE_IO | IORESOURCE_BUSY)
        for start, end in SYSTEM_RAM:
            self._boot(self.iomem, "System RAM", start, end, IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY)

    # -- boot ---------------------------------------------------------------

    def _string(self, text: str) -> int:
        """A kernel string for a boot entry's name (one per distinct name)."""
        ptr = self._strings.get(text)
        if ptr is None:
            ptr = self._strings[text] = self.kernel.slab.alloc(len(text) + 1, None)
            self.kernel.mem.write(ptr, text.encode() + b"\0")
        return ptr

    def _root(self, root: int, name: str, end: int, flags: int) -> None:
        lay = self.kernel.layouts[RESOURCE]
        mem = self.kernel.mem
        mem.write(root, bytes(RESOURCE_SIZE))
        mem.write_u64(root + lay.end, end)
        mem.write_u64(root + lay.name, self._string(name))
        mem.write_u64(root + lay.flags, flags)

    def _boot(self, root: int, name: str, start: int, end: int, flags: int) -> None:
        res = self.kernel.slab.alloc(RESOURCE_SIZE, None, zero=True)
        self._fill(res, start, end, self._string(name), flags, 0)
        if self.insert(root, res):
            raise AssertionError(f"boot resource {name} conflicts")

    # -- the tree (kernel/resource.c) ---------------------------------------------

    def _fill(self, res: int, start: int, end: int, name: int, flags: int, desc: int) -> None:
        lay = self.kernel.layouts[RESOURCE]
        mem = self.kernel.mem
        mem.write_u64(res + lay.start, start & _MASK64)
        mem.write_u64(res + lay.end, end & _MASK64)
        mem.write_u64(res + lay.name, name)
        mem.write_u64(res + lay.flags, flags)
        mem.write_u64(res + lay.desc, desc)

    def insert(self, root: int, new: int) -> int:
        """__request_resource: link `new` among root's children; 0, or the
        entry it conflicts with (root itself when it does not fit in root)."""
        lay = self.kernel.layouts[RESOURCE]
        mem = self.kernel.mem
        start, end = mem.read_u64(new + lay.start), mem.read_u64(new + lay.end)
        if end < start or start < mem.read_u64(root + lay.start) or end > mem.read_u64(root + lay.end):
            return root
        link = root + lay.child
        for _ in range(MAX_WALK):
            tmp = mem.read_u64(link)
            if not tmp or mem.read_u64(tmp + lay.start) > end:
                mem.write_u64(new + lay.sibling, tmp)
                mem.write_u64(link, new)
                mem.write_u64(new + lay.parent, root)
                return 0
            link = tmp + lay.sibling
            if mem.read_u64(tmp + lay.end) >= start:
                return tmp
        return root

    def unlink(self, old: int) -> int:
        """__release_resource(old, release_child=true): 0, or -EINVAL if
        `old` is not in its parent's list."""
        lay = self.kernel.layouts[RESOURCE]
        mem = self.kernel.mem
        parent = mem.read_u64(old + lay.parent)
        if not parent:
            return -errno.EINVAL
        link = parent + lay.child
        for _ in range(MAX_WALK):
            tmp = mem.read_u64(link)
            if not tmp:
                break
            if tmp == old:
                mem.write_u64(link, mem.read_u64(old + lay.sibling))
                mem.write_u64(old + lay.parent, 0)
                return 0
            link = tmp + lay.sibling
        return -errno.EINVAL

    def entries(self, root: int) -> list[tuple[int, int]]:
        """(resource, depth below root) in r_next's order: children first."""
        lay = self.kernel.layouts[RESOURCE]
        mem = self.kernel.mem
        out: list[tuple[int, int]] = []
        p, depth = mem.read_u64(root + lay.child), 0
        while p and len(out) < MAX_WALK:
            out.append((p, depth))
            child = mem.read_u64(p + lay.child)
            if child:
                p, depth = child, depth + 1
                continue
            while not mem.read_u64(p + lay.sibling) and p != root:
                p, depth = mem.read_u64(p + lay.parent), depth - 1
                if not p:
                    return out
            p = mem.read_u64(p + lay.sibling) if p != root else 0
        return out

    def find_busy(self, parent: int, start: int, end: int) -> tuple[int, int] | None:
        """__release_region's search: (the link holding it, the busy entry)
        exactly [start, end], descending through non-busy containers."""
        lay = self.kernel.layouts[RESOURCE]
        mem = self.kernel.mem
        link = parent + lay.child
        for _ in range(MAX_WALK):
            res = mem.read_u64(link)
            if not res:
                return None
            if mem.read_u64(res + lay.start) <= start and mem.read_u64(res + lay.end) >= end:
                if not mem.read_u64(res + lay.flags) & IORESOURCE_BUSY:
                    link = res + lay.child
                    continue
                if mem.read_u64(res + lay.start) != start or mem.read_u64(res + lay.end) != end:
                    return None
                return link, res
            link = res + lay.sibling
        return None

    def release(self, old: int) -> int:
        """release_resource: 0, or -EINVAL if it is in no tree."""
        ret = self.unlink(old)
        if not ret:
            self.registry.remove(old)
        return ret

    # -- registrations -----------------------------------------------------------

    def track(self, res: int, module: Any, *, ours: bool) -> None:
        """Record a module's region; `ours`: the struct is the kernel's
        allocation (freed with it) rather than the module's own."""
        lay = self.kernel.layouts[RESOURCE]
        name = _cstr(self.kernel, self.kernel.mem.read_u64(res + lay.name))
        self.registry.add(res, f'region {format_resource(self.kernel, res)} "{name}"', owner=module,
                          address=0 if ours else res, data=ours, on_leftover=self._leftover)

    def _leftover(self, entry: Any) -> None:
        res = entry.key
        self.unlink(res)
        if entry.data:
            self.kernel.slab.free(res, None)
        self.wake_muxed()

    def wake_muxed(self) -> None:
        self.muxed.set()
        self.muxed = trio.Event()


def resources(kernel: "Kernel") -> Resources:
    return kernel.subsystem(Resources)


@at_boot
def _resource_trees(kernel: "Kernel") -> None:
    if kernel.layouts.has(RESOURCE):        # else no function that reads them is emulated
        resources(kernel)


def _cstr(kernel: "Kernel", ptr: int) -> str:
    if not ptr:
        return "<BAD>"
    try:
        return kernel.mem.read_cstr(ptr, _NAME_MAX).decode("utf-8", "replace")
    except Exception:
        return "<BAD>"


def show_resources(kernel: "Kernel", root: int, privileged: bool) -> str:
    """r_show for each entry: indented two spaces a level, the range in at
    least 4 (ports) or 8 (memory) hex digits, zeros for a reader without
    CAP_SYS_ADMIN."""
    lay = kernel.layouts[RESOURCE]
    mem = kernel.mem
    table = resources(kernel)
    width = 4 if mem.read_u64(root + lay.end) < 0x10000 else 8
    lines = []
    for res, depth in table.entries(root):
        start, end = (mem.read_u64(res + lay.start), mem.read_u64(res + lay.end)) if privileged else (0, 0)
        name = _cstr(kernel, mem.read_u64(res + lay.name))
        lines.append(f"{'':{min(depth, MAX_IORES_LEVEL) * 2}}{start:0{width}x}-{end:0{width}x} : {name}\n")
    return "".join(lines)


@populate
def _proc_resources(tree: FileTree) -> None:
    kernel = tree.kernel
    if not kernel.layouts.has(RESOURCE):
        return
    for name, attr in (("ioports", "ioport"), ("iomem", "iomem")):
        def show(file: Any, attr: str = attr) -> str:
            table = resources(kernel)
            return show_resources(kernel, getattr(table, attr), file.table.privileged)
        tree.add("/proc", name, Content(show), mode=0o444)


# -- the exported functions ------------------------------------------------------

def _who(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


def request_region(ctx: Any, parent: int, start: int, n: int, name: int, flags: int) -> Any:
    """__request_region: a new busy entry [start, start+n-1] under parent,
    descending into the non-busy entry that holds it; the entry, or 0 on a
    conflict (waiting, for IORESOURCE_MUXED on both sides, until a muxed
    region is released)."""
    lay = ctx.kernel.layouts[RESOURCE]
    kernel = ctx.kernel
    table = resources(kernel)
    res = kernel.slab.alloc(RESOURCE_SIZE, None, zero=True)
    if not res:
        return 0
    flags &= 0xFFFFFFFF

    def attempt() -> int | None:
        """The entry, 0 for a hard conflict, None to wait for a muxed one."""
        mem = kernel.mem
        node = parent
        for _ in range(MAX_WALK):
            kind = mem.read_u64(node + lay.flags) & (IORESOURCE_TYPE_BITS | IORESOURCE_EXT_TYPE_BITS)
            table._fill(res, start, start + n - 1, name, kind | IORESOURCE_BUSY | flags,
                        mem.read_u64(node + lay.desc))
            conflict = table.insert(node, res)
            if not conflict:
                table.track(res, ctx.module, ours=True)
                return res
            conflict_flags = mem.read_u64(conflict + lay.flags)
            if conflict != node and not conflict_flags & IORESOURCE_BUSY:
                node = conflict
                continue
            if conflict_flags & flags & IORESOURCE_MUXED:
                return None
            break
        kernel.slab.free(res, None)
        return 0

    got = attempt()
    if got is not None:
        return got

    async def wait_muxed() -> int:
        while True:
            await table.muxed.wait()
            got = attempt()
            if got is not None:
                return got
    return wait_muxed()


def release_region(kernel: "Kernel", parent: int, start: int, n: int, who: str | None) -> bool:
    """__release_region: the busy entry exactly [start, start+n-1] goes;
    none is Linux's warning.  Whether there was one."""
    lay = kernel.layouts[RESOURCE]
    table = resources(kernel)
    end = (start + n - 1) & _MASK64
    found = table.find_busy(parent, start, end)
    if found is None:
        kernel.log.emit(KERN_WARNING, f"Trying to free nonexistent resource <{start:016x}-{end:016x}>", who)
        return False
    link, res = found
    mem = kernel.mem
    mem.write_u64(link, mem.read_u64(res + lay.sibling))
    mem.write_u64(res + lay.parent, 0)
    entry = table.registry.remove(res)
    if mem.read_u64(res + lay.flags) & IORESOURCE_MUXED:
        table.wake_muxed()
    if entry is None or entry.data:
        kernel.slab.free(res, None)
    return True


@export("__request_region", "struct resource *__request_region(struct resource *parent, "
        "resource_size_t start, resource_size_t n, const char *name, int flags)", nargs=5)
def __request_region(ctx: Any, parent: int, start: int, n: int, name: int, flags: int) -> Any:
    return request_region(ctx, parent, start, n, name, flags)


@export("__release_region", "void __release_region(struct resource *parent, resource_size_t start, "
        "resource_size_t n)", nargs=3)
def __release_region(ctx: Any, parent: int, start: int, n: int) -> None:
    release_region(ctx.kernel, parent, start, n, _who(ctx))


@export("request_resource", "int request_resource(struct resource *root, struct resource *new)", nargs=2)
def request_resource(ctx: Any, root: int, new: int) -> int:
    table = resources(ctx.kernel)
    if table.insert(root, new):
        return -errno.EBUSY
    table.track(new, ctx.module, ours=False)
    return 0


@export("release_resource", "int release_resource(struct resource *old)", nargs=1)
def release_resource(ctx: Any, old: int) -> int:
    return resources(ctx.kernel).release(old)


# -- managed regions (kernel/resource.c's devm_ half) -------------------------------

def devm_region(ctx: Any, dev: int, parent: int, start: int, n: int, name: int) -> Any:
    """__devm_request_region: the region, released when the device unbinds."""
    from ..drivers.base.devres import Devres, devres
    kernel, who = ctx.kernel, _who(ctx)

    def managed(res: int) -> int:
        if res:
            devres(ctx.kernel).add(dev, Devres("region", (parent, start, n),
                                               free=lambda: release_region(kernel, parent, start, n, who)))
        return res
    return then(request_region(ctx, parent, start, n, name, 0), managed)


def then(got: Any, fn: Any) -> Any:
    """fn(result) of a request that may have to wait (a muxed region):
    at once for an int, else once the coroutine has its result."""
    if isinstance(got, int):
        return fn(got)

    async def waited() -> Any:
        return fn(await got)
    return waited()


@export("__devm_request_region", "struct resource *__devm_request_region(struct device *dev, "
        "struct resource *parent, resource_size_t start, resource_size_t n, const char *name)", nargs=5)
def __devm_request_region(ctx: Any, dev: int, parent: int, start: int, n: int, name: int) -> Any:
    return devm_region(ctx, dev, parent, start, n, name)


@export("__devm_release_region", "void __devm_release_region(struct device *dev, struct resource *parent, "
        "resource_size_t start, resource_size_t n)", nargs=4)
def __devm_release_region(ctx: Any, dev: int, parent: int, start: int, n: int) -> None:
    """__release_region, then WARN_ON if the device did not manage the region."""
    from ..drivers.base.devres import take
    release_region(ctx.kernel, parent, start, n, _who(ctx))
    take(ctx, dev, "region", (parent, start, n), "kernel/resource.c:1550", "__devm_release_region")


@export("devm_request_resource", "int devm_request_resource(struct device *dev, struct resource *root, "
        "struct resource *new)", nargs=3)
def devm_request_resource(ctx: Any, dev: int, root: int, new: int) -> int:
    lay = ctx.kernel.layouts[RESOURCE]
    from ..drivers.base.core import dev_name, driver_string
    from ..drivers.base.devres import Devres, devres
    table = resources(ctx.kernel)
    conflict = table.insert(root, new)
    if conflict:
        kernel = ctx.kernel
        kernel.log.emit(KERN_ERR, f"{driver_string(ctx, dev)} {dev_name(ctx, dev)}: resource collision: "
                                  f"{format_resource(kernel, new)} "
                                  f"conflicts with {_cstr(kernel, kernel.mem.read_u64(conflict + lay.name))} "
                                  f"{format_resource(kernel, conflict)}", _who(ctx))
        return -errno.EBUSY
    table.track(new, ctx.module, ours=False)
    devres(ctx.kernel).add(dev, Devres("resource", (new,), free=lambda: table.release(new)))
    return 0


@export("devm_release_resource", "void devm_release_resource(struct device *dev, struct resource *new)",
        nargs=2)
def devm_release_resource(ctx: Any, dev: int, new: int) -> None:
    from ..drivers.base.devres import take
    if take(ctx, dev, "resource", (new,), "kernel/resource.c:1481", "devm_release_resource") is not None:
        resources(ctx.kernel).release(new)
