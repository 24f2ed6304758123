"""seq_file: files made of records, as Linux's fs/seq_file.c.

A module's `seq_operations` (`start`, `next`, `stop`, `show`) walk its
records; `seq_read` fills a buffer of `PAGE_SIZE` (doubled while one record
does not fit) with as many records as the reader asked for, keeps what did
not fit for the next read, and re-walks from the start (`traverse`) when a
read or `lseek` asks for a position other than where it stopped.
`seq_printf`/`seq_puts`/`seq_putc`/`seq_write` append to the buffer and
mark it overflowed when it is full; `single_open` makes a one-record file
of a `show` function.  The algorithm is `seq_read_iter`'s, step for step,
including "buggy .next function %ps did not update position index".

`struct seq_file` lives in kernel memory with Linux 6.6's layout (module
code reads `m->private`, `m->file`, `m->count`); its mutex is a trio lock
kept here, by the structure's address.  `seq_read` is also called from
Python (procfs's `proc_create_single`/`proc_create_seq`, and `proc_read =
seq_read` without a round trip through the CPU) with `read_records()`.

Where kloader differs: `single_start`, `single_next` and `single_stop` are
kernel functions with symbols (Linux's are static), so the
`seq_operations` that single_open allocates point at real code.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import trio

from ..kernel.api import export
from ..kernel.api.printk import format_guest
from ..kernel.oops import NotEmulated
from ..kernel.printk import KERN_INFO, VaList
from ..mm.usercopy import MAX_RW_COUNT, user_space
from .file import FILE, file_field, signed64

STRUCTS = (FILE,)            # what these functions read at the kernel's offsets

if TYPE_CHECKING:
    from ..kernel.kernel import Kernel

PAGE_SIZE = 4096
SEQ_START_TOKEN = 1
FMODE_PWRITE = 0x10
# struct seq_file (include/linux/seq_file.h, Linux 6.6)
SEQ_FILE_SIZE = 120
M_BUF, M_SIZE, M_FROM, M_COUNT, M_PAD_UNTIL, M_INDEX, M_READ_POS = 0, 8, 16, 24, 32, 40, 48
M_LOCK, M_OP, M_POLL_EVENT, M_FILE, M_PRIVATE = 56, 88, 96, 104, 112
# struct seq_operations
SEQ_OPS_SIZE = 32
OP_START, OP_STOP, OP_NEXT, OP_SHOW = 0, 8, 16, 24

Call = Callable[..., Awaitable[int]]       # call(fn, *args) -> %rax: module code through a pointer


def _is_err(value: int) -> bool:
    return value >= (1 << 64) - 4095


class SeqFiles:
    """The per-seq_file locks (m->lock) of one kernel."""

    def __init__(self, kernel: "Kernel") -> None:
        self.locks: dict[int, trio.Lock] = {}

    def lock(self, m: int) -> trio.Lock:
        return self.locks.setdefault(m, trio.Lock())


class SeqFile:
    """A view of one `struct seq_file` in kernel memory."""

    def __init__(self, kernel: "Kernel", address: int, call: Call) -> None:
        self.kernel, self.m, self.call = kernel, address, call
        self.mem = kernel.mem

    def get(self, offset: int) -> int:
        return self.mem.read_u64(self.m + offset)

    def set(self, offset: int, value: int) -> None:
        self.mem.write_u64(self.m + offset, value & ((1 << 64) - 1))

    def op(self, which: int) -> int:
        return self.mem.read_u64(self.get(M_OP) + which)

    def overflowed(self) -> bool:
        return self.get(M_COUNT) == self.get(M_SIZE)

    def alloc_buf(self, size: int) -> bool:
        """seq_buf_alloc(m->size = size): kvmalloc, NULL beyond MAX_RW_COUNT."""
        old = self.get(M_BUF)
        if old:
            self.kernel.slab.free(old, None)
        self.set(M_BUF, 0)
        self.set(M_SIZE, size)
        if size > MAX_RW_COUNT:
            return False
        buf = self.kernel.slab.alloc(size, None)
        self.set(M_BUF, buf)
        return bool(buf)

    async def start(self) -> int:
        return await self.call(self.op(OP_START), self.m, self.m + M_INDEX)

    async def next(self, p: int) -> int:
        return await self.call(self.op(OP_NEXT), self.m, p, self.m + M_INDEX)

    async def stop(self, p: int) -> None:
        await self.call(self.op(OP_STOP), self.m, p)

    async def show(self, p: int) -> int:
        return _int(await self.call(self.op(OP_SHOW), self.m, p))

    async def traverse(self, offset: int) -> int:
        """Walk the records from the start up to `offset`: 0, an errno, or
        -EAGAIN when the buffer had to grow (call again)."""
        self.set(M_INDEX, 0)
        self.set(M_COUNT, 0)
        self.set(M_FROM, 0)
        if not offset:
            return 0
        if not self.get(M_BUF) and not self.alloc_buf(PAGE_SIZE):
            return -errno.ENOMEM
        pos, error = 0, 0
        p = await self.start()
        while p:
            if _is_err(p):
                error = signed64(p)
                break
            error = await self.show(p)
            if error < 0:
                break
            if error:
                error = 0
                self.set(M_COUNT, 0)
            if self.overflowed():
                await self.stop(p)
                self.set(M_COUNT, 0)
                return -errno.EAGAIN if self.alloc_buf(self.get(M_SIZE) << 1) else -errno.ENOMEM
            p = await self.next(p)
            count = self.get(M_COUNT)
            if pos + count > offset:
                self.set(M_FROM, offset - pos)
                self.set(M_COUNT, count - (offset - pos))
                break
            pos += count
            self.set(M_COUNT, 0)
            if pos == offset:
                break
        await self.stop(p)
        return error

    async def read(self, size: int, ki_pos: int) -> tuple[bytes, int]:
        """seq_read_iter for `size` bytes at position `ki_pos`: (bytes, error);
        the bytes are empty and the error an -errno, or 0 at the end."""
        if not size:
            return b"", 0
        async with self.kernel.subsystem(SeqFiles).lock(self.m):
            return await self._read(size, ki_pos)

    async def _read(self, size: int, ki_pos: int) -> tuple[bytes, int]:
        mem, out, err = self.mem, bytearray(), 0
        if ki_pos == 0:
            self.set(M_INDEX, 0)
            self.set(M_COUNT, 0)
        if ki_pos != signed64(self.get(M_READ_POS)):
            while (err := await self.traverse(ki_pos)) == -errno.EAGAIN:
                pass
            if err:
                self.set(M_READ_POS, 0)
                self.set(M_INDEX, 0)
                self.set(M_COUNT, 0)
                return b"", err
            self.set(M_READ_POS, ki_pos)
        if not self.get(M_BUF) and not self.alloc_buf(PAGE_SIZE):
            return b"", -errno.ENOMEM
        count = self.get(M_COUNT)
        if count:                                   # what the last read left
            n = min(count, size)
            out += mem.read(self.get(M_BUF) + self.get(M_FROM), n)
            self.set(M_COUNT, count - n)
            self.set(M_FROM, self.get(M_FROM) + n)
            if count - n:
                return self._done(bytes(out), 0)
        self.set(M_FROM, 0)
        p = await self.start()
        while True:
            if not p or _is_err(p):                 # EOF or an error
                err = signed64(p) if p else 0
                await self.stop(p)
                self.set(M_COUNT, 0)
                return self._done(bytes(out), err)
            err = await self.show(p)
            if err < 0:
                await self.stop(p)
                self.set(M_COUNT, 0)
                return self._done(bytes(out), err)
            if err:
                self.set(M_COUNT, 0)               # ->show() says "skip it"
            if not self.get(M_COUNT):
                p = await self.next(p)
                continue
            if not self.overflowed():
                break
            await self.stop(p)                      # need a bigger buffer
            self.set(M_COUNT, 0)
            if not self.alloc_buf(self.get(M_SIZE) << 1):
                return self._done(bytes(out), -errno.ENOMEM)
            p = await self.start()
        want = size - len(out)
        while True:                                 # Fill: more records, if they fit
            offs, index = self.get(M_COUNT), self.get(M_INDEX)
            p = await self.next(p)
            if index == self.get(M_INDEX):
                name = self.kernel.symbolize(self.op(OP_NEXT), False) or hex(self.op(OP_NEXT))
                self.kernel.log.emit(KERN_INFO, f"buggy .next function {name} did not update "
                                                "position index", None)
                self.set(M_INDEX, index + 1)
            if not p or _is_err(p) or self.get(M_COUNT) >= want:
                break
            err = await self.show(p)
            if err > 0:
                self.set(M_COUNT, offs)
            elif err or self.overflowed():
                self.set(M_COUNT, offs)
                break
        await self.stop(p)
        count = self.get(M_COUNT)
        n = min(count, want)
        out += mem.read(self.get(M_BUF), n)
        self.set(M_COUNT, count - n)
        self.set(M_FROM, n)
        return self._done(bytes(out), 0)

    def _done(self, out: bytes, err: int) -> tuple[bytes, int]:
        if out:
            self.set(M_READ_POS, self.get(M_READ_POS) + len(out))
            return out, 0
        return b"", (-errno.EFAULT if self.get(M_COUNT) else err)

    async def lseek(self, file: int, offset: int, whence: int) -> int:
        """seq_lseek: SEEK_SET and SEEK_CUR, by re-walking the records."""
        async with self.kernel.subsystem(SeqFiles).lock(self.m):
            offset = signed64(offset)
            if whence == 1:
                offset += self.mem.read_s64(file_field(self.kernel, file, "f_pos"))
            elif whence != 0:
                return -errno.EINVAL
            if offset < 0:
                return -errno.EINVAL
            if offset == signed64(self.get(M_READ_POS)):
                self.mem.write_u64(file_field(self.kernel, file, "f_pos"), offset)
                return offset
            while (ret := await self.traverse(offset)) == -errno.EAGAIN:
                pass
            if ret:
                self.mem.write_u64(file_field(self.kernel, file, "f_pos"), 0)
                self.set(M_READ_POS, 0)
                return ret
            self.set(M_READ_POS, offset)
            self.mem.write_u64(file_field(self.kernel, file, "f_pos"), offset)
            return offset


def _int(value: int) -> int:
    """An `int` a callback returned in %eax."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def guest_caller(ctx: Any) -> Call:
    """Module code called from a kernel function running in a task."""
    registrations = ctx.kernel.registrations

    async def call(fn: int, *args: int) -> int:
        return await ctx.machine.call(fn, *args, module=registrations.module_at(fn) or ctx.module,
                                      name=ctx.task.comm)
    return call


