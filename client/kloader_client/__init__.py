"""kloaderd's Python client: `Client` (blocking) and `AsyncClient` (trio or asyncio).

Failures raise the `OSError` subclass a system call would raise; a daemon
that is not listening raises `DaemonNotRunning` (a `ConnectionError`).
"""

from importlib.metadata import PackageNotFoundError, version

from kloaderd.uapi import default_socket_path

from kloader_client.client import AsyncClient, Client
from kloader_client.errors import DaemonNotRunning, ProtocolError, UntrustedDaemon

try:
    # pyproject.toml's version, the same one kloaderd.__version__ reads.
    __version__ = version("kloader")
except PackageNotFoundError:  # a tree on sys.path that was never installed
    __version__ = "0+unknown"

__all__ = ["AsyncClient", "Client", "DaemonNotRunning", "ProtocolError", "UntrustedDaemon",
           "default_socket_path"]
