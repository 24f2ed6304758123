"""UUIDs and GUIDs (Linux's lib/uuid.c).

`uuid_gen`/`guid_gen` are random (version 4, RFC 4122 variant) from the
host's CSPRNG, as get_random_bytes is; a GUID keeps its first three fields
little-endian, so the version nibble is in byte 7 rather than 6.
`uuid_parse`/`guid_parse` take the 36-character form only ("-EINVAL" for
anything else, as `uuid_is_valid` decides).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from ..kernel.api import export, export_object

UUID_SIZE = 16
UUID_STRING_LEN = 36
HYPHENS = (8, 13, 18, 23)
# where each byte's two digits start in the string, and which byte they fill
SI = (0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34)
UUID_INDEX = tuple(range(16))
GUID_INDEX = (3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15)

export_object("uuid_null", "const uuid_t uuid_null", UUID_SIZE)
export_object("guid_null", "const guid_t guid_null", UUID_SIZE)


def _random(version_byte: int) -> bytes:
    """generate_random_uuid/_guid: version 4 in `version_byte`, variant 10x in byte 8."""
    b = bytearray(os.urandom(UUID_SIZE))
    b[version_byte] = (b[version_byte] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


@export("uuid_gen", "void uuid_gen(uuid_t *u)", nargs=1, gpl=True)
def uuid_gen(ctx: Any, u: int) -> None:
    ctx.mem.write(u, _random(6))


@export("guid_gen", "void guid_gen(guid_t *u)", nargs=1, gpl=True)
def guid_gen(ctx: Any, u: int) -> None:
    ctx.mem.write(u, _random(7))


@export("generate_random_uuid", "void generate_random_uuid(unsigned char uuid[16])", nargs=1)
def generate_random_uuid(ctx: Any, u: int) -> None:
    ctx.mem.write(u, _random(6))


@export("generate_random_guid", "void generate_random_guid(unsigned char guid[16])", nargs=1)
def generate_random_guid(ctx: Any, u: int) -> None:
    ctx.mem.write(u, _random(7))


def _valid(text: bytes) -> bool:
    if len(text) < UUID_STRING_LEN:
        return False
    return all(text[i] == ord("-") if i in HYPHENS else chr(text[i]) in "0123456789abcdefABCDEF"
               for i in range(UUID_STRING_LEN))


def _read(ctx: Any, ptr: int) -> bytes:
    return ctx.mem.read_cstr(ptr, UUID_STRING_LEN + 1) if ptr else b""


@export("uuid_is_valid", "bool uuid_is_valid(const char *uuid)", nargs=1)
def uuid_is_valid(ctx: Any, uuid: int) -> int:
    return int(_valid(_read(ctx, uuid)))


def _parse(ctx: Any, text_ptr: int, out: int, index: tuple[int, ...]) -> int:
    text = _read(ctx, text_ptr)
    if not _valid(text):
        return -errno.EINVAL
    b = bytearray(UUID_SIZE)
    for i in range(UUID_SIZE):
        b[index[i]] = int(text[SI[i]:SI[i] + 2], 16)
    ctx.mem.write(out, bytes(b))
    return 0


@export("uuid_parse", "int uuid_parse(const char *uuid, uuid_t *u)", nargs=2)
def uuid_parse(ctx: Any, uuid: int, u: int) -> int:
    return _parse(ctx, uuid, u, UUID_INDEX)


@export("guid_parse", "int guid_parse(const char *uuid, guid_t *u)", nargs=2)
def guid_parse(ctx: Any, uuid: int, u: int) -> int:
    return _parse(ctx, uuid, u, GUID_INDEX)