def seq_of_file(kernel: "Kernel", file: int, call: Call) -> SeqFile:
    return SeqFile(kernel, kernel.mem.read_u64(file_field(kernel, file, "private_data")), call)


async def seq_read_file(kernel: "Kernel", file: int, size: int, call: Call) -> tuple[bytes, int]:
    """seq_read on a struct file, from Python: (bytes, -errno or 0), f_pos advanced."""
    pos = kernel.mem.read_s64(file_field(kernel, file, "f_pos"))
    data, err = await seq_of_file(kernel, file, call).read(size, pos)
    if data:
        kernel.mem.write_u64(file_field(kernel, file, "f_pos"), pos + len(data))
    return data, err


def release_seq(kernel: "Kernel", file: int) -> int:
    """seq_release's work: the buffer, the structure and its lock; the
    seq_operations pointer it held (for single_release to free)."""
    mem = kernel.mem
    m = mem.read_u64(file_field(kernel, file, "private_data"))
    if not m:
        return 0
    op = mem.read_u64(m + M_OP)
    buf = mem.read_u64(m + M_BUF)
    if buf:
        kernel.slab.free(buf, None)
    kernel.slab.free(m, None)
    kernel.subsystem(SeqFiles).locks.pop(m, None)
    return op


def open_seq(kernel: "Kernel", file: int, op: int) -> int:
    """seq_open: a zeroed seq_file as file->private_data; PWRITE goes."""
    m = kernel.slab.alloc(SEQ_FILE_SIZE, None, zero=True)
    if not m:
        return -errno.ENOMEM
    mem = kernel.mem
    mem.write_u64(file_field(kernel, file, "private_data"), m)
    mem.write_u64(m + M_OP, op)
    mem.write_u64(m + M_FILE, file)
    f_mode = file_field(kernel, file, "f_mode")
    mem.write_u32(f_mode, mem.read_u32(f_mode) & ~FMODE_PWRITE)
    return 0


