"""Serving a kernel on a Unix socket.

`serve()` is the whole daemon minus process concerns (signals, options): the
`kloaderd` command and the embedding API both run it, and cancelling it stops
listening, ends every session (dropping their references and giving up their
waits) and removes the socket file.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import time
from typing import Any

import trio

from kloaderd.errors import KernelError
from kloaderd.server import protocol
from kloaderd.server.session import Session

log = logging.getLogger("kloaderd.server")


class Server:
    """What the sessions of one listening socket share."""

    def __init__(self, kernel: Any, path: str, max_frame: int) -> None:
        self.kernel = kernel
        self.path = path
        self.max_frame = max_frame
        self.max_image_size: int = kernel.options.max_image_size
        self.uid = os.geteuid()
        self.sessions: set[Session] = set()
        self.connections = 0                     # accepted and not yet ended
        self.started = time.monotonic()

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "uid": self.uid, "socket": self.path,
                "protocol": protocol.PROTOCOL_VERSION, "sessions": len(self.sessions),
                "max_frame": self.max_frame, "uptime": time.monotonic() - self.started}


async def serve(kernel: Any, socket_path: str | None = None, *,
                task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
                max_frame: int | None = None, inherited: socket.socket | None = None) -> None:
    """Listen on `socket_path` (default: `default_socket_path()`) until cancelled.

    `task_status.started()` reports the path once clients can connect.  Raises
    `KernelError(EADDRINUSE)` if a live daemon already listens there.  With
    `inherited` (a listening socket from socket activation), serve that
    instead: its file belongs to whoever made it, and stays when serving ends.
    """
    if inherited is not None:
        path = inherited.getsockname()
    else:
        path = socket_path or protocol.default_socket_path()
    if max_frame is None:
        max_frame = kernel.options.max_image_size + protocol.FRAME_HEADROOM
    server = Server(kernel, path, max_frame)
    if inherited is not None:
        listener, identity = trio.socket.from_stdlib_socket(inherited), None
    else:
        listener, identity = await _listen(path)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            log.info("listening on %s", path)
            while True:
                try:
                    conn, _ = await listener.accept()
                except OSError as exc:  # EMFILE and friends: wait for sessions to end, not die
                    log.warning("accept failed: %s", exc)
                    await trio.sleep(0.1)
                    continue
                if server.connections >= kernel.options.max_connections:
                    nursery.start_soon(_refuse, conn, kernel.options.max_connections)
                    continue
                server.connections += 1          # counted from accept, not from run
                nursery.start_soon(_session, server, conn)
    finally:
        listener.close()
        if identity is not None:
            _unlink_if_ours(path, identity)


async def _refuse(conn: trio.socket.SocketType, limit: int) -> None:
    """One error frame saying why, then the close: a peer over the limit
    learns what happened instead of seeing a silent hang-up."""
    with conn, trio.move_on_after(1):
        try:
            await conn.send(protocol.error_reply(
                None, errno.EMFILE, f"too many connections to kloaderd (max_connections={limit})"))
        except OSError:
            pass


async def _session(server: Server, conn: trio.socket.SocketType) -> None:
    try:
        try:
            session = Session(server, conn)
        except OSError:  # the peer is gone before we could ask who it was
            conn.close()
            return
        await session.run()
    finally:
        server.connections -= 1


async def _listen(path: str) -> tuple[trio.socket.SocketType, tuple[int, int]]:
    await _clear_stale(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Mode 0600 from birth: no window in which another user could connect.
        old_umask = os.umask(0o177)
        try:
            await sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(128)
        st = os.stat(path)
    except OSError as exc:                # no such directory, no permission: say where
        sock.close()
        raise KernelError(exc.errno or errno.EIO, f"cannot listen on {path}: {exc.strerror}") from None
    except BaseException:
        sock.close()
        raise
    return sock, (st.st_dev, st.st_ino)


async def _clear_stale(path: str) -> None:
    """Remove a socket left by a dead daemon; refuse to replace a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise KernelError(errno.EEXIST, f"{path} exists and is not a socket; not replacing it")
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await probe.connect(path)
    except ConnectionRefusedError:
        log.info("replacing the stale socket %s", path)
        os.unlink(path)
        return
    finally:
        probe.close()
    raise KernelError(errno.EADDRINUSE, f"another kloaderd is already listening on {path}")


def _unlink_if_ours(path: str, identity: tuple[int, int]) -> None:
    """Remove the socket file unless another daemon has since replaced it."""
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == identity:
            os.unlink(path)
    except FileNotFoundError:
        pass
