"""The emulated kernel's address space.

Unicorn cannot place code at high canonical addresses with its default
memory model, so the CPU runs with a virtual TLB (`UC_TLB_VIRTUAL`): every
TLB miss asks our page table (`AddressSpace._tlb_fill`) for the physical page
and its permissions, exactly as the MMU walks Linux's page tables.  Physical
memory is Unicorn `mem_map`ped regions that we allocate and free; a virtual
mapping points at pages inside one of them.

Python reads and writes go through the same page table and ignore the
write and execute permissions, as the kernel's own accesses to module text
do (text_poke); an access to an unmapped address, or to a page that is not
readable at all (the execute-only stubs of a real kernel's exports kloader
does not emulate: data there would be placeholder bytes), raises
`GuestFault`, which the CPU turns into an oops of the task whose kernel
call made it.
"""

from __future__ import annotations

import bisect
import ctypes
import functools
import mmap
import struct

from unicorn import (UC_MEM_FETCH, UC_MEM_WRITE, UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ,
                     UC_PROT_WRITE, Uc)
from unicorn.unicorn_const import UC_CTL_IO_WRITE as _UC_CTL_IO_WRITE
from unicorn.unicorn_const import UC_CTL_TLB_FLUSH as _UC_CTL_TLB_FLUSH
from unicorn.unicorn_const import UC_HOOK_TLB_FILL
from unicorn.unicorn_py3.unicorn import uclib

from ..config import PAGE_SHIFT, PAGE_SIZE, PHYS_BASE, PHYS_END

PAGE_MASK = ~(PAGE_SIZE - 1)

_ACCESS_NAMES = {UC_MEM_WRITE: "write", UC_MEM_FETCH: "exec"}
_ACCESS_PROT = {UC_MEM_WRITE: UC_PROT_WRITE, UC_MEM_FETCH: UC_PROT_EXEC}


class GuestFault(Exception):
    """An access to an address no page maps (or, from the CPU, one its
    permissions forbid): the emulated equivalent of a kernel page fault."""

    def __init__(self, address: int, access: str, *, present: bool = False) -> None:
        super().__init__(f"{access} fault at {address:#x}")
        self.address = address
        self.access = access          # "read" | "write" | "exec"
        self.present = present        # a permissions violation rather than a missing page


@functools.cache
def parse_perms(perms: str) -> int:
    """`"r-x"` → Unicorn protection bits; the notation of /proc/*/maps."""
    if len(perms) != 3 or any(c not in allowed for c, allowed in zip(perms, ("r-", "w-", "x-"))):
        raise ValueError(f"bad permissions {perms!r}: want e.g. 'r-x'")
    prot = 0
    if perms[0] == "r":
        prot |= UC_PROT_READ
    if perms[1] == "w":
        prot |= UC_PROT_WRITE
    if perms[2] == "x":
        prot |= UC_PROT_EXEC
    return prot


def page_align(size: int) -> int:
    return (size + PAGE_SIZE - 1) & PAGE_MASK


ARENA_SIZE = 64 << 20     # physical memory is mapped into Unicorn this much at a time
_DEVICE = -1              # the "chunk" of a page table entry pointing at a device page (map_io)
DEAD_CODE_FLUSH = 1 << 20  # bytes of executable pages unmapped between two flushes of translated code