def single_ops(kernel: "Kernel", show: int) -> int:
    """The seq_operations single_open allocates around a `show`."""
    symbols = kernel.machine.kernel_symbols()
    op = kernel.slab.alloc(SEQ_OPS_SIZE, None, zero=True)
    if not op:
        return 0
    mem = kernel.mem
    mem.write_u64(op + OP_START, symbols["single_start"])
    mem.write_u64(op + OP_STOP, symbols["single_stop"])
    mem.write_u64(op + OP_NEXT, symbols["single_next"])
    mem.write_u64(op + OP_SHOW, show)
    return op


def single_open_file(kernel: "Kernel", file: int, show: int, data: int) -> int:
    op = single_ops(kernel, show)
    if not op:
        return -errno.ENOMEM
    ret = open_seq(kernel, file, op)
    if ret:
        kernel.slab.free(op, None)
        return ret
    m = kernel.mem.read_u64(file_field(kernel, file, "private_data"))
    kernel.mem.write_u64(m + M_PRIVATE, data)
    return 0


def single_release_file(kernel: "Kernel", file: int) -> None:
    op = release_seq(kernel, file)
    if op:
        kernel.slab.free(op, None)


# -- the exported functions ---------------------------------------------------------

@export("seq_open", "int seq_open(struct file *file, const struct seq_operations *op)", nargs=2)
def seq_open(ctx: Any, file: int, op: int) -> int:
    return open_seq(ctx.kernel, file, op)


