"""The wire contract between kloaderd and its clients (docs/protocol.md).

kloader's `include/uapi/linux/module.h`: everything both ends of the socket
must agree on, and nothing else — the frame format, the op names, the
`MODULE_INIT_*` flags, the limits a request must keep to, the errno mapping and
where the socket lives.  The daemon (`kloaderd/server/`) and the client package
(`kloader_client`) both import it; it imports neither trio nor the kernel, so
the k-commands start fast and the client never loads daemon internals.

A message is one msgpack map on a Unix stream socket.  msgpack is
self-delimiting, so the stream needs no length prefix; an `Unpacker` bounded by
`max_buffer_size` and the per-object limits below enforces the frame limit.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

import msgpack

from kloaderd import config

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)

# include/uapi/linux/module.h: finit_module's flags.  init_module over the
# socket takes them too: that is how `kinsmod -f` forces a single-call load.
MODULE_INIT_IGNORE_MODVERSIONS = 1
MODULE_INIT_IGNORE_VERMAGIC = 2
MODULE_INIT_COMPRESSED_FILE = 4

# A log record's `level`, printk's KERN_EMERG (0) to KERN_DEBUG (7), by the
# names dmesg gives them (`kdmesg -l`, `-x`; `kloaderd --log-level`).
LOG_LEVEL_NAMES = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")

# include/linux/module.h: `char name[MODULE_NAME_LEN]` in struct module, so a
# name is at most 55 bytes (defined with the kernel's other constants).
MODULE_NAME_LEN = config.MODULE_NAME_LEN

# Every op the daemon serves; `hello` reports the same list.  Adding an op
# means a name here, a row in `kloaderd/server/ops.py`'s table and a method in
# the client (docs/protocol.md, "Adding an op").
OPS = (
    "hello", "init_module", "finit_module", "delete_module", "modprobe", "try_module_get", "module_put",
    "modules", "module", "param_get", "param_set", "kallsyms", "dmesg", "modinfo", "status",
    "cancel", "open", "read", "write", "ioctl", "lseek", "close", "mknod", "devices",
    "read_file", "write_file", "listdir", "stat",
    "mount", "umount", "mounts", "raise_irq",
)

# How much a frame may exceed the kernel's image limit: the parameter string
# and the map around the image.
FRAME_HEADROOM = 1 << 20
# The number of bytes read from the socket at a time.
RECV_SIZE = 1 << 16

# What one request frame may hold besides its bytes (docs/reliability.md,
# "Bounds").  A request is one flat map of a few scalars; these leave room for
# ops to come while keeping a frame's decoded objects to a few hundred
# thousand at most, whatever the peer sends: without them a 57 MiB frame of
# one-byte empty maps decodes into 4 GB of Python objects.
MAX_MAP_LEN = 32                   # keys in one map
MAX_ARRAY_LEN = 1024               # items in one array
MAX_CONTAINERS = 64                # maps and arrays in one frame
MAX_STR_LEN = FRAME_HEADROOM       # bytes in one str (a parameter string)

# The most `read_file` returns: a kernel file larger than this (a huge
# /proc/kallsyms) is read with open and read instead (EFBIG).
READ_FILE_MAX = 64 << 20

# Records in one `dmesg` reply: a full log is several pages, so no single
# reply (and its packing) is larger than a few hundred KiB.
DMESG_PAGE = 512
# Bytes of a Unix socket's path: sockaddr_un.sun_path (108) less its NUL.
SUN_PATH_MAX = 107


def socket_path_too_long(path: str) -> str | None:
    """Why `path` cannot name a Unix socket, if it cannot.  Python refuses
    such a path itself with "AF_UNIX path too long" and no errno; daemon and
    clients say ENAMETOOLONG, and how long it may be."""
    size = len(os.fsencode(path))
    if size <= SUN_PATH_MAX:
        return None
    return (f"{os.strerror(_errno.ENAMETOOLONG)}: a Unix socket's path holds at most "
            f"{SUN_PATH_MAX} bytes (sun_path), this one has {size}: choose a shorter one")


def private_socket_dir() -> str:
    """The per-uid directory in /tmp for the default socket: the daemon
    creates it mode 0700 and refuses one it does not own or others can enter,
    so no other user can squat the path (docs/protocol.md, "The socket")."""
    return f"/tmp/kloaderd-{os.getuid()}"


def default_socket_path() -> str:
    """Where daemon and clients meet unless told otherwise.

    `$KLOADERD_SOCKET`, else the user's runtime directory (private and cleaned
    at logout), else `kloaderd.sock` in `private_socket_dir()`.
    """
    explicit = os.environ.get("KLOADERD_SOCKET")
    if explicit:
        return explicit
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "kloaderd.sock")
    return os.path.join(private_socket_dir(), "kloaderd.sock")


def pack(message: dict[str, Any]) -> bytes:
    """One frame: `bin` for bytes, `str` for text (use_bin_type)."""
    return msgpack.packb(message, use_bin_type=True)


def packer() -> msgpack.Packer:
    """A Packer for many frames, with `pack`'s settings: `msgpack.packb`
    makes (and frees) one per call, most of the cost of packing a small
    message.  Its `pack` runs no Python code for the plain types of a
    frame, and a failed pack resets its buffer."""
    return msgpack.Packer(use_bin_type=True)


def unpacker(max_frame: int, **limits: Any) -> msgpack.Unpacker:
    """A stream decoder that refuses a frame much larger than `max_frame`.

    The buffer holds at most the partial frame plus one read, so allowing one
    read's worth on top accepts every frame up to `max_frame` exactly.
    `limits` are msgpack's per-object ones (`max_map_len`, ...).
    """
    return msgpack.Unpacker(raw=False, max_buffer_size=max_frame + RECV_SIZE, strict_map_key=False,
                            **limits)


def error_body(code: int, message: str) -> dict[str, Any]:
    """The `error` member of a reply: the errno's name, its number, the text."""
    return {"errno": errno_name(code), "code": code, "message": message}


def errno_name(code: int) -> str:
    return _errno.errorcode.get(code, f"E{code}")


def errno_code(body: dict[str, Any]) -> int:
    """The local errno for an error reply: by name first, since numbers are per-architecture."""
    name = body.get("errno")
    code = getattr(_errno, name, None) if isinstance(name, str) else None
    if isinstance(code, int):
        return code
    number = body.get("code")
    return number if isinstance(number, int) else _errno.EIO
