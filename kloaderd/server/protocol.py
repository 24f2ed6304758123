"""The daemon's side of the wire format: decoding requests within bounds,
encoding replies.

The contract itself (frame format, ops, flags, limits, errnos) is
`kloaderd.uapi`, shared with the client; this module only applies it.
"""

from __future__ import annotations

from typing import Any, Iterator

import msgpack

from kloaderd import uapi
from kloaderd.mm.anon import ANON_MIN, AnonBuffer


class TooManyObjects(ValueError):
    """A frame holds more maps and arrays than `uapi.MAX_CONTAINERS`."""


# A decoder that has been fed this much is replaced once its frame is out.
RELEASE_AFTER = 1 << 20
# A bin at least this large is received straight into memory of its own (an
# `AnonBuffer`, see `_Upload`), if its header lies within the first HEAD_MAX
# bytes of its frame after nothing but scalars (a client's init_module or
# modinfo: op, id, then the image).
UPLOAD_MIN = ANON_MIN
HEAD_MAX = 4096


class RequestDecoder:
    """A stream of request frames, each decoded within `uapi`'s bounds.

    msgpack bounds the bytes (`max_buffer_size`), each str/bin/map/array's
    declared length, and the nesting (its own stack of 1,024); the container
    count per frame is counted here through the decoder's hooks, which msgpack
    calls once per completed map or array (decoding resumes across reads, so
    nothing is counted twice).  Together they keep one frame's decoded
    objects to a small multiple of its bytes.
    """

    def __init__(self, max_frame: int) -> None:
        self._max_frame = max_frame
        self._containers = 0
        self._fed = 0                   # bytes fed since the decoder was made
        self._decoder = self._new()
        # Where the frame being received starts in what the decoder was fed,
        # the last bytes fed, and the frame's first bytes while too few to
        # tell whether it brings a big bin (see _scan).
        self._frame_start = 0
        self._last = b""
        self._head = b""
        self._scanned = False
        self._upload: _Upload | None = None     # a big bin being received
        self._rest_of: _Upload | None = None    # a received one, waiting for the rest of its frame

    def _new(self, max_frame: int | None = None) -> msgpack.Unpacker:
        max_frame = self._max_frame if max_frame is None else max_frame
        return uapi.unpacker(
            max_frame, max_map_len=uapi.MAX_MAP_LEN, max_array_len=uapi.MAX_ARRAY_LEN,
            max_str_len=uapi.MAX_STR_LEN, max_bin_len=max_frame, max_ext_len=0,
            object_hook=self._map, list_hook=self._array)

    def _count(self) -> None:
        self._containers += 1
        if self._containers > uapi.MAX_CONTAINERS:
            raise TooManyObjects(f"a frame may hold at most {uapi.MAX_CONTAINERS} maps and arrays")

    def _map(self, mapping: dict[Any, Any]) -> dict[Any, Any]:
        # object_hook, not object_pairs_hook: msgpack builds the dict itself
        # instead of a list of pairs for Python to turn into one (half the
        # cost of decoding a small request).
        self._count()
        return mapping

    def _array(self, items: list[Any]) -> list[Any]:
        self._count()
        return items

    def feed(self, data: bytes) -> None:
        upload = self._upload
        if upload is not None:
            data = upload.fill(data)
            if upload.missing:
                return
            # The bin is in: the entries after it come as a map of their own,
            # within what is left of the frame's bound.
            self._upload, self._rest_of = None, upload
            header = _map_header(upload.entries_after)
            self._decoder = self._new(self._max_frame - upload.frame_bytes + len(header))
            self._fed = self._frame_start = 0
            self._scanned = True
            data = header + data
        self._fed += len(data)
        self._last = data
        self._decoder.feed(data)

    def __iter__(self) -> Iterator[Any]:
        """Each whole frame's message fed so far."""
        while self._upload is None:
            try:
                message = next(self._decoder)
            except StopIteration:
                if not self._scanned and self._fed > self._frame_start:
                    self._scan()
                return
            self._containers = 0
            upload, self._rest_of = self._rest_of, None
            if upload is not None:
                message = upload.message(message)
            self._frame_start = self._decoder.tell()
            self._scanned = False
            self._head = b""
            if self._fed >= RELEASE_AFTER or upload is not None:
                self._release()
            yield message

    def _release(self) -> None:
        """Give back the buffer a big frame grew (msgpack keeps it, up to the
        frame limit, for the connection's life), keeping any bytes of the next
        frame: before the request runs, so a big load does not hold its image
        twice."""
        rest = self._decoder.read_bytes(self._max_frame + uapi.RECV_SIZE)
        self._decoder = self._new()
        self._fed = self._frame_start = 0
        if rest:
            self.feed(rest)

    def _scan(self) -> None:
        """Look at the start of a frame not yet whole: one that brings a big
        bin after a few scalars goes on as an upload, the bin straight into
        an `AnonBuffer`, instead of through msgpack's buffer."""
        at = self._frame_start - (self._fed - len(self._last))
        head = self._last[at:] if at >= 0 else self._head + self._last
        found = _find_upload(head)
        if found is None:
            if len(head) < HEAD_MAX:
                self._head = bytes(head)        # too little yet to tell
                return
            found = False
        self._head = b""
        self._scanned = True
        if found is False:
            return
        entries, index, key_at, bin_at, data_at, size = found
        if data_at + size > self._max_frame:
            raise msgpack.exceptions.BufferFull
        try:
            buffer = AnonBuffer(size)
        except OSError:         # no address space (strict overcommit): msgpack's buffer, as any frame
            return
        before = msgpack.unpackb(_map_header(index) + head[key_at[0]:key_at[index]], raw=False,
                                 strict_map_key=False, max_str_len=uapi.MAX_STR_LEN, max_bin_len=HEAD_MAX)
        key = msgpack.unpackb(head[key_at[index]:bin_at], raw=False, strict_map_key=False)
        # msgpack's partial state is this frame's: begin again without it.
        self._decoder = self._new()
        self._fed = self._frame_start = 0
        self._last = b""
        self._upload = _Upload(before, key, buffer, entries - index - 1, data_at + size)
        self.feed(head[data_at:])


