"""kloader-mount: the kernel's file tree (/proc, /sys, /sys/kernel/debug,
/dev) as a FUSE file system, so `cat`, `ls` and real tools can look.

Every FUSE request is a request of one client connection: a lookup is a
`stat`, a directory listing `listdir`, an open `open` (this connection is
the process holding the descriptors), a read `lseek` (when FUSE asks for
another offset than where the file is) and `read`.  Nothing is cached
(zero attribute and entry timeouts, direct I/O): a file reads what the
kernel says now, as procfs and sysfs do, whatever its `st_size`.

Device nodes are shown as regular files: a character device on a FUSE
mount would open the host's driver of that number, not kloader's; as a
file, a read goes through FUSE to the emulated driver.  The mount is
`nodev,nosuid` for the same reason.  It runs in the foreground until
SIGINT or SIGTERM, then unmounts.  Needs pyfuse3 (`pip install
'kloader[mount]'`, which builds against libfuse3) and /dev/fuse.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
from typing import Any

from kloader_client.commands._common import die, parser

ROOT_INODE = 1


def make_parser() -> argparse.ArgumentParser:
    """`kloader-mount`'s options: main() parses with it, tools/command_docs.py documents it."""
    p = parser("kloader-mount", "Mount kloaderd's kernel files (/proc, /sys, /dev) with FUSE.")
    p.add_argument("mountpoint", metavar="DIR", help="an existing directory to mount the tree on")
    p.add_argument("--allow-other", action="store_true",
                   help="let other users see the mount (FUSE's allow_other; needs user_allow_other "
                        "in /etc/fuse.conf unless root)")
    return p


def make_operations(pyfuse3: Any, client: Any) -> Any:
    """The FUSE operations over `client` (an AsyncClient)."""

    def fuse_error(exc: OSError) -> Exception:
        return pyfuse3.FUSEError(exc.errno or errno.EIO)

    class KernelFiles(pyfuse3.Operations):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.paths: dict[int, str] = {ROOT_INODE: "/"}
            self.inodes: dict[str, int] = {"/": ROOT_INODE}
            self.lookups: dict[int, int] = {}
            self.next_inode = ROOT_INODE + 1
            self.positions: dict[int, int] = {}     # fd -> the position the daemon's file is at

        def inode_of(self, path: str) -> int:
            inode = self.inodes.get(path)
            if inode is None:
                inode = self.inodes[path] = self.next_inode
                self.paths[inode] = path
                self.next_inode += 1
            return inode

        def path_of(self, inode: int) -> str:
            path = self.paths.get(inode)
            if path is None:
                raise pyfuse3.FUSEError(errno.ESTALE)
            return path

        async def attributes(self, path: str) -> Any:
            try:
                info = await client.stat(path, follow=False)
            except OSError as exc:
                raise fuse_error(exc) from None
            entry = pyfuse3.EntryAttributes()
            mode = info["mode"]
            if stat.S_ISCHR(mode):
                mode = stat.S_IFREG | stat.S_IMODE(mode)
            entry.st_ino = self.inode_of(path)
            entry.st_mode = mode
            entry.st_nlink = info["nlink"]
            entry.st_uid, entry.st_gid = os.getuid(), os.getgid()
            entry.st_size = info["size"]
            entry.st_blksize = 4096
            entry.attr_timeout = entry.entry_timeout = 0
            return entry

        async def lookup(self, parent_inode: int, name: bytes, ctx: Any = None) -> Any:
            parent = self.path_of(parent_inode)
            path = os.path.join(parent, os.fsdecode(name))
            entry = await self.attributes(path)
            self.lookups[entry.st_ino] = self.lookups.get(entry.st_ino, 0) + 1
            return entry

        async def forget(self, inode_list: list[tuple[int, int]]) -> None:
            for inode, count in inode_list:
                left = self.lookups.get(inode, 0) - count
                if left > 0:
                    self.lookups[inode] = left
                elif inode != ROOT_INODE:
                    self.lookups.pop(inode, None)
                    path = self.paths.pop(inode, None)
                    if path is not None:
                        self.inodes.pop(path, None)

        async def getattr(self, inode: int, ctx: Any = None) -> Any:
            return await self.attributes(self.path_of(inode))

        async def setattr(self, inode: int, attr: Any, fields: Any, fh: Any, ctx: Any) -> Any:
            # `echo x > FILE` truncates first: kernel files have no length to cut.
            if fields.update_mode or fields.update_uid or fields.update_gid:
                raise pyfuse3.FUSEError(errno.EPERM)
            return await self.attributes(self.path_of(inode))

        async def readlink(self, inode: int, ctx: Any) -> bytes:
            try:
                info = await client.stat(self.path_of(inode), follow=False)
            except OSError as exc:
                raise fuse_error(exc) from None
            if "target" not in info:
                raise pyfuse3.FUSEError(errno.EINVAL)
            return os.fsencode(info["target"])

        async def opendir(self, inode: int, ctx: Any) -> int:
            path = self.path_of(inode)
            info = await self.attributes(path)
            if not stat.S_ISDIR(info.st_mode):
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            return inode

        async def readdir(self, fh: int, start_id: int, token: Any) -> None:
            path = self.path_of(fh)
            try:
                names = await client.listdir(path)
            except OSError as exc:
                raise fuse_error(exc) from None
            for index in range(start_id, len(names)):
                try:
                    entry = await self.attributes(os.path.join(path, names[index]))
                except pyfuse3.FUSEError:
                    continue                      # gone since the listing
                if not pyfuse3.readdir_reply(token, os.fsencode(names[index]), entry, index + 1):
                    return
                self.lookups[entry.st_ino] = self.lookups.get(entry.st_ino, 0) + 1

        async def open(self, inode: int, flags: int, ctx: Any) -> Any:
            try:
                fd = await client.open(self.path_of(inode), flags & (os.O_ACCMODE | os.O_NONBLOCK))
            except OSError as exc:
                raise fuse_error(exc) from None
            self.positions[fd] = 0
            return pyfuse3.FileInfo(fh=fd, direct_io=True, keep_cache=False)

        async def seek(self, fd: int, offset: int) -> None:
            if self.positions.get(fd) == offset:
                return
            try:
                self.positions[fd] = await client.lseek(fd, offset)
            except OSError as exc:
                if exc.errno != errno.ESPIPE:          # a stream: the offset means nothing
                    raise fuse_error(exc) from None

        async def read(self, fd: int, offset: int, size: int) -> bytes:
            await self.seek(fd, offset)
            try:
                data = await client.read(fd, size)
            except OSError as exc:
                raise fuse_error(exc) from None
            self.positions[fd] = offset + len(data)
            return data

        async def write(self, fd: int, offset: int, data: bytes) -> int:
            await self.seek(fd, offset)
            try:
                count = await client.write(fd, data)
            except OSError as exc:
                raise fuse_error(exc) from None
            self.positions[fd] = offset + count
            return count

        async def release(self, fd: int) -> None:
            self.positions.pop(fd, None)
            try:
                await client.close(fd)
            except OSError:
                pass

    return KernelFiles()


