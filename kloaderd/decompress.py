"""Compressed modules: kernel/module/decompress.c (CONFIG_MODULE_DECOMPRESS).

Beside `uapi` rather than in `kernel/`: the kernel decompresses what
finit_module is given, and kmodinfo reads the same files without a daemon.

`finit_module(fd, args, MODULE_INIT_COMPRESSED_FILE)` hands the kernel a
`.ko.gz`, `.ko.xz` or `.ko.zst` as it lies on disk; the kernel decompresses it
before anything else.  Linux supports the one format its config chose; kloader
takes all three, recognised by their magic, because one daemon may emulate
kernels that chose differently (Debian 6.1 ships plain `.ko`, 6.12 `.ko.xz`,
Arch and Fedora `.ko.zst`).

The decompressed size is bounded by the image limit (`max_image_size`): a
small file that inflates beyond it is refused with `EFBIG` before it is
inflated further, so a compression bomb costs at most that much memory.

zstd: Python's standard library has no zstd before 3.14 (`compression.zstd`);
below that, the `zstandard` package (libzstd's maintained binding, wheels for
every platform unicorn has) does it in-process and streams with an output
bound, which a subprocess per load would not give as cheaply.  Its bounded
reader does not say whether the frame ended (a truncated file just reads
short), so the frame's block headers are walked first: a few bytes read per
128 KiB block, where decompressing a second time to learn it cost a whole
inflation.
"""

from __future__ import annotations

import errno
import lzma
import zlib
from typing import Callable, Literal, overload

from .errors import KernelError
from .mm.anon import ANON_MIN, AnonBuffer

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
EXTENSIONS = (".ko", ".ko.gz", ".ko.xz", ".ko.zst")   # what depmod and modprobe look for in a tree


def _too_big(what: str, limit: int) -> KernelError:
    return KernelError(errno.EFBIG, f"{what}-compressed module decompresses to more than the "
                                    f"{limit} byte image limit (max_image_size)")


def _bad(what: str, exc: Exception) -> KernelError:
    # module_decompress() fails with EINVAL when the stream does not decode.
    return KernelError(errno.EINVAL, f"{what}-compressed module is corrupt: {exc}")


# Inflated this much at a time: a big image never exists twice while it grows.
CHUNK = 1 << 20


class _Output:
    """What a stream inflates to, bounded by `limit`: `bytes` while small;
    past `ANON_MIN`, when `anon`, an `AnonBuffer` (grown by doubling,
    mremap moving no data) whose pages the loader gives back as it maps
    the module."""

    def __init__(self, what: str, limit: int, anon: bool) -> None:
        self.what, self.limit, self.anon = what, limit, anon
        self.chunks: list[bytes] = []
        self.buffer: AnonBuffer | None = None
        self.size = 0

    def add(self, chunk: bytes) -> None:
        size = self.size + len(chunk)
        if size > self.limit:
            raise _too_big(self.what, self.limit)
        if self.buffer is None and self.anon and size >= ANON_MIN:
            self.buffer = AnonBuffer(min(2 * size, self.limit))
            self.buffer[:self.size] = b"".join(self.chunks)
            self.chunks.clear()
        if self.buffer is None:
            self.chunks.append(chunk)
        else:
            if size > len(self.buffer):
                self.buffer.resize(min(max(2 * len(self.buffer), size), self.limit))
            self.buffer[self.size:size] = chunk
        self.size = size

    def result(self) -> bytes | AnonBuffer:
        if self.buffer is None:
            return b"".join(self.chunks)
        if self.size < len(self.buffer):
            self.buffer.resize(self.size)
        return self.buffer


def _inflate(what: str, decompressor: zlib._Decompress | lzma.LZMADecompressor,
             errors: type[Exception], data: bytes, limit: int, anon: bool) -> bytes | AnonBuffer:
    """One stream through `decompressor`, CHUNK at a time, inflated no
    further than `limit` + CHUNK."""
    out = _Output(what, limit, anon)
    try:
        if hasattr(decompressor, "needs_input"):        # lzma's interface, and 3.14's zstd
            out.add(decompressor.decompress(data, CHUNK))
            while not decompressor.eof and not decompressor.needs_input:
                out.add(decompressor.decompress(b"", CHUNK))
        else:
            rest = data
            while True:
                chunk = decompressor.decompress(rest, CHUNK)
                out.add(chunk)
                rest = decompressor.unconsumed_tail
                if decompressor.eof or not (chunk or rest):
                    break
    except errors as exc:
        raise _bad(what, exc) from None
    if not decompressor.eof:
        raise _bad(what, ValueError("truncated stream"))
    return out.result()


