"""Big images received into memory of their own (issue 14, peak memory).

A frame whose image is a big bin is not buffered by msgpack and then copied
out: the bin goes straight into an `AnonBuffer`, and the pages of each
section the loader has written into emulated memory go back to the system
(`discard`).  Once loaded, a module keeps only metadata of its file
(`free_copy`).  These tests check that the frame decodes exactly as msgpack
would decode it, whatever the reads' boundaries; that the frame limit holds
at the bin's header; and that a client dying mid-upload, or an image failing
validation, leaves nothing behind.
"""

from __future__ import annotations

import errno
import functools
import gc
import gzip
import lzma
import mmap
import os
import struct
import threading
import weakref

import msgpack
import pytest
import trio
import zstandard

from kloader_client import AsyncClient
from kloaderd.decompress import module_decompress
from kloaderd.elf.image import MODULE_SIG_STRING, parse
from kloaderd.errors import KernelError
from kloaderd.kernel.kernel import Kernel
from kloaderd.mm.anon import ANON_MIN, AnonBuffer
from kloaderd.server.ops import read_module_file
from kloaderd.server import protocol
from kloaderd.server.server import serve
from test_big_images import _section_of, tables  # noqa: F401  (a fixture)
from test_server import Raw

BIG = protocol.UPLOAD_MIN + 12_345


def packed(message: dict) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def decode(stream: bytes, cuts: list[int], max_frame: int = 1 << 26) -> list:
    decoder = protocol.RequestDecoder(max_frame)
    out, at = [], 0
    for cut in cuts + [len(stream)]:
        decoder.feed(stream[at:cut])
        out.extend(decoder)
        at = cut
    return out


def plain(message: object) -> object:
    """The message with an uploaded bin as the bytes msgpack would give."""
    if isinstance(message, dict):
        return {k: v[:] if isinstance(v, AnonBuffer) else v for k, v in message.items()}
    return message


IMAGE = bytes(range(256)) * (BIG // 256) + b"tail"
REQUESTS = {
    "image in the middle": {"op": "init_module", "id": 1, "image": IMAGE, "params": "x=1", "flags": 0},
    "image first": {"image": IMAGE, "op": "modinfo", "id": "a"},
    "image last": {"op": "modinfo", "id": 2, "image": IMAGE},
    "a second big bin after it": {"op": "write", "id": 3, "data": IMAGE, "more": IMAGE[:BIG]},
    "a later duplicate key wins": None,
}


@pytest.mark.parametrize("name", REQUESTS)
@pytest.mark.parametrize("first,step", [(65536, 65536), (1000, 1000), (1, 65536), (7, 65536)],
                         ids=["reads of 64 KiB", "reads of 1000 bytes", "a byte, then 64 KiB",
                              "7 bytes at a time, then 64 KiB"])
def test_an_upload_decodes_as_msgpack_would(name, first, step):
    """Whatever the reads' boundaries (a frame's head may come a byte at a
    time, a small frame may share a read with it): msgpack's result, with
    the big bin as an `AnonBuffer` (only one per frame)."""
    before, after = packed({"op": "status", "id": 0}), packed({"op": "modules", "id": 9})
    if REQUESTS[name] is None:      # {"image": <big>, "id": 4, "image": b"small"}
        frame = b"\x83\xa5image\xc6" + struct.pack(">I", len(IMAGE)) + IMAGE + b"\xa2id\x04" \
            + b"\xa5image\xc4\x05small"
    else:
        frame = packed(REQUESTS[name])
    stream = before + frame + after
    cuts = list(range(first, min(200, len(stream)), first)) if first < step else []
    cuts += list(range(max(cuts, default=0) + step, len(stream), step))
    got = decode(stream, cuts)
    assert [plain(m) for m in got] == _all(stream)
    uploaded = [v for v in got[1].values() if isinstance(v, AnonBuffer)]
    assert len(uploaded) == (0 if name == "a later duplicate key wins" else 1)


def _all(stream: bytes) -> list:
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(stream))
    unpacker.feed(stream)
    return list(unpacker)


