"""`Client` (blocking) and `AsyncClient` (trio or asyncio): kloaderd from Python.

Both speak docs/uapi.md and offer the same methods, written once in
`_Api`: each method builds its request and hands it to `_call`, which returns
the result (`Client`) or an awaitable of it (`AsyncClient`).  Failures raise
the `OSError` subclass a system call would (see `errors`).
"""

from __future__ import annotations

import array
import collections
import errno
import os
import socket
import struct
import sys
from typing import Any, AsyncIterator, Iterator

from kloaderd import uapi

from kloader_client.errors import (DaemonNotRunning, ProtocolError, UntrustedDaemon, connection_lost,
                                   from_reply)

_REPLY_LIMIT = 1 << 30  # replies are small, but kallsyms of many modules is not tiny


def _flags(force_vermagic: bool, force_modversion: bool, compressed: bool = False) -> int:
    return ((uapi.MODULE_INIT_IGNORE_VERMAGIC if force_vermagic else 0)
            | (uapi.MODULE_INIT_IGNORE_MODVERSIONS if force_modversion else 0)
            | (uapi.MODULE_INIT_COMPRESSED_FILE if compressed else 0))


def _client_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


def _ancillary(fd: int | None) -> list[tuple[int, int, bytes]]:
    return [] if fd is None else [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())]


def _result(message: dict[str, Any]) -> Any:
    if "error" in message:
        raise from_reply(message["error"])
    if "result" not in message:
        raise ProtocolError(f"reply without result or error: {message!r}")
    return message["result"]


def _connect_error(path: str, exc: OSError) -> OSError:
    too_long = uapi.socket_path_too_long(path)
    if too_long:
        return OSError(errno.ENAMETOOLONG, f"cannot connect to kloaderd at {path}: {too_long}")
    if isinstance(exc, (FileNotFoundError, ConnectionRefusedError)):
        return DaemonNotRunning(path, exc)
    return exc


_UCRED = struct.Struct("3i")


def _check_peer(sock: socket.socket, path: str) -> None:
    """Talk only to a daemon run by this user or by root (SO_PEERCRED).

    Anyone may create a socket where the daemon is expected: a client that
    sent its images to, and believed the answers of, whoever listens there
    could be fooled by another local user.
    """
    pid, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    if uid not in (os.getuid(), 0):
        raise UntrustedDaemon(path, pid, uid)