def _gunzip(data: bytes, limit: int, anon: bool) -> bytes | AnonBuffer:
    return _inflate("gzip", zlib.decompressobj(wbits=16 + zlib.MAX_WBITS), zlib.error, data, limit, anon)


def _unxz(data: bytes, limit: int, anon: bool) -> bytes | AnonBuffer:
    return _inflate("xz", lzma.LZMADecompressor(format=lzma.FORMAT_XZ), lzma.LZMAError, data, limit, anon)


def _unzstd(data: bytes, limit: int, anon: bool) -> bytes | AnonBuffer:
    try:
        from compression import zstd  # type: ignore[import-not-found]   # Python 3.14+
    except ImportError:
        return _unzstd_frame(data, limit, anon)
    return _inflate("zstd", zstd.ZstdDecompressor(), zstd.ZstdError, data, limit, anon)


def _unzstd_frame(data: bytes, limit: int, anon: bool) -> bytes | AnonBuffer:
    """The first zstd frame of `data`, CHUNK at a time (as Linux's
    module_decompress, one frame), with the `zstandard` package."""
    import zstandard
    try:
        whole = zstd_frame_end(data) <= len(data)
        out = _Output("zstd", limit, anon)
        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=False)
        if whole:
            while chunk := reader.read(CHUNK):
                out.add(chunk)
    except (zstandard.ZstdError, ValueError) as exc:
        raise _bad("zstd", exc) from None
    if not whole or not out.size:
        raise _bad("zstd", ValueError("truncated stream"))
    return out.result()


ZSTD_BLOCK_RLE, ZSTD_BLOCK_RESERVED = 1, 3


def zstd_frame_end(data: bytes) -> int:
    """Where the first zstd frame ends (RFC 8878, 3.1.1): past its header,
    its blocks up to the one marked last, and its checksum if it has one.
    Beyond len(data) when the data stops short of it; ValueError for a
    reserved block type."""
    import zstandard
    at = zstandard.frame_header_size(data)
    checksum = zstandard.get_frame_parameters(data).has_checksum
    while True:
        if at + 3 > len(data):
            return at + 3
        header = int.from_bytes(data[at:at + 3], "little")
        kind, size = header >> 1 & 3, header >> 3
        if kind == ZSTD_BLOCK_RESERVED:
            raise ValueError(f"reserved block type at byte {at}")
        at += 3 + (1 if kind == ZSTD_BLOCK_RLE else size)
        if header & 1:
            return at + 4 * checksum


FORMATS: tuple[tuple[bytes, str, Callable[[bytes, int, bool], bytes | AnonBuffer]], ...] = (
    (GZIP_MAGIC, "gzip", _gunzip),
    (XZ_MAGIC, "xz", _unxz),
    (ZSTD_MAGIC, "zstd", _unzstd),
)


def compression_of(data: bytes) -> str | None:
    """"gzip", "xz", "zstd", or None for anything else (a plain ELF, say)."""
    for magic, name, _ in FORMATS:
        if data[:len(magic)] == magic:
            return name
    return None


@overload
def module_decompress(data: bytes, limit: int, *, anon: Literal[False] = False) -> bytes: ...
@overload
def module_decompress(data: bytes, limit: int, *, anon: bool) -> bytes | AnonBuffer: ...
def module_decompress(data: bytes, limit: int, *, anon: bool = False) -> bytes | AnonBuffer:
    """The module image inside a compressed file; EINVAL for anything else.

    `anon`: a big image (gzip, xz) comes in an `AnonBuffer`, for the
    kernel's loader to give back page by page; tools reading a tree get
    `bytes`."""
    for magic, _name, inflate in FORMATS:
        if data[:len(magic)] == magic:
            return inflate(data, limit, anon)
    raise KernelError(errno.EINVAL, "MODULE_INIT_COMPRESSED_FILE: the file is not gzip-, xz- "
                                    "or zstd-compressed")


def decompress(data: bytes, limit: int = 1 << 30) -> bytes:
    """A module file's image: decompressed when it is compressed, as it is otherwise.

    What modprobe and depmod do with a file from a tree, whatever its name says.
    """
    return data if compression_of(data) is None else module_decompress(data, limit)
