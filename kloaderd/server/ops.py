"""The operations of the protocol: their arguments and what they ask of the kernel.

One table says, for every op, which arguments it takes and of what type,
whether it changes kernel state (and so needs privilege), and the handler.
The session validates a request against the table before the handler sees
it, so handlers can trust their arguments and the kernel only ever sees
well-typed calls.  Handlers that await (loading, a waiting removal, following
the log) run as their own task, so a slow request never holds up the others
of its connection; the rest complete inline.
"""

from __future__ import annotations

import errno
import fcntl
import inspect
import math
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import trio

from kloaderd import uapi
from kloaderd.errors import KernelError
from kloaderd.mm.anon import ANON_MIN, AnonBuffer
from kloaderd.server import protocol

if TYPE_CHECKING:
    from kloaderd.server.session import Session

REQUIRED = object()
MAX_FOLLOWS = 4          # `dmesg` follow streams of one connection (docs/reliability.md, "Bounds")
_NUMBER = (int, float)


@dataclass(frozen=True)
class Arg:
    types: type | tuple[type, ...]
    default: Any = REQUIRED
    nullable: bool = False
    # A big bin may stay in the memory it was received into (an image: see
    # protocol.UPLOAD_MIN); any other argument gets it as bytes.
    upload: bool = False


@dataclass(frozen=True)
class Op:
    handler: Callable[..., Any]
    args: dict[str, Arg]
    privileged: bool
    blocking: bool          # a coroutine: run as its own task
    # A load runs to its end even if its client goes: like insmod killed
    # mid-init, the module stays.  Waits are given up with the session.
    cancellable: bool = True


def check_args(op_name: str, spec: dict[str, Arg], request: dict[Any, Any]) -> dict[str, Any]:
    """The request's arguments, typed and defaulted, or EINVAL saying which is wrong.

    Every request passes here, so the usual case is one pass over the op's
    arguments: an unknown key shows as a count of known ones short of the
    request's size, and is looked for (and reported before any other fault,
    as it always was) only then."""
    args: dict[str, Any] = {}
    fault: str | None = None
    known = ("op" in request) + ("id" in request)
    for name, arg in spec.items():
        value = request.get(name, REQUIRED)
        if value is REQUIRED:
            if arg.default is REQUIRED:
                fault = fault or f"{op_name}: missing argument {name!r}"
            args[name] = arg.default
            continue
        known += 1
        if isinstance(value, AnonBuffer):
            if arg.upload:
                args[name] = value
                continue
            value = value[:]
        if value is None and arg.nullable:
            args[name] = None
            continue
        # bool is an int in Python but not on the wire: `true` is no flag word.
        if not isinstance(value, arg.types) or (isinstance(value, bool) and bool not in _as_tuple(arg.types)):
            fault = fault or (f"{op_name}: argument {name!r} must be {_type_names(arg)}, "
                              f"not {type(value).__name__}")
        args[name] = value
    if known != len(request):
        unknown = next(key for key in request if key not in spec and key not in ("op", "id"))
        raise KernelError(errno.EINVAL, f"{op_name}: unknown argument {unknown!r}")
    if fault is not None:
        raise KernelError(errno.EINVAL, fault)
    return args


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_names(arg: Arg) -> str:
    names = {int: "int", float: "float", str: "str", bytes: "bin", bool: "bool"}
    text = " or ".join(names.get(t, t.__name__) for t in _as_tuple(arg.types))
    return text + " or nil" if arg.nullable else text


def check_flags(flags: int) -> int:
    """finit_module's flag word, as Linux checks it."""
    known = (uapi.MODULE_INIT_IGNORE_MODVERSIONS | uapi.MODULE_INIT_IGNORE_VERMAGIC
             | uapi.MODULE_INIT_COMPRESSED_FILE)
    if flags & ~known:
        raise KernelError(errno.EINVAL, f"unknown module init flags {flags:#x}")
    return flags


# ---------------------------------------------------------------- handlers


def op_hello(session: Session, rid: Any, version: int, client: str) -> dict[str, Any]:
    if version < min(uapi.SUPPORTED_VERSIONS):
        raise KernelError(errno.EPROTONOSUPPORT,
                          f"protocol version {version} is not supported (kloaderd speaks "
                          f"{', '.join(map(str, uapi.SUPPORTED_VERSIONS))})")
    session.hello(client)
    return {
        "version": min(version, uapi.PROTOCOL_VERSION),
        "server": "kloaderd",
        "release": session.kernel.release,
        "max_frame": session.server.max_frame,
        "ops": _OP_NAMES,
        "privileged": session.privileged,
    }


