"""The one exception that crosses kloader's layers.

Every failure a user can cause is a `KernelError`: an errno as Linux would
return it and a message a person can act on.  The ELF reader, the linker and
the emulated kernel raise it; the server turns it into an error reply; the
client turns that back into the matching `OSError` subclass.
"""

from __future__ import annotations

import errno as _errno


class KernelError(Exception):
    def __init__(self, errno: int, message: str) -> None:
        super().__init__(errno, message)
        self.errno = errno
        self.message = message

    @property
    def errno_name(self) -> str:
        return _errno.errorcode.get(self.errno, f"E{self.errno}")

    def __str__(self) -> str:
        return self.message


def enoexec(message: str) -> KernelError:
    return KernelError(_errno.ENOEXEC, message)
