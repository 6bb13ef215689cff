"""client_py: the Python client of a wsfs server.

- `Client(url, token=...)`: HTTP + WebSocket connection to a server;
  `client.workspace(name)` is an async mirror of `vfs.Workspace`.
- `Replica(url, workspace, local_dir, token=...)`: a real local directory
  kept in sync with a workspace, both ways, resuming from its watermark.

The replica and watch modules load on first use (PEP 562): a command that
only talks HTTP (`wsfs ls`, `wsfs cat`) never pays for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from client_py.backoff import Backoff
from client_py.client import Client
from client_py.errors import ConnectionLost, ServerUnreachable
from client_py.workspace import RemoteWorkspace

if TYPE_CHECKING:
    from client_py.replica import Replica, SyncSummary
    from client_py.watch import WatchEvent

_LAZY = {"Replica": "client_py.replica", "SyncSummary": "client_py.replica", "WatchEvent": "client_py.watch"}

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


def __getattr__(name: str) -> Any:
    """`client_py.Replica` and friends, imported when first asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'client_py' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
