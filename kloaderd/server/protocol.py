"""The daemon's side of the wire format: decoding requests within bounds,
encoding replies.

The contract itself (frame format, ops, flags, limits, errnos) is
`kloaderd.uapi`, shared with the client; this module only applies it.
"""

from __future__ import annotations

from typing import Any, Iterator

import msgpack

from kloaderd import uapi


class TooManyObjects(ValueError):
    """A frame holds more maps and arrays than `uapi.MAX_CONTAINERS`."""


# A decoder that has been fed this much is replaced once its frame is out.
RELEASE_AFTER = 1 << 20


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

    def _new(self) -> msgpack.Unpacker:
        return uapi.unpacker(
            self._max_frame, max_map_len=uapi.MAX_MAP_LEN, max_array_len=uapi.MAX_ARRAY_LEN,
            max_str_len=uapi.MAX_STR_LEN, max_bin_len=self._max_frame, max_ext_len=0,
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
        self._fed += len(data)
        self._decoder.feed(data)

    def __iter__(self) -> Iterator[Any]:
        """Each whole frame's message fed so far."""
        while True:
            try:
                message = next(self._decoder)
            except StopIteration:
                return
            self._containers = 0
            if self._fed >= RELEASE_AFTER:
                self._release()
            yield message

    def _release(self) -> None:
        """Give back the buffer a big frame grew (msgpack keeps it, up to the
        frame limit, for the connection's life), keeping any bytes of the next
        frame: before the request runs, so a big load does not hold its image
        twice."""
        rest = self._decoder.read_bytes(self._max_frame + uapi.RECV_SIZE)
        self._decoder = self._new()
        self._fed = 0
        if rest:
            self.feed(rest)


# msgpack's exceptions for a stream that is not msgpack or breaks its limits.
FRAME_ERRORS = (
    msgpack.exceptions.BufferFull,
    msgpack.exceptions.ExtraData,
    msgpack.exceptions.FormatError,
    msgpack.exceptions.StackError,
    ValueError,  # declared lengths past the limits, invalid UTF-8 in a str, TooManyObjects
    TypeError,   # a map key no dict can hold (a list, a map)
)


# One packer for every reply: `msgpack.packb` makes (and frees) a Packer per
# call, two thirds of the cost of packing a small reply.  Replies are packed
# whole with the GIL held (no Python code runs inside a pack of these plain
# types), so daemons embedded in other threads' trio runs may share it; a
# failed pack resets the packer's buffer.
_pack = msgpack.Packer(use_bin_type=True).pack


def reply(request_id: Any, result: Any) -> bytes:
    return _pack({"id": request_id, "result": result})


def error_reply(request_id: Any, code: int, message: str) -> bytes:
    return _pack({"id": request_id, "error": uapi.error_body(code, message)})


def event(request_id: Any, body: Any) -> bytes:
    return _pack({"id": request_id, "event": body})
