"""sysfs attributes (Linux's fs/sysfs/file.c, group.c): files in a
kobject's directory whose reads and writes call the module's show/store;
and mount points (dir.c), the always-empty directories a filesystem is
mounted on (configfs's /sys/kernel/config, mode 0555).

A read calls `show(kobj, attr, buf)` with a zeroed page (`sysfs_kf_seq_show`):
a negative result is the read's errno, a count of PAGE_SIZE or more is
"fill_read_buffer: SHOW returned bad count" and cut to PAGE_SIZE - 1.  A write
calls `store(kobj, attr, buf, count)` with at most a page, NUL-terminated
(`sysfs_kf_write`); its negative result is the write's errno (EINVAL from a
store that rejects the value).  Which show/store: the kobject's
`ktype->sysfs_ops` at the time the file is made — the kernel's own ktypes
(kobject_create_and_add's, devices') and `kobj_sysfs_ops` call the
attribute's own `show`/`store` (struct kobj_attribute, struct
device_attribute: the attribute, then show and store); a module's sysfs_ops is called as it
is.  The mode is the attribute's (`EACCES` by mode bits, tree.py).

Module code runs on the reader's behalf with no module reference taken:
kernfs's active reference protects it instead — removing the file waits
for running reads and writes (tree.py drains), as Linux's removal does.
A file a module made and did not remove when it is freed is a leaked
registration: reported and removed.

Layouts: each kernel's own (kloaderd/kernel/layouts.py).
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

from ..errors import KernelError
from ..kernel.api import export
from ..kernel.api.printk import format_guest
from ..kernel.callback import call_module_code
from ..kernel.panic import warn
from ..kernel.printk import KERN_WARNING
from ..kernel.layouts import struct
from ..lib.kobject import KOBJECT, KSET, KTYPE, kobjects
from .file import signed64
from .tree import Content, Directory, file_tree

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

ATTR = struct("struct attribute", "linux/sysfs.h", "name", "mode")
# kobj_attribute and device_attribute: the attribute, then show and store
KOBJ_ATTR = struct("struct kobj_attribute", "linux/kobject.h", "attr", "show", "store")
OPS = struct("struct sysfs_ops", "linux/sysfs.h", "show", "store")
GROUP = struct("struct attribute_group", "linux/sysfs.h", "name", "is_visible", "attrs")
STRUCTS = (ATTR, KOBJ_ATTR, OPS, GROUP, KOBJECT, KTYPE, KSET)   # read at the kernel's offsets

PAGE_SIZE = 4096
MAX_GROUP_ATTRS = 4096                  # a NULL-terminated array is read at most this far
_NAME_MAX = 256


def _cstr(kernel: "Kernel", ptr: int) -> str:
    return kernel.mem.read_cstr(ptr, _NAME_MAX).decode("utf-8", "replace") if ptr else ""


def methods(kernel: "Kernel", kobj: int, attr: int) -> tuple[int, int] | None:
    """(show, store) for an attribute of kobj, with the arguments the ktype's
    sysfs_ops pass; None when the ktype has no sysfs_ops."""
    mem = kernel.mem
    objs = kobjects(kernel)
    ktype = mem.read_u64(kobj + kernel.layouts[KOBJECT].ktype)
    ops = mem.read_u64(ktype + kernel.layouts[KTYPE].sysfs_ops) if ktype else 0
    kobj_ops = kernel.machine.kernel_symbols().get("kobj_sysfs_ops")
    if ktype in objs.kernel_ktypes or ops == kobj_ops:
        kattr = kernel.layouts[KOBJ_ATTR]
        return mem.read_u64(attr + kattr.show), mem.read_u64(attr + kattr.store)
    if not ops:
        return None
    sysfs_ops = kernel.layouts[OPS]
    return mem.read_u64(ops + sysfs_ops.show), mem.read_u64(ops + sysfs_ops.store)


class Attribute(Content):
    """A sysfs attribute file: show/store in module code."""

    def __init__(self, kernel: "Kernel", kobj: int, attr: int, show: int, store: int) -> None:
        super().__init__(self._show, self._store)
        self.kernel, self.kobj, self.attr = kernel, kobj, attr
        self.show_fn, self.store_fn = show, store
        self.path = ""

    async def _show(self, file: Any) -> bytes:
        kernel = self.kernel
        if not self.show_fn:
            raise KernelError(errno.EIO, f"read {self.path}: the attribute has no show (Input/output error)")
        buf = kernel.slab.alloc(PAGE_SIZE, None, zero=True)
        if not buf:
            raise KernelError(errno.ENOMEM, f"read {self.path}: Cannot allocate memory")
        try:
            ret = signed64(await kernel.sanitizer.call_pointer(
                self.show_fn, self.kobj, self.attr, buf, via="sysfs_kf_seq_show", comm=file.comm,
                check=False))
            if ret < 0:
                raise KernelError(-ret, f"read {self.path}: show returned {ret} ({os.strerror(-ret)})")
            if ret >= PAGE_SIZE:
                kernel.log.emit(KERN_WARNING, f"fill_read_buffer: {kernel.machine.symbol_name(self.show_fn)} "
                                              "returned bad count", None)
                ret = PAGE_SIZE - 1
            return kernel.mem.read(buf, ret)
        finally:
            kernel.slab.free(buf, None)

    async def _store(self, file: Any, data: bytes) -> int:
        kernel = self.kernel
        if not data:
            return 0
        if not self.store_fn:
            raise KernelError(errno.EIO, f"write {self.path}: the attribute has no store (Input/output error)")
        data = data[:PAGE_SIZE]
        buf = kernel.slab.alloc(len(data) + 1, None)
        if not buf:
            raise KernelError(errno.ENOMEM, f"write {self.path}: Cannot allocate memory")
        try:
            kernel.mem.write(buf, data + b"\0")
            ret = signed64(await kernel.sanitizer.call_pointer(
                self.store_fn, self.kobj, self.attr, buf, len(data), via="sysfs_kf_write", comm=file.comm,
                check=False))
        finally:
            kernel.slab.free(buf, None)
        if ret < 0:
            raise KernelError(-ret, f"write {self.path}: store returned {ret} ({os.strerror(-ret)})")
        return ret


def add_file(ctx: Any, kobj: int, attr: int, where: Directory, mode: int | None = None,
             found: tuple[int, int] | None = None) -> int:
    """sysfs_add_file_mode_ns: 0 or a negative errno with sysfs's messages.
    `found`: the (show, store) to call with `kobj`, where the caller's
    sysfs_ops are kloader's (a class's); else the kobject's ktype says."""
    kernel = ctx.kernel
    objs = kobjects(kernel)
    name = _cstr(kernel, ctx.mem.read_u64(attr + ctx.kernel.layouts[ATTR].name))
    if mode is None:
        mode = ctx.mem.read_u16(attr + ctx.kernel.layouts[ATTR].mode)
    if found is None:
        found = methods(kernel, kobj, attr)
    if found is None:
        warn(ctx, f"missing sysfs attribute operations for kobject: {objs.name(kobj)}",
             "fs/sysfs/file.c:278", "sysfs_add_file_mode_ns")
        return -errno.EINVAL
    ops = Attribute(kernel, kobj, attr, *found)
    try:
        node = file_tree(kernel).add(where, name, ops, mode=mode & 0o777, owner=ctx.module,
                                     size=PAGE_SIZE, data=attr)
    except KernelError as exc:
        if exc.errno == errno.EEXIST:
            _warn_dup(ctx, where, name)
        return -exc.errno
    ops.path = node.path
    objs.track_file(kobj, node, ctx.module, attr, found)
    return 0