@export("seq_read", "ssize_t seq_read(struct file *file, char __user *buf, size_t size, loff_t *ppos)",
        nargs=4)
async def seq_read(ctx: Any, file: int, buf: int, size: int, ppos: int) -> int:
    kernel = ctx.kernel
    size = min(size, MAX_RW_COUNT)
    pos = ctx.mem.read_s64(ppos)
    data, err = await seq_of_file(kernel, file, guest_caller(ctx)).read(size, pos)
    if not data:
        return err
    left = user_space(kernel).copy_out(buf, data)
    if left == len(data):
        return -errno.EFAULT
    ctx.mem.write_u64(ppos, pos + len(data) - left)
    return len(data) - left


@export("seq_read_iter", "ssize_t seq_read_iter(struct kiocb *iocb, struct iov_iter *iter)", nargs=2)
def seq_read_iter(ctx: Any, iocb: int, iter: int) -> int:
    """Only a pointer to it means anything to kloader: procfs reads a file
    whose `.proc_read_iter` is seq_read_iter with seq_read's algorithm.
    kloader has no kiocb or iov_iter, so a direct call oopses, naming it."""
    raise NotEmulated("seq_read_iter")


@export("seq_lseek", "loff_t seq_lseek(struct file *file, loff_t offset, int whence)", nargs=3)
async def seq_lseek(ctx: Any, file: int, offset: int, whence: int) -> int:
    return await seq_of_file(ctx.kernel, file, guest_caller(ctx)).lseek(file, offset, whence & 0xFFFFFFFF)


@export("seq_release", "int seq_release(struct inode *inode, struct file *file)", nargs=2)
def seq_release(ctx: Any, inode: int, file: int) -> int:
    release_seq(ctx.kernel, file)
    return 0


@export("single_open", "int single_open(struct file *file, int (*show)(struct seq_file *, void *), "
                       "void *data)", nargs=3)
def single_open(ctx: Any, file: int, show: int, data: int) -> int:
    return single_open_file(ctx.kernel, file, show, data)


@export("single_open_size", "int single_open_size(struct file *file, int (*show)(struct seq_file *, "
                            "void *), void *data, size_t size)", nargs=4)
def single_open_size(ctx: Any, file: int, show: int, data: int, size: int) -> int:
    ret = single_open_file(ctx.kernel, file, show, data)
    if not ret:
        m = SeqFile(ctx.kernel, ctx.mem.read_u64(file_field(ctx.kernel, file, "private_data")),
                    guest_caller(ctx))
        if not m.alloc_buf(size):
            single_release_file(ctx.kernel, file)
            return -errno.ENOMEM
    return ret


@export("single_release", "int single_release(struct inode *inode, struct file *file)", nargs=2)
def single_release(ctx: Any, inode: int, file: int) -> int:
    single_release_file(ctx.kernel, file)
    return 0


@export("single_start", "void *single_start(struct seq_file *p, loff_t *pos)", nargs=2)
def single_start(ctx: Any, m: int, pos: int) -> int:
    return 0 if ctx.mem.read_u64(pos) else SEQ_START_TOKEN


@export("single_next", "void *single_next(struct seq_file *p, void *v, loff_t *pos)", nargs=3)
def single_next(ctx: Any, m: int, v: int, pos: int) -> int:
    ctx.mem.write_u64(pos, ctx.mem.read_u64(pos) + 1)
    return 0


@export("single_stop", "void single_stop(struct seq_file *p, void *v)", nargs=2)
def single_stop(ctx: Any, m: int, v: int) -> None:
    return None


@export("__seq_open_private", "void *__seq_open_private(struct file *f, const struct seq_operations *ops, "
                              "int psize)", nargs=3)
def __seq_open_private(ctx: Any, file: int, op: int, psize: int) -> int:
    kernel = ctx.kernel
    private = kernel.slab.alloc(psize & 0xFFFFFFFF, None, zero=True)
    if not private:
        return 0
    if open_seq(kernel, file, op):
        kernel.slab.free(private, None)
        return 0
    ctx.mem.write_u64(ctx.mem.read_u64(file_field(ctx.kernel, file, "private_data")) + M_PRIVATE, private)
    return private


@export("seq_open_private", "int seq_open_private(struct file *filp, const struct seq_operations *ops, "
                            "int psize)", nargs=3)
