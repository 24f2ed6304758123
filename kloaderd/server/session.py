"""One client connection: its requests, its references, its passed descriptors.

A connection is to kloaderd what a process is to Linux: the owner references
it takes with `try_module_get` belong to it, and whatever way it ends (a clean
close, a reset, a bad frame, the daemon shutting down) they are dropped and
its waiting removals given up, as a dying process closes its files.
"""

from __future__ import annotations

import array
import errno
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from kloaderd import uapi
from kloaderd.errors import KernelError
from kloaderd.server import protocol
from kloaderd.server.ops import DMESG_FOLLOW, OPS, Op, check_args

if TYPE_CHECKING:
    from kloaderd.server.server import Server

log = logging.getLogger("kloaderd.session")

# Bounds of one connection (docs/reliability.md, "Bounds").
MAX_FDS_PER_MESSAGE = 4      # SCM_RIGHTS descriptors taken from one read; the kernel closes the rest
MAX_QUEUED_FDS = 8           # passed and not yet used by a finit_module; more are closed
MAX_INFLIGHT = 64            # requests running as tasks; more are EAGAIN (a cancel still gets through)
REPLY_FLUSH = 1 << 16        # bytes of replies built before they are sent (and the send awaited)
POLL = 50e-6                 # seconds a session in a request loop polls for the next request
LOOP_GAP = 200e-6            # a request within this of the last wait's start: the peer is in a loop
_ANC_SIZE = socket.CMSG_SPACE(MAX_FDS_PER_MESSAGE * array.array("i").itemsize)
_UCRED = struct.Struct("3i")


class RequestLoop:
    """Whether a session's peer asks again as soon as it has each reply, and
    so whether the session should poll for the next request rather than
    sleep in epoll at once.

    A sleeping daemon costs a client in a request loop a wake-up per
    request: on a VM whose idle CPUs halt at once (cpuidle `haltpoll` with
    `guest_halt_poll_ns = 0`) waking a process on another CPU costs several
    times what a get+put pair does, and such a client ran at 0.8 of a plain
    trio echo server, which happens to take one more pass through its
    scheduler before it sleeps (docs/performance.md).  So a session whose
    last request came within `LOOP_GAP` of the start of its wait polls for
    the next one for up to `POLL`: each try is a pass through trio's
    scheduler (every other task runs) after a `sched_yield` (a client on
    the same CPU runs), and polling stops as soon as another task is
    runnable — the event loop does not sleep then anyway.  A peer that
    pauses once is no longer polled for until it is quick again, so an
    idle or occasional client costs nothing, a looping one at most `POLL`
    of CPU per request."""

    __slots__ = ("looping", "since")

    def __init__(self) -> None:
        self.looping = False
        self.since = 0.0            # when the current wait for a request began

    def waiting(self, now: float) -> None:
        """No request is there: the wait begins."""
        self.since = now

    def keep_polling(self, now: float, others_runnable: int) -> bool:
        """While looping: try again after a scheduler pass (True), or sleep
        until the socket is readable."""
        return not others_runnable and now - self.since < POLL

    def arrived(self, now: float) -> None:
        """A request came after a wait that began at `since`."""
        self.looping = now - self.since < LOOP_GAP


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int

    @classmethod
    def of(cls, sock: trio.socket.SocketType) -> Peer:
        return cls(*_UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)))


