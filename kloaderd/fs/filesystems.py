"""Filesystem types: `register_filesystem`, `unregister_filesystem`,
`get_fs_type`, and the references a type gives on its module (Linux's
fs/filesystems.c).

Linux keeps the registered types on `file_systems`, a list linked through
each `struct file_system_type`'s `next`; kloader links the same list in guest
memory (so `->next` reads as Linux's) and records each type as a
registration (kloaderd/kernel/registry.py), keyed by its name: a module
freed with its type registered is reported and the type unlinked.

References, as Linux takes them:

* `get_fs_type(name)` — what mount(2) does first — looks the name up (asking
  modprobe for `fs-NAME` when it is unknown, as Linux's request_module does)
  and takes `try_module_get` on `->owner`: a type whose module is going is
  "unknown" (ENODEV), as is a name nobody registered.
* `get_filesystem` is `__module_get`: unconditional, taken by each
  `fs_context` and each superblock, so a mounted filesystem pins its module
  until its last superblock is killed — the seed's `kern_mount` that makes a
  module unremovable.
* `unregister_filesystem` does not look at mounts (Linux does not either):
  the mounts keep the module pinned, so its exit cannot run before they go.

`struct file_system_type` is read at the running kernel's offsets
(kloaderd/kernel/layouts.py); `->mount`, the legacy way to make a
superblock, is optional: a release without it has only `->init_fs_context`.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..kernel.api import export
from ..kernel.layouts import struct
from ..kernel.module import Module, RefOwner
from ..kernel.oops import KernelBug

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

FST = struct("struct file_system_type", "linux/fs.h", "name", "fs_flags", "init_fs_context",
             "kill_sb", "owner", "next", optional=("mount",))
STRUCTS = (FST,)            # what these functions read at the kernel's offsets
# fs_flags
FS_REQUIRES_DEV = 1
FS_BINARY_MOUNTDATA = 2
FS_HAS_SUBTYPE = 4
FS_USERNS_MOUNT = 8

_NAME_MAX = 256


@dataclass(eq=False)
class FileSystemType:
    """A registered `struct file_system_type`."""
    address: int
    name: str
    flags: int
    module: Module | None         # ->owner (None: the core kernel)


class FileSystems:
    """`file_systems`: the registered types, in registration order."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.registry = kernel.registrations.registry("filesystem")

    def types(self) -> list[FileSystemType]:
        return [e.data for e in self.registry.entries()]

    def find(self, name: str) -> FileSystemType | None:
        entry = self.registry.find(name)
        return entry.data if entry is not None else None

    def by_address(self, address: int) -> FileSystemType | None:
        return next((t for t in self.types() if t.address == address), None)

    def _relink(self, before: FileSystemType | None, after: FileSystemType | None) -> None:
        """`before->next = after` (the list head when `before` is None)."""
        if before is not None:
            self.kernel.mem.write_u64(before.address + self.kernel.layouts[FST].next,
                                      after.address if after else 0)

    def register(self, fst: FileSystemType) -> None:
        types = self.types()
        self.registry.add(fst.name, f'filesystem type "{fst.name}"',
                          owner=fst.module or self.kernel.registrations.module_at(fst.address),
                          address=fst.address, data=fst, on_leftover=self._left)
        self._relink(types[-1] if types else None, fst)

    def unregister(self, fst: FileSystemType) -> None:
        types = self.types()
        at = types.index(fst)
        self.registry.remove(fst.name)
        self._relink(types[at - 1] if at else None, types[at + 1] if at + 1 < len(types) else None)
        self.kernel.mem.write_u64(fst.address + self.kernel.layouts[FST].next, 0)

    def _left(self, entry: Any) -> None:
        """A type freed with its module (the registry already dropped it):
        relink the list around it without touching its freed memory."""
        rest = self.types()
        for before, after in zip(rest, [*rest[1:], None]):
            self._relink(before, after)


def filesystems(kernel: "Kernel") -> FileSystems:
    return kernel.subsystem(FileSystems)


def owner_module(kernel: "Kernel", fst_address: int) -> Module | None:
    return kernel.module_by_struct(kernel.mem.read_u64(fst_address + kernel.layouts[FST].owner))


def get_filesystem(kernel: "Kernel", fst: FileSystemType, owner: RefOwner) -> None:
    """__module_get(fs->owner): unconditional, for holders of a type already found."""
    if fst.module is not None:
        kernel.module_get(fst.module, owner, unconditional=True)


def put_filesystem(kernel: "Kernel", fst: FileSystemType, owner: RefOwner) -> None:
    """module_put(fs->owner); wakes a removal waiting for it."""
    if fst.module is not None and fst.module.put(owner):
        kernel.notify()


async def get_fs_type(kernel: "Kernel", name: str, owner: RefOwner) -> FileSystemType | None:
    """The registered type `name` with a reference on its module, or None:
    unknown even after modprobe `fs-NAME`, or its module is not live."""
    systems = filesystems(kernel)
    fst = systems.find(name)
    if fst is None:
        await kernel.kmod.request_module(f"fs-{name}")
        fst = systems.find(name)
    if fst is not None and fst.module is not None and not kernel.module_get(fst.module, owner):
        return None
    return fst


def _read_name(kernel: "Kernel", fst: int) -> str:
    name = kernel.mem.read_u64(fst + kernel.layouts[FST].name)
    return kernel.mem.read_cstr(name, _NAME_MAX).decode(errors="replace")


@export("register_filesystem", "int register_filesystem(struct file_system_type *fs)", nargs=1)
def register_filesystem(ctx: Any, fs: int) -> int:
    kernel, mem = ctx.kernel, ctx.mem
    name = _read_name(kernel, fs)
    if "." in name:
        raise KernelBug("fs/filesystems.c:77")          # BUG_ON(strchr(fs->name, '.'))
    systems, off = filesystems(kernel), kernel.layouts[FST]
    if mem.read_u64(fs + off.next) or systems.find(name) is not None:
        return -errno.EBUSY
    systems.register(FileSystemType(fs, name, mem.read_u32(fs + off.fs_flags),
                                    owner_module(kernel, fs)))
    return 0


@export("unregister_filesystem", "int unregister_filesystem(struct file_system_type *fs)", nargs=1)
def unregister_filesystem(ctx: Any, fs: int) -> int:
    systems = filesystems(ctx.kernel)
    fst = systems.by_address(fs)
    if fst is None:
        return -errno.EINVAL
    systems.unregister(fst)
    return 0


@export("get_fs_type", "struct file_system_type *get_fs_type(const char *name)", nargs=1)
async def get_fs_type_export(ctx: Any, name: int) -> int:
    kernel = ctx.kernel
    text = ctx.mem.read_cstr(name, _NAME_MAX).decode(errors="replace")
    owner = ctx.module.code_owner if ctx.module is not None else kernel.kernel_owner
    fst = await get_fs_type(kernel, text, owner)
    return fst.address if fst is not None else 0