class RegionAllocator:
    """First-fit, page-granular allocator of address ranges in [base, end).

    It hands out addresses only; mapping them is the caller's business.  Used
    for the module area (a module's core and init images), kernel stacks and
    physical memory.
    """

    def __init__(self, base: int, end: int) -> None:
        if base % PAGE_SIZE or end % PAGE_SIZE or end <= base:
            raise ValueError("region bounds must be page aligned and non-empty")
        self.base = base
        self.end = end
        self._free: list[tuple[int, int]] = [(base, end - base)]   # sorted (start, size)
        self._used: dict[int, int] = {}
        self.used = 0                       # bytes handed out and not yet freed

    def alloc(self, size: int) -> int:
        size = page_align(max(size, 1))
        for i, (start, length) in enumerate(self._free):
            if length >= size:
                if length == size:
                    del self._free[i]
                else:
                    self._free[i] = (start + size, length - size)
                self._used[start] = size
                self.used += size
                return start
        raise MemoryError(f"no {size:#x}-byte range left in [{self.base:#x}, {self.end:#x})")

    def free(self, addr: int) -> None:
        size = self._used.pop(addr, None)
        if size is None:
            raise ValueError(f"{addr:#x} was not allocated here")
        self.used -= size
        i = bisect.bisect(self._free, (addr, 0))
        # coalesce with the following and the preceding free range
        if i < len(self._free) and addr + size == self._free[i][0]:
            size += self._free[i][1]
            del self._free[i]
        if i > 0 and self._free[i - 1][0] + self._free[i - 1][1] == addr:
            addr, size = self._free[i - 1][0], self._free[i - 1][1] + size
            del self._free[i - 1]
            i -= 1
        self._free.insert(i, (addr, size))


class _Batch:
    """The context manager `AddressSpace.batch` returns (a class: entering a
    generator-based one costs more than the flushes it saves)."""

    __slots__ = ("_mem",)

    def __init__(self, mem: "AddressSpace") -> None:
        self._mem = mem

    def __enter__(self) -> None:
        self._mem._batching += 1

    def __exit__(self, *_exc: object) -> None:
        mem = self._mem
        mem._batching -= 1
        if not mem._batching and mem._flush_pending:
            mem._flush_pending = False
            mem._flush_tlb()