def _warn_dup(ctx: Any, where: Directory, name: str) -> None:
    """sysfs_warn_dup."""
    ctx.kernel.log.emit(KERN_WARNING, f"sysfs: cannot create duplicate filename "
                                      f"'{where.path[len('/sys'):]}/{name}'", getattr(ctx.module, "name", None))


def _directory(ctx: Any, kobj: int, what: str) -> Directory | None:
    directory = kobjects(ctx.kernel).directory(kobj) if kobj else None
    if directory is None:
        warn(ctx, None, "fs/sysfs/file.c:" + ("335" if what == "file" else "135"), f"sysfs_create_{what}")
    return directory


def remove_name(ctx: Any, where: Directory | None, name: str) -> Any:
    """kernfs_remove_by_name: wait for the file's running operations, then remove it."""
    node = where.children.get(name) if where is not None else None
    if node is None:
        return 0
    kobjects(ctx.kernel).untrack(node)

    async def removing() -> int:
        await file_tree(ctx.kernel).remove(node)
        return 0
    return removing() if node.active else (file_tree(ctx.kernel).remove_now(node) or 0)


@export("sysfs_create_file_ns", "int sysfs_create_file_ns(struct kobject *kobj, const struct attribute "
        "*attr, const void *ns)", nargs=3, gpl=True)
def sysfs_create_file_ns(ctx: Any, kobj: int, attr: int, ns: int) -> int:
    where = _directory(ctx, kobj, "file")
    if where is None or not attr:
        return -errno.EINVAL
    return add_file(ctx, kobj, attr, where)


