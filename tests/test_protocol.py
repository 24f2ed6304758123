"""The wire format and its edge cases: framing, limits, argument checks, errno mapping.

The socket tests here serve a stand-in kernel that fails every call: what
they check (bad frames, unknown ops, wrong types, privilege) is decided
before a request reaches the kernel.
"""

from __future__ import annotations

import errno
import functools
import os
import socket

import msgpack
import pytest
import trio
import trio.testing

from kloader_client.errors import from_reply
from kloaderd.errors import KernelError
from kloaderd.kernel.kernel import KernelOptions
from kloaderd import uapi
from kloaderd.server import protocol
from kloaderd.server.ops import OPS, check_args, check_flags, read_module_file
from kloaderd.server.server import serve
from test_server import Raw


class NoKernel:
    """Any call that reaches it is a test failure, reported as EIO by the session."""

    options = KernelOptions()      # the daemon's limits, real defaults
    release = "none"

    def __getattr__(self, name: str):
        raise AssertionError(f"the kernel was asked for {name}")


# ---------------------------------------------------------------- pure parts


def test_default_socket_path_precedence(monkeypatch):
    monkeypatch.setenv("KLOADERD_SOCKET", "/run/x.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert uapi.default_socket_path() == "/run/x.sock"
    monkeypatch.delenv("KLOADERD_SOCKET")
    assert uapi.default_socket_path() == "/run/user/7/kloaderd.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert uapi.default_socket_path() == f"/tmp/kloaderd-{os.getuid()}/kloaderd.sock"


def test_frames_are_self_delimiting_msgpack_maps():
    data = protocol.reply(1, "hello") + protocol.error_reply(2, errno.ENOENT, "gone") + protocol.event(3, {"a": b"x"})
    decoder = uapi.unpacker(1024)
    decoder.feed(data)
    assert list(decoder) == [
        {"id": 1, "result": "hello"},
        {"id": 2, "error": {"errno": "ENOENT", "code": errno.ENOENT, "message": "gone"}},
        {"id": 3, "event": {"a": b"x"}},
    ]


def test_unpacker_accepts_a_frame_at_the_limit_and_refuses_one_far_beyond():
    limit = 200_000
    ok = uapi.pack({"op": "init_module", "id": 1, "image": bytes(limit - 64)})
    assert len(ok) <= limit
    decoder = protocol.RequestDecoder(limit)
    for i in range(0, len(ok), uapi.RECV_SIZE):
        decoder.feed(ok[i:i + uapi.RECV_SIZE])
    assert len(next(iter(decoder))["image"]) == limit - 64
    big = uapi.pack({"op": "init_module", "id": 1, "image": bytes(limit + 2 * uapi.RECV_SIZE)})
    decoder = protocol.RequestDecoder(limit)
    with pytest.raises(protocol.FRAME_ERRORS):
        for i in range(0, len(big), uapi.RECV_SIZE):
            decoder.feed(big[i:i + uapi.RECV_SIZE])
            list(decoder)


@pytest.mark.parametrize("name, code, cls", [
    ("ENOENT", errno.ENOENT, FileNotFoundError),
    ("EEXIST", errno.EEXIST, FileExistsError),
    ("EWOULDBLOCK", errno.EWOULDBLOCK, BlockingIOError),
    ("EPERM", errno.EPERM, PermissionError),
    ("ETIMEDOUT", errno.ETIMEDOUT, TimeoutError),
])
def test_error_replies_become_the_builtin_oserror_subclass(name, code, cls):
    exc = from_reply({"errno": name, "code": code, "message": "the daemon's words"})
    assert type(exc) is cls
    assert exc.errno == code and exc.strerror == "the daemon's words"


def test_errno_is_taken_by_name_before_number():
    # Numbers differ between architectures; the name is what both ends share.
    exc = from_reply({"errno": "EBUSY", "code": 9999, "message": "busy"})
    assert type(exc) is OSError and exc.errno == errno.EBUSY
    assert from_reply({"errno": "ENOSUCHTHING", "code": errno.EINVAL, "message": ""}).errno == errno.EINVAL


def test_check_args_types_defaults_and_refusals():
    spec = OPS["delete_module"].args
    assert check_args("delete_module", spec, {"op": "delete_module", "id": 1, "name": "a"}) == {
        "name": "a", "wait": False, "force": False, "timeout": None}
    assert check_args("delete_module", spec, {"name": "a", "timeout": 2})["timeout"] == 2
    for bad, word in [({}, "missing"), ({"name": 5}, "must be str"), ({"name": "a", "wait": 1}, "must be bool"),
                      ({"name": "a", "bogus": 1}, "unknown argument")]:
        with pytest.raises(KernelError) as info:
            check_args("delete_module", spec, bad)
        assert info.value.errno == errno.EINVAL and word in info.value.message
    # `true` is not a flag word, though Python's bool is an int.
    with pytest.raises(KernelError):
        check_args("init_module", OPS["init_module"].args, {"image": b"", "flags": True})


def test_check_flags_as_finit_module():
    assert check_flags(uapi.MODULE_INIT_IGNORE_VERMAGIC | uapi.MODULE_INIT_IGNORE_MODVERSIONS) == 3
    with pytest.raises(KernelError) as info:
        check_flags(8)
    assert info.value.errno == errno.EINVAL
    assert check_flags(uapi.MODULE_INIT_COMPRESSED_FILE) == 4     # CONFIG_MODULE_DECOMPRESS


def test_read_module_file_checks_like_kernel_read_file(tmp_path):
    path = tmp_path / "m.ko"
    path.write_bytes(b"\x7fELF" + bytes(100))

    def read(target, flags: int, limit: int) -> bytes:
        fd = os.open(target, flags)
        try:
            return read_module_file(fd, limit)
        finally:
            os.close(fd)

    assert read(path, os.O_RDONLY, 1000) == b"\x7fELF" + bytes(100)
    for target, flags, limit, code in [(path, os.O_RDONLY, 50, errno.EFBIG),
                                       (path, os.O_WRONLY, 1000, errno.EBADF),
                                       (tmp_path, os.O_RDONLY, 1000, errno.EINVAL)]:
        with pytest.raises(KernelError) as info:
            read(target, flags, limit)
        assert info.value.errno == code


# ---------------------------------------------------------------- over a socket


async def _exchange(path: str, data: bytes, replies: int) -> tuple[list[dict], bool]:
    """Send raw bytes, read `replies` messages, and say whether the daemon then hung up."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.connect(path)
    decoder = msgpack.Unpacker(raw=False)
    messages: list[dict] = []

    async def send(data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[await sock.send(view):]
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon hung up before reading all of it: its reply says why

    async def receive(count: int) -> bool:
        """Read until `count` messages arrived; False if the daemon closed first."""
        while len(messages) < count:
            try:
                chunk = await sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            decoder.feed(chunk)
            messages.extend(decoder)
        return True

    with sock, trio.fail_after(10):
        await send(data)
        if await receive(replies):
            # Still talking?  A last hello says.
            await send(_req(op="hello", id="probe"))
            closed = not await receive(replies + 1)
            if not closed:
                assert messages.pop()["id"] == "probe"
        else:
            closed = True
    return messages, closed


@pytest.fixture
async def server(nursery, tmp_path):
    path = await nursery.start(functools.partial(serve, max_frame=100_000), NoKernel(), str(tmp_path / "k.sock"))
    yield path


def _req(**message) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


@pytest.mark.trio
async def test_socket_is_private_and_hello_negotiates(server):
    assert os.stat(server).st_mode & 0o777 == 0o600
    (hello,), _ = await _exchange(server, _req(op="hello", id=0, version=7, client="t"), 1)
    assert hello["id"] == 0
    assert hello["result"]["version"] == uapi.PROTOCOL_VERSION
    assert "init_module" in hello["result"]["ops"] and hello["result"]["max_frame"] == 100_000
    (old,), _ = await _exchange(server, _req(op="hello", id=1, version=0), 1)
    assert old["error"]["errno"] == "EPROTONOSUPPORT"


@pytest.mark.trio
async def test_bad_requests_get_error_replies_and_the_connection_carries_on(server):
    data = b"".join([
        _req(op="no_such_op", id=1),
        _req(op="module", id=2, name=42),
        _req(op="module", id=3),
        _req(op=5, id=4),
        _req(op="status"),
        msgpack.packb([1, 2, 3]),
        _req(op="hello", id=5, surprise=True),
        _req(op="hello", id=6),
    ])
    replies, closed = await _exchange(data=data, path=server, replies=8)
    errors = [(r["id"], r.get("error", {}).get("errno")) for r in replies]
    assert errors == [(1, "ENOSYS"), (2, "EINVAL"), (3, "EINVAL"), (4, "EINVAL"), (None, "EINVAL"),
                      (None, "EINVAL"), (5, "EINVAL"), (6, None)]
    assert "name" in replies[1]["error"]["message"] and "must be str" in replies[1]["error"]["message"]
    assert not closed


@pytest.mark.trio
async def test_bad_msgpack_gets_an_error_then_the_connection_closes(server):
    # 0xc1 is the one byte msgpack never uses.
    replies, closed = await _exchange(server, _req(op="hello", id=1) + b"\xc1" + _req(op="hello", id=2), 3)
    assert [r["id"] for r in replies] == [1, None]
    assert replies[1]["error"]["errno"] == "EBADMSG"
    assert closed
    # ...and the daemon serves the next connection as before.
    (ok,), _ = await _exchange(server, _req(op="hello", id=3), 1)
    assert ok["result"]["server"] == "kloaderd"


@pytest.mark.trio
async def test_a_map_key_that_cannot_be_a_key_is_a_bad_message(server):
    # {[1]: 2}: valid msgpack, but no dict can hold a list as a key.
    replies, closed = await _exchange(server, _req(op="hello", id=1) + b"\x81\x91\x01\x02", 2)
    assert [r["id"] for r in replies] == [1, None]
    assert replies[1]["error"]["errno"] == "EBADMSG" and "unhashable" in replies[1]["error"]["message"]
    assert closed


@pytest.mark.trio
async def test_an_oversized_frame_is_refused_and_the_daemon_carries_on(server):
    huge = _req(op="init_module", id=1, image=bytes(1_000_000))
    replies, closed = await _exchange(server, huge, 1)
    assert replies[0]["id"] is None and replies[0]["error"]["errno"] == "EMSGSIZE"
    assert closed
    (ok,), _ = await _exchange(server, _req(op="hello", id=2), 1)
    assert "result" in ok


@pytest.mark.trio
async def test_finit_module_without_a_passed_descriptor_is_ebadf(server):
    (reply,), _ = await _exchange(server, _req(op="finit_module", id=1), 1)
    assert reply["error"]["errno"] == "EBADF"


@pytest.mark.trio
async def test_cancel_of_an_unknown_request_says_so(server):
    (reply,), _ = await _exchange(server, _req(op="cancel", id=1, target=99), 1)
    assert reply == {"id": 1, "result": False}


@pytest.mark.trio
async def test_a_live_daemon_on_the_path_makes_a_second_refuse(server):
    with pytest.raises(KernelError) as info:
        await serve(NoKernel(), server)
    assert info.value.errno == errno.EADDRINUSE and server in info.value.message
    assert os.path.exists(server)


@pytest.mark.trio
async def test_a_stale_socket_is_replaced_and_a_plain_file_is_not(tmp_path):
    stale = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(stale))
    dead.close()  # the file stays; nobody listens
    async with trio.open_nursery() as nursery:
        path = await nursery.start(serve, NoKernel(), str(stale))
        (ok,), _ = await _exchange(path, _req(op="hello", id=1), 1)
        assert "result" in ok
        nursery.cancel_scope.cancel()
    assert not stale.exists()  # removed on the way out
    plain = tmp_path / "plain"
    plain.write_text("keep me")
    with pytest.raises(KernelError) as info:
        await serve(NoKernel(), str(plain))
    assert info.value.errno == errno.EEXIST and plain.read_text() == "keep me"


# ---------------------------------------------------------------- bounds (issue 13)


@pytest.mark.trio
@pytest.mark.parametrize("what, bomb", [
    ("a long array", {"op": "hello", "id": 1, "x": [0] * (uapi.MAX_ARRAY_LEN + 1)}),
    ("a long map", {"op": "hello", "id": 1, "x": {i: 0 for i in range(uapi.MAX_MAP_LEN + 1)}}),
    ("many empty maps", {"op": "hello", "id": 1, "x": [{}] * (uapi.MAX_CONTAINERS + 1)}),
    ("deep nesting", functools.reduce(lambda inner, _: [inner], range(200), {})),
    ("a long str", {"op": "hello", "id": 1, "client": "x" * (uapi.MAX_STR_LEN + 1)}),
])
async def test_object_bombs_are_refused_at_the_frame_and_the_daemon_carries_on(nursery, tmp_path, what, bomb):
    """Each frame is small next to the frame limit but would decode into many
    objects; the decoder refuses it before building them all."""
    path = await nursery.start(serve, NoKernel(), str(tmp_path / "k.sock"))
    replies, closed = await _exchange(path, uapi.pack(bomb), 1)
    assert closed, what
    assert replies[0]["id"] is None and replies[0]["error"]["errno"] == "EMSGSIZE", replies
    (ok,), _ = await _exchange(path, _req(op="hello", id=2), 1)
    assert "result" in ok


def test_the_decoder_keeps_a_frame_of_empty_maps_to_its_bound():
    """Issue 13's bomb, scaled down: a frame of one-byte empty maps stops
    decoding at MAX_CONTAINERS, whatever the frame's size."""
    decoder = protocol.RequestDecoder(10 << 20)
    frame = b"\xdd" + (5_000_000).to_bytes(4, "big") + b"\x80" * 5_000_000   # array32 of empty maps
    decoder.feed(frame)
    with pytest.raises(ValueError, match="exceeds max_array_len"):
        list(decoder)
    nested = b"\x91" * 10_000 + b"\x80"      # arrays of one, 10,000 deep
    decoder = protocol.RequestDecoder(10 << 20)
    decoder.feed(nested)
    with pytest.raises(protocol.FRAME_ERRORS):
        list(decoder)


class Stuck(NoKernel):
    """A kernel whose removals never finish: requests that stay in flight."""

    running = 0

    async def delete_module(self, name: str, **_: object) -> None:
        self.running += 1
        try:
            await trio.sleep_forever()
        finally:
            self.running -= 1


@pytest.mark.trio
async def test_in_flight_requests_are_bounded_and_more_are_eagain(nursery, tmp_path):
    from kloaderd.server.session import MAX_INFLIGHT

    stuck = Stuck()
    path = await nursery.start(serve, stuck, str(tmp_path / "k.sock"))
    count = MAX_INFLIGHT + 40
    raw = await Raw.connect(path)
    with raw.sock:
        await raw.send(*({"op": "delete_module", "id": i, "name": "m"} for i in range(count)))
        refused = [await raw.receive() for _ in range(count - MAX_INFLIGHT)]
        assert {r["id"] for r in refused} == set(range(MAX_INFLIGHT, count))
        assert {r["error"]["errno"] for r in refused} == {"EAGAIN"}
        assert "in flight" in refused[0]["error"]["message"]
        await trio.testing.wait_all_tasks_blocked()
        assert stuck.running == MAX_INFLIGHT
        # A cancel still gets through, and frees a slot for the next request.
        await raw.send({"op": "cancel", "id": "c", "target": 0})
        replies = {(r["id"], r.get("error", {}).get("errno")) for r in [await raw.receive(), await raw.receive()]}
        assert replies == {("c", None), (0, "ECANCELED")}
        await raw.send({"op": "delete_module", "id": "again", "name": "m"})
        await trio.testing.wait_all_tasks_blocked()
        assert stuck.running == MAX_INFLIGHT


@pytest.mark.trio
async def test_connections_per_uid_are_bounded_with_emfile(nursery, tmp_path):
    kernel = NoKernel()
    kernel.options = KernelOptions(max_connections_per_uid=2)
    path = await nursery.start(serve, kernel, str(tmp_path / "k.sock"))
    held = []
    for _ in range(2):
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.connect(path)
        held.append(sock)
    (refused,), closed = await _exchange(path, b"", 1)
    assert refused["id"] is None and refused["error"]["errno"] == "EMFILE"
    assert f"from uid {os.getuid()}" in refused["error"]["message"] and "max_connections_per_uid=2" in \
        refused["error"]["message"]
    held.pop().close()
    for _ in range(100):      # the slot frees once the daemon sees the close
        (reply,), _ = await _exchange(path, _req(op="hello", id=1), 1)
        if "result" in reply:
            break
        await trio.testing.wait_all_tasks_blocked()
    assert "result" in reply
    for sock in held:
        sock.close()


@pytest.mark.trio
async def test_an_idle_connection_is_told_and_closed(nursery, tmp_path, autojump_clock):
    kernel = NoKernel()
    kernel.options = KernelOptions(idle_timeout=30)
    path = await nursery.start(serve, kernel, str(tmp_path / "k.sock"))
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.connect(path)
    with sock:
        await sock.send(_req(op="hello", id=1))
        decoder = msgpack.Unpacker(raw=False)
        messages: list[dict] = []
        while chunk := await sock.recv(65536):     # the clock jumps while everyone waits
            decoder.feed(chunk)
            messages.extend(decoder)
    assert messages[0]["id"] == 1 and "result" in messages[0]
    assert messages[1]["id"] is None and messages[1]["error"]["errno"] == "ETIMEDOUT"
    assert "idle for 30 s" in messages[1]["error"]["message"]


def test_every_op_served_is_in_the_contract():
    assert list(OPS) == list(uapi.OPS)
