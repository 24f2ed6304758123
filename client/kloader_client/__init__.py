"""kloaderd's Python client: `Client` (blocking) and `AsyncClient` (trio or asyncio).

Failures raise the `OSError` subclass a system call would raise; a daemon
that is not listening raises `DaemonNotRunning` (a `ConnectionError`).
"""

from kloaderd import __version__ as __version__  # re-exported: one version for both packages
from kloaderd.uapi import default_socket_path

from kloader_client.client import AsyncClient, Client
from kloader_client.errors import DaemonNotRunning, ProtocolError, UntrustedDaemon

__all__ = ["AsyncClient", "Client", "DaemonNotRunning", "ProtocolError", "UntrustedDaemon",
           "default_socket_path"]