class AddressSpace:
    """Virtual memory of the emulated kernel: a page table over Unicorn's
    physical regions, shared by the guest CPU and the Python kernel."""

    def __init__(self, uc: Uc) -> None:
        self.uc = uc
        # vpn -> [physical address of the page, protection, physical chunk base]
        self._pt: dict[int, list[int]] = {}
        self._phys = RegionAllocator(PHYS_BASE, PHYS_END)
        # Mapped physical arenas: index -> the host memory behind it (see _back).
        self._arenas: dict[int, mmap.mmap] = {}
        self._phys_high = PHYS_BASE                  # above this, memory was never used
        self._chunk_pages: dict[int, int] = {}      # physical chunk -> pages still mapped
        self._dead_code = 0                          # executable bytes unmapped since the last flush
        # The last access the TLB refused: what the CPU reports as a fault.
        self.last_fault: GuestFault | None = None
        self._batching = 0                           # batches open (see batch())
        self._flush_pending = False
        # The pages the CPU's TLB may hold: every one `_tlb_fill` answered
        # since the last flush (see _invalidate).
        self._cached: set[int] = set()
        self._batch = _Batch(self)
        self._uch = uc._uch
        self._buf = ctypes.create_string_buffer(8)
        # A scratch page the CPU may borrow to replay a faulting access (see probe).
        self._probe_vpn = -1
        self.probe_phys = self._phys.alloc(PAGE_SIZE)
        self._back(self.probe_phys, PAGE_SIZE)
        uc.hook_add(UC_HOOK_TLB_FILL, self._tlb_fill)

    # --- the MMU -----------------------------------------------------------

    def _tlb_fill(self, uc: Uc, vaddr: int, access: int, entry, _data) -> bool:
        vpn = vaddr >> PAGE_SHIFT
        if vpn == self._probe_vpn:
            entry.paddr = self.probe_phys
            entry.perms = UC_PROT_READ | UC_PROT_WRITE
            return True
        pte = self._pt.get(vpn)
        need = _ACCESS_PROT.get(access, UC_PROT_READ)
        if pte is None or not pte[1] & need:
            self.last_fault = GuestFault(vaddr, _ACCESS_NAMES.get(access, "read"),
                                         present=pte is not None)
            return False                  # nothing is cached for a refused access
        entry.paddr = pte[0]
        entry.perms = pte[1]
        self._cached.add(vpn)
        return True

    def probe(self, addr: int | None) -> None:
        """Back addr's page with a scratch page (None: stop), so the CPU can
        replay a faulting instruction and learn the exact address it touched."""
        self._probe_vpn = -1 if addr is None else addr >> PAGE_SHIFT
        self._flush_tlb()

    def _flush_tlb(self) -> None:
        if self._batching:
            self._flush_pending = True
        else:
            self.uc.ctl(_UC_CTL_TLB_FLUSH, _UC_CTL_IO_WRITE)
            self._cached.clear()

    def _invalidate(self, first: int, npages: int) -> None:
        """Pages [first, first+npages) lose permissions or their mapping:
        flush the TLB if it may hold any of them.  It holds only pages the
        CPU touched since the last flush (a miss asks `_tlb_fill`), so a
        module's fresh images, mapped, written from Python and protected
        before any guest code runs in them, cost no flush (nor the CPU a
        refill of every page it uses after one).  A flush also empties the
        cache in which translated code finds its next block without the
        TLB; but code runs only from pages the TLB was filled with, so those
        are counted too.  New mappings never need a flush: the TLB cannot
        hold a page that was not mapped."""
        cached = self._cached
        if cached and not cached.isdisjoint(range(first, first + npages)):
            self._flush_tlb()

    def batch(self) -> "_Batch":
        """`with mem.batch():` maps, protects and unmaps several ranges with
        one TLB flush, at the end: each flush also costs the next guest run
        a TLB fill per page it touches, and a module load changed its
        mappings seven times before its init ran.  Guest code that runs
        before the batch ends (another task, at an `await` inside it) may
        still find a changed page's old permissions in the TLB: fine for
        pages no guest code has touched since they were mapped, as a
        module's fresh images (a TLB never holds a page that was not mapped)."""
        return self._batch

    # --- mappings ------------------------------------------------------------

    def map(self, addr: int, size: int, perms: str = "rw-") -> None:
        """Back [addr, addr+size) with fresh zeroed pages."""
        if addr % PAGE_SIZE:
            raise ValueError(f"map: {addr:#x} is not page aligned")
        size = page_align(size)
        prot = parse_perms(perms)
        first = addr >> PAGE_SHIFT
        npages = size >> PAGE_SHIFT
        for vpn in range(first, first + npages):
            if vpn in self._pt:
                raise ValueError(f"map: {vpn << PAGE_SHIFT:#x} is already mapped")
        phys = self._phys.alloc(size)
        self._back(phys, size)
        self._chunk_pages[phys] = npages
        for i in range(npages):
            self._pt[first + i] = [phys + (i << PAGE_SHIFT), prot, phys]

    def alias(self, addr: int, source: int, size: int, perms: str = "r--") -> None:
        """Map [addr, addr+size) onto the physical pages behind [source, ...),
        as the direct map shows the kernel image's pages a second time: a
        write through either address is seen through both."""
        if addr % PAGE_SIZE:
            raise ValueError(f"alias: {addr:#x} is not page aligned")
        ptes = self._ptes(source, size)
        first = addr >> PAGE_SHIFT
        if any(vpn in self._pt for vpn in range(first, first + len(ptes))):
            raise ValueError(f"alias: [{addr:#x}, +{size:#x}) is already mapped")
        prot = parse_perms(perms)
        for i, pte in enumerate(ptes):
            if pte[2] != _DEVICE:
                self._chunk_pages[pte[2]] += 1
            self._pt[first + i] = [pte[0], prot, pte[2]]

    def map_io(self, addr: int, size: int, phys: int) -> None:
        """Point [addr, addr+size) at the device page `phys` (a region of
        `uc.mmio_map`, whose callbacks answer every access), as ioremap
        maps a device's registers: every page of the range is that one page."""
        first = addr >> PAGE_SHIFT
        npages = page_align(size) >> PAGE_SHIFT
        if addr % PAGE_SIZE or any(vpn in self._pt for vpn in range(first, first + npages)):
            raise ValueError(f"map_io: [{addr:#x}, +{size:#x}) is misaligned or mapped")
        for vpn in range(first, first + npages):
            self._pt[vpn] = [phys, UC_PROT_READ | UC_PROT_WRITE, _DEVICE]

    def _back(self, phys: int, size: int) -> None:
        """Make [phys, phys+size) zeroed RAM.

        Physical memory is mapped into Unicorn in large arenas, once: each
        `mem_map` costs more the more regions exist (QEMU rebuilds its flat
        view of them), so a region per mapping made every load slower the more
        modules were loaded.  Runs handed out again are zeroed here; memory
        above the high-water mark has never been written and is zero already.
        """
        first = (phys - PHYS_BASE) // ARENA_SIZE
        last = (phys + size - 1 - PHYS_BASE) // ARENA_SIZE
        for arena in range(first, last + 1):
            if arena not in self._arenas:
                # Host memory of our own (private and anonymous, as Unicorn's
                # own would be), so that `write_data` can reach it directly.
                ram = mmap.mmap(-1, ARENA_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
                host = ctypes.addressof(ctypes.c_char.from_buffer(ram))
                self.uc.mem_map_ptr(PHYS_BASE + arena * ARENA_SIZE, ARENA_SIZE, UC_PROT_ALL, host)
                self._arenas[arena] = ram
        reused = min(size, self._phys_high - phys)
        if reused > 0:
            # Through Unicorn (never around it): this also forgets code
            # translated from the run (see unmap).
            self.uc.mem_write(phys, bytes(reused))
        self._phys_high = max(self._phys_high, phys + size)

    def protect(self, addr: int, size: int, perms: str) -> None:
        """Change permissions, as set_memory_ro/set_memory_x do."""
        prot = parse_perms(perms)
        ptes = self._ptes(addr, size)
        for pte in ptes:
            pte[1] = prot
        self._invalidate(addr >> PAGE_SHIFT, len(ptes))

    def unmap(self, addr: int, size: int) -> None:
        """Drop the pages; physical memory goes once none of it is mapped."""
        ptes = self._ptes(addr, size)
        first = addr >> PAGE_SHIFT
        for i, pte in enumerate(ptes):
            del self._pt[first + i]
            if pte[1] & UC_PROT_EXEC:
                self._dead_code += PAGE_SIZE
            chunk = pte[2]
            if chunk == _DEVICE:
                continue
            self._chunk_pages[chunk] -= 1
            if not self._chunk_pages[chunk]:
                del self._chunk_pages[chunk]
                self._phys.free(chunk)
        # Translated code is cached by physical address, which a later
        # mapping may reuse for different bytes: `_back` zeroes a reused run
        # with uc_mem_write, which drops what was translated from it (QEMU
        # tracks pages holding translated code).  Flushing every translation
        # here made each load retranslate the kernel's stubs and every other
        # module's code as well.  But a dropped translation keeps its room in
        # the translation cache, which QEMU gives back only by flushing all
        # of it: a module loaded and removed over and over (each time at a
        # fresh address, the old one quarantined) grew the daemon by ~2 KiB
        # a cycle, up to the cache's size.  So the cache is flushed once
        # DEAD_CODE_FLUSH bytes of code have gone: rarely enough that the
        # retranslation is spread thin, often enough to bound the garbage.
        self._invalidate(first, len(ptes))
        if self._dead_code >= DEAD_CODE_FLUSH:
            self._dead_code = 0
            self.uc.ctl_flush_tb()

    def _ptes(self, addr: int, size: int) -> list[list[int]]:
        if addr % PAGE_SIZE:
            raise ValueError(f"{addr:#x} is not page aligned")
        first = addr >> PAGE_SHIFT
        ptes = []
        for vpn in range(first, first + (page_align(size) >> PAGE_SHIFT)):
            pte = self._pt.get(vpn)
            if pte is None:
                raise ValueError(f"{vpn << PAGE_SHIFT:#x} is not mapped")
            ptes.append(pte)
        return ptes

    def is_mapped(self, addr: int) -> bool:
        return (addr >> PAGE_SHIFT) in self._pt

    def perms(self, addr: int) -> str | None:
        """`"r-x"`-style permissions of the page holding addr, None if unmapped."""
        pte = self._pt.get(addr >> PAGE_SHIFT)
        if pte is None:
            return None
        p = pte[1]
        return ("r" if p & UC_PROT_READ else "-") + ("w" if p & UC_PROT_WRITE else "-") + \
               ("x" if p & UC_PROT_EXEC else "-")

    def translate(self, addr: int, access: str = "read") -> int:
        """The physical address behind `addr`, for the kernel's own access:
        a page that is not readable (execute-only: a not-emulated export's
        stub) faults as an unmapped one, present."""
        pte = self._pt.get(addr >> PAGE_SHIFT)
        if pte is None or not pte[1] & UC_PROT_READ:
            raise GuestFault(addr, access, present=pte is not None)
        return pte[0] | (addr & (PAGE_SIZE - 1))

    # --- data access from Python --------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        addr &= _MASK64
        if n <= 0:
            return b""
        end_in_page = PAGE_SIZE - (addr & (PAGE_SIZE - 1))
        if n <= end_in_page:
            return bytes(self.uc.mem_read(self.translate(addr), n))
        out = bytearray()
        while n:
            chunk = min(n, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            out += self.uc.mem_read(self.translate(addr), chunk)
            addr = (addr + chunk) & _MASK64
            n -= chunk
        return bytes(out)

    def read_code(self, addr: int, n: int) -> bytes:
        """`read` that an execute-only page does not stop: the bytes of a
        not-emulated export's stub for an oops's Code: line."""
        out = bytearray()
        while n > 0:
            pte = self._pt.get(addr >> PAGE_SHIFT)
            if pte is None:
                raise GuestFault(addr, "read")
            chunk = min(n, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            out += self.uc.mem_read(pte[0] | (addr & (PAGE_SIZE - 1)), chunk)
            addr, n = (addr + chunk) & _MASK64, n - chunk
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        addr &= _MASK64
        data = bytes(data)
        # Check the whole range first: a fault must not leave a partial write.
        for page in range(addr & PAGE_MASK, addr + len(data), PAGE_SIZE):
            pte = self._pt.get(page >> PAGE_SHIFT)
            if pte is None or not pte[1] & UC_PROT_READ:
                raise GuestFault(max(page, addr), "write", present=pte is not None)
        # Pages mapped together are physically contiguous: one uc_mem_write
        # per run of them, not per page (a 56 MiB module was 14,000 writes
        # and as many slices, on the event loop).
        runs: list[list[int]] = []         # [physical address, start, end] in data
        patched_code = False
        off = 0
        while off < len(data):
            chunk = min(len(data) - off, PAGE_SIZE - ((addr + off) & (PAGE_SIZE - 1)))
            pte = self._pt[(addr + off) >> PAGE_SHIFT]
            patched_code |= bool(pte[1] & UC_PROT_EXEC)
            phys = pte[0] | ((addr + off) & (PAGE_SIZE - 1))
            if runs and runs[-1][0] + runs[-1][2] - runs[-1][1] == phys:
                runs[-1][2] += chunk
            else:
                runs.append([phys, off, off + chunk])
            off += chunk
        for phys, start, end in runs:
            self.uc.mem_write(phys, data[start:end] if end - start < len(data) else data)
        if patched_code:
            # text_poke: code already translated must not run in its old form.
            self.uc.ctl_flush_tb()

    def write_data(self, addr: int, data: bytes) -> None:
        """Write `data` at `addr`, within one page that never holds code (the
        heap's), straight into the host memory behind it: a fifth of a
        `uc_mem_write`, for kfree's poisoning and kzalloc's zeroing.  Going
        around Unicorn skips its check for translated code in the page, which
        memory that is never executable does not need: a physical run reused
        after holding code is zeroed through Unicorn when it is mapped again
        (`_back`), which drops those translations."""
        ram, offset = self._host(addr, "write")
        if ram is None:
            self.write(addr, data)
        else:
            ram[offset:offset + len(data)] = data

    def word(self, addr: int) -> ctypes.c_uint64:
        """The 8 bytes of RAM at `addr` as a host object, for a value another
        thread stores while guest code runs: the tick's `jiffies`.  An
        aligned 8-byte store is atomic on x86, and guest loads read the same
        host memory (never executable, so no translation depends on it)."""
        if addr % 8:
            raise ValueError(f"word: {addr:#x} is not 8-byte aligned")
        ram, offset = self._host(addr, "write")
        if ram is None:
            raise ValueError(f"word: {addr:#x} is device memory")
        return ctypes.c_uint64.from_buffer(ram, offset)

    def _host(self, addr: int, access: str) -> tuple[mmap.mmap | None, int]:
        """The host memory behind `addr`'s page and the offset of `addr` in
        it; None for a device page (map_io), which only Unicorn's callbacks
        answer."""
        pte = self._pt.get((addr & _MASK64) >> PAGE_SHIFT)
        if pte is None or not pte[1] & UC_PROT_READ:
            raise GuestFault(addr, access, present=pte is not None)
        if pte[2] == _DEVICE:
            return None, 0
        arena, offset = divmod(pte[0] - PHYS_BASE, ARENA_SIZE)
        return self._arenas[arena], offset + (addr & (PAGE_SIZE - 1))

    def read_cstr(self, addr: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string (without the NUL), at most `limit` bytes."""
        out = bytearray()
        while len(out) < limit:
            chunk = min(limit - len(out), PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            # Searched in the host memory behind the page: reading around
            # Unicorn sees what guest code stored (it stores there too), and
            # copies only the string, not the rest of its page.
            ram, offset = self._host(addr, "read")
            data: bytes | mmap.mmap = ram if ram is not None else self.read(addr, chunk)
            if ram is None:             # a device page: what its callbacks answer
                offset = 0
            nul = data.find(b"\0", offset, offset + chunk)
            if nul >= 0:
                out += data[offset:nul]
                return bytes(out)
            out += data[offset:offset + chunk]
            addr += chunk
        return bytes(out)

    def _read_int(self, addr: int, fmt: struct.Struct) -> int:
        # Kernel functions read guest integers all the time: straight into a
        # reused buffer when the value sits in one page.
        addr &= _MASK64
        pte = self._pt.get(addr >> PAGE_SHIFT)
        if pte is not None and pte[1] & UC_PROT_READ and (addr & (PAGE_SIZE - 1)) + fmt.size <= PAGE_SIZE:
            uclib.uc_mem_read(self._uch, pte[0] | (addr & (PAGE_SIZE - 1)), self._buf, fmt.size)
            return fmt.unpack_from(self._buf)[0]
        return fmt.unpack(self.read(addr, fmt.size))[0]

    def _write_int(self, addr: int, fmt: struct.Struct, value: int) -> None:
        self.write(addr, fmt.pack(value & ((1 << (8 * fmt.size)) - 1)))

    def read_u8(self, addr: int) -> int: return self._read_int(addr, _U8)
    def read_u16(self, addr: int) -> int: return self._read_int(addr, _U16)
    def read_u32(self, addr: int) -> int: return self._read_int(addr, _U32)
    def read_u64(self, addr: int) -> int: return self._read_int(addr, _U64)
    def read_s8(self, addr: int) -> int: return self._read_int(addr, _S8)
    def read_s16(self, addr: int) -> int: return self._read_int(addr, _S16)
    def read_s32(self, addr: int) -> int: return self._read_int(addr, _S32)
    def read_s64(self, addr: int) -> int: return self._read_int(addr, _S64)
    def write_u8(self, addr: int, value: int) -> None: self._write_int(addr, _U8, value)
    def write_u16(self, addr: int, value: int) -> None: self._write_int(addr, _U16, value)
    def write_u32(self, addr: int, value: int) -> None: self._write_int(addr, _U32, value)
    def write_u64(self, addr: int, value: int) -> None: self._write_int(addr, _U64, value)


_MASK64 = (1 << 64) - 1
_U8, _U16, _U32, _U64 = (struct.Struct(f) for f in ("<B", "<H", "<I", "<Q"))
_S8, _S16, _S32, _S64 = (struct.Struct(f) for f in ("<b", "<h", "<i", "<q"))
