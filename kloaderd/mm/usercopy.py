"""User memory and the copies across the user/kernel boundary.

A client's `read`/`write`/`ioctl` hands the module a `__user` pointer, as a
system call does.  User memory is *not* mapped in the emulated kernel's page
table: it lives in Python, one `UserBuffer` per system call, at an address in
the lower canonical half.  So a module that dereferences a `__user` pointer
directly faults, as it does on Linux with SMAP, and only `copy_to_user` /
`copy_from_user` (and what is built on them: get_user, put_user) reach it.

As Linux: `access_ok()` refuses a range that reaches above TASK_SIZE_MAX (a
kernel address passed as a user pointer), and a copy that meets memory the
process does not have stops there and returns the number of bytes *not*
copied, which the module turns into -EFAULT.  A fault on the kernel side of
the copy oopses.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..kernel.api import export

TASK_SIZE_MAX = (1 << 47) - 4096         # x86-64, 4-level paging
USER_BASE = 0x00007F0000000000           # where the buffers of system calls are placed
USER_GAP = 1 << 20                       # unmapped distance between two buffers
MAX_RW_COUNT = 0x7FFFF000                # Linux: INT_MAX & PAGE_MASK


@dataclass(eq=False)
class UserBuffer:
    address: int
    data: bytearray

    @property
    def end(self) -> int:
        return self.address + len(self.data)


class UserSpace:
    """The user memory of the system calls in progress."""

    def __init__(self, kernel) -> None:
        self._buffers: dict[int, UserBuffer] = {}
        self._next = USER_BASE

    @contextmanager
    def buffer(self, data: bytes | int) -> Iterator[UserBuffer]:
        """A user buffer holding `data` (or that many zero bytes) for one call."""
        content = bytearray(data) if not isinstance(data, int) else bytearray(data)
        span = (len(content) + USER_GAP + 0xFFF) & ~0xFFF
        if self._next + span >= TASK_SIZE_MAX:
            self._next = USER_BASE
        address = self._next           # calls in flight at once never share an address
        self._next += span
        buf = UserBuffer(address, content)
        self._buffers[address] = buf
        try:
            yield buf
        finally:
            del self._buffers[address]

    def _find(self, address: int) -> UserBuffer | None:
        for buf in self._buffers.values():
            if buf.address <= address < buf.end:
                return buf
        return None

    def copy_out(self, to: int, data: bytes) -> int:
        """Write `data` at user address `to`; the bytes not copied."""
        buf = self._find(to)
        if buf is None:
            return len(data)
        n = min(len(data), buf.end - to)
        buf.data[to - buf.address:to - buf.address + n] = data[:n]
        return len(data) - n

    def copy_in(self, frm: int, n: int) -> tuple[bytes, int]:
        """Read up to n bytes at user address `frm`: (bytes, count not copied)."""
        buf = self._find(frm)
        if buf is None:
            return b"", n
        got = bytes(buf.data[frm - buf.address:frm - buf.address + n])
        return got, n - len(got)


def access_ok(addr: int, size: int) -> bool:
    """x86's valid_user_address range check: the range stays below TASK_SIZE_MAX."""
    return size <= TASK_SIZE_MAX and addr <= TASK_SIZE_MAX - size


def user_space(kernel) -> UserSpace:
    return kernel.subsystem(UserSpace)


@export("_copy_to_user", "unsigned long _copy_to_user(void *to, const void *from, unsigned long n)",
        nargs=3)
def _copy_to_user(ctx, to: int, frm: int, n: int) -> int:
    if not access_ok(to, n):
        return n
    data = ctx.mem.read(frm, n)          # a bad kernel source oopses, as in Linux
    return user_space(ctx.kernel).copy_out(to, data)


@export("_copy_from_user", "unsigned long _copy_from_user(void *to, const void *from, unsigned long n)",
        nargs=3)
def _copy_from_user(ctx, to: int, frm: int, n: int) -> int:
    if not access_ok(frm, n):
        ctx.mem.write(to, bytes(n))      # Linux zeroes what it could not copy
        return n
    data, left = user_space(ctx.kernel).copy_in(frm, n)
    ctx.mem.write(to, data + bytes(left))
    return left


@export("clear_user", "unsigned long clear_user(void *to, unsigned long n)", nargs=2)
def clear_user(ctx, to: int, n: int) -> int:
    if not access_ok(to, n):
        return n
    return user_space(ctx.kernel).copy_out(to, bytes(n))
