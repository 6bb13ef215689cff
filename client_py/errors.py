"""Errors of the client, and the mapping from wire errors back to Python ones.

A remote workspace must feel like a local `vfs.Workspace`: a missing file
raises `FileNotFoundError` with `errno.ENOENT`, whether the store is in this
process or behind a server. The mapping itself lives in `vfs.wire`
(`error_to_exception`), shared with the server, so both sides agree.
"""

from __future__ import annotations

from typing import Any, Mapping

from vfs.wire import ProtocolError, error_to_exception

__all__ = ["ServerUnreachable", "ConnectionLost", "ProtocolError", "exception_from_error"]


class ServerUnreachable(ConnectionError):
    """The server could not be reached (after the configured retries).

    The message always names the URL, because "connection refused" alone does
    not tell a user which of their settings is wrong.
    """

    def __init__(self, url: str, reason: object):
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach the wsfs server at {url}: {reason}")


class ConnectionLost(ConnectionError):
    """An open WebSocket closed while a request was outstanding."""


def exception_from_error(body: Mapping[str, Any] | None, status: int, reason: str = "") -> Exception:
    """Rebuild what the store would have raised from an HTTP/WS error object."""
    err = (body or {}).get("error") if isinstance(body, Mapping) else None
    if not isinstance(err, Mapping) or not isinstance(err.get("code"), str):
        return ProtocolError("EINTERNAL", f"HTTP {status} {reason}".strip())
    extra = {k: v for k, v in err.items() if k not in ("code", "message")}
    return error_to_exception(err["code"], str(err.get("message", "")), extra)