class _Api:
    """The operations, once for both clients."""

    def _call(self, op: str, pass_fd: int | None = None, **args: Any) -> Any:
        raise NotImplementedError

    def init_module(self, image: bytes, params: str = "", *, force_vermagic: bool = False,
                    force_modversion: bool = False) -> Any:
        """Load a module from its whole image in one call; returns its name."""
        return self._call("init_module", image=bytes(image), params=params,
                          flags=_flags(force_vermagic, force_modversion))

    def delete_module(self, name: str, *, wait: bool = False, timeout: float | None = None,
                      force: bool = False) -> Any:
        return self._call("delete_module", name=name, wait=wait, timeout=timeout, force=force)

    def modprobe(self, name: str, params: str = "", remove: bool = False, wait: bool = False, *,
                 timeout: float | None = None, first_time: bool = False, dry_run: bool = False,
                 show_depends: bool = False, ignore_install: bool = False, dirname: str | None = None,
                 config: list[str] | None = None) -> Any:
        """modprobe in the daemon: load NAME or ALIAS and what it needs from a module tree
        (`remove`: take it and its unused dependencies away).

        The daemon reads the tree (`dirname`, default its kernel's
        /lib/modules/RELEASE) and the module files itself.  Returns
        `{"actions": ["insmod PATH OPTIONS", ...], "dirname": ...}`; raises
        the OSError modprobe's failure maps to, with modprobe's message.
        """
        return self._call("modprobe", name=name, params=params, remove=remove, wait=wait, timeout=timeout,
                          first_time=first_time, dry_run=dry_run, show_depends=show_depends,
                          ignore_install=ignore_install, dirname=dirname,
                          config=None if config is None else [os.fspath(p) for p in config])

    def try_module_get(self, name: str) -> Any:
        """Take a reference owned by this connection: it goes when the connection does."""
        return self._call("try_module_get", name=name)

    def module_put(self, name: str) -> Any:
        return self._call("module_put", name=name)

    def modules(self) -> Any:
        return self._call("modules")

    def module(self, name: str) -> Any:
        return self._call("module", name=name)

    def param_get(self, module: str, param: str) -> Any:
        return self._call("param_get", module=module, param=param)

    def param_set(self, module: str, param: str, value: str) -> Any:
        return self._call("param_set", module=module, param=param, value=str(value))

    def kallsyms(self) -> Any:
        return self._call("kallsyms")

    def dmesg_page(self, since: int = 0) -> Any:
        """At most `uapi.DMESG_PAGE` log records after sequence number `since`."""
        return self._call("dmesg", since=since, limit=uapi.DMESG_PAGE)

    def modinfo(self, image: bytes) -> Any:
        return self._call("modinfo", image=bytes(image))

    def status(self) -> Any:
        return self._call("status")

    # -- the kernel's files (/proc, /sys, /sys/kernel/debug, /dev):
    # this connection is the process that holds them

    def read_file(self, path: str) -> Any:
        """The whole of a kernel file, as `cat` reads it (bytes)."""
        return self._call("read_file", path=path)

    def write_file(self, path: str, data: bytes | str) -> Any:
        """Write `data` to a kernel file, as `echo -n DATA > PATH`; returns the bytes taken."""
        return self._call("write_file", path=path, data=data.encode() if isinstance(data, str) else bytes(data))

    def listdir(self, path: str) -> Any:
        """The names in a kernel directory, in order."""
        return self._call("listdir", path=path)

    def stat(self, path: str, follow: bool = True) -> Any:
        """{"name", "mode" (st_mode), "type" (file/dir/link/chr), "size", "uid", "gid",
        "ino", "nlink", "rdev"} (and "target" for a link with follow=False)."""
        return self._call("stat", path=path, follow=follow)

    def open(self, path: str, flags: int = os.O_RDWR) -> Any:
        """Open a kernel file or device node; returns a descriptor of this connection."""
        return self._call("open", path=path, flags=flags)

    def read(self, fd: int, size: int) -> Any:
        """Up to `size` bytes from the driver's .read (b"" at its end)."""
        return self._call("read", fd=fd, size=size)

    def write(self, fd: int, data: bytes) -> Any:
        """Hand `data` to the driver's .write; returns how many bytes it took."""
        return self._call("write", fd=fd, data=bytes(data))

    def ioctl(self, fd: int, request: int, arg: int = 0) -> Any:
        """The driver's .unlocked_ioctl with an integer argument; returns its result."""
        return self._call("ioctl", fd=fd, request=request, arg=arg)

    def ioctl_buffer(self, fd: int, request: int, data: bytes) -> Any:
        """.unlocked_ioctl with a pointer to a user buffer holding `data`:
        returns {"result": int, "data": the buffer afterwards}."""
        return self._call("ioctl", fd=fd, request=request, arg=bytes(data))

    def lseek(self, fd: int, offset: int, whence: int = os.SEEK_SET) -> Any:
        return self._call("lseek", fd=fd, offset=offset, whence=whence)

    def close(self, fd: int) -> Any:
        """Close a descriptor: the driver's .release runs, its references go."""
        return self._call("close", fd=fd)

    def mknod(self, path: str, major: int, minor: int) -> Any:
        """Make a character device node at `path` for major:minor."""
        return self._call("mknod", path=path, major=major, minor=minor)

    def devices(self) -> Any:
        """The device nodes: [{"path", "major", "minor", "made_by"}]."""
        return self._call("devices")

    def mount(self, fstype: str, target: str, source: str = "none", data: str = "") -> Any:
        """Mount a registered filesystem type on `target` (mount(2)); the
        mount pins the type's module until `umount`.  Returns
        {"fstype", "target", "source", "dev"}."""
        return self._call("mount", fstype=fstype, target=target, source=source, data=data)

    def umount(self, target: str) -> Any:
        """Unmount what was mounted last on `target` (umount(2))."""
        return self._call("umount", target=target)

    def mounts(self) -> Any:
        """The mount table: [{"source", "target", "fstype", "dev"}], in mount order."""
        return self._call("mounts")

    def raise_irq(self, irq: int, *, wait: bool = False) -> Any:
        """Deliver interrupt `irq` as a device raising it: its handlers run
        in hardirq context and the tasklets they scheduled after them before
        this returns; with `wait`, its irq threads have run too.  Returns {"irq",
        "delivered" (False: the line is disabled, the interrupt is pending),
        "pending", "result" (the handlers' irqreturn_t bits, OR-ed)}."""
        return self._call("raise_irq", irq=irq, wait=wait)


