"""systemd socket activation: the listening socket a service manager passed in.

The protocol is sd_listen_fds(3)'s: a manager that opened the socket starts
the daemon with the socket at fd 3 (`SD_LISTEN_FDS_START`), `LISTEN_FDS`
saying how many and `LISTEN_PID` naming the process they are for, so a child
that inherits the environment does not take them too.  kloaderd serves one
socket, so it takes exactly one, and it must be a Unix stream socket that is
already listening.  contrib/systemd/ has the units.
"""

from __future__ import annotations

import errno
import os
import socket

from kloaderd.errors import KernelError

SD_LISTEN_FDS_START = 3


def listen_socket(environ: dict[str, str] | None = None) -> socket.socket | None:
    """The socket passed by socket activation, or None when there is none for us.

    As sd_listen_fds(unset_environment=1): the variables are removed, so a
    process this one starts does not mistake the fds for its own.
    """
    env = os.environ if environ is None else environ
    pid, count = env.pop("LISTEN_PID", None), env.pop("LISTEN_FDS", None)
    env.pop("LISTEN_FDNAMES", None)
    if pid is None or count is None or not pid.isdigit() or int(pid) != os.getpid():
        return None
    if not count.isdigit() or int(count) == 0:
        return None
    if int(count) != 1:
        raise KernelError(errno.EINVAL, f"socket activation passed {count} sockets; kloaderd serves one "
                                        "(give its .socket unit a single ListenStream=)")
    fd = SD_LISTEN_FDS_START
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise KernelError(exc.errno or errno.EBADF, f"socket activation: fd {fd} is not a socket: "
                                                    f"{exc.strerror}") from None
    os.set_inheritable(fd, False)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM \
            or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise KernelError(errno.EINVAL, f"socket activation: fd {fd} is not a listening Unix stream socket "
                                        "(the .socket unit needs ListenStream=/path and Accept=no)")
    return sock