def test_without_address_space_for_an_upload_the_frame_is_decoded_as_any_other(monkeypatch):
    def no_memory(size: int) -> AnonBuffer:
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(protocol, "AnonBuffer", no_memory)
    request = {"op": "modinfo", "id": 1, "image": IMAGE}
    frame = packed(request)
    assert decode(frame, list(range(65536, len(frame), 65536))) == [request]


def test_a_small_bin_is_plain_bytes():
    [message] = decode(packed({"op": "modinfo", "id": 1, "image": b"x" * 1000}), [3])
    assert type(message["image"]) is bytes


def test_an_upload_beyond_the_frame_limit_is_refused_at_its_header():
    limit = 1 << 21
    overhead = len(packed({"op": "modinfo", "id": 1, "image": IMAGE})) - len(IMAGE)
    at_limit = packed({"op": "modinfo", "id": 1, "image": b"\1" * (limit - overhead)})
    assert len(at_limit) == limit
    [message] = decode(at_limit, [100], max_frame=limit)
    assert isinstance(message["image"], AnonBuffer) and len(message["image"]) == limit - overhead
    # One byte more is refused as soon as the bin's header is in.
    decoder = protocol.RequestDecoder(limit)
    decoder.feed(at_limit[:overhead - 4] + struct.pack(">I", limit - overhead + 1))
    with pytest.raises(msgpack.exceptions.BufferFull):
        list(decoder)


@pytest.fixture
def uploads(monkeypatch) -> list[weakref.ref]:
    """A weak reference to each `AnonBuffer` the decoder makes."""
    made: list[weakref.ref] = []

    class Recorded(AnonBuffer):
        def __new__(cls, size: int) -> AnonBuffer:
            buffer = super().__new__(cls, size)
            made.append(weakref.ref(buffer))
            return buffer

    monkeypatch.setattr(protocol, "AnonBuffer", Recorded)
    return made