async def serve(pyfuse3: Any, args: argparse.Namespace) -> None:
    import trio

    from kloader_client import AsyncClient

    async with AsyncClient(args.socket, client_name="kloader-mount") as client:
        options = set(pyfuse3.default_options) | {"fsname=kloader", "subtype=kloader", "nodev", "nosuid"}
        if args.allow_other:
            # Others are checked by the host kernel against the modes shown
            # (the mounting user as owner): they never borrow its privilege.
            options.add("allow_other")
        else:
            options.discard("default_permissions")   # the emulated kernel's own checks answer
        pyfuse3.init(make_operations(pyfuse3, client), args.mountpoint, options)
        try:
            print(f"kloader-mount: {args.mountpoint} mounted", flush=True)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_until_signalled, nursery.cancel_scope)
                await pyfuse3.main()                   # returns when unmounted from outside
                nursery.cancel_scope.cancel()
        finally:
            pyfuse3.close(unmount=True)


async def _until_signalled(scope: Any) -> None:
    import signal

    import trio
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        import pyfuse3
        import trio
    except ImportError as exc:
        die("kloader-mount", f"{exc.name} is not installed: pip install 'kloader[mount]' "
                             "(pyfuse3 builds against libfuse3: apt-get install libfuse3-dev pkg-config)")
    if not os.path.exists("/dev/fuse"):
        die("kloader-mount", "/dev/fuse is missing: this machine (or container) has no FUSE")
    if not os.path.isdir(args.mountpoint):
        die("kloader-mount", f"{args.mountpoint}: not a directory")
    try:
        trio.run(serve, pyfuse3, args)
    except OSError as exc:
        die("kloader-mount", f"{args.mountpoint}: {exc.strerror or exc}")
    except RuntimeError as exc:                  # fuse_session_mount failed
        die("kloader-mount", f"cannot mount {args.mountpoint}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
