"""kobjects and ksets (Linux's lib/kobject.c, lib/kobject_uevent.c): the
reference-counted objects behind every /sys directory.

A kobject lives in module (or kernel) memory with Linux's layout: `name`,
`parent`, `kset`, `ktype`, `kref` and the state bits are real, so a module
that reads them sees what Linux would show.  `kobject_add` gives it a
directory in /sys (kloaderd/fs/tree.py): under its parent's, else under its
kset's, else at the top; `kobject_del` takes the directory away.  The last
`kobject_put` runs `kobject_cleanup`: the directory goes if it is still
there, then `ktype->release(kobj)` runs — module code, called as Linux
calls it, on the putting task's behalf (kloaderd/kernel/callback.py) — and
the name is freed.  The kernel's own ktypes (`kobject_create_and_add`'s and
`kset_create_and_add`'s) free the object.

`kernel_kobj` (/sys/kernel), `mm_kobj` (/sys/kernel/mm), `fs_kobj` (/sys/fs)
and `firmware_kobj` (/sys/firmware) are kobjects of the kernel, and the
exported pointers to them are kernel data, under a profile too.
`kobject_uevent` is recorded (the last `UEVENT_HISTORY` events, with
`/sys/kernel/uevent_seqnum` counting them) — no user space listens.

A kobject a module added and did not delete when it is freed is a leaked
registration: reported, its directory removed.  Linux's messages: the
"tried to init an initialized object", "must have a ktype", "tried to add
an uninitialized object" and "is not initialized, yet kobject_get/put()"
reports; "kobject_add_internal failed for NAME with -EEXIST, don't try to
register things with the same name in the same directory." after sysfs's
"cannot create duplicate filename '/PATH'".

Layouts: each kernel's own (kloaderd/kernel/layouts.py; Debian's 6.1 and
6.12 have the same kobject, kobj_type and kset); the state bits follow
`kref`.  Under a kernel whose layouts are unknown the kernel's directories
are plain directories and these functions are not emulated.
"""

from __future__ import annotations

import errno
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..fs.tree import Content, Directory, file_tree
from ..kernel.api import at_boot, export, export_object
from ..kernel.api.printk import format_guest
from ..kernel.callback import waiting
from ..kernel.layouts import struct
from ..kernel.panic import warn
from ..kernel.printk import KERN_ERR, KERN_WARNING

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel
    from ..kernel.module import Module

KOBJECT = struct("struct kobject", "linux/kobject.h", "name", "entry", "parent", "kset", "ktype", "sd",
                 "kref")
KTYPE = struct("struct kobj_type", "linux/kobject.h", "release", "sysfs_ops", "default_groups")
KSET = struct("struct kset", "linux/kobject.h", "list", "list_lock", "kobj", "uevent_ops")
STRUCTS = (KOBJECT, KTYPE, KSET)   # what these functions read at the kernel's offsets
KREF_SIZE = 4                      # struct kref is a refcount_t: the state bits follow it
STATE_INITIALIZED, STATE_IN_SYSFS, STATE_ADD_UEVENT_SENT, STATE_REMOVE_UEVENT_SENT = 1, 2, 4, 8
SYSFS_OPS_SIZE = 16

KOBJ_ACTIONS = ("add", "remove", "change", "move", "online", "offline", "bind", "unbind")
UEVENT_HISTORY = 256
NAME_MAX = 1024                    # longest kobject name read or formatted

export_object("kernel_kobj", "extern struct kobject *kernel_kobj", 8, gpl=True, writable=True)
export_object("mm_kobj", "extern struct kobject *mm_kobj", 8, gpl=True, writable=True)
export_object("fs_kobj", "extern struct kobject *fs_kobj", 8, gpl=True, writable=True)
export_object("firmware_kobj", "extern struct kobject *firmware_kobj", 8, gpl=True, writable=True)
# kobj_attribute's show/store dispatch: its address is what a ktype's
# sysfs_ops names; the kernel calls the attribute's own show/store.
export_object("kobj_sysfs_ops", "extern const struct sysfs_ops kobj_sysfs_ops", SYSFS_OPS_SIZE, gpl=True)