def test_an_abandoned_upload_leaves_nothing_behind(uploads):
    made = uploads
    decoder = protocol.RequestDecoder(1 << 26)
    frame = packed({"op": "init_module", "id": 1, "image": IMAGE})
    decoder.feed(frame[:len(frame) // 2])
    assert list(decoder) == [] and len(made) == 1 and made[0]() is not None
    del decoder
    gc.collect()
    assert made[0]() is None


def test_discard_gives_back_only_whole_pages():
    page = mmap.PAGESIZE
    buffer = AnonBuffer(4 * page)
    buffer[:] = b"\xff" * (4 * page)
    buffer.discard(page - 1, 3 * page + 1)        # pages 1 and 2 lie wholly inside
    assert buffer[:page] == b"\xff" * page
    assert buffer[page:3 * page] == bytes(2 * page)
    assert buffer[3 * page:] == b"\xff" * page


def _signed(image: bytes) -> bytes:
    sig = b"S" * 300
    return image + sig + bytes([0, 0, 2, 0, 0, 0, 0, 0]) + struct.pack(">I", len(sig)) + MODULE_SIG_STRING


@pytest.mark.trio
@pytest.mark.parametrize("signed", [False, True], ids=["plain", "signed"])
async def test_a_loaded_upload_gives_back_its_pages_and_keeps_no_file(tables, signed):  # noqa: F811
    data = bytearray(_signed(tables) if signed else tables)
    table = parse(tables).sections[_section_of(parse(tables), "big_table")]
    # A marked page inside the table (whose bytes the init does not check there).
    page = mmap.PAGESIZE
    inner = -(-table.offset // page) * page
    assert inner + page < table.offset + table.size // 2
    data[inner:inner + page] = b"\xa5" * page
    buffer = AnonBuffer(len(data))
    buffer[:] = data
    kernel = Kernel()
    # The init checks the table from the guest: -EINVAL if a byte were lost.
    assert await kernel.init_module(buffer, "") == "tables"
    mod = kernel.loaded["tables"]
    # Module memory holds the marked page; the file's page went back once written.
    base = mod.linked.section_addr[table.index]
    assert kernel.mem.read(base + inner - table.offset, page) == b"\xa5" * page
    assert buffer[inner:inner + page] == bytes(page)
    # The module keeps no file, only what its readers need.
    assert mod.image.data == b"" and all(not s.data for s in mod.image.sections)
    assert mod.image.rela == () and mod.linked.symbol_values == ()
    assert {"big_table", "big_pointers", "tables_init"} <= {s.name for s in mod.image.symbols}
    names = {s["name"] for s in kernel.kallsyms() if s["module"] == "tables"}
    assert {"big_table", "big_pointers"} <= names
    assert kernel.module_info("tables")["license"] == "GPL"
    await kernel.delete_module("tables")


@pytest.fixture
def small_uploads(monkeypatch, uploads):
    """Uploads from 4 KiB, so the 260 KiB test module is one."""
    monkeypatch.setattr(protocol, "UPLOAD_MIN", 4096)
    return uploads


async def _sessions_down_to(client: AsyncClient, n: int) -> None:
    with trio.fail_after(10):
        while (await client.status())["server"]["sessions"] > n:
            await trio.sleep(0.01)


@pytest.mark.trio
async def test_a_client_dying_mid_upload_leaves_nothing(tables, small_uploads, nursery, tmp_path):  # noqa: F811
    kernel = Kernel()
    path = await nursery.start(functools.partial(serve, kernel, str(tmp_path / "k.sock")))
    frame = packed({"op": "init_module", "id": 1, "image": tables, "params": "", "flags": 0})
    async with AsyncClient(path) as other:
        loader = await Raw.connect(path)
        await loader.sock.send(frame[:len(frame) // 2])
        while not small_uploads:            # the daemon has begun the upload
            await other.status()
        loader.sock.close()
        await _sessions_down_to(other, 1)
        gc.collect()
        assert [ref() for ref in small_uploads] == [None]
        assert await other.modules() == []
        # The daemon carries on: the same image, whole, loads.
        loader = await Raw.connect(path)
        await loader.send({"op": "init_module", "id": 2, "image": tables})
        assert await loader.receive() == {"id": 2, "result": "tables"}
        assert [m["name"] for m in await other.modules()] == ["tables"]
        await other.delete_module("tables")
        loader.sock.close()


@pytest.mark.trio
async def test_an_upload_failing_validation_halfway_is_enoexec_and_leaves_nothing(
        tables, small_uploads, nursery, tmp_path):  # noqa: F811
    kernel = Kernel()
    path = await nursery.start(functools.partial(serve, kernel, str(tmp_path / "k.sock")))
    broken = bytearray(tables)
    shoff, = struct.unpack_from("<Q", broken, 0x28)
    struct.pack_into("<H", broken, 0x3A, 72)           # e_shentsize: not an Elf64_Shdr
    async with AsyncClient(path) as client:
        with pytest.raises(OSError) as failure:
            await client.init_module(bytes(broken))
        assert "section header size" in str(failure.value) and shoff
        assert failure.value.errno == 8                 # ENOEXEC
        # One whose init fails, after it was mapped and its file's pages given back.
        wrong = bytearray(tables)
        wrong[parse(tables).sections[_section_of(parse(tables), "big_table")].offset + 2] = 9
        with pytest.raises(OSError) as failure:
            await client.init_module(bytes(wrong))
        assert failure.value.errno == 22                # the init's -EINVAL
        gc.collect()
        assert len(small_uploads) == 2 and [ref() for ref in small_uploads] == [None, None]
        assert await client.modules() == []
        info = await client.modinfo(tables)         # an upload that is only read
        assert info["name"] == "tables"


# -- files the daemon reads itself, and compressed ones ------------------------------

PATTERN = bytes(range(251)) * ((3 << 20) // 251 + 7)      # 3.5 MiB that gzip and xz cannot shrink to nothing


@pytest.mark.parametrize("compress", [gzip.compress, lambda d: lzma.compress(d, format=lzma.FORMAT_XZ),
                                      lambda d: zstandard.ZstdCompressor().compress(d)],
                         ids=["gz", "xz", "zst"])
def test_a_big_compressed_image_inflates_into_its_own_memory_chunk_by_chunk(compress):
    packed = compress(PATTERN)
    out = module_decompress(packed, 64 << 20, anon=True)
    assert isinstance(out, AnonBuffer) and len(out) == len(PATTERN) and out[:] == PATTERN
    assert module_decompress(packed, 64 << 20) == PATTERN          # tools get bytes
    small = compress(PATTERN[:ANON_MIN - 1])
    assert type(module_decompress(small, 64 << 20, anon=True)) is bytes
    # The bounds hold chunk by chunk: past the limit is EFBIG, a cut stream EINVAL.
    with pytest.raises(KernelError) as too_big:
        module_decompress(packed, (3 << 20) - 1, anon=True)
    assert too_big.value.errno == errno.EFBIG
    with pytest.raises(KernelError) as cut:
        module_decompress(packed[:len(packed) // 2], 64 << 20, anon=True)
    assert cut.value.errno == errno.EINVAL


def test_a_big_module_file_is_read_into_its_own_memory(tmp_path):
    path = tmp_path / "big.ko"
    path.write_bytes(PATTERN)
    fd = os.open(path, os.O_RDONLY)
    try:
        image = read_module_file(fd, 64 << 20)
    finally:
        os.close(fd)
    assert isinstance(image, AnonBuffer) and image[:] == PATTERN


@pytest.mark.trio
@pytest.mark.parametrize("how", ["finit_module", "finit_module of a .ko.xz", "modprobe of a .ko.xz"])
async def test_files_read_by_the_daemon_load_from_their_own_memory(tables, monkeypatch, tmp_path,  # noqa: F811
                                                                  how):
    """The tables module's init checks its table: nothing was lost to a
    page given back too early, whichever way its file came in."""
    import kloaderd.decompress
    import kloaderd.kernel.kmod
    import kloaderd.server.ops
    for module in (kloaderd.decompress, kloaderd.kernel.kmod, kloaderd.server.ops):
        monkeypatch.setattr(module, "ANON_MIN", 4096)
    made: list[tuple[bool, bool]] = []
    real = module_decompress

    def recording(data, limit, *, anon=False):
        # (into its own memory, off the event loop: a few KiB may inflate to 64 MiB)
        out = real(data, limit, anon=anon)
        made.append((isinstance(out, AnonBuffer), threading.current_thread() is not threading.main_thread()))
        return out

    monkeypatch.setattr("kloaderd.kernel.load.module_decompress", recording)
    xz = how.endswith(".ko.xz")
    tree = tmp_path / "lib" / "modules" / "kloader"
    tree.mkdir(parents=True)
    path = tree / ("tables.ko.xz" if xz else "tables.ko")
    path.write_bytes(lzma.compress(tables, format=lzma.FORMAT_XZ) if xz else tables)
    kernel = Kernel()
    if how.startswith("modprobe"):
        (tree / "modules.dep").write_text(f"{path.name}:\n")
        await kernel.kmod.modprobe("tables", dirname=str(tree))
    else:
        from kloaderd.uapi import MODULE_INIT_COMPRESSED_FILE
        fd = os.open(path, os.O_RDONLY)
        try:
            data = read_module_file(fd, 64 << 20)
        finally:
            os.close(fd)
        await kernel.init_module(data, "", flags=MODULE_INIT_COMPRESSED_FILE if xz else 0)
    assert kernel.loaded["tables"].live and made == ([(True, True)] if xz else [])
    await kernel.delete_module("tables")