@export("sysfs_remove_file_ns", "void sysfs_remove_file_ns(struct kobject *kobj, const struct attribute "
        "*attr, const void *ns)", nargs=3, gpl=True)
def sysfs_remove_file_ns(ctx: Any, kobj: int, attr: int, ns: int) -> Any:
    where = kobjects(ctx.kernel).directory(kobj)
    return remove_name(ctx, where, _cstr(ctx.kernel, ctx.mem.read_u64(attr + ctx.kernel.layouts[ATTR].name)))


def _pointers(ctx: Any, array: int) -> list[int]:
    """A NULL-terminated array of pointers (attrs, groups), read at most MAX_GROUP_ATTRS far."""
    found: list[int] = []
    while array and len(found) < MAX_GROUP_ATTRS:
        pointer = ctx.mem.read_u64(array + 8 * len(found))
        if not pointer:
            break
        found.append(pointer)
    return found


@export("sysfs_create_files", "int sysfs_create_files(struct kobject *kobj, const struct attribute * const "
        "*attr)", nargs=2, gpl=True)
def sysfs_create_files(ctx: Any, kobj: int, attrs: int) -> Any:
    """Each attribute of a NULL-terminated array; on failure the ones made go."""
    made: list[int] = []
    for attr in _pointers(ctx, attrs):
        ret = sysfs_create_file_ns(ctx, kobj, attr, 0)
        if ret:
            for done in made:
                sysfs_remove_file_ns(ctx, kobj, done, 0)
            return ret
        made.append(attr)
    return 0


@export("sysfs_remove_files", "void sysfs_remove_files(struct kobject *kobj, const struct attribute * const "
        "*attr)", nargs=2, gpl=True)
def sysfs_remove_files(ctx: Any, kobj: int, attrs: int) -> None:
    for attr in _pointers(ctx, attrs):
        sysfs_remove_file_ns(ctx, kobj, attr, 0)


def _group_attrs(ctx: Any, grp: int) -> list[int]:
    return _pointers(ctx, ctx.mem.read_u64(grp + ctx.kernel.layouts[GROUP].attrs))


async def create_group(ctx: Any, kobj: int, grp: int) -> int:
    """internal_create_group: the group's directory (if named) and its files,
    each with the mode is_visible gives it (0: left out); all or nothing."""
    kernel = ctx.kernel
    where = _directory(ctx, kobj, "group")
    if where is None or not grp:
        return -errno.EINVAL
    name = _cstr(kernel, ctx.mem.read_u64(grp + ctx.kernel.layouts[GROUP].name))
    tree = file_tree(kernel)
    made: Directory | None = None
    if name:
        try:
            made = tree.mkdir(where, name, mode=0o755, owner=ctx.module)
        except KernelError as exc:
            if exc.errno == errno.EEXIST:
                _warn_dup(ctx, where, name)
            return -exc.errno
        kobjects(kernel).track_dir(made, ctx.module, grp, "group")
    target = made or where
    is_visible = ctx.mem.read_u64(grp + ctx.kernel.layouts[GROUP].is_visible)
    done: list[str] = []
    for i, attr in enumerate(_group_attrs(ctx, grp)):
        mode = ctx.mem.read_u16(attr + ctx.kernel.layouts[ATTR].mode)
        if is_visible:
            mode = await call_module_code(ctx, is_visible, kobj, attr, i) & 0xFFFF
            if not mode:
                continue
        ret = add_file(ctx, kobj, attr, target, mode)
        if ret:
            if made is not None:
                kobjects(kernel).untrack(made)
                tree.remove_now(made)
            else:
                for done_name in done:
                    node = target.children.get(done_name)
                    if node is not None:
                        kobjects(kernel).untrack(node)
                        tree.remove_now(node)
            return ret
        done.append(_cstr(kernel, ctx.mem.read_u64(attr + ctx.kernel.layouts[ATTR].name)))
    return 0


def remove_group(ctx: Any, kobj: int, grp: int) -> Any:
    kernel = ctx.kernel
    where = kobjects(kernel).directory(kobj)
    name = _cstr(kernel, ctx.mem.read_u64(grp + ctx.kernel.layouts[GROUP].name))
    if where is None:
        return 0
    if name:
        node = where.children.get(name)
        if node is None:
            warn(ctx, f"sysfs group '{name}' not found for kobject '{kobjects(kernel).name(kobj)}'",
                 "fs/sysfs/group.c:282", "sysfs_remove_group")
            return 0
        return remove_name(ctx, where, name)
    for attr in _group_attrs(ctx, grp):
        remove_name(ctx, where, _cstr(kernel, ctx.mem.read_u64(attr + ctx.kernel.layouts[ATTR].name)))
    return 0


