"""Big module images (issue 14): held once while they load, and loaded while
other clients are answered.

A large section that no relocation patches is not copied by the linker: its
piece of the memory image is a view of the module file, written into
emulated memory from there.  These tests build a module with such a table
beside a table of pointers (which relocations patch, so it is copied), and
check that both arrive intact, through the kernel and through the daemon
with the image's frame sent in parts while another client is served.
"""

from __future__ import annotations

import functools
import shutil

import msgpack
import pytest
import trio

from kloader_client import AsyncClient
from kloaderd.elf.image import parse
from kloaderd.kernel.kernel import Kernel
from kloaderd.link import SHARE_MIN, layout_sections, link
from kloaderd.server.server import serve
from test_server import Raw

TABLES_C = r"""
#include <linux/init.h>
#include <linux/module.h>
#include <linux/errno.h>

#define N (1 << 17)
const unsigned char big_table[N] = { 1, 2, 3, [N - 1] = 7 };
const void *big_pointers[N / 8] = { big_table, &big_table[N - 1], [N / 8 - 1] = big_table + 5 };

static int __init tables_init(void)
{
	const volatile unsigned char *t = big_table;
	const void *const volatile *p = big_pointers;

	if (t[0] != 1 || t[2] != 3 || t[N / 2] != 0 || t[N - 1] != 7)
		return -EINVAL;
	if (p[0] != big_table || p[1] != &big_table[N - 1] || p[N / 8 - 1] != big_table + 5 || p[2])
		return -EFAULT;
	return 0;
}
static void __exit tables_exit(void) { }
module_init(tables_init);
module_exit(tables_exit);
MODULE_LICENSE("GPL");
"""


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if shutil.which("gcc") is None or shutil.which("ld") is None:
        pytest.skip("building a module needs gcc and ld")
    from kloaderd.build import build_module

    directory = tmp_path_factory.mktemp("tables")
    (directory / "tables.c").write_text(TABLES_C)
    return build_module([directory / "tables.c"], directory / "tables.ko").read_bytes()


def _section_of(image, symbol: str) -> int:
    return next(s.shndx for s in image.symbols if s.name == symbol)


def test_a_big_table_no_relocation_patches_is_shared_with_the_module_file(tables):
    image = parse(tables)
    layout = layout_sections(image)
    externals = {name: 0xFFFFFFFF81000000 for name in image.undefined}
    linked = link(image, layout, 0xFFFFFFFFA0000000, 0xFFFFFFFFA1000000, externals, percpu_base=0)
    table, pointers = _section_of(image, "big_table"), _section_of(image, "big_pointers")
    patched = {r.target for r in image.rela if r.count}
    assert table not in patched and pointers in patched
    assert image.sections[table].size >= SHARE_MIN

    def piece_holding(index: int):
        where, offset = layout.place(index)
        assert where == "core"
        return next(p for p in linked.core_pieces if p.offset <= offset < p.offset + len(p.data))

    shared, copied = piece_holding(table), piece_holding(pointers)
    # The table's piece is the section's view of the very bytes that were parsed.
    assert isinstance(shared.data, memoryview) and shared.data.obj is image.data
    assert isinstance(copied.data, bytearray)
    # ...and the image as a whole still reads as a copying linker would make it.
    offset = layout.place(table)[1]
    assert linked.core[offset:offset + image.sections[table].size] == image.sections[table].data
    # Sections never share a byte: each laid-out section lies inside exactly one piece.
    spans = sorted((p.offset, p.offset + len(p.data)) for p in linked.core_pieces)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))


@pytest.mark.trio
async def test_the_shared_table_and_the_relocated_pointers_arrive_intact(tables):
    kernel = Kernel()
    # The init checks both tables from the guest: -EINVAL / -EFAULT if not.
    assert await kernel.init_module(tables, "") == "tables"
    mod = kernel.loaded["tables"]
    assert mod.linked.core_pieces == ()         # given up once in emulated memory
    table = _section_of(mod.image, "big_table")
    base = mod.linked.section_addr[table]
    assert kernel.mem.read(base, 4) == bytes([1, 2, 3, 0])
    assert kernel.mem.read(base + (1 << 17) - 1, 1) == b"\x07"
    await kernel.delete_module("tables")


@pytest.mark.trio
async def test_a_big_image_sent_in_parts_loads_while_another_client_is_answered(tables, nursery, tmp_path):
    kernel = Kernel()
    path = await nursery.start(functools.partial(serve, kernel, str(tmp_path / "k.sock")))
    frame = msgpack.packb({"op": "init_module", "id": 1, "image": tables, "params": "", "flags": 0},
                          use_bin_type=True)
    loader = await Raw.connect(path)
    async with AsyncClient(path) as other:
        cut = len(frame) // 2
        await loader.sock.send(frame[:cut])
        # Half a frame in the loader's connection holds up nobody else.
        assert (await other.status())["modules"] == 0
        view = memoryview(frame)[cut:]
        while view:
            view = view[await loader.sock.send(view):]
        assert await loader.receive() == {"id": 1, "result": "tables"}
        assert [m["name"] for m in await other.modules()] == ["tables"]
        await other.delete_module("tables")
    loader.sock.close()