async def op_init_module(session: Session, rid: Any, image: bytes, params: str, flags: int) -> str:
    flags = check_flags(flags)
    if flags & uapi.MODULE_INIT_COMPRESSED_FILE:
        # Only finit_module takes flags in Linux; init_module's image is plain.
        raise KernelError(errno.EINVAL, "MODULE_INIT_COMPRESSED_FILE is a finit_module flag: "
                                        "init_module takes a decompressed image")
    return await loaded(session, session.kernel.init_module(image, params, flags=flags))


async def loaded(session: Session, load: Awaitable[str]) -> str:
    """A load's name, once the daemon's GC policy (if any) has settled its objects."""
    name = await load
    if session.server.collector is not None:
        session.server.collector.settle()
    return name


async def op_finit_module(session: Session, rid: Any, params: str, flags: int) -> str:
    flags = check_flags(flags)
    fd = session.take_fd()
    try:
        # A file may be large or slow (NFS, a FUSE mount): read it off the loop.
        image = await trio.to_thread.run_sync(read_module_file, fd, session.server.max_image_size)
    finally:
        os.close(fd)
    return await loaded(session, session.kernel.init_module(image, params, flags=flags))


def read_module_file(fd: int, limit: int) -> bytes | AnonBuffer:
    """kernel_read_file_from_fd: a readable, non-empty regular file, no larger than the image limit."""
    mode = fcntl.fcntl(fd, fcntl.F_GETFL)
    if mode & os.O_PATH:   # fdget() does not see O_PATH descriptors
        raise KernelError(errno.EBADF, "finit_module: the descriptor was opened with O_PATH, "
                                       "not for reading")
    if mode & os.O_ACCMODE == os.O_WRONLY:
        raise KernelError(errno.EBADF, "finit_module: the descriptor is not open for reading")
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise KernelError(errno.EINVAL, "finit_module: the descriptor is not a regular file")
    if st.st_size <= 0:    # kernel_read_file: i_size <= 0 (an empty file, /proc/self/mem)
        raise KernelError(errno.EINVAL, "finit_module: the file is empty (or has no size, as "
                                        "/proc files do)")
    if st.st_size > limit:
        raise KernelError(errno.EFBIG, f"module image is {st.st_size} bytes, more than the limit of {limit}")
    chunks, offset = [], 0
    try:
        if st.st_size >= ANON_MIN:
            # A big file is read once, into memory the loader gives back as
            # it goes (as an uploaded image): its i_size bytes, as
            # kernel_read_file reads.
            return AnonBuffer.read(fd, st.st_size)
        while offset <= limit:
            chunk = os.pread(fd, min(1 << 20, limit + 1 - offset), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
    except OSError as exc:
        raise KernelError(exc.errno or errno.EIO, f"finit_module: reading the file failed: "
                                                  f"{exc.strerror}") from None
    if offset > limit:
        raise KernelError(errno.EFBIG, f"module image is larger than the limit of {limit} bytes")
    return b"".join(chunks)


async def op_delete_module(session: Session, rid: Any, name: str, wait: bool, force: bool,
                           timeout: float | None) -> None:
    if timeout is not None and (math.isnan(timeout) or timeout < 0):
        raise KernelError(errno.EINVAL, f"delete_module: timeout must be a number of seconds, 0 or "
                                        f"more, not {timeout}")
    await session.kernel.delete_module(name, wait=wait, force=force, timeout=timeout)


async def op_modprobe(session: Session, rid: Any, name: str, params: str, remove: bool, wait: bool,
                      timeout: float | None, first_time: bool, dry_run: bool, show_depends: bool,
                      ignore_install: bool, dirname: str | None, config: list | None) -> dict[str, Any]:
    if timeout is not None and timeout < 0:
        raise KernelError(errno.EINVAL, "modprobe: timeout must not be negative")
    if config is not None and not all(isinstance(path, str) for path in config):
        raise KernelError(errno.EINVAL, "modprobe: argument 'config' must be a list of paths")
    return await session.kernel.kmod.modprobe(
        name, params, remove=remove, wait=wait, timeout=timeout, first_time=first_time, dry_run=dry_run,
        show_depends=show_depends, ignore_install=ignore_install, dirname=dirname, config=config)


def op_try_module_get(session: Session, rid: Any, name: str) -> None:
    session.kernel.try_module_get(name, session.owner())


def op_module_put(session: Session, rid: Any, name: str) -> None:
    session.kernel.module_put(name, session.owner())


def op_modules(session: Session, rid: Any) -> list[dict[str, Any]]:
    return session.kernel.modules()


def op_module(session: Session, rid: Any, name: str) -> dict[str, Any]:
    return session.kernel.module_info(name)


def op_param_get(session: Session, rid: Any, module: str, param: str) -> str:
    return session.kernel.param_get(module, param)


def op_param_set(session: Session, rid: Any, module: str, param: str, value: str) -> None:
    session.kernel.param_set(module, param, value)


def op_kallsyms(session: Session, rid: Any) -> list[dict[str, Any]]:
    return session.kernel.kallsyms()


def log_record(log: Any, record: Any) -> dict[str, Any]:
    """A log record on the wire, with the line as dmesg prints it."""
    return {"seq": record.seq, "level": record.level, "timestamp": record.timestamp,
            "module": record.module, "text": record.text, "line": log.format(record)}


def op_dmesg(session: Session, rid: Any, since: int, follow: bool, limit: int) -> list[dict[str, Any]]:
    """One page: at most `limit` (at most `uapi.DMESG_PAGE`) records after `since`."""
    log = session.kernel.log
    limit = max(1, min(limit, uapi.DMESG_PAGE))
    return [log_record(log, r) for r in log.records_page(since, limit)]


async def op_dmesg_follow(session: Session, rid: Any, since: int, follow: bool, limit: int) -> None:
    """Stream every record from `since` on as events, until cancelled.

    Each stream is a reader parked on the log: bounded per connection and
    per daemon, as open /dev/kmsg readers are bounded by descriptors."""
    server = session.server
    if session.follows >= MAX_FOLLOWS:
        raise KernelError(errno.EMFILE, f"dmesg: this connection already follows the log "
                                        f"{session.follows} times (at most {MAX_FOLLOWS})")
    if server.follows >= server.max_follows:
        raise KernelError(errno.EMFILE, f"dmesg: {server.follows} clients already follow the log "
                                        f"(at most {server.max_follows} at once)")
    session.follows += 1
    server.follows += 1
    try:
        log = session.kernel.log
        async for record in log.follow(since=since):
            await session.send(protocol.event(rid, log_record(log, record)))
    finally:
        session.follows -= 1
        server.follows -= 1


async def op_modinfo(session: Session, rid: Any, image: bytes) -> dict[str, Any]:
    return await session.kernel.modinfo(image)


def op_status(session: Session, rid: Any) -> dict[str, Any]:
    return {**session.kernel.status(), "server": session.server.status()}


def op_cancel(session: Session, rid: Any, target: Any) -> bool:
    return session.cancel(target)


# -- files: the session is the process whose descriptors these are

async def op_open(session: Session, rid: Any, path: str, flags: int) -> int:
    return await session.files().open(path, flags)


async def op_read(session: Session, rid: Any, fd: int, size: int) -> bytes:
    return await session.files().read(fd, size)


async def op_write(session: Session, rid: Any, fd: int, data: bytes) -> int:
    return await session.files().write(fd, data)


async def op_ioctl(session: Session, rid: Any, fd: int, request: int, arg: Any) -> Any:
    ret, data = await session.files().ioctl(fd, request, arg)
    return ret if data is None else {"result": ret, "data": data}


async def op_lseek(session: Session, rid: Any, fd: int, offset: int, whence: int) -> int:
    return await session.files().lseek(fd, offset, whence)


async def op_close(session: Session, rid: Any, fd: int) -> None:
    await session.files().close(fd)


async def op_read_file(session: Session, rid: Any, path: str) -> bytes:
    return await session.files().read_file(path, uapi.READ_FILE_MAX)


async def op_write_file(session: Session, rid: Any, path: str, data: bytes) -> int:
    return await session.files().write_file(path, data)


def op_listdir(session: Session, rid: Any, path: str) -> list[str]:
    from kloaderd.fs.tree import file_tree
    return file_tree(session.kernel).listdir(path)


def op_stat(session: Session, rid: Any, path: str, follow: bool) -> dict[str, Any]:
    from kloaderd.fs.tree import file_tree
    return file_tree(session.kernel).stat(path, follow=follow)


def op_mknod(session: Session, rid: Any, path: str, major: int, minor: int) -> None:
    from kloaderd.fs.char_dev import DeviceNodes
    from kloaderd.fs.file import MINORMASK, MKDEV
    if not 0 <= major < 4096 or not 0 <= minor <= MINORMASK:
        raise KernelError(errno.EINVAL, f"mknod: {major}:{minor} is not a device number "
                                        f"(major 0-4095, minor 0-{MINORMASK})")
    session.kernel.subsystem(DeviceNodes).mknod(path, MKDEV(major, minor))


def op_devices(session: Session, rid: Any) -> list[dict[str, Any]]:
    from kloaderd.fs.char_dev import DeviceNodes
    return session.kernel.subsystem(DeviceNodes).list()


# -- mounts: the kernel's one mount table (kloaderd/fs/namespace.py)

async def op_mount(session: Session, rid: Any, fstype: str, target: str, source: str,
                   data: str) -> dict[str, Any]:
    from kloaderd.fs.namespace import do_mount
    from kloaderd.kernel.memory import GuestFault
    try:
        return await do_mount(session.kernel, fstype, target, source, data, session.client)
    except GuestFault as fault:
        raise session.kernel.sanitizer.kernel_fault(fault, "vfs_get_tree", session.client) from None


async def op_umount(session: Session, rid: Any, target: str) -> None:
    from kloaderd.fs.namespace import do_umount
    await do_umount(session.kernel, target, session.client)


def op_mounts(session: Session, rid: Any) -> list[dict[str, Any]]:
    from kloaderd.fs.namespace import mount_table
    return mount_table(session.kernel)


async def op_raise_irq(session: Session, rid: Any, irq: int, wait: bool) -> dict[str, Any]:
    """A device raises `irq`: its handlers run in hardirq context, then the
    softirqs (tasklets) as irq_exit runs them; with `wait`, the reply comes
    once its irq threads are done too."""
    from kloaderd.irq.manage import irqs
    result = await irqs(session.kernel).deliver(irq)
    if wait:
        await irqs(session.kernel).synchronize(irq)
    return result


def _op(handler: Callable[..., Any], privileged: bool = False, cancellable: bool = True, **args: Arg) -> Op:
    return Op(handler, args, privileged, inspect.iscoroutinefunction(handler), cancellable)


_NAME = Arg(str)
_PARAMS = Arg(str, "")
_FLAGS = Arg(int, 0)
_IMAGE = Arg(bytes, upload=True)

OPS: dict[str, Op] = {
    "hello": _op(op_hello, version=Arg(int, uapi.PROTOCOL_VERSION), client=Arg(str, "")),
    "init_module": _op(op_init_module, True, False, image=_IMAGE, params=_PARAMS, flags=_FLAGS),
    "finit_module": _op(op_finit_module, True, False, params=_PARAMS, flags=_FLAGS),
    "delete_module": _op(op_delete_module, True, name=_NAME, wait=Arg(bool, False),
                         force=Arg(bool, False), timeout=Arg(_NUMBER, None, nullable=True)),
    "modprobe": _op(op_modprobe, True, False, name=_NAME, params=_PARAMS, remove=Arg(bool, False),
                    wait=Arg(bool, False), timeout=Arg(_NUMBER, None, nullable=True),
                    first_time=Arg(bool, False), dry_run=Arg(bool, False), show_depends=Arg(bool, False),
                    ignore_install=Arg(bool, False), dirname=Arg(str, None, nullable=True),
                    config=Arg(list, None, nullable=True)),
    "try_module_get": _op(op_try_module_get, name=_NAME),
    "module_put": _op(op_module_put, name=_NAME),
    "modules": _op(op_modules),
    "module": _op(op_module, name=_NAME),
    "param_get": _op(op_param_get, module=_NAME, param=_NAME),
    "param_set": _op(op_param_set, True, module=_NAME, param=_NAME, value=Arg(str)),
    "kallsyms": _op(op_kallsyms),
    "dmesg": _op(op_dmesg, since=Arg(int, 0), follow=Arg(bool, False), limit=Arg(int, uapi.DMESG_PAGE)),
    "modinfo": _op(op_modinfo, image=_IMAGE),
    "status": _op(op_status),
    "cancel": _op(op_cancel, target=Arg((int, str))),
    "open": _op(op_open, path=Arg(str), flags=Arg(int, os.O_RDWR)),
    "read": _op(op_read, fd=Arg(int), size=Arg(int)),
    "write": _op(op_write, fd=Arg(int), data=Arg(bytes)),
    "ioctl": _op(op_ioctl, fd=Arg(int), request=Arg(int), arg=Arg((int, bytes), 0)),
    "lseek": _op(op_lseek, fd=Arg(int), offset=Arg(int), whence=Arg(int, os.SEEK_SET)),
    "close": _op(op_close, fd=Arg(int)),
    "mknod": _op(op_mknod, True, path=Arg(str), major=Arg(int), minor=Arg(int)),
    "devices": _op(op_devices),
    "read_file": _op(op_read_file, path=Arg(str)),
    "write_file": _op(op_write_file, path=Arg(str), data=Arg(bytes)),
    "listdir": _op(op_listdir, path=Arg(str)),
    "stat": _op(op_stat, path=Arg(str), follow=Arg(bool, True)),
    "mount": _op(op_mount, True, fstype=Arg(str), target=Arg(str), source=Arg(str, "none"),
                 data=Arg(str, "")),
    "umount": _op(op_umount, True, target=Arg(str)),
    "mounts": _op(op_mounts),
    "raise_irq": _op(op_raise_irq, True, irq=Arg(int), wait=Arg(bool, False)),
}

# `dmesg` with `follow` streams: the one op whose mode picks sync or async.
DMESG_FOLLOW = Op(op_dmesg_follow, OPS["dmesg"].args, False, True)
_OP_NAMES = list(uapi.OPS)