class _Upload:
    """A frame whose big bin is received into an `AnonBuffer`: the entries
    before it (decoded), its key, the buffer being filled, and how many
    entries follow it."""

    def __init__(self, before: dict[Any, Any], key: Any, buffer: AnonBuffer, entries_after: int,
                 frame_bytes: int) -> None:
        self.before = before
        self.key = key
        self.buffer = buffer
        self.filled = 0
        self.entries_after = entries_after
        self.frame_bytes = frame_bytes      # of the frame, up to the bin's end

    @property
    def missing(self) -> int:
        return len(self.buffer) - self.filled

    def fill(self, data: bytes) -> bytes:
        """Take what belongs to the bin; return the rest."""
        n = min(len(data), self.missing)
        self.buffer[self.filled:self.filled + n] = memoryview(data)[:n]
        self.filled += n
        return data[n:]

    def message(self, after: dict[Any, Any]) -> dict[Any, Any]:
        """The frame's map, as msgpack would have decoded it (a later key
        wins), the bin as the buffer."""
        message = self.before
        message[self.key] = self.buffer
        message.update(after)
        return message


def _map_header(entries: int) -> bytes:
    return bytes([0x80 | entries]) if entries < 16 else b"\xde" + entries.to_bytes(2, "big")


# msgpack scalars by their first byte: fixed sizes, and the length prefix of str and bin.
_FIXED = {0xc0: 1, 0xc2: 1, 0xc3: 1, 0xca: 5, 0xcb: 9, 0xcc: 2, 0xcd: 3, 0xce: 5, 0xcf: 9,
          0xd0: 2, 0xd1: 3, 0xd2: 5, 0xd3: 9}
_SIZED = {0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}
_BIN = (0xc4, 0xc5, 0xc6)


def _find_upload(head: bytes) -> tuple[int, int, list[int], int, int, int] | bool | None:
    """Where, in a frame starting with `head`, a value is a bin of at least
    UPLOAD_MIN bytes after only scalars: (entries in the map, the entry's
    index, where each entry up to it starts, where the bin's header and its
    bytes start, its size).  False when the frame has no such bin early
    enough (it is decoded as any other), None when `head` is too short to
    tell."""
    if not head:
        return None
    first = head[0]
    if 0x80 <= first <= 0x8f:
        entries, at = first & 0x0f, 1
    elif first == 0xde:
        if len(head) < 3:
            return None
        entries, at = int.from_bytes(head[1:3], "big"), 3
    else:
        return False
    if entries > uapi.MAX_MAP_LEN:
        return False
    key_at: list[int] = []
    for item in range(2 * entries):
        if at >= len(head):
            return None
        if item % 2 == 0:
            key_at.append(at)
        kind = head[at]
        if kind <= 0x7f or kind >= 0xe0:
            at += 1
            continue
        if kind in _FIXED:
            at += _FIXED[kind]
            continue
        if 0xa0 <= kind <= 0xbf:
            width, size = 0, kind & 0x1f
        elif kind in _SIZED:
            width = _SIZED[kind]
            if at + 1 + width > len(head):
                return None
            size = int.from_bytes(head[at + 1:at + 1 + width], "big")
        else:
            return False                    # a map, an array or an ext: not an upload
        data_at = at + 1 + width
        if kind in _BIN and item % 2 and size >= UPLOAD_MIN:
            return entries, item // 2, key_at, at, data_at, size
        at = data_at + size
    return False


# msgpack's exceptions for a stream that is not msgpack or breaks its limits.
FRAME_ERRORS = (
    msgpack.exceptions.BufferFull,
    msgpack.exceptions.ExtraData,
    msgpack.exceptions.FormatError,
    msgpack.exceptions.StackError,
    ValueError,  # declared lengths past the limits, invalid UTF-8 in a str, TooManyObjects
    TypeError,   # a map key no dict can hold (a list, a map)
)


# One packer for every reply (`uapi.packer`).  Replies are packed whole with
# the GIL held, so daemons embedded in other threads' trio runs may share it.
_pack = uapi.packer().pack


def reply(request_id: Any, result: Any) -> bytes:
    return _pack({"id": request_id, "result": result})


def error_reply(request_id: Any, code: int, message: str) -> bytes:
    return _pack({"id": request_id, "error": uapi.error_body(code, message)})


def event(request_id: Any, body: Any) -> bytes:
    return _pack({"id": request_id, "event": body})
