"""debugfs files that show a variable (Linux's fs/debugfs/file.c):
`debugfs_create_u8/u16/u32/u64`, `_x8/x16/x32/x64` (hex), `_size_t`,
`_atomic_t`, `_bool`, and `_blob`.

Reads print the variable as Linux's attributes do ("%llu\\n", "0x%08llx\\n"
for x32, "%lld\\n" for atomic_t, "Y\\n"/"N\\n" for bool); writes parse it as
`simple_attr_write` does (kstrtoull with base 0 of at most 23 bytes;
-EINVAL for text that is no number, -ERANGE past 64 bits) and store it
truncated to the variable's width; bool takes kstrtobool's words.  The
variable is read and written in module memory at every access, so a
module sees a client's write at once.  The mode is the caller's (a file
without write bits cannot be opened for writing); a blob is read-only.
"""

from __future__ import annotations

import errno
import string
from typing import Any

from ...errors import KernelError
from ...kernel.api import export
from ..tree import Content
from .inode import create_file

SET_BUF = 24                 # simple_attr's set_buf: at most 23 bytes are parsed
_MASK64 = (1 << 64) - 1


def parse_ull(text: bytes, path: str) -> int:
    """kstrtoull(s, 0): 0x hex, leading 0 octal, else decimal; one trailing newline."""
    s = text.decode("ascii", "replace")
    if s.endswith("\n"):
        s = s[:-1]
    base, digits = 10, s
    if s[:2].lower() == "0x":
        base, digits = 16, s[2:]
    elif s.startswith("0") and len(s) > 1:
        base, digits = 8, s[1:]
    allowed = {16: string.hexdigits, 8: string.octdigits, 10: string.digits}[base]
    if not digits or not all(c in allowed for c in digits):
        raise KernelError(errno.EINVAL, f"write {path}: {s!r} is not a number (Invalid argument)")
    value = int(digits, base)
    if value > _MASK64:
        raise KernelError(errno.ERANGE, f"write {path}: {s} does not fit in 64 bits (Numerical result out "
                                        "of range)")
    return value


def parse_bool(text: bytes, path: str) -> bool:
    """kstrtobool: y/Y/1/on true, n/N/0/off false."""
    s = text[:2].lower()
    if s[:1] in (b"y", b"1") or s == b"on":
        return True
    if s[:1] in (b"n", b"0") or s == b"of":
        return False
    raise KernelError(errno.EINVAL, f"write {path}: {text[:16]!r} is not a boolean (Invalid argument)")


class Value(Content):
    """A variable in module memory, `width` bytes, shown by `fmt`."""

    def __init__(self, address: int, width: int, fmt: str, signed: bool = False) -> None:
        super().__init__(self._show, self._store)
        self.address, self.width, self.fmt, self.signed = address, width, fmt, signed

    def _show(self, file: Any) -> str:
        raw = file.kernel.mem.read(self.address, self.width)
        return self.fmt % int.from_bytes(raw, "little", signed=self.signed)

    def _store(self, file: Any, data: bytes) -> int:
        value = parse_ull(data[:SET_BUF - 1], file.path)
        file.kernel.mem.write(self.address, (value & ((1 << 8 * self.width) - 1)).to_bytes(self.width, "little"))
        return len(data)


class Bool(Content):
    def __init__(self, address: int) -> None:
        super().__init__(self._show, self._store)
        self.address = address

    def _show(self, file: Any) -> str:
        return "Y\n" if file.kernel.mem.read_u8(self.address) else "N\n"

    def _store(self, file: Any, data: bytes) -> int:
        file.kernel.mem.write_u8(self.address, int(parse_bool(data, file.path)))
        return len(data)


class Blob(Content):
    """struct debugfs_blob_wrapper {void *data; unsigned long size;}, read at each read."""

    def __init__(self, wrapper: int) -> None:
        super().__init__(self._show)
        self.wrapper = wrapper

    def _show(self, file: Any) -> bytes:
        mem = file.kernel.mem
        size = min(mem.read_u64(self.wrapper + 8), file.kernel.options.max_io)
        return mem.read(mem.read_u64(self.wrapper), size) if size else b""


def _value_file(name: str, width: int, fmt: str, signed: bool = False) -> None:
    function = f"debugfs_create_{name}"
    ctype = {"size_t": "size_t", "atomic_t": "atomic_t"}.get(name, f"u{width * 8}")

    def impl(ctx: Any, fname: int, mode: int, parent: int, value: int) -> None:
        create_file(ctx, fname, mode, parent, Value(value, width, fmt, signed), value, (value,))
    impl.__name__ = impl.__qualname__ = function
    export(function, f"void {function}(const char *name, umode_t mode, struct dentry *parent, "
                     f"{ctype} *value)", nargs=4, gpl=True)(impl)


for _name, _width, _fmt in (("u8", 1, "%d\n"), ("u16", 2, "%d\n"), ("u32", 4, "%d\n"), ("u64", 8, "%d\n"),
                            ("x8", 1, "0x%02x\n"), ("x16", 2, "0x%04x\n"), ("x32", 4, "0x%08x\n"),
                            ("x64", 8, "0x%016x\n"), ("size_t", 8, "%d\n")):
    _value_file(_name, _width, _fmt)
_value_file("atomic_t", 4, "%d\n", signed=True)


@export("debugfs_create_bool", "void debugfs_create_bool(const char *name, umode_t mode, struct dentry "
        "*parent, bool *value)", nargs=4, gpl=True)
def debugfs_create_bool(ctx: Any, name: int, mode: int, parent: int, value: int) -> None:
    create_file(ctx, name, mode, parent, Bool(value), value, (value,))


@export("debugfs_create_blob", "struct dentry *debugfs_create_blob(const char *name, umode_t mode, "
        "struct dentry *parent, struct debugfs_blob_wrapper *blob)", nargs=4, gpl=True)
def debugfs_create_blob(ctx: Any, name: int, mode: int, parent: int, blob: int) -> int:
    return create_file(ctx, name, mode & 0o444, parent, Blob(blob), blob, (blob,))