def seq_open_private(ctx: Any, file: int, op: int, psize: int) -> int:
    return 0 if __seq_open_private(ctx, file, op, psize) else -errno.ENOMEM


@export("seq_release_private", "int seq_release_private(struct inode *inode, struct file *file)", nargs=2)
def seq_release_private(ctx: Any, inode: int, file: int) -> int:
    m = ctx.mem.read_u64(file_field(ctx.kernel, file, "private_data"))
    if m:
        private = ctx.mem.read_u64(m + M_PRIVATE)
        if private:
            ctx.kernel.slab.free(private, None)
    release_seq(ctx.kernel, file)
    return 0


# -- writing records ----------------------------------------------------------------

def _append(ctx: Any, m: int, data: bytes) -> None:
    """Append to m->buf, or mark it overflowed (count = size) when it does not fit."""
    mem = ctx.mem
    count, size = mem.read_u64(m + M_COUNT), mem.read_u64(m + M_SIZE)
    if count + len(data) < size:
        mem.write(mem.read_u64(m + M_BUF) + count, data)
        mem.write_u64(m + M_COUNT, count + len(data))
    else:
        mem.write_u64(m + M_COUNT, size)


def _vprintf(ctx: Any, m: int, fmt: int, args: Any) -> None:
    mem = ctx.mem
    count, size = mem.read_u64(m + M_COUNT), mem.read_u64(m + M_SIZE)
    if count >= size:
        return
    text, length = format_guest(ctx, fmt, args, room=size - count)
    if count + length < size:
        mem.write(mem.read_u64(m + M_BUF) + count, text[:length])
        mem.write_u64(m + M_COUNT, count + length)
    else:
        mem.write_u64(m + M_COUNT, size)


@export("seq_printf", "void seq_printf(struct seq_file *m, const char *fmt, ...)", nargs=2, variadic=True)
def seq_printf(ctx: Any, m: int, fmt: int) -> None:
    _vprintf(ctx, m, fmt, ctx.va())


@export("seq_vprintf", "void seq_vprintf(struct seq_file *m, const char *fmt, va_list args)", nargs=3)
def seq_vprintf(ctx: Any, m: int, fmt: int, args: int) -> None:
    _vprintf(ctx, m, fmt, VaList(ctx.mem, args))


@export("seq_puts", "void seq_puts(struct seq_file *m, const char *s)", nargs=2)
def seq_puts(ctx: Any, m: int, s: int) -> None:
    _append(ctx, m, ctx.mem.read_cstr(s, MAX_RW_COUNT))


@export("seq_putc", "void seq_putc(struct seq_file *m, char c)", nargs=2)
def seq_putc(ctx: Any, m: int, c: int) -> None:
    mem = ctx.mem
    count, size = mem.read_u64(m + M_COUNT), mem.read_u64(m + M_SIZE)
    if count < size:
        mem.write(mem.read_u64(m + M_BUF) + count, bytes([c & 0xFF]))
        mem.write_u64(m + M_COUNT, count + 1)


@export("seq_write", "int seq_write(struct seq_file *seq, const void *data, size_t len)", nargs=3)
def seq_write(ctx: Any, m: int, data: int, length: int) -> int:
    mem = ctx.mem
    count, size = mem.read_u64(m + M_COUNT), mem.read_u64(m + M_SIZE)
    if count + length < size:
        mem.write(mem.read_u64(m + M_BUF) + count, mem.read(data, length))
        mem.write_u64(m + M_COUNT, count + length)
        return 0
    mem.write_u64(m + M_COUNT, size)
    return -1


# -- list helpers ---------------------------------------------------------------------

@export("seq_list_start", "struct list_head *seq_list_start(struct list_head *head, loff_t pos)", nargs=2)
def seq_list_start(ctx: Any, head: int, pos: int) -> int:
    mem = ctx.mem
    lh = mem.read_u64(head)
    while lh != head:
        if pos == 0:
            return lh
        pos -= 1
        lh = mem.read_u64(lh)
    return 0


@export("seq_list_start_head", "struct list_head *seq_list_start_head(struct list_head *head, loff_t pos)",
        nargs=2)
def seq_list_start_head(ctx: Any, head: int, pos: int) -> int:
    return head if not pos else seq_list_start(ctx, head, pos - 1)


@export("seq_list_next", "struct list_head *seq_list_next(void *v, struct list_head *head, loff_t *ppos)",
        nargs=3)
def seq_list_next(ctx: Any, v: int, head: int, ppos: int) -> int:
    mem = ctx.mem
    mem.write_u64(ppos, mem.read_u64(ppos) + 1)
    lh = mem.read_u64(v)
    return 0 if lh == head else lh