@export("sysfs_create_group", "int sysfs_create_group(struct kobject *kobj, const struct attribute_group "
        "*grp)", nargs=2, gpl=True)
def sysfs_create_group(ctx: Any, kobj: int, grp: int) -> Any:
    return create_group(ctx, kobj, grp)


@export("sysfs_remove_group", "void sysfs_remove_group(struct kobject *kobj, const struct attribute_group "
        "*grp)", nargs=2, gpl=True)
def sysfs_remove_group(ctx: Any, kobj: int, grp: int) -> Any:
    return remove_group(ctx, kobj, grp)


async def create_groups(ctx: Any, kobj: int, groups: int) -> int:
    """sysfs_create_groups: each group of a NULL-terminated array; on failure
    the ones made are removed."""
    made: list[int] = []
    for grp in _pointers(ctx, groups):
        ret = await create_group(ctx, kobj, grp)
        if ret:
            for done in made:
                remove_group(ctx, kobj, done)
            return ret
        made.append(grp)
    return 0


@export("sysfs_create_groups", "int sysfs_create_groups(struct kobject *kobj, const struct attribute_group "
        "**groups)", nargs=2, gpl=True)
def sysfs_create_groups(ctx: Any, kobj: int, groups: int) -> Any:
    return create_groups(ctx, kobj, groups)


@export("sysfs_remove_groups", "void sysfs_remove_groups(struct kobject *kobj, const struct attribute_group "
        "**groups)", nargs=2, gpl=True)
def sysfs_remove_groups(ctx: Any, kobj: int, groups: int) -> None:
    for grp in _pointers(ctx, groups):
        remove_group(ctx, kobj, grp)


@export("sysfs_create_mount_point", "int sysfs_create_mount_point(struct kobject *parent_kobj, "
        "const char *name)", nargs=2, gpl=True)
def sysfs_create_mount_point(ctx: Any, parent: int, name_ptr: int) -> int:
    """kernfs_create_empty_dir under the kobject's directory: -EEXIST with
    sysfs_warn_dup's message when the name is taken.  A mount point left
    when its module is freed is a leaked registration."""
    kernel = ctx.kernel
    where = kobjects(kernel).directory(parent) if parent else None
    if where is None or not name_ptr:
        return -errno.ENOENT            # kernfs_add_one: the parent is not (or no longer) there
    name = _cstr(kernel, name_ptr)
    try:
        made = file_tree(kernel).mkdir(where, name, mode=0o555, owner=ctx.module)
    except KernelError as exc:
        if exc.errno == errno.EEXIST:
            _warn_dup(ctx, where, name)
        return -exc.errno
    kobjects(kernel).track_dir(made, ctx.module, parent, "mount point")
    return 0


@export("sysfs_remove_mount_point", "void sysfs_remove_mount_point(struct kobject *parent_kobj, "
        "const char *name)", nargs=2, gpl=True)
def sysfs_remove_mount_point(ctx: Any, parent: int, name_ptr: int) -> Any:
    return remove_name(ctx, kobjects(ctx.kernel).directory(parent), _cstr(ctx.kernel, name_ptr))


def _emit(ctx: Any, buf: int, at: int | None, fmt: int) -> int:
    """vscnprintf into the show buffer's page, from `at`."""
    if not buf or buf & (PAGE_SIZE - 1) or at is not None and not 0 <= at < PAGE_SIZE:
        if at is None:
            warn(ctx, f"invalid sysfs_emit: buf:{buf:016x}", "fs/sysfs/file.c:741", "sysfs_emit")
        else:
            warn(ctx, f"invalid sysfs_emit_at: buf:{buf:016x} at:{at}", "fs/sysfs/file.c:769",
                 "sysfs_emit_at")
        return 0
    at = at or 0
    text, _ = format_guest(ctx, fmt, ctx.va(), room=PAGE_SIZE - at - 1)
    ctx.mem.write(buf + at, text + b"\0")
    return len(text)


@export("sysfs_emit", "int sysfs_emit(char *buf, const char *fmt, ...)", nargs=2, variadic=True, gpl=True)
def sysfs_emit(ctx: Any, buf: int, fmt: int) -> int:
    return _emit(ctx, buf, None, fmt)


@export("sysfs_emit_at", "int sysfs_emit_at(char *buf, int at, const char *fmt, ...)", nargs=3,
        variadic=True, gpl=True)
def sysfs_emit_at(ctx: Any, buf: int, at: int, fmt: int) -> int:
    at &= 0xFFFFFFFF
    return _emit(ctx, buf, at - (1 << 32) if at >> 31 else at, fmt)
