"""How the daemon's failures reach Python code: as the `OSError` a system call would raise.

`OSError(errno, message)` picks the built-in subclass from the errno itself
(`FileNotFoundError` for ENOENT, `FileExistsError`, `BlockingIOError` for
EWOULDBLOCK, `PermissionError`, `TimeoutError`, ...), so callers catch
exactly what they would around `init_module(2)` or `delete_module(2)`.
"""

from __future__ import annotations

import errno
import os
import pwd
from typing import Any

from kloaderd.uapi import errno_code


def from_reply(body: Any) -> OSError:
    """The exception for a reply's `error` member."""
    if not isinstance(body, dict):
        return ProtocolError(f"malformed error reply: {body!r}")
    return OSError(errno_code(body), str(body.get("message", "")))


class DaemonNotRunning(ConnectionError):
    """Nothing listens on the socket: the one-line advice says how to start it."""

    def __init__(self, path: str, cause: OSError) -> None:
        super().__init__(cause.errno or errno.ECONNREFUSED,
                         f"could not connect to kloaderd at {path}: is the daemon running? "
                         f"Start it with: kloaderd --socket {path} &")
        self.path = path


class UntrustedDaemon(PermissionError):
    """Whoever listens on the socket is neither this user nor root: not our daemon."""

    def __init__(self, path: str, pid: int, uid: int) -> None:
        super().__init__(errno.EPERM, f"the socket {path} is served by uid {uid} ({_user(uid)}, pid {pid}), "
                                      f"not by you (uid {os.getuid()}) or root: refusing to use it")
        self.path = path
        self.uid = uid


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "no such user"


class ProtocolError(OSError):
    """The daemon said something this client cannot understand."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EPROTO, message)


def connection_lost() -> ConnectionResetError:
    return ConnectionResetError(errno.ECONNRESET, "kloaderd closed the connection")
