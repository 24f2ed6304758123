"""Anonymous memory of its own for a big module file, given back page by page.

Linux holds a module file being loaded in vmalloc'd memory (`load_info.hdr`)
and vfree()s it once the module's sections are copied out (`free_copy`).  A
big image received by the daemon goes into an `AnonBuffer` instead of a
`bytes`: it is written once, as it arrives (msgpack would have buffered the
frame and then copied the bin out of it), and the pages of each section the
loader has copied into emulated memory are returned to the system right away
(`discard`), so the file and the module's memory are never both resident in
full.  Peak memory while a big module loads stays near one image.
"""

from __future__ import annotations

import mmap
import os
from typing import Callable

PAGE = mmap.PAGESIZE
# Below this a file is held as `bytes`: an mmap of its own costs more than
# the memory it could give back.
ANON_MIN = 1 << 20


class AnonBuffer(mmap.mmap):
    """`size` zeroed bytes in a private anonymous mapping: a bytes-like
    object (len, slices, `find`, the buffer protocol) whose pages can be
    returned to the system before it is freed."""

    def __new__(cls, size: int) -> "AnonBuffer":
        return super().__new__(cls, -1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)

    @classmethod
    def read(cls, fd: int, size: int) -> "AnonBuffer | bytes":
        """The first `size` bytes of the file `fd` (fewer if it ends
        sooner: then as `bytes`), read straight into a buffer of its own."""
        buffer = cls(size)
        view, done = memoryview(buffer), 0
        try:
            while done < size:
                n = os.preadv(fd, [view[done:]], done)
                if not n:
                    break
                done += n
        finally:
            view.release()
        return buffer if done == size else buffer[:done]

    def discard(self, start: int, end: int) -> None:
        """Give back the pages wholly inside [start, end): reading them
        afterwards sees zeros (MADV_DONTNEED), so only bytes nobody reads
        again may go.  A page shared with bytes outside the range stays."""
        first = -(-max(start, 0) // PAGE) * PAGE
        last = min(end, len(self)) // PAGE * PAGE
        if last > first:
            self.madvise(mmap.MADV_DONTNEED, first, last - first)


def discard_of(data: object) -> Callable[[int, int], None] | None:
    """`discard` of the `AnonBuffer` that `data` is (or is a view of), None
    for memory that cannot be given back early (a `bytes`)."""
    owner = data.obj if isinstance(data, memoryview) else data
    return owner.discard if isinstance(owner, AnonBuffer) else None
