"""server: the wsfs workspace server (Starlette on uvicorn).

`create_app(data_dir, ...)` builds the app; `wsfs serve` runs it. See
docs/protocol.md for the wire protocol and docs/server.md for the design.
"""

from server.app import create_app

__all__ = ["create_app"]
