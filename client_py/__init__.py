"""client_py: the Python client of a wsfs server.

- `Client(url, token=...)`: HTTP + WebSocket connection to a server;
  `client.workspace(name)` is an async mirror of `vfs.Workspace`.
- `Replica(url, workspace, local_dir, token=...)`: a real local directory
  kept in sync with a workspace, both ways, resuming from its watermark.
"""

from client_py.backoff import Backoff
from client_py.client import Client
from client_py.errors import ConnectionLost, ServerUnreachable
from client_py.workspace import RemoteWorkspace
from client_py.replica import Replica, SyncSummary
from client_py.watch import WatchEvent

__all__ = [
    "Backoff",
    "Client",
    "ConnectionLost",
    "RemoteWorkspace",
    "Replica",
    "ServerUnreachable",
    "SyncSummary",
    "WatchEvent",
]