@dataclass(eq=False)
class KObj:
    """What the kernel knows of a kobject besides its bytes."""
    address: int
    dir: Directory | None = None       # its /sys directory while in sysfs
    adder: "Module | None" = None      # the module whose code added it
    key: Any = None                    # its registration while in sysfs


@dataclass(frozen=True)
class Uevent:
    seqnum: int
    action: str
    devpath: str


@dataclass(eq=False)
class KObjects:
    kernel: "Kernel"
    known: dict[int, KObj] = field(default_factory=dict)
    uevents: deque[Uevent] = field(default_factory=lambda: deque(maxlen=UEVENT_HISTORY))
    seqnum: int = 0
    dynamic_ktype: int = 0             # kobject_create_and_add's: release frees it
    kset_ktype: int = 0                # kset_create_and_add's
    kernel_ktype: int = 0              # the kernel's own directories: never released
    _names: set[int] = field(default_factory=set)      # names the kernel allocated
    # The kernel's own ktypes: their sysfs_ops call the attribute's own
    # show/store with the kobject (kobj_attribute, device_attribute: the
    # device's kobject is at its start), and their release is kloader's:
    # fn(kobj) does what the kernel does and names module code to call
    # (function, argument), or None.
    kernel_ktypes: dict[int, Callable[[int], tuple[int, int] | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        layouts = self.kernel.layouts
        self.k, self.kt, self.ks = layouts[KOBJECT], layouts[KTYPE], layouts[KSET]
        self.state_offset = self.k.kref + KREF_SIZE     # state_initialized:1 and the rest
        self.registry = self.kernel.registrations.registry("kobject")
        self.files = self.kernel.registrations.registry("sysfs")
        self.dynamic_ktype = self.new_ktype(self.freeing(0))          # dynamic_kobj_release
        self.kset_ktype = self.new_ktype(self.freeing(self.ks.kobj))     # kset_release
        self.kernel_ktype = self.new_ktype(lambda kobj: None)         # never released

    def freeing(self, offset: int) -> Callable[[int], None]:
        """A release that kfree()s the object holding the kobject at `offset`."""
        def release(kobj: int) -> None:
            self.kernel.slab.free(kobj - offset, None)
        return release

    def new_ktype(self, release: Callable[[int], tuple[int, int] | None]) -> int:
        """A kobj_type of the kernel's, in kernel memory, released by `release`."""
        ktype = self.kernel.slab.alloc(self.kt.size, None, zero=True)
        self.kernel.mem.write_u64(ktype + self.kt.sysfs_ops,
                                  self.kernel.machine.kernel_symbols().get("kobj_sysfs_ops", 0))
        self.kernel_ktypes[ktype] = release
        return ktype

    # -- bytes ---------------------------------------------------------------

    def name(self, kobj: int) -> str:
        ptr = self.kernel.mem.read_u64(kobj + self.k.name)
        return self.kernel.mem.read_cstr(ptr, NAME_MAX).decode("utf-8", "replace") if ptr else ""

    def state(self, kobj: int) -> int:
        return self.kernel.mem.read_u8(kobj + self.state_offset)

    def set_state(self, kobj: int, set_: int = 0, clear: int = 0) -> None:
        mem = self.kernel.mem
        mem.write_u8(kobj + self.state_offset, (mem.read_u8(kobj + self.state_offset) | set_) & ~clear & 0xFF)

    def set_name(self, kobj: int, text: bytes, owner: str | None) -> int:
        """kobject_set_name_vargs: a kernel copy, '/' made '!' as sysfs needs."""
        slab, mem = self.kernel.slab, self.kernel.mem
        copy = slab.alloc(len(text) + 1, owner)
        if not copy:
            return -errno.ENOMEM
        mem.write(copy, text.replace(b"/", b"!") + b"\0")
        old = mem.read_u64(kobj + self.k.name)
        mem.write_u64(kobj + self.k.name, copy)
        if old and old in self._names:
            slab.free(old, None)
            self._names.discard(old)
        self._names.add(copy)
        return 0

    # -- lifecycle ----------------------------------------------------------------

    def init(self, kobj: int, ktype: int) -> None:
        """kobject_init_internal, with its ktype."""
        mem = self.kernel.mem
        mem.write_u32(kobj + self.k.kref, 1)
        mem.write_u64(kobj + self.k.entry, kobj + self.k.entry)
        mem.write_u64(kobj + self.k.entry + 8, kobj + self.k.entry)
        self.set_state(kobj, STATE_INITIALIZED,
                       STATE_IN_SYSFS | STATE_ADD_UEVENT_SENT | STATE_REMOVE_UEVENT_SENT)
        mem.write_u64(kobj + self.k.ktype, ktype)
        self.known.setdefault(kobj, KObj(kobj))

    def get(self, kobj: int) -> None:
        mem = self.kernel.mem
        mem.write_u32(kobj + self.k.kref, (mem.read_u32(kobj + self.k.kref) + 1) & 0xFFFFFFFF)

    def add_internal(self, kobj: int, adder: "Module | None") -> int:
        """kobject_add_internal: its directory under the parent (or the kset's
        kobject, or /sys), holding a reference on that parent."""
        mem, log = self.kernel.mem, self.kernel.log
        name = self.name(kobj)
        who = getattr(adder, "name", None)
        if not name:
            return -errno.EINVAL
        parent = mem.read_u64(kobj + self.k.parent)
        kset = mem.read_u64(kobj + self.k.kset)
        if not parent and kset:
            parent = kset + self.ks.kobj
            mem.write_u64(kobj + self.k.parent, parent)
        if parent:
            self.get(parent)
        where = self.directory(parent) if parent else file_tree(self.kernel).lookup("/sys")
        record = self.known.setdefault(kobj, KObj(kobj))
        try:
            if not isinstance(where, Directory):
                raise KeyError
            record.dir = file_tree(self.kernel).mkdir(where, name, mode=0o755, owner=adder, data=kobj)
        except Exception as exc:
            if parent:
                self.drop(parent)
            if getattr(exc, "errno", None) == errno.EEXIST:
                log.emit(KERN_WARNING, f"sysfs: cannot create duplicate filename "
                                       f"'{self.sysfs_path(where, name)}'", who)
                log.emit(KERN_ERR, f"kobject_add_internal failed for {name} with -EEXIST, don't try "
                                   "to register things with the same name in the same directory.", who)
                return -errno.EEXIST
            log.emit(KERN_ERR, f"kobject_add_internal failed for {name} (error: -2 parent: "
                               f"{self.name(parent) if parent else '(null)'})", who)
            return -errno.ENOENT
        self.set_state(kobj, STATE_IN_SYSFS)
        record.adder = adder
        if adder is not None:
            record.key = kobj
            self.registry.add(kobj, f"kobject {record.dir.path}", owner=adder, address=kobj,
                              data=record, on_leftover=self._leftover)
        return 0

    def directory(self, kobj: int) -> Directory | None:
        record = self.known.get(kobj)
        return record.dir if record is not None else None

    @staticmethod
    def sysfs_path(where: Any, name: str) -> str:
        base = where.path[len("/sys"):] if isinstance(where, Directory) else ""
        return f"{base}/{name}"

    # -- the files in a kobject's directory (fs/sysfs.py) ------------------------------

    def track_file(self, kobj: int, node: Any, module: "Module | None", attr: int,
                   methods: tuple[int, int]) -> None:
        self.files.add(node, f"sysfs file {node.path}", owner=module, address=attr,
                       points_to=methods, data=node, on_leftover=self._file_left)

    def track_dir(self, node: Any, module: "Module | None", address: int, kind: str) -> None:
        """A directory sysfs made for a module (a named group, a mount point)."""
        self.files.add(node, f"sysfs {kind} {node.path}", owner=module, address=address, data=node,
                       on_leftover=self._file_left)

    def untrack(self, node: Any) -> None:
        """`node` (and what is under it) is being removed: no longer a leftover."""
        for n in file_tree(self.kernel).walk(node):
            self.files.remove(n)

    def _file_left(self, entry: Any) -> None:
        file_tree(self.kernel).remove_now(entry.data)

    def delete(self, kobj: int, *, wait: bool = True) -> Awaitable[None] | None:
        """__kobject_del: the directory goes with its files, and the
        reference on the parent.  None when done; an awaitable when a read
        or write is running in one of its files (kernfs_remove waits for it)
        — unless `wait` is False: a leftover, whose code is gone, goes now."""
        record = self.known.get(kobj)
        if record is None or record.dir is None:
            return None
        if record.key is not None:
            self.registry.remove(record.key)
            record.key = None
        directory, record.dir = record.dir, None
        self.untrack(directory)
        self.set_state(kobj, 0, STATE_IN_SYSFS)
        parent = self.kernel.mem.read_u64(kobj + self.k.parent)
        tree = file_tree(self.kernel)
        if not wait or not any(node.active for node in tree.walk(directory)):
            tree.remove_now(directory)
            if parent:
                self.drop(parent)
            return None

        async def draining() -> None:
            await tree.remove(directory)
            if parent:
                await self.put(parent)
        return draining()

    def drop(self, kobj: int) -> Awaitable[None] | None:
        """kref_put: at zero, kobject_cleanup.  None when done, else an
        awaitable that finishes it (a release in module code, a drain)."""
        mem = self.kernel.mem
        count = (mem.read_u32(kobj + self.k.kref) - 1) & 0xFFFFFFFF
        mem.write_u32(kobj + self.k.kref, count)
        return None if count else self.cleanup(kobj)

    async def put(self, kobj: int) -> None:
        pending = self.drop(kobj)
        if pending is not None:
            await pending

    def cleanup(self, kobj: int) -> Awaitable[None] | None:
        """kobject_cleanup: the remove uevent and the directory if still
        there, then `ktype->release(kobj)`, then the name."""
        mem = self.kernel.mem
        if self.state(kobj) & STATE_ADD_UEVENT_SENT and not self.state(kobj) & STATE_REMOVE_UEVENT_SENT:
            self.uevent(kobj, "remove")
        removing = self.delete(kobj)
        ktype = mem.read_u64(kobj + self.k.ktype)
        name_ptr = mem.read_u64(kobj + self.k.name)
        self.known.pop(kobj, None)
        own = self.kernel_ktypes.get(ktype)
        release = mem.read_u64(ktype + self.kt.release) if ktype and own is None else 0
        # Linux runs release on the putting task's stack: same name here.
        comm = getattr(self.kernel.machine.current, "comm", "kworker/0:1")

        def release_call() -> tuple[int, int] | None:
            return own(kobj) if own is not None else (release, kobj) if release else None

        def free_name() -> None:
            if name_ptr in self._names:
                self._names.discard(name_ptr)
                self.kernel.slab.free(name_ptr, None)
        call = release_call() if removing is None else None
        if removing is None and call is None:
            free_name()                 # nothing to wait for: done now, even in atomic context
            return None

        async def releasing() -> None:
            nonlocal call
            if removing is not None:
                await removing
                call = release_call()
            if call is not None:
                await self.kernel.sanitizer.call_pointer(*call, via="kobject_cleanup", comm=comm,
                                                         check=False)
            free_name()
        return releasing()

    def uevent(self, kobj: int, action: str) -> int:
        record = self.known.get(kobj)
        if record is None or record.dir is None:
            return -errno.EINVAL                 # kobject_uevent_env: no path, no event
        self.announce(record.dir.path[len("/sys"):], action)
        self.set_state(kobj, STATE_ADD_UEVENT_SENT if action == "add" else
                       STATE_REMOVE_UEVENT_SENT if action == "remove" else 0)
        return 0

    def announce(self, devpath: str, action: str) -> None:
        """A uevent for `devpath` (under /sys), numbered as every other: the
        kernel's own objects without a kobject of kloader's (a disk) send theirs so."""
        self.seqnum += 1
        self.uevents.append(Uevent(self.seqnum, action, devpath))

    def _leftover(self, entry: Any) -> None:
        record: KObj = entry.data
        if record.dir is not None:
            file_tree(self.kernel).remove_now(record.dir)
            record.dir = None
        self.known.pop(record.address, None)

    # -- the kernel's own -----------------------------------------------------------

    def kernel_kobject(self, name: str, parent: int) -> int:
        """A directory of the kernel's (/sys/kernel, ...): a kobject in kernel memory."""
        kobj = self.kernel.slab.alloc(self.k.size, None, zero=True)
        self.init(kobj, self.kernel_ktype)
        self.set_name(kobj, name.encode(), None)
        self.kernel.mem.write_u64(kobj + self.k.parent, parent)
        if parent:
            self.get(parent)                     # as kobject_add_internal: dropped by its delete
        record = self.known[kobj]
        path = (self.directory(parent).path if parent else "/sys") + "/" + name
        tree = file_tree(self.kernel)
        try:
            record.dir = tree.lookup(path)       # made by the tree itself (/sys/kernel)
        except Exception:
            record.dir = tree.mkdir(path, mode=0o755, data=kobj)
        self.set_state(kobj, STATE_IN_SYSFS)
        return kobj


def kobjects(kernel: "Kernel") -> KObjects:
    return kernel.subsystem(KObjects)


@at_boot
def _kernel_directories(kernel: "Kernel") -> None:
    """The kobjects of /sys/kernel, /sys/kernel/mm, /sys/fs and /sys/firmware,
    and the exported pointers to them."""
    if not all(kernel.layouts.has(s) for s in STRUCTS):
        return                          # no kobjects: the tree's own directories stand
    objs = kobjects(kernel)
    symbols = kernel.machine.kernel_symbols()
    made: dict[str, int] = {}
    for name, path, parent in (("kernel_kobj", "kernel", None), ("mm_kobj", "mm", "kernel_kobj"),
                               ("fs_kobj", "fs", None), ("firmware_kobj", "firmware", None)):
        made[name] = objs.kernel_kobject(path, made[parent] if parent else 0)
        if name in symbols:
            kernel.mem.write_u64(symbols[name], made[name])
    tree = file_tree(kernel)
    tree.add(objs.directory(made["kernel_kobj"]), "uevent_seqnum",
             Content(lambda file: f"{objs.seqnum}\n"), mode=0o444)


# -- the exported functions ---------------------------------------------------------

def _who(ctx: Any) -> str | None:
    return getattr(ctx.module, "name", None)


def _report(ctx: Any, text: str) -> None:
    """pr_err + dump_stack(), as lib/kobject.c reports a misuse."""
    ctx.kernel.log.emit(KERN_ERR, text, _who(ctx))
    ctx.kernel.log.emit(KERN_WARNING, f"CPU: 0 PID: {ctx.task.pid} Comm: {ctx.task.comm} "
                                      f"{ctx.kernel.taint_string()}", _who(ctx))
    ctx.kernel.log.emit(KERN_WARNING, f"Call Trace: {ctx.machine.symbol_name(ctx.caller)}", _who(ctx))


def init_kobject(ctx: Any, kobj: int, ktype: int) -> None:
    objs = kobjects(ctx.kernel)
    if not kobj:
        _report(ctx, "kobject (0000000000000000): invalid kobject pointer!")
        return
    if not ktype:
        _report(ctx, f"kobject ({kobj:016x}): must have a ktype to be initialized properly!")
        return
    if objs.state(kobj) & STATE_INITIALIZED:
        _report(ctx, f"kobject ({kobj:016x}): tried to init an initialized object, something is "
                     "seriously wrong.")
    objs.init(kobj, ktype)


def add_kobject(ctx: Any, kobj: int, parent: int, fmt: int) -> int:
    objs = kobjects(ctx.kernel)
    if not kobj:
        return -errno.EINVAL
    if not objs.state(kobj) & STATE_INITIALIZED:
        _report(ctx, f"kobject '{objs.name(kobj)}' ({kobj:016x}): tried to add an uninitialized "
                     "object, something is seriously wrong.")
        return -errno.EINVAL
    text = format_guest(ctx, fmt, ctx.va(), room=NAME_MAX)[0] if fmt else b""
    if fmt:
        ret = objs.set_name(kobj, text, None)
        if ret:
            return ret
    ctx.mem.write_u64(kobj + objs.k.parent, parent)
    return objs.add_internal(kobj, ctx.module)


def put_kobject(ctx: Any, kobj: int) -> Any:
    """kobject_put: at the last reference, kobject_cleanup; a release in
    module code runs before this returns, as Linux runs it on the caller's stack."""
    if not kobj:
        return 0
    objs = kobjects(ctx.kernel)
    if not objs.state(kobj) & STATE_INITIALIZED:
        warn(ctx, f"kobject: '{objs.name(kobj)}' ({kobj:016x}): is not initialized, yet kobject_put() "
                  "is being called.", "lib/kobject.c:731", "kobject_put")
    return waiting(objs.drop(kobj))


@export("kobject_init", "void kobject_init(struct kobject *kobj, const struct kobj_type *ktype)", nargs=2)
def kobject_init(ctx: Any, kobj: int, ktype: int) -> None:
    init_kobject(ctx, kobj, ktype)


@export("kobject_add", "int kobject_add(struct kobject *kobj, struct kobject *parent, const char *fmt, ...)",
        nargs=3, variadic=True)
def kobject_add(ctx: Any, kobj: int, parent: int, fmt: int) -> int:
    return add_kobject(ctx, kobj, parent, fmt)


@export("kobject_init_and_add", "int kobject_init_and_add(struct kobject *kobj, const struct kobj_type "
        "*ktype, struct kobject *parent, const char *fmt, ...)", nargs=4, variadic=True, gpl=True)
def kobject_init_and_add(ctx: Any, kobj: int, ktype: int, parent: int, fmt: int) -> int:
    init_kobject(ctx, kobj, ktype)
    return add_kobject(ctx, kobj, parent, fmt)


@export("kobject_create_and_add", "struct kobject *kobject_create_and_add(const char *name, "
        "struct kobject *parent)", nargs=2, gpl=True)
def kobject_create_and_add(ctx: Any, name: int, parent: int) -> int:
    objs = kobjects(ctx.kernel)
    kobj = ctx.kernel.slab.alloc(objs.k.size, _who(ctx), zero=True)
    if not kobj:
        return 0
    objs.init(kobj, objs.dynamic_ktype)
    text = ctx.mem.read_cstr(name, NAME_MAX) if name else b""
    ret = objs.set_name(kobj, text, None) if name else -errno.EINVAL
    ctx.mem.write_u64(kobj + objs.k.parent, parent)
    if ret == 0:
        ret = objs.add_internal(kobj, ctx.module)
    if ret:
        ctx.kernel.log.emit(KERN_WARNING, f"kobject_create_and_add: kobject_add error: {ret}", _who(ctx))
        objs.drop(kobj)
        return 0
    return kobj


@export("kobject_set_name", "int kobject_set_name(struct kobject *kobj, const char *fmt, ...)",
        nargs=2, variadic=True)
def kobject_set_name(ctx: Any, kobj: int, fmt: int) -> int:
    objs = kobjects(ctx.kernel)
    if not fmt:
        return 0
    return objs.set_name(kobj, format_guest(ctx, fmt, ctx.va(), room=NAME_MAX)[0], None)


@export("kobject_get", "struct kobject *kobject_get(struct kobject *kobj)", nargs=1)
def kobject_get(ctx: Any, kobj: int) -> int:
    if kobj:
        objs = kobjects(ctx.kernel)
        if not objs.state(kobj) & STATE_INITIALIZED:
            warn(ctx, f"kobject: '{objs.name(kobj)}' ({kobj:016x}): is not initialized, yet "
                      "kobject_get() is being called.", "lib/kobject.c:631", "kobject_get")
        objs.get(kobj)
    return kobj


@export("kobject_put", "void kobject_put(struct kobject *kobj)", nargs=1)
def kobject_put(ctx: Any, kobj: int) -> Any:
    return put_kobject(ctx, kobj)


@export("kobject_del", "void kobject_del(struct kobject *kobj)", nargs=1)
def kobject_del(ctx: Any, kobj: int) -> Any:
    return waiting(kobjects(ctx.kernel).delete(kobj)) if kobj else 0


@export("kobject_get_path", "char *kobject_get_path(const struct kobject *kobj, gfp_t gfp_mask)",
        nargs=2, gpl=True)
def kobject_get_path(ctx: Any, kobj: int, gfp: int) -> int:
    directory = kobjects(ctx.kernel).directory(kobj)
    if directory is None:
        return 0
    text = directory.path[len("/sys"):].encode()
    buf = ctx.kernel.slab.alloc(len(text) + 1, _who(ctx))
    if buf:
        ctx.mem.write(buf, text + b"\0")
    return buf


@export("kobject_uevent", "int kobject_uevent(struct kobject *kobj, enum kobject_action action)",
        nargs=2, gpl=True)
def kobject_uevent(ctx: Any, kobj: int, action: int) -> int:
    action &= 0xFFFFFFFF
    if action >= len(KOBJ_ACTIONS):
        return -errno.EINVAL
    return kobjects(ctx.kernel).uevent(kobj, KOBJ_ACTIONS[action])


@export("kobject_uevent_env", "int kobject_uevent_env(struct kobject *kobj, enum kobject_action action, "
        "char *envp[])", nargs=3, gpl=True)
def kobject_uevent_env(ctx: Any, kobj: int, action: int, envp: int) -> int:
    return kobject_uevent(ctx, kobj, action)


# -- ksets --------------------------------------------------------------------------

def _register_kset(ctx: Any, kset: int) -> int:
    objs = kobjects(ctx.kernel)
    kobj = kset + objs.ks.kobj
    ctx.mem.write_u64(kset + objs.ks.list, kset + objs.ks.list)
    ctx.mem.write_u64(kset + objs.ks.list + 8, kset + objs.ks.list)
    ktype = ctx.mem.read_u64(kobj + objs.k.ktype)
    if not ktype:
        _report(ctx, f"kobject ({kobj:016x}): must have a ktype to be initialized properly!")
        return -errno.EINVAL
    if not objs.state(kobj) & STATE_INITIALIZED:
        objs.init(kobj, ktype)
    ret = objs.add_internal(kobj, ctx.module)
    if ret == 0:
        objs.uevent(kobj, "add")
    return ret


@export("kset_register", "int kset_register(struct kset *kset)", nargs=1)
def kset_register(ctx: Any, kset: int) -> int:
    return _register_kset(ctx, kset) if kset else -errno.EINVAL


@export("kset_unregister", "void kset_unregister(struct kset *kset)", nargs=1)
def kset_unregister(ctx: Any, kset: int) -> Any:
    if not kset:
        return 0
    objs = kobjects(ctx.kernel)
    removing = objs.delete(kset + objs.ks.kobj)

    async def unregistering() -> int:
        if removing is not None:
            await removing
        await objs.put(kset + objs.ks.kobj)
        return 0
    return unregistering() if removing is not None else put_kobject(ctx, kset + objs.ks.kobj)


@export("kset_create_and_add", "struct kset *kset_create_and_add(const char *name, "
        "const struct kset_uevent_ops *uevent_ops, struct kobject *parent_kobj)", nargs=3, gpl=True)
def kset_create_and_add(ctx: Any, name: int, uevent_ops: int, parent: int) -> int:
    objs = kobjects(ctx.kernel)
    kset = ctx.kernel.slab.alloc(objs.ks.size, _who(ctx), zero=True)
    if not kset:
        return 0
    kobj = kset + objs.ks.kobj
    if objs.set_name(kobj, ctx.mem.read_cstr(name, NAME_MAX) if name else b"", None):
        ctx.kernel.slab.free(kset, None)
        return 0
    ctx.mem.write_u64(kset + objs.ks.uevent_ops, uevent_ops)
    ctx.mem.write_u64(kobj + objs.k.parent, parent)
    ctx.mem.write_u64(kobj + objs.k.ktype, objs.kset_ktype)
    objs.init(kobj, objs.kset_ktype)
    if _register_kset(ctx, kset):
        objs.drop(kobj)
        return 0
    return kset