class Session:
    def __init__(self, server: Server, sock: trio.socket.SocketType, peer: Peer) -> None:
        self.server = server
        self.kernel = server.kernel
        # The stdlib socket under trio's, driven with trio.lowlevel's waits
        # (see _receive and send).
        self.sock = socket.socket(fileno=sock.detach())
        self.sock.setblocking(False)
        self.peer = peer
        # CAP_SYS_MODULE: the daemon's own user or root may change the kernel.
        self.privileged = self.peer.uid in (0, server.uid)
        self.client = "client"
        self._owner: Any = None
        self._fds: list[int] = []
        self._inflight: dict[Any, trio.CancelScope] = {}
        self.follows = 0
        self.last_read = trio.current_time()     # for the server's idle reaper
        self._sending = False
        self._send_done = trio.lowlevel.ParkingLot()
        self._loop = RequestLoop()
        self._nursery: trio.Nursery | None = None
        self._files: Any = None

    @property
    def label(self) -> str:
        return f"session {self.client}[{self.peer.pid}]"

    def hello(self, client: str) -> None:
        if client and self._owner is None:
            self.client = client

    def owner(self) -> Any:
        """The session's reference owner, made on first use so `hello` can name it."""
        if self._owner is None:
            self._owner = self.kernel.new_owner(self.label)
        return self._owner

    def files(self) -> Any:
        """The session's open files (its descriptor table), made on first use."""
        if self._files is None:
            from kloaderd.fs.file import FileTable
            self._files = FileTable(self.kernel, self.label, self.client, self.privileged)
        return self._files

    def take_fd(self) -> int:
        """The oldest descriptor passed with SCM_RIGHTS and not yet used."""
        if not self._fds:
            raise KernelError(errno.EBADF, "finit_module: no file descriptor was passed with the request "
                                           "(send it with SCM_RIGHTS on the request's first byte)")
        self.server.queued_fds -= 1
        return self._fds.pop(0)

    def cancel(self, target: Any) -> bool:
        scope = self._inflight.get(target)
        if scope is None:
            return False
        scope.cancel()
        return True

    async def send(self, data: bytes) -> None:
        """Send whole frames; a peer that is gone ends the session, not the sender.

        Frames of concurrent tasks must not interleave: a task finding another
        mid-frame parks until it is done (a flag and a parking lot, which cost
        less per reply than `trio.Lock`'s bookkeeping in the usual, uncontended
        case).

        The common case costs no trip through the scheduler: a frame the
        socket buffer takes at once is sent without waiting, as trio's own
        `send` would, but without the checkpoint trio adds after it (the
        read loop yields once per read instead, see `_receive`)."""
        sent = 0
        if not self._sending:
            # The usual case, in one call: no frame half sent, and the
            # socket buffer takes this one whole.
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                pass
            except OSError:
                self.hang_up()
                return
            if sent == len(data):
                return
        while self._sending:
            await self._send_done.park()
        self._sending = True
        try:
            view = memoryview(data)[sent:]
            while view:
                try:
                    view = view[self.sock.send(view):]
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(self.sock)
        except OSError:
            self.hang_up()
        finally:
            self._sending = False
            if self._send_done:
                self._send_done.unpark()

    def hang_up(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    # ------------------------------------------------------------ lifetime

    async def run(self) -> None:
        self.server.sessions.add(self)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                try:
                    await self._read_loop()
                except OSError:
                    pass  # the peer went away: the cleanup below is the same
                self.hang_up()  # give up this session's waiting requests
        except Exception:  # one session's trouble must never end the daemon
            log.exception("session %s failed", self.label)
        finally:
            self.server.sessions.discard(self)
            if self._files is not None:
                # A dying process closes its files: each driver's .release
                # runs, then the references the files held go.
                with trio.CancelScope(shield=True):
                    await self._files.close_all()
            if self._owner is not None:
                self.kernel.release_owner(self._owner)
            for fd in self._fds:
                _close_fd(fd)
            self.server.queued_fds -= len(self._fds)
            self._fds.clear()
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()

    def idle(self) -> bool:
        """Nothing in flight, no references held, no files open: closing it loses nothing."""
        return not self._inflight and (self._owner is None or not self._owner.modules) \
            and (self._files is None or not self._files.files)

    def time_out(self, timeout: float) -> None:
        """Tell an idle peer why, then hang up (the server's idle reaper calls this)."""
        async def say_and_hang_up() -> None:
            await self.send(protocol.error_reply(
                None, errno.ETIMEDOUT, f"idle for {timeout:g} s with no request in flight and no "
                                       "reference held (idle_timeout); closing the connection"))
            self.hang_up()

        if self._nursery is not None:
            self._nursery.start_soon(say_and_hang_up)

    async def _read_loop(self) -> None:
        decoder = protocol.RequestDecoder(self.server.max_frame)
        out: list[bytes] = []
        pending = 0
        while True:
            data, ancdata = await self._receive()
            self.last_read = trio.current_time()
            self._take_ancillary(ancdata)
            if not data:
                return
            try:
                decoder.feed(data)
                for message in decoder:
                    started = self._dispatch(message, out)
                    if started is None:
                        pending += len(out[-1])
                        if pending < REPLY_FLUSH:
                            continue
                    # Replies go out as they pile up, and before a task starts:
                    # a peer that pipelines without reading stops being read
                    # once its socket buffer is full.
                    if out:
                        await self.send(b"".join(out))
                        out.clear()
                        pending = 0
                    if started is not None:
                        await self._nursery.start(self._run_blocking, *started)
                    else:
                        # send() takes no scheduling point when the socket
                        # buffer takes the frame: a peer pipelining costly
                        # requests (dmesg pages) must still let others run.
                        await trio.lowlevel.checkpoint()
                # The last request (a whole image, say) must not stay held
                # here while the connection waits for its next one.
                message = started = None
            except protocol.FRAME_ERRORS as exc:
                # The stream is out of step: say why, then hang up.
                out.append(_frame_error(exc, self.server.max_frame))
                await self.send(b"".join(out))
                return
            if out:
                await self.send(b"".join(out))
                out.clear()
                pending = 0

    async def _receive(self) -> tuple[bytes, list[tuple[int, int, bytes]]]:
        """One read, with the descriptors passed alongside.

        At least one scheduling point per read: a wait for the socket when
        nothing is there yet (the usual case for a client waiting for each
        reply: polled for a while first if it is in a request loop, see
        `RequestLoop`), else a plain checkpoint, so a peer that keeps data
        coming still lets every other task run between its reads.  trio's
        `recvmsg` and `send` each add a checkpoint after succeeding: two
        trips through the scheduler per request that this path does not make.
        """
        loop = self._loop
        waited = False
        while True:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(uapi.RECV_SIZE, _ANC_SIZE)
                break
            except BlockingIOError:
                now = time.perf_counter()
                if not waited:
                    loop.waiting(now)
                    waited = True
                if loop.looping and loop.keep_polling(now, trio.lowlevel.current_statistics().tasks_runnable):
                    os.sched_yield()
                    await trio.lowlevel.checkpoint()
                else:
                    await trio.lowlevel.wait_readable(self.sock)
        if waited:
            loop.arrived(time.perf_counter())
        else:
            await trio.lowlevel.checkpoint()
        return data, ancdata

    def _take_ancillary(self, ancdata: list[tuple[int, int, bytes]]) -> None:
        for level, kind, payload in ancdata:
            if level != socket.SOL_SOCKET or kind != socket.SCM_RIGHTS:
                continue
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            server = self.server
            for fd in fds:
                if len(self._fds) < MAX_QUEUED_FDS and server.queued_fds < server.max_queued_fds:
                    self._fds.append(fd)
                    server.queued_fds += 1
                else:
                    _close_fd(fd)

    # ------------------------------------------------------------ requests

    def _dispatch(self, message: Any, out: list[bytes]) -> tuple[Any, Op, dict[str, Any]] | None:
        """Run one request inline, or say how to start it as a task if it may block."""
        if not isinstance(message, dict):
            out.append(protocol.error_reply(None, errno.EINVAL, "a request must be a map with 'op' and 'id'"))
            return None
        rid = message.get("id")
        try:
            op_name, op = self._lookup(message, rid)
            args = check_args(op_name, op.args, message)
            if op_name == "dmesg" and args["follow"]:
                op = DMESG_FOLLOW
            if not op.blocking:
                out.append(protocol.reply(rid, op.handler(self, rid, **args)))
                return None
            if len(self._inflight) >= MAX_INFLIGHT:
                raise KernelError(errno.EAGAIN, f"{op_name}: {MAX_INFLIGHT} requests of this connection "
                                                "are in flight already (the most there may be); wait "
                                                "for their replies")
        except KernelError as exc:
            out.append(protocol.error_reply(rid, exc.errno, exc.message))
            return None
        except Exception as exc:  # a bug must cost one request, never the daemon
            out.append(_internal_error(rid, exc))
            return None
        return rid, op, args

    def _lookup(self, message: dict[Any, Any], rid: Any) -> tuple[str, Op]:
        if not isinstance(rid, (int, str)) or isinstance(rid, bool):
            raise KernelError(errno.EINVAL, "a request needs an 'id' (an integer or a string)")
        op_name = message.get("op")
        if not isinstance(op_name, str):
            raise KernelError(errno.EINVAL, "a request needs an 'op' (a string)")
        op = OPS.get(op_name)
        if op is None:
            raise KernelError(errno.ENOSYS, f"unknown op {op_name!r}")
        if rid in self._inflight:
            raise KernelError(errno.EINVAL, f"request id {rid!r} is already in flight on this connection")
        if op.privileged and not self.privileged:
            raise KernelError(errno.EPERM, f"Operation not permitted: {op_name} needs the uid of kloaderd "
                                           f"({self.server.uid}) or root; you are uid {self.peer.uid}")
        return op_name, op

    async def _run_blocking(self, rid: Any, op: Op, args: dict[str, Any],
                            task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run a request that may block.

        Started with `nursery.start()`: the reader resumes only once this task
        first blocks, so everything the request does before it waits (a
        removal marking the module going) happens before the next request of
        the connection is read — pipelined requests take effect in order.
        """
        with trio.CancelScope() as scope:
            self._inflight[rid] = scope
            task_status.started()
            try:
                with trio.CancelScope(shield=not op.cancellable):
                    result = await op.handler(self, rid, **args)
                data = protocol.reply(rid, result)
            except KernelError as exc:
                data = protocol.error_reply(rid, exc.errno, exc.message)
            except Exception as exc:
                data = _internal_error(rid, exc)
        del self._inflight[rid]
        if scope.cancelled_caught:
            data = protocol.error_reply(rid, errno.ECANCELED, "Operation canceled")
        await self.send(data)


def _frame_error(exc: Exception, max_frame: int) -> bytes:
    if isinstance(exc, protocol.msgpack.exceptions.BufferFull):
        return protocol.error_reply(None, errno.EMSGSIZE, f"Message too long: a frame may be at most "
                                                          f"{max_frame} bytes; closing the connection")
    if isinstance(exc, protocol.TooManyObjects) or "exceeds max" in str(exc):
        return protocol.error_reply(None, errno.EMSGSIZE, f"Message too long: {exc} (see docs/protocol.md, "
                                                          "Limits); closing the connection")
    return protocol.error_reply(None, errno.EBADMSG, f"Bad message: not a msgpack frame ({exc}); "
                                                     "closing the connection")


def _internal_error(rid: Any, exc: Exception) -> bytes:
    log.exception("internal error while serving request %r", rid, exc_info=exc)
    return protocol.error_reply(rid, errno.EIO, f"kloaderd internal error: {type(exc).__name__}: {exc}")


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
