"""kloaderd's Python client: `Client` (blocking) and `AsyncClient` (trio).

Failures raise the `OSError` subclass a system call would raise; a daemon
that is not listening raises `DaemonNotRunning` (a `ConnectionError`).
"""

from kloaderd.server.protocol import default_socket_path

from kloader_client.client import AsyncClient, Client
from kloader_client.errors import DaemonNotRunning, ProtocolError

__all__ = ["AsyncClient", "Client", "DaemonNotRunning", "ProtocolError", "default_socket_path"]
