"""Compressed module files: one dispatch for the loader and the tools (Linux's lib/decompress.c).

Distributions ship `.ko.xz`, `.ko.zst` and `.ko.gz`.  Linux's
CONFIG_MODULE_DECOMPRESS and kmod both recognise the format by its magic, not
by the file name, so `decompress` does too; xz and gzip come from the
standard library, zstd from the `zstandard` package when it is installed.
A format that cannot be read here is ENOEXEC with what is missing, which is
what finit_module answers for an image it cannot decompress.
"""

from __future__ import annotations

import errno
import gzip
import lzma
import zlib

from kloaderd.errors import KernelError

XZ_MAGIC = b"\xfd7zXZ\x00"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
EXTENSIONS = (".ko", ".ko.gz", ".ko.xz", ".ko.zst")


def compression(data: bytes) -> str | None:
    """'xz', 'gzip', 'zstd' or None for a plain image (any bytes-like object, an mmap too)."""
    head = bytes(data[:6])
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def decompress(data, limit: int = 1 << 30):
    """The module image inside `data` (returned as is when it is not compressed)."""
    kind = compression(data)
    try:
        if kind is None:
            return data
        if kind == "xz":
            out = lzma.LZMADecompressor().decompress(data, max_length=limit + 1)
        elif kind == "gzip":
            out = zlib.decompressobj(wbits=31).decompress(data, limit + 1)
        else:
            out = _zstd(data, limit)
    except (lzma.LZMAError, zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise KernelError(errno.ENOEXEC, f"{kind} decompression failed: {exc}") from None
    if len(out) > limit:
        raise KernelError(errno.EFBIG, f"decompressed module is larger than the limit of {limit} bytes")
    return out


def _zstd(data: bytes, limit: int) -> bytes:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        raise KernelError(errno.ENOEXEC, "zstd-compressed module: install the 'zstandard' "
                                         "package to read it") from None
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)[:limit + 1]