class Client(_Api):
    """A blocking connection to kloaderd; one request at a time."""

    def __init__(self, socket_path: str | None = None, *, client_name: str | None = None) -> None:
        self.path = socket_path or uapi.default_socket_path()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(self.path)
            _check_peer(self._sock, self.path)
        except OSError as exc:
            self._sock.close()
            raise _connect_error(self.path, exc) from None
        self._decoder = uapi.unpacker(_REPLY_LIMIT)
        self._pack = uapi.packer().pack   # one per connection
        self._next_id = 0
        # Replies read ahead of their turn, by id (a followed log's events
        # while another call waits); empty queues are dropped.
        self._stash: dict[Any, collections.deque[dict[str, Any]]] = {}
        self._lost: OSError | None = None       # why the daemon hung up, once it has
        self.server = self._call("hello", version=uapi.PROTOCOL_VERSION,
                                 client=client_name or _client_name())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, fd: int | None = None) -> Any:  # type: ignore[override]
        """`close()` ends the connection (the daemon closes its descriptors);
        `close(fd)` closes one descriptor."""
        if fd is not None:
            return super().close(fd)
        self._sock.close()
        return None

    def finit_module(self, path: str | os.PathLike[str] | int, params: str = "", *,
                     force_vermagic: bool = False, force_modversion: bool = False,
                     compressed: bool = False) -> str:
        """Load from a file the daemon reads through the descriptor this process opened;
        `compressed`: a .ko.gz/.ko.xz/.ko.zst the kernel decompresses
        (MODULE_INIT_COMPRESSED_FILE)."""
        flags = _flags(force_vermagic, force_modversion, compressed)
        if isinstance(path, int):
            return self._call("finit_module", pass_fd=path, params=params, flags=flags)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return self._call("finit_module", pass_fd=fd, params=params, flags=flags)
        finally:
            os.close(fd)

    def dmesg(self, since: int = 0) -> list[dict[str, Any]]:
        """The log records after sequence number `since`, each with its dmesg `line`
        (page by page: the daemon bounds one reply)."""
        records: list[dict[str, Any]] = []
        while True:
            page = self.dmesg_page(since)
            records += page
            if len(page) < uapi.DMESG_PAGE:
                return records
            since = page[-1]["seq"]

    def follow_dmesg(self, since: int = 0) -> Iterator[dict[str, Any]]:
        """Every log record after `since`, then each new one as it is logged, until closed."""
        rid = self._send("dmesg", None, since=since, follow=True)
        ended = False
        try:
            while True:
                message = self._receive(rid)
                if "event" not in message:
                    ended = True
                    _result(message)
                    return
                yield message["event"]
        finally:
            if not ended and self._lost is None:
                # Stop the stream and drain its end and the cancel's reply, so
                # the connection is in step for the next call.  A daemon gone
                # meanwhile has no stream left to stop: closing is quiet.
                try:
                    cancel = self._send("cancel", None, target=rid)
                    while "event" in self._receive(rid):
                        pass
                    self._receive(cancel)
                except OSError:
                    if self._lost is None:
                        raise

    def _call(self, op: str, pass_fd: int | None = None, **args: Any) -> Any:
        """`pass_fd`: a descriptor of this process to send with SCM_RIGHTS."""
        return _result(self._receive(self._request(op, pass_fd, args)))

    def _send(self, op: str, pass_fd: int | None, **args: Any) -> int:
        return self._request(op, pass_fd, args)

    def _request(self, op: str, pass_fd: int | None, args: dict[str, Any]) -> int:
        """Send one request; its id."""
        rid = self._next_id
        self._next_id = rid + 1
        data = self._pack({"op": op, "id": rid, **args})
        try:
            if pass_fd is None:
                self._sock.sendall(data)
            else:
                sent = self._sock.sendmsg([data], _ancillary(pass_fd))
                self._sock.sendall(memoryview(data)[sent:])
        except (BrokenPipeError, ConnectionResetError):
            self._lost = self._why_lost()
            raise self._lost from None
        return rid

    def _why_lost(self) -> OSError:
        """The daemon hung up: what it said first (EMFILE, ETIMEDOUT, ...), if anything."""
        self._sock.settimeout(0)
        try:
            while data := self._sock.recv(uapi.RECV_SIZE):
                self._decoder.feed(data)
        except OSError:
            pass
        for message in self._decoder:
            if isinstance(message, dict) and message.get("id") is None and "error" in message:
                return from_reply(message["error"])
        return connection_lost()

    def _receive(self, rid: int) -> dict[str, Any]:
        """The next message for `rid`, keeping others' for their turn.

        The usual case costs a dict lookup and one decoded message: nothing
        stashed, and the next message is the one awaited."""
        stash = self._stash
        if stash:
            queue = stash.get(rid)
            if queue:
                message = queue.popleft()
                if not queue:
                    del stash[rid]
                return message
        while True:
            for message in self._decoder:
                if not isinstance(message, dict):
                    raise ProtocolError(f"unexpected message {message!r}")
                mid = message.get("id")
                if mid is None and "error" in message:
                    raise from_reply(message["error"])
                if mid == rid:
                    return message
                stash.setdefault(mid, collections.deque()).append(message)
            try:
                data = self._sock.recv(uapi.RECV_SIZE)
            except ConnectionResetError:
                data = b""
            if not data:
                self._lost = connection_lost()
                raise self._lost
            self._decoder.feed(data)


