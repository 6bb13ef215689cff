"""Type-level checks, for mypy, not pytest: the store follows the protocols of `vfs.surface`.

    .venv/bin/python -m mypy tests/typecheck_surfaces.py

Each function below assigns an implementation to a protocol; mypy rejects
the file as soon as a signature drifts from its declaration. Nothing here
runs (pytest does not collect this module).
"""

from __future__ import annotations

import vfs
from vfs.surface import MountBackend, WorkspaceSurface


def store_is_a_workspace_surface(ws: vfs.Workspace) -> WorkspaceSurface:
    surface: WorkspaceSurface = ws
    return surface


def store_can_back_a_mount(ws: vfs.Workspace) -> MountBackend:
    backend: MountBackend = ws
    return backend
