"""The wire format kloaderd and its clients share (docs/protocol.md).

Both ends import this module, so it stays free of trio and of the kernel: the
k-commands start fast and the client works from any framework.  A message is
one msgpack map on a Unix stream socket; msgpack is self-delimiting, so the
stream needs no length prefix and an `Unpacker` bounded by `max_buffer_size`
enforces the frame limit.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

import msgpack

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)

# Linux's finit_module flags (include/uapi/linux/module.h).  init_module over
# the socket takes them too: that is how `kinsmod -f` forces a single-call load.
MODULE_INIT_IGNORE_MODVERSIONS = 1
MODULE_INIT_IGNORE_VERMAGIC = 2
MODULE_INIT_COMPRESSED_FILE = 4

# Requests that change kernel state: the daemon's CAP_SYS_MODULE.
PRIVILEGED_OPS = frozenset({"init_module", "finit_module", "delete_module", "param_set"})

# How much a frame may exceed the kernel's image limit: the parameter string
# and the map around the image.
FRAME_HEADROOM = 1 << 20

# The number of bytes read from the socket at a time.
RECV_SIZE = 1 << 16


def default_socket_path() -> str:
    """Where daemon and clients meet unless told otherwise.

    `$KLOADERD_SOCKET`, else the user's runtime directory (private and cleaned
    at logout), else a per-uid name in /tmp so two users never collide.
    """
    explicit = os.environ.get("KLOADERD_SOCKET")
    if explicit:
        return explicit
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "kloaderd.sock")
    return f"/tmp/kloaderd-{os.getuid()}.sock"


def pack(message: dict[str, Any]) -> bytes:
    """One frame: `bin` for bytes, `str` for text (use_bin_type)."""
    return msgpack.packb(message, use_bin_type=True)


def unpacker(max_frame: int) -> msgpack.Unpacker:
    """A stream decoder that refuses a frame much larger than `max_frame`.

    The buffer holds at most the partial frame plus one read, so allowing one
    read's worth on top accepts every frame up to `max_frame` exactly.
    """
    return msgpack.Unpacker(raw=False, max_buffer_size=max_frame + RECV_SIZE, strict_map_key=False)


# msgpack's exceptions for a stream that is not msgpack or breaks its limits.
FRAME_ERRORS = (
    msgpack.exceptions.BufferFull,
    msgpack.exceptions.ExtraData,
    msgpack.exceptions.FormatError,
    msgpack.exceptions.StackError,
    ValueError,  # declared lengths past the limits, invalid UTF-8 in a str
)


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


def reply(request_id: Any, result: Any) -> bytes:
    return pack({"id": request_id, "result": result})


def error_reply(request_id: Any, code: int, message: str) -> bytes:
    return pack({"id": request_id, "error": error_body(code, message)})


def event(request_id: Any, body: Any) -> bytes:
    return pack({"id": request_id, "event": body})
