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
import resource
import socket
import stat
import time
from collections import Counter
from typing import Any

import trio

from kloaderd import uapi
from kloaderd.errors import KernelError
from kloaderd.server import protocol
from kloaderd.server.collector import Collector
from kloaderd.server.session import Peer, Session

# Server-wide bounds (docs/reliability.md, "Bounds").
MAX_FOLLOWS_TOTAL = 256     # `dmesg` follow streams at once: each costs every log line a wake-up
MAX_QUEUED_FDS_TOTAL = 256  # SCM_RIGHTS descriptors held unused, all connections together
FD_RESERVE = 64             # descriptors kept for the daemon itself (log, files read, threads)

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
        self.by_uid: Counter[int] = Counter()    # the same, per peer uid
        self.follows = 0
        self.max_follows = MAX_FOLLOWS_TOTAL
        self.queued_fds = 0
        self.max_connections, self.max_queued_fds = fd_budget(kernel.options.max_connections)
        self.started = time.monotonic()
        self.collector: Collector | None = None   # the daemon process's GC policy, if it has one

    def admit(self, peer: Peer) -> str | None:
        """Why a new connection from `peer` is refused, or None to admit it."""
        options = self.kernel.options
        if self.connections >= self.max_connections:
            return f"too many connections to kloaderd (max_connections={self.max_connections})"
        if self.by_uid[peer.uid] >= options.max_connections_per_uid:
            return (f"too many connections to kloaderd from uid {peer.uid} "
                    f"(max_connections_per_uid={options.max_connections_per_uid})")
        return None

    def status(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "uid": self.uid, "socket": self.path,
                "protocol": uapi.PROTOCOL_VERSION, "sessions": len(self.sessions),
                "max_frame": self.max_frame, "uptime": time.monotonic() - self.started,
                "gc": self.collector.stats() if self.collector is not None else None}


async def serve(kernel: Any, socket_path: str | None = None, *,
                task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
                max_frame: int | None = None, inherited: socket.socket | None = None,
                collector: Collector | None = None) -> None:
    """Listen on `socket_path` (default: `default_socket_path()`) until cancelled.

    `task_status.started()` reports the path once clients can connect.  Raises
    `KernelError(EADDRINUSE)` if a live daemon already listens there.  With
    `inherited` (a listening socket from socket activation), serve that
    instead: its file belongs to whoever made it, and stays when serving ends.
    """
    if inherited is not None:
        path = inherited.getsockname()
    else:
        path = socket_path or uapi.default_socket_path()
    if max_frame is None:
        max_frame = kernel.options.max_image_size + uapi.FRAME_HEADROOM
    server = Server(kernel, path, max_frame)
    server.collector = collector
    if inherited is not None:
        listener, identity = trio.socket.from_stdlib_socket(inherited), None
    else:
        if os.path.dirname(path) == uapi.private_socket_dir():
            make_private_dir(os.path.dirname(path))
        listener, identity = await _listen(path)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_reap_idle, server)
            task_status.started(path)
            log.info("listening on %s", path)
            while True:
                try:
                    conn, _ = await listener.accept()
                except OSError as exc:  # EMFILE and friends: wait for sessions to end, not die
                    log.warning("accept failed: %s", exc)
                    await trio.sleep(0.1)
                    continue
                try:
                    peer = Peer.of(conn)
                except OSError:                  # gone before we could ask who it was
                    conn.close()
                    continue
                refusal = server.admit(peer)
                if refusal is not None:
                    nursery.start_soon(_refuse, conn, refusal)
                    continue
                server.connections += 1          # counted from accept, not from run
                server.by_uid[peer.uid] += 1
                nursery.start_soon(_session, server, conn, peer)
    finally:
        listener.close()
        if identity is not None:
            _unlink_if_ours(path, identity)


async def _refuse(conn: trio.socket.SocketType, why: str) -> None:
    """One error frame saying why, then the close: a peer over the limit
    learns what happened instead of seeing a silent hang-up."""
    with conn, trio.move_on_after(1):
        try:
            await conn.send(protocol.error_reply(None, errno.EMFILE, why))
        except OSError:
            pass


async def _session(server: Server, conn: trio.socket.SocketType, peer: Peer) -> None:
    try:
        await Session(server, conn, peer).run()
    finally:
        server.connections -= 1
        server.by_uid[peer.uid] -= 1
        if not server.by_uid[peer.uid]:
            del server.by_uid[peer.uid]


async def _reap_idle(server: Server) -> None:
    """Close connections silent for `idle_timeout` that hold nothing.

    One task for the whole server, waking four times a timeout, instead of a
    timer on every read: a connection is closed between one and 1.25 timeouts
    after its last byte.
    """
    timeout = server.kernel.options.idle_timeout
    if timeout <= 0:
        return
    while True:
        await trio.sleep(timeout / 4)
        now = trio.current_time()
        for session in list(server.sessions):
            if now - session.last_read >= timeout and session.idle():
                session.time_out(timeout)


def fd_budget(max_connections: int) -> tuple[int, int]:
    """How many connections, and queued SCM_RIGHTS descriptors, the
    descriptor table can really hold.

    Raises the soft RLIMIT_NOFILE to the hard one, then gives queued
    descriptors at most a quarter, keeps FD_RESERVE for the daemon's own files
    and half the rest for refusals in progress: past the table, `accept`
    fails with EMFILE and new clients would hang unanswered instead of being
    told why.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > soft):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return max_connections, MAX_QUEUED_FDS_TOTAL
    queued = min(MAX_QUEUED_FDS_TOTAL, soft // 4)
    budget = max(1, (soft - FD_RESERVE - queued) // 2)
    if budget < max_connections:
        log.warning("max_connections lowered from %d to %d: RLIMIT_NOFILE is %d",
                    max_connections, budget, soft)
    return min(max_connections, budget), queued


def make_private_dir(path: str) -> None:
    """Create (or accept) the default socket's directory: ours, mode 0700, not a symlink.

    Anything else — another user's directory, one others may enter or write,
    a symlink — could let someone else squat or watch the socket: refuse it,
    naming the owner, rather than serve from it.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise KernelError(errno.EEXIST, f"{path} is not a directory (a symlink?); not serving from it")
    if st.st_uid != os.geteuid():
        raise KernelError(errno.EPERM, f"{path} belongs to uid {st.st_uid}, not to you (uid "
                                       f"{os.geteuid()}); not serving from it: remove it, or use --socket")
    if st.st_mode & 0o077:
        raise KernelError(errno.EPERM, f"{path} has mode {stat.S_IMODE(st.st_mode):04o}, open to "
                                       "others; not serving from it: chmod 700 it, or use --socket")


async def _listen(path: str) -> tuple[trio.socket.SocketType, tuple[int, int]]:
    too_long = uapi.socket_path_too_long(path)
    if too_long:
        raise KernelError(errno.ENAMETOOLONG, f"cannot listen on {path}: {too_long}")
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
