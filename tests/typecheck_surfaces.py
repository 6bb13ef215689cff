"""Type-level checks, for mypy, not pytest: each workspace follows the protocols of `vfs.surface`.

    .venv/bin/python -m mypy --follow-imports=silent tests/typecheck_surfaces.py

Each function below assigns an implementation to a protocol; mypy rejects
the file as soon as a signature drifts from its declaration. Nothing here
runs (pytest does not collect this module; `tests/test_surfaces.py` runs
the command above).
"""

from __future__ import annotations

import vfs
from client_py.mount.ops import WsfsOperations
from client_py.mount.remote_backend import RemoteBackend
from client_py.workspace import RemoteFile, RemoteWorkspace
from vfs.surface import AsyncBinaryFile, AsyncWorkspaceSurface, MountBackend, ReadableFile, WorkspaceSurface

# -- the store ----------------------------------------------------------------


def store_is_a_workspace_surface(ws: vfs.Workspace) -> WorkspaceSurface:
    surface: WorkspaceSurface = ws
    return surface


def store_can_back_a_mount(ws: vfs.Workspace) -> MountBackend:
    backend: MountBackend = ws
    return backend


def local_mount_serves_the_store(ws: vfs.Workspace) -> WsfsOperations:
    """What `client_py.mount.runner.mount_local` hands the FUSE operations."""
    return WsfsOperations(lambda: ws)


# -- the remote mount ---------------------------------------------------------


def remote_backend_can_back_a_mount(remote: RemoteBackend) -> MountBackend:
    backend: MountBackend = remote
    return backend


def remote_backend_opens_readable_files(remote: RemoteBackend) -> ReadableFile:
    reader: ReadableFile = remote.open("/f")
    return reader


def remote_mount_serves_the_backend(remote: RemoteBackend) -> WsfsOperations:
    """What `client_py.mount.remote_backend.mount_remote` hands the FUSE operations."""
    return WsfsOperations(lambda: remote)


# -- the async client ---------------------------------------------------------


def client_is_an_async_workspace_surface(ws: RemoteWorkspace) -> AsyncWorkspaceSurface:
    surface: AsyncWorkspaceSurface = ws
    return surface


def client_files_are_async_binary_files(f: RemoteFile) -> AsyncBinaryFile:
    file: AsyncBinaryFile = f
    return file
