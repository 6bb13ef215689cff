"""server: the wsfs workspace server (Starlette on uvicorn).

`create_app(data_dir, ...)` builds the app; `wsfs serve` runs it. See
docs/protocol.md for the wire protocol and docs/server.md for the design.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use: every `wsfs` command imports `server.cli`, and
    # only `wsfs serve` needs Starlette and the app.
    if name == "create_app":
        from server.app import create_app

        return create_app
    raise AttributeError(f"module 'server' has no attribute {name!r}")