class AsyncClient(_Api):
    """An async connection to kloaderd, under trio or asyncio; concurrent calls are pipelined on it.

    Use as `async with AsyncClient(path) as client:`.  anyio runs it on
    whichever of the two event loops is running, with the same structured
    concurrency either way: the reader is a task in a task group this block
    owns, and nothing outlives the block.
    """

    def __init__(self, socket_path: str | None = None, *, client_name: str | None = None) -> None:
        self.path = socket_path or uapi.default_socket_path()
        self._client_name = client_name or _client_name()
        self._next_id = 0
        self._pack = uapi.packer().pack   # one per connection
        self._waiters: dict[int, Any] = {}
        self._closed: OSError | None = None
        self.server: dict[str, Any] | None = None

    async def __aenter__(self) -> AsyncClient:
        import anyio
        from anyio.abc import SocketAttribute

        self._anyio = anyio
        try:
            self._stream = await anyio.connect_unix(self.path)
        except OSError as exc:
            raise _connect_error(self.path, exc) from None
        try:
            _check_peer(self._stream.extra(SocketAttribute.raw_socket), self.path)
        except OSError as exc:
            await self._stream.aclose()
            raise _connect_error(self.path, exc) from None
        self._reader_done = anyio.Event()
        self._send_lock = anyio.Lock()
        self._task_group = anyio.create_task_group()
        group = await self._task_group.__aenter__()
        group.start_soon(self._reader)
        self._cancel_reader = group.cancel_scope.cancel
        try:
            self.server = await self._call("hello", version=uapi.PROTOCOL_VERSION, client=self._client_name)
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._cancel_reader()
        try:
            # The body's own exception is not the reader's: keeping it out of
            # the task group lets it propagate as itself, never inside an
            # ExceptionGroup.
            await self._task_group.__aexit__(None, None, None)
        finally:
            with self._anyio.CancelScope(shield=True):
                await self._stream.aclose()

    async def finit_module(self, path: str | os.PathLike[str] | int, params: str = "", *,
                           force_vermagic: bool = False, force_modversion: bool = False,
                           compressed: bool = False) -> str:
        flags = _flags(force_vermagic, force_modversion, compressed)
        if isinstance(path, int):
            return await self._call("finit_module", pass_fd=path, params=params, flags=flags)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return await self._call("finit_module", pass_fd=fd, params=params, flags=flags)
        finally:
            os.close(fd)

    async def dmesg(self, since: int = 0) -> list[dict[str, Any]]:
        """The log records after sequence number `since`, page by page."""
        records: list[dict[str, Any]] = []
        while True:
            page = await self.dmesg_page(since)
            records += page
            if len(page) < uapi.DMESG_PAGE:
                return records
            since = page[-1]["seq"]

    async def follow_dmesg(self, since: int = 0) -> AsyncIterator[dict[str, Any]]:
        send, receive = self._anyio.create_memory_object_stream[dict[str, Any]](float("inf"))
        with send, receive:
            rid = await self._send("dmesg", None, send, since=since, follow=True)
            try:
                async for message in receive:
                    if "event" not in message:
                        _result(message)
                        return
                    yield message["event"]
            finally:
                self._waiters.pop(rid, None)
                with self._anyio.CancelScope(shield=True):
                    if self._closed is None:
                        await self._call("cancel", target=rid)

    async def _call(self, op: str, pass_fd: int | None = None, **args: Any) -> Any:
        send, receive = self._anyio.create_memory_object_stream[dict[str, Any]](1)
        with send, receive:
            rid = await self._send(op, pass_fd, send, **args)
            try:
                return _result(await receive.receive())
            finally:
                self._waiters.pop(rid, None)

    async def _send(self, op: str, pass_fd: int | None, waiter: Any, **args: Any) -> int:
        if self._closed is not None:
            raise self._closed
        rid = self._next_id
        self._next_id += 1
        self._waiters[rid] = waiter
        frame = self._pack({"op": op, "id": rid, **args})
        anyio = self._anyio
        async with self._send_lock:
            try:
                if pass_fd is None:
                    await self._stream.send(frame)
                else:
                    await self._stream.send_fds(frame, [pass_fd])   # the fd rides on the frame's first byte
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self._reader_done.wait()      # it reads what the daemon said last
                raise self._closed or connection_lost() from None
        return rid

    async def _reader(self) -> None:
        anyio = self._anyio
        decoder = uapi.unpacker(_REPLY_LIMIT)
        try:
            while True:
                data = await self._stream.receive(uapi.RECV_SIZE)
                decoder.feed(data)
                for message in decoder:
                    self._deliver(message)
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            self._closed = self._closed or connection_lost()
            lost = {"id": None, "error": {"errno": uapi.errno_name(self._closed.errno or 0),
                                          "message": self._closed.strerror}}
            for waiter in self._waiters.values():
                self._notify(waiter, lost)
            self._reader_done.set()

    def _deliver(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        rid = message.get("id")
        if rid is None and "error" in message:
            self._closed = from_reply(message["error"])   # the daemon's last word before it hangs up
            for waiter in self._waiters.values():  # a frame error: everyone hears it
                self._notify(waiter, message)
            return
        waiter = self._waiters.get(rid) if isinstance(rid, int) else None
        if waiter is not None:
            self._notify(waiter, message)

    def _notify(self, waiter: Any, message: dict[str, Any]) -> None:
        try:
            waiter.send_nowait(message)
        except (self._anyio.WouldBlock, self._anyio.BrokenResourceError, self._anyio.ClosedResourceError):
            pass  # that caller has its answer already, or has gone
